//! Policy enforcement's kernel side (`monitor-ebpf/src/policy.rs`): the
//! maps that say which tools are enforced and what they may not reach, and
//! the connect/sendmsg hooks, attached only while some tool is enforced.
//! Neither maps nor links are pinned: a stopped (or crashed) agentmon
//! enforces nothing.

use std::{fs::File, net::IpAddr, path::PathBuf};

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, MapData,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{CgroupAttachMode, CgroupSockAddr, cgroup_sock_addr::CgroupSockAddrLinkId},
};
use ipnetwork::IpNetwork;
use monitor_common::{PolicyDeny, PolicyHost, PolicyNet};

use super::{LoadError, program, refused, take_map};
use crate::agents::ToolId;

pub const PROGRAMS: [&str; 4] = [
    "policy_connect4",
    "policy_connect6",
    "policy_sendmsg4",
    "policy_sendmsg6",
];

/// What the daemon's policy needs of the kernel (a fake in tests).
pub trait Enforcement {
    /// Attaches the hooks (`on`) or takes them off.
    fn hooks(&mut self, on: bool) -> Result<(), String>;
    /// Replaces the enforced tools and their denied networks.
    fn set(
        &mut self,
        tools: &[ToolId],
        nets: &[(ToolId, IpNetwork, PolicyDeny)],
    ) -> Result<(), String>;
    /// Denies `ip` to the tree of `root` (it resolved a denied name).
    fn deny_host(&mut self, root: u32, ip: IpAddr, deny: PolicyDeny);
    /// Takes such a denial off (the tree resolved an allowed name to `ip`).
    fn allow_host(&mut self, root: u32, ip: IpAddr);
}

pub struct Enforcer {
    tools: Array<MapData, u32>,
    nets: LpmTrie<MapData, PolicyNet, PolicyDeny>,
    hosts: HashMap<MapData, PolicyHost, PolicyDeny>,
    cgroup2: PathBuf,
    links: Vec<(&'static str, CgroupSockAddrLinkId)>,
    /// What `set` wrote last, to take it out again.
    on: Vec<ToolId>,
    keys: Vec<Key<PolicyNet>>,
}

impl Enforcer {
    /// Loads the hooks (without attaching them) and takes the maps.
    pub fn load(ebpf: &mut Ebpf, cgroup2: PathBuf) -> Result<Enforcer, LoadError> {
        for name in PROGRAMS {
            let hook: &mut CgroupSockAddr = program(ebpf, name)?;
            hook.load().map_err(|e| refused(name, &e))?;
        }
        Ok(Enforcer {
            tools: take_map(ebpf, "POLICY_TOOLS")?,
            nets: take_map(ebpf, "POLICY_NETS")?,
            hosts: take_map(ebpf, "POLICY_HOSTS")?,
            cgroup2,
            links: Vec::new(),
            on: Vec::new(),
            keys: Vec::new(),
        })
    }

    pub fn hooks(&mut self, ebpf: &mut Ebpf, on: bool) -> Result<(), String> {
        // Already as asked.
        if on != self.links.is_empty() {
            return Ok(());
        }
        if !on {
            for (name, link) in self.links.drain(..) {
                if let Ok(hook) = program::<CgroupSockAddr>(ebpf, name) {
                    let _ = hook.detach(link);
                }
            }
            return Ok(());
        }
        if !crate::caps::holds(crate::caps::ENFORCING.0) {
            return Err("agentmon dropped CAP_NET_ADMIN after start, when no tool was enforced; restart it to enforce (systemctl restart agentmon)".to_owned());
        }
        let root = File::open(&self.cgroup2).map_err(|e| {
            format!(
                "cannot open the cgroup2 root {}: {e}",
                self.cgroup2.display()
            )
        })?;
        for name in PROGRAMS {
            let attached = program::<CgroupSockAddr>(ebpf, name)
                .map_err(|e| e.to_string())
                .and_then(|hook| {
                    hook.attach(&root, CgroupAttachMode::Single)
                        .map_err(|e| refused(name, &e).to_string())
                });
            match attached {
                Ok(link) => self.links.push((name, link)),
                Err(e) => {
                    self.hooks(ebpf, false)?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Replaces the enforced tools and networks; says how many addresses
    /// of denied names it took out of `POLICY_HOSTS` (even on an error).
    pub fn set(
        &mut self,
        tools: &[ToolId],
        nets: &[(ToolId, IpNetwork, PolicyDeny)],
        hosts_removed: &mut u64,
    ) -> Result<(), String> {
        for tool in self.on.drain(..) {
            let _ = self.tools.set(tool, 0, 0);
        }
        for key in self.keys.drain(..) {
            let _ = self.nets.remove(&key);
        }
        let keys: Vec<_> = self.hosts.keys().flatten().collect();
        for key in keys {
            if self.hosts.remove(&key).is_ok() {
                *hosts_removed += 1;
            }
        }
        for &(tool, net, deny) in nets {
            let (addr, prefix) = mapped(net);
            let key = Key::new(32 + prefix, PolicyNet { tool, addr });
            self.nets
                .insert(&key, deny, 0)
                .map_err(|e| format!("cannot add {net} to the policy map ({e}): the policy denies more networks than the kernel map holds"))?;
            self.keys.push(key);
        }
        for &tool in tools {
            self.tools
                .set(tool, 1, 0)
                .map_err(|e| format!("cannot enforce tool {tool}: {e}"))?;
            self.on.push(tool);
        }
        Ok(())
    }

    /// Whether a key was added (not there before).
    pub fn deny_host(&mut self, root: u32, ip: IpAddr, deny: PolicyDeny) -> bool {
        let (addr, _) = mapped(IpNetwork::from(ip));
        let key = PolicyHost {
            root_tgid: root,
            addr,
        };
        let new = self.hosts.get(&key, 0).is_err();
        self.hosts.insert(key, deny, 0).is_ok() && new
    }

    /// Whether a key was removed.
    pub fn allow_host(&mut self, root: u32, ip: IpAddr) -> bool {
        let (addr, _) = mapped(IpNetwork::from(ip));
        self.hosts
            .remove(&PolicyHost {
                root_tgid: root,
                addr,
            })
            .is_ok()
    }

    /// The denied names' addresses held, and how many the map holds.
    pub fn hosts_fill(&self) -> (u64, u32) {
        super::evictions::fill(&self.hosts)
    }
}

/// The network's address bytes and prefix as the kernel keys them
/// (`policy::enforce::mapped`).
fn mapped(net: IpNetwork) -> ([u8; 16], u32) {
    let (addr, prefix) = crate::policy::enforce::mapped(net);
    (addr.to_be_bytes(), prefix)
}

//! The daemon's side of the egress policy: connections judged as they are
//! labelled, DNS answers of enforced trees turned into kernel denials,
//! refused connects reported; the violations metric and log.

use std::{
    collections::{HashMap, HashSet},
    fs,
    net::{IpAddr, SocketAddr},
    os::unix::fs::MetadataExt as _,
    path::Path,
    time::{Instant, SystemTime},
};

use tracing::{debug, info, warn};

use crate::{
    agents::Catalog,
    dest::Binding,
    enrich::{Enricher, Labelled},
    geoip::GeoIp,
    kernel::enforce::Enforcement,
    metrics::Metrics,
    policy::{
        Action, Policy, Verdict,
        enforce::{self, Plan},
        rule::Target,
        violations::{Link, SCHEMA_VERSION, Violation, ViolationLog},
    },
    traffic::{Dest, Direction, Names, Subject},
    tree::{Proc, Tree},
};

/// Processes listed in a violation's chain, at most (a loop guard).
const MAX_CHAIN: usize = 32;

#[derive(Default)]
pub struct PolicyState {
    policy: Policy,
    plan: Plan,
    log: Option<ViolationLog>,
    /// The imported allowlists' files as they were read (see
    /// [`PolicyState::imports_changed`]).
    stamps: Vec<Option<Stamp>>,
    /// The files' state a reload was last asked for.
    asked: Option<Vec<Option<Stamp>>>,
    /// Addresses of denied names refused in the kernel, by tree root: taken
    /// out once the tree is gone, so that the kernel's LRU map only ever
    /// makes room by dropping denials of live trees (which it counts).
    denied: HashMap<u32, HashSet<IpAddr>>,
}

/// What tells a file changed: its inode, size and modification time.
type Stamp = (u64, u64, SystemTime);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

impl PolicyState {
    /// Takes a (reloaded) policy. Its violations log is opened if it moved;
    /// one that cannot be opened is one warning, and violations still
    /// reach the metric and the daemon's log.
    pub fn replace(&mut self, policy: Policy) {
        if policy.violations_log.as_deref() != self.log.as_ref().map(|l| l.path()) {
            self.log = policy.violations_log.as_deref().and_then(|path| {
                ViolationLog::open(path)
                    .inspect_err(|e| warn!(path = %path.display(), error = %e, "cannot open the violations log; fix the path or its permissions (violations still count in agentmon_policy_violations_total and this log)"))
                    .ok()
            });
        }
        if !policy.is_empty() {
            let tools: Vec<&String> = policy.scopes.keys().collect();
            info!(
                ?tools,
                enforced = policy.enforces_any(),
                "egress policy loaded"
            );
        }
        self.stamps = policy.imports.iter().map(|p| stamp(p)).collect();
        self.policy = policy;
    }

    /// Whether a file an allowlist was imported from changed since it was
    /// read, and this change was not asked about yet: the agent's promise
    /// changed, so the config is to be read again (housekeeping asks for a
    /// reload). A reload that fails leaves the change asked about; the next
    /// edit asks again.
    pub fn imports_to_reload(&mut self) -> bool {
        let now: Vec<Option<Stamp>> = self.policy.imports.iter().map(|p| stamp(p)).collect();
        if now == self.stamps {
            self.asked = None;
            return false;
        }
        if self.asked.as_ref() == Some(&now) {
            return false;
        }
        self.asked = Some(now);
        true
    }

    /// Whether a policy is loaded: connections are judged.
    pub fn judges(&self) -> bool {
        !self.policy.is_empty()
    }

    /// Sets the kernel up for the policy in force: at start and after a
    /// reload. Enforcement that cannot be had is a warning and a 0 in
    /// `agentmon_policy_enforced`; the policy is still judged.
    pub fn apply(
        &mut self,
        kernel: Option<&mut dyn Enforcement>,
        catalog: &Catalog,
        geoip: &GeoIp,
        metrics: &Metrics,
    ) {
        let tools: Vec<_> = catalog
            .names()
            .filter_map(|n| Some((catalog.id(n)?, n)))
            .collect();
        self.plan = enforce::plan(&self.policy, &tools, geoip);
        for warning in &self.plan.warnings {
            warn!("egress policy: {warning}");
        }
        metrics.policy_enforced.reset();
        let wanted = !self.plan.tools.is_empty();
        let result = match kernel {
            Some(k) => k
                .set(&self.plan.tools, &self.plan.nets)
                .inspect(|()| self.denied.clear())
                .and_then(|()| k.hooks(wanted))
                .inspect_err(|_| {
                    let _ = k.hooks(false);
                }),
            None if wanted => Err("this kernel side has no enforcement".to_owned()),
            None => Ok(()),
        };
        let on = match result {
            Ok(()) if wanted => {
                info!(
                    tools = self.plan.tools.len(),
                    networks = self.plan.nets.len(),
                    "egress policy enforced: the kernel refuses denied connects of these tools (EPERM)"
                );
                1
            }
            Ok(()) => 0,
            Err(e) => {
                warn!("egress policy enforcement is off, violations are only reported: {e}");
                0
            }
        };
        for &tool in &self.plan.tools {
            metrics
                .policy_enforced
                .with_label_values(&[catalog.name(tool)])
                .set(on);
        }
    }

    /// Housekeeping for the violations log, if there is one: see
    /// [`crate::connlog::LogFile::follow_path`]; returns the records it
    /// dropped since the last call.
    pub fn follow_log(&mut self) -> Option<u64> {
        self.log.as_mut().map(|log| {
            log.file().follow_path();
            log.file().take_dropped()
        })
    }

    pub fn reopen(&mut self) {
        if let Some(log) = &mut self.log
            && let Err(e) = log.reopen()
        {
            warn!(path = %log.path().display(), error = %e, "cannot reopen the violations log; still writing to the old file");
        }
    }

    /// Judges a connection or flow just labelled.
    #[allow(clippy::too_many_arguments)]
    pub fn labelled(
        &mut self,
        subject: &Subject<'_>,
        names: &Names,
        dest: &Dest,
        labelled: &Labelled,
        tree: &Tree,
        catalog: &Catalog,
        metrics: &Metrics,
    ) {
        // An egress policy: what the agent reaches, not who reaches it
        // (a connection it accepted, a flow whose first datagram came in).
        if !self.judges() || subject.direction == Direction::Ingress {
            return;
        }
        let tool = catalog.name(subject.proc.tool);
        let target = Target {
            host: names.host.as_deref(),
            ip: Some(subject.remote.ip()),
            port: Some(subject.remote.port()),
            country: Some(&labelled.country),
            asn: labelled.asn,
            purpose: Some(labelled.purpose),
        };
        let Some(verdict) = self.policy.judge(tool, &target).filter(Verdict::violation) else {
            return;
        };
        let violation = Violation {
            v: SCHEMA_VERSION,
            time: String::new(),
            tool: tool.to_owned(),
            action: verdict.action.label(),
            rule: verdict.rule,
            blocked: false,
            id: subject.sock.map_or_else(
                || Some(format!("udp:{}:{}", subject.pid, subject.remote)),
                |sock| Some(format!("tcp:{sock}")),
            ),
            proto: subject.proto.label(),
            pid: subject.pid,
            chain: chain(tree, subject.pid, subject.proc),
            host: names.host.clone(),
            dns_name: names.dns_name.clone(),
            remote_addr: subject.remote.ip().to_string(),
            remote_port: subject.remote.port(),
            dest: dest.name.clone(),
            dest_country: dest.country.clone(),
            dest_asn: dest.asn.clone(),
            dest_asn_org: names.asn_org.clone(),
            purpose: dest.purpose,
            egress_bytes: subject.bytes.0,
            ingress_bytes: subject.bytes.1,
        };
        self.report(violation.at(SystemTime::now()), metrics);
    }

    /// The kernel refused a connect() or sendmsg() of `pid`.
    #[allow(clippy::too_many_arguments)]
    pub fn blocked(
        &mut self,
        pid: u32,
        rule: u32,
        remote: SocketAddr,
        udp: bool,
        tree: &Tree,
        enricher: &mut Enricher,
        catalog: &Catalog,
        metrics: &Metrics,
    ) {
        let Some(proc) = tree.get(pid) else {
            debug!(pid, "a refused connect of a process already gone");
            return;
        };
        let mut names = Names::default();
        let (dest, _) = enricher.label(proc.tool, proc.root, &remote, &mut names, Instant::now());
        let rule = self
            .plan
            .labels
            .get(rule as usize)
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned());
        let violation = Violation {
            v: SCHEMA_VERSION,
            time: String::new(),
            tool: catalog.name(proc.tool).to_owned(),
            action: Action::Deny.label(),
            rule,
            blocked: true,
            id: None,
            proto: if udp { "udp" } else { "tcp" },
            pid,
            chain: chain(tree, pid, proc),
            host: names.host.clone(),
            dns_name: names.dns_name.clone(),
            remote_addr: remote.ip().to_string(),
            remote_port: remote.port(),
            dest: dest.name,
            dest_country: dest.country,
            dest_asn: dest.asn,
            dest_asn_org: names.asn_org,
            purpose: dest.purpose,
            egress_bytes: 0,
            ingress_bytes: 0,
        };
        self.report(violation.at(SystemTime::now()), metrics);
    }

    /// DNS answers a tree of `tool` received: a name the policy denies
    /// makes its addresses refused to that tree (when `tool` is enforced);
    /// a name it allows takes its address off again (the latest answer
    /// names an address, as for labels).
    pub fn on_dns(
        &mut self,
        kernel: Option<&mut dyn Enforcement>,
        tool: &str,
        root: u32,
        bindings: &[Binding],
        enricher: &Enricher,
    ) {
        let Some(kernel) = kernel else { return };
        if bindings.is_empty() || !self.policy.enforced(tool) {
            return;
        }
        for b in bindings {
            let geo = enricher.geoip.lookup(b.addr);
            let target = Target {
                host: Some(b.name.as_str()),
                ip: Some(b.addr),
                port: None,
                country: Some(&geo.country),
                asn: geo.asn,
                purpose: Some(enricher.purpose_of(&b.name)),
            };
            match self.policy.judge(tool, &target) {
                Some(v) if v.action == Action::Deny => {
                    debug!(tool, root, name = %b.name.as_str(), addr = %b.addr, rule = %v.rule, "refusing a denied name's address to its tree");
                    let deny = self.plan.deny(&v);
                    kernel.deny_host(root, b.addr, deny);
                    self.denied.entry(root).or_default().insert(b.addr);
                }
                _ => {
                    kernel.allow_host(root, b.addr);
                    if let Some(addrs) = self.denied.get_mut(&root) {
                        addrs.remove(&b.addr);
                    }
                }
            }
        }
    }

    /// Takes the denials of trees no process of which is left out of the
    /// kernel (at housekeeping).
    pub fn forget_gone_trees(&mut self, kernel: Option<&mut dyn Enforcement>, tree: &Tree) {
        let Some(kernel) = kernel else { return };
        let live: HashSet<u32> = tree
            .pids()
            .into_iter()
            .filter_map(|pid| tree.get(pid).map(|p| p.root))
            .collect();
        self.denied.retain(|root, addrs| {
            if live.contains(root) {
                return true;
            }
            for addr in addrs.iter() {
                kernel.allow_host(*root, *addr);
            }
            false
        });
    }

    fn report(&mut self, v: Violation, metrics: &Metrics) {
        metrics
            .policy_violations
            .with_label_values(&[&v.tool, &v.dest, &v.rule])
            .inc();
        let target = v.host.clone().unwrap_or_else(|| v.remote_addr.clone());
        warn!(
            tool = %v.tool, rule = %v.rule, action = v.action, blocked = v.blocked,
            dest = %v.dest, remote = %format_args!("{}:{}", v.remote_addr, v.remote_port), pid = v.pid,
            "egress policy violation: {} reached {target}, which its policy does not allow", v.tool
        );
        if let Some(log) = &mut self.log
            && let Err(e) = log.write(&v)
        {
            warn!(path = %log.path().display(), error = %e, "cannot write the violations log");
        }
    }
}

/// The processes from the tree's root down to `pid`.
fn chain(tree: &Tree, pid: u32, proc: &Proc) -> Vec<Link> {
    let mut links = Vec::new();
    let (mut pid, mut proc) = (pid, proc.clone());
    while links.len() < MAX_CHAIN {
        links.push(Link {
            pid,
            exe: proc.exe.clone(),
            argv0: proc.argv0.clone(),
        });
        if pid == proc.root {
            break;
        }
        pid = proc.ppid;
        match tree.get(pid) {
            Some(parent) => proc = parent.clone(),
            None => break,
        }
    }
    links.reverse();
    links
}

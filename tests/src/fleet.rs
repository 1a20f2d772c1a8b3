//! A fleet of two: two agentmon "hosts", each in a network namespace of its
//! own with its own address, and a real Prometheus that scrapes both, on top
//! of a [`NetLab`] and the test [`Internet`].
//!
//! ```text
//!   host A = lab client ns           remote ns                  host B ns
//!   203.0.113.1  agentmon :9977 ---- 203.0.113.10 ... 192.0.2.10 ---- 192.0.2.2  agentmon :9977
//!                                    test internet (DNS, web)
//!                                    prometheus 127.0.0.1:9090
//! ```
//!
//! The kernel hooks are machine-wide, so both daemons see every agent on the
//! machine whatever its namespace: each host's config enables other tools,
//! which is what keeps their data apart.

use std::{
    ffi::OsStr,
    fmt::Write as _,
    fs,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::{
    Agentmon, CLIENT_V4, DNS_V4, Internet, NetLab, make_geoip,
    netlab::{ip, quiet_ip},
    prometheus::Prometheus,
    world::NETS,
};

/// Host B's address, on its veth to the remote namespace.
pub const HOST_B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The remote namespace's end of host B's veth.
const REMOTE_B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Where each host's agentmon listens (its namespace has the port to itself).
pub const AGENTMON_PORT: u16 = 9977;
/// The Prometheus scrape job, as the rules and dashboards expect it.
pub const JOB: &str = "agentmon";

/// A network namespace joined to a lab's remote namespace by a veth pair,
/// with the test internet's DNS server in its resolv.conf. On drop, every
/// process inside it is killed and it is deleted.
#[derive(Debug)]
pub struct ExtraHost {
    ns: String,
    netns_dir: PathBuf,
}

impl ExtraHost {
    pub fn new(lab: &NetLab) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let ns = format!(
            "am-{}-h{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let _ = quiet_ip(&["netns", "del", &ns]);
        let netns_dir = Path::new("/etc/netns").join(&ns);
        // From here on, Drop removes whatever exists.
        let host = ExtraHost { ns, netns_dir };
        let (h, r) = (host.ns.as_str(), lab.remote_ns());
        ip(&["netns", "add", h]);
        ip(&[
            "-n", r, "link", "add", "am-rh", "type", "veth", "peer", "name", "am-h", "netns", h,
        ]);
        ip(&[
            "-n",
            r,
            "addr",
            "add",
            &format!("{REMOTE_B_V4}/24"),
            "dev",
            "am-rh",
        ]);
        ip(&[
            "-n",
            h,
            "addr",
            "add",
            &format!("{HOST_B_V4}/24"),
            "dev",
            "am-h",
        ]);
        ip(&["-n", r, "link", "set", "am-rh", "up"]);
        ip(&["-n", h, "link", "set", "am-h", "up"]);
        ip(&["-n", h, "link", "set", "lo", "up"]);
        // The remote namespace owns every test internet address itself, so
        // it answers without forwarding.
        ip(&[
            "-n",
            h,
            "route",
            "add",
            "default",
            "via",
            &REMOTE_B_V4.to_string(),
        ]);
        fs::create_dir_all(&host.netns_dir).expect("create /etc/netns/<ns>");
        fs::write(
            host.netns_dir.join("resolv.conf"),
            format!("nameserver {DNS_V4}\n"),
        )
        .expect("write resolv.conf");
        host
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// `ip netns exec <ns> program args...` (with the host's resolv.conf).
    pub fn cmd<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(program.as_ref())
            .args(args);
        cmd
    }
}

impl Drop for ExtraHost {
    fn drop(&mut self) {
        if let Some(out) = quiet_ip(&["netns", "pids", &self.ns]) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<libc::pid_t>() {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = fs::remove_dir_all(&self.netns_dir);
        // Deleting the namespace drops its veth end, and with it the peer.
        let _ = quiet_ip(&["netns", "del", &self.ns]);
    }
}

/// Host A (the lab's client namespace) and host B, each with its agentmon,
/// and Prometheus in the remote namespace scraping both every second.
/// Dropped in field order: Prometheus and the daemons first.
pub struct Fleet {
    pub prometheus: Prometheus,
    pub a: Agentmon,
    pub b: Agentmon,
    pub host_b: ExtraHost,
    pub net: Internet,
    pub lab: NetLab,
}

impl Fleet {
    /// `records`: the DNS server's names. `config_a`, `config_b`: appended to
    /// each agentmon's config, after a `[geoip]` table naming the lab's test
    /// database ([`NETS`]). `rule_files`: loaded by Prometheus, which
    /// evaluates them every second.
    pub fn start(
        records: &[String],
        config_a: &str,
        config_b: &str,
        rule_files: &[PathBuf],
    ) -> Self {
        let lab = NetLab::new();
        let net = Internet::start(&lab, records);
        let host_b = ExtraHost::new(&lab);
        let geoip = lab.dir().join("geoip");
        make_geoip(&geoip, &NETS);
        let start = |name: &str, ns: &str, addr: Ipv4Addr, extra: &str| {
            let config = lab.dir().join(format!("agentmon-{name}.toml"));
            let text = format!(
                "[geoip]\ncountry = \"{g}/country.mmdb\"\nasn = \"{g}/asn.mmdb\"\nreload_seconds = 1\n\n{extra}",
                g = geoip.display()
            );
            fs::write(&config, text).expect("write agentmon config");
            Agentmon::builder()
                .config(&config)
                .netns(ns)
                .listen(SocketAddr::V4(SocketAddrV4::new(addr, AGENTMON_PORT)))
                .start()
        };
        let a = start("a", lab.client_ns(), CLIENT_V4, config_a);
        let b = start("b", host_b.ns(), HOST_B_V4, config_b);
        let prometheus = Prometheus::start(
            Some(lab.remote_ns()),
            &prometheus_config(&[a.addr(), b.addr()], rule_files),
        );
        Fleet {
            prometheus,
            a,
            b,
            host_b,
            net,
            lab,
        }
    }

    /// Host A's `instance` label.
    pub fn instance_a(&self) -> String {
        self.a.addr().to_string()
    }

    /// Host B's `instance` label.
    pub fn instance_b(&self) -> String {
        self.b.addr().to_string()
    }
}

/// Scrapes and evaluates every second, so a test sees data within seconds.
fn prometheus_config(targets: &[SocketAddr], rule_files: &[PathBuf]) -> String {
    let mut yaml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n",
    );
    for file in rule_files {
        let _ = writeln!(yaml, "  - {:?}", file.display().to_string());
    }
    let _ = writeln!(
        yaml,
        "scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: {:?}",
        targets.iter().map(|t| t.to_string()).collect::<Vec<_>>()
    );
    yaml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_config_lists_targets_and_rules() {
        let yaml = prometheus_config(
            &["203.0.113.1:9977".parse().unwrap()],
            &[PathBuf::from("/r/a.yml")],
        );
        assert!(yaml.contains("  - \"/r/a.yml\"\n"), "{yaml}");
        assert!(
            yaml.contains("      - targets: [\"203.0.113.1:9977\"]"),
            "{yaml}"
        );
    }
}

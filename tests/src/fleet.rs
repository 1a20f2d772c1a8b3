//! A fleet of three: three agentmon "hosts", each in a network namespace of
//! its own, on top of a [`NetLab`] and the test [`Internet`], and a real
//! Prometheus that scrapes hosts A and B and receives host C's remote writes:
//! host C is a laptop it cannot scrape, where Prometheus in agent mode
//! (dashboards/prometheus-agent.yml) scrapes agentmon on loopback and pushes.
//!
//! ```text
//!   host A = lab client ns           remote ns                  host B ns
//!   203.0.113.1  agentmon :9977 ---- 203.0.113.10 ... 192.0.2.10 ---- 192.0.2.2  agentmon :9977
//!                                    test internet (DNS, web)
//!                                    prometheus *:9090              host C ns ("laptop-c")
//!                                          192.0.2.138 ------------ 192.0.2.130
//!                                              ^ remote write       agentmon 127.0.0.1:9977
//!                                              '------------------- prometheus --agent
//! ```
//!
//! The kernel hooks are machine-wide, so every daemon sees every agent on
//! the machine whatever its namespace: each host's config enables other
//! tools, which is what keeps their data apart.

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
    Agentmon, CLIENT_V4, DNS_V4, Internet, NetLab,
    grafana::dashboards_dir,
    make_geoip,
    netlab::{ip, quiet_ip},
    prometheus::{Prometheus, PrometheusOpts},
};

/// Host B's address, on its veth to the remote namespace.
pub const HOST_B_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Host B's veth: 192.0.2.0/25, the remote end at .10.
const HOST_B_NET: HostNet = HostNet {
    host: HOST_B_V4,
    remote: Ipv4Addr::new(192, 0, 2, 10),
    prefix: 25,
    remote_link: "am-rh",
};
/// Host C's veth: 192.0.2.128/25. Its agentmon listens on loopback only;
/// the fleet's Prometheus takes its writes at the remote end, .138.
const HOST_C_NET: HostNet = HostNet {
    host: Ipv4Addr::new(192, 0, 2, 130),
    remote: Ipv4Addr::new(192, 0, 2, 138),
    prefix: 25,
    remote_link: "am-rc",
};
/// Host C's name: its agent-mode Prometheus makes it the `instance` label.
pub const HOST_C_NAME: &str = "laptop-c";
/// Where each host's agentmon listens (its namespace has the port to itself).
pub const AGENTMON_PORT: u16 = 9977;
/// The Prometheus scrape job, as the rules and dashboards expect it.
pub const JOB: &str = "agentmon";
/// The fleet Prometheus's lookback: how long after its last sample a series
/// is still seen. 5 minutes by default; short here, so that a test sees a
/// stopped laptop go quiet, yet twice the agent's 5-second batches and more.
pub const LOOKBACK_SECONDS: u64 = 12;
/// The fleet Prometheus's `agentmon_runbook_base` external label.
pub const RUNBOOK_BASE: &str = "https://runbook.test/agentmon";

/// An extra host's veth pair to the lab's remote namespace.
#[derive(Debug, Clone, Copy)]
pub struct HostNet {
    /// The host's address.
    pub host: Ipv4Addr,
    /// The remote namespace's end, the host's default route.
    pub remote: Ipv4Addr,
    pub prefix: u8,
    /// The veth's name in the remote namespace (one per host).
    pub remote_link: &'static str,
}

/// A network namespace joined to a lab's remote namespace by a veth pair,
/// with the test internet's DNS server in its resolv.conf. On drop, every
/// process inside it is killed and it is deleted.
#[derive(Debug)]
pub struct ExtraHost {
    ns: String,
    netns_dir: PathBuf,
}

impl ExtraHost {
    pub fn new(lab: &NetLab, net: &HostNet) -> Self {
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
        let (h, r, rl) = (host.ns.as_str(), lab.remote_ns(), net.remote_link);
        ip(&["netns", "add", h]);
        ip(&[
            "-n", r, "link", "add", rl, "type", "veth", "peer", "name", "am-h", "netns", h,
        ]);
        let remote = format!("{}/{}", net.remote, net.prefix);
        ip(&["-n", r, "addr", "add", &remote, "dev", rl]);
        let local = format!("{}/{}", net.host, net.prefix);
        ip(&["-n", h, "addr", "add", &local, "dev", "am-h"]);
        ip(&["-n", r, "link", "set", rl, "up"]);
        ip(&["-n", h, "link", "set", "am-h", "up"]);
        ip(&["-n", h, "link", "set", "lo", "up"]);
        // The remote namespace owns every test internet address itself, so
        // it answers without forwarding.
        let via = net.remote.to_string();
        ip(&["-n", h, "route", "add", "default", "via", &via]);
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

/// Hosts A (the lab's client namespace) and B, each with its agentmon, which
/// the fleet's Prometheus in the remote namespace scrapes every second; and
/// host C, whose agentmon a Prometheus in agent mode scrapes on loopback and
/// pushes to the fleet's. Dropped in field order: the Prometheuses and the
/// daemons first.
pub struct Fleet {
    pub prometheus: Prometheus,
    /// Host C's Prometheus in agent mode.
    pub agent_c: Prometheus,
    pub a: Agentmon,
    pub b: Agentmon,
    pub c: Agentmon,
    pub host_b: ExtraHost,
    pub host_c: ExtraHost,
    pub net: Internet,
    pub lab: NetLab,
}

/// The fleet's GeoIP data: the lab's ([`crate::world::NETS`]), but with
/// 198.51.100.0/24 in a country the shipped lists.yml leaves out (it allows
/// DE, where GitHub answers European machines), so the country alert fires.
const FLEET_NETS: [&str; 3] = [
    "203.0.113.0/24=US:64500:Example-Net-US",
    "198.51.100.0/24=BR:64501:Exemplo-Net-BR",
    "2001:db8::/32=JP:64502:Rei-Net-JP",
];

impl Fleet {
    /// `records`: the DNS server's names. `configs`: appended to hosts A's,
    /// B's and C's agentmon configs, after a `[geoip]` table naming the lab's
    /// test database ([`FLEET_NETS`]). `rule_files`: loaded by the fleet's
    /// Prometheus, which evaluates them every second.
    pub fn start(records: &[String], configs: [&str; 3], rule_files: &[PathBuf]) -> Self {
        let lab = NetLab::new();
        let net = Internet::start(&lab, records);
        let host_b = ExtraHost::new(&lab, &HOST_B_NET);
        let host_c = ExtraHost::new(&lab, &HOST_C_NET);
        let geoip = lab.dir().join("geoip");
        make_geoip(&geoip, &FLEET_NETS);
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
        let [config_a, config_b, config_c] = configs;
        let a = start("a", lab.client_ns(), CLIENT_V4, config_a);
        let b = start("b", host_b.ns(), HOST_B_V4, config_b);
        // agentmon's default listen address: the laptop exposes nothing.
        let c = start("c", host_c.ns(), Ipv4Addr::LOCALHOST, config_c);
        let prometheus = Prometheus::start_with(
            Some(lab.remote_ns()),
            &prometheus_config(&[a.addr(), b.addr()], rule_files),
            &PrometheusOpts {
                listen_all: true,
                args: vec![
                    "--web.enable-remote-write-receiver".into(),
                    format!("--query.lookback-delta={LOOKBACK_SECONDS}s"),
                ],
                ..PrometheusOpts::default()
            },
        );
        let write_url = format!("http://{}:9090/api/v1/write", HOST_C_NET.remote);
        let agent_c = Prometheus::start_with(
            Some(host_c.ns()),
            &agent_config(&write_url),
            &PrometheusOpts {
                agent: true,
                env: vec![("HOSTNAME".into(), HOST_C_NAME.into())],
                ..PrometheusOpts::default()
            },
        );
        Fleet {
            prometheus,
            agent_c,
            a,
            b,
            c,
            host_b,
            host_c,
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

    /// Host C's `instance` label: its name, not the loopback address its
    /// agent scrapes.
    pub fn instance_c(&self) -> String {
        HOST_C_NAME.to_owned()
    }
}

/// The shipped dashboards/prometheus-agent.yml, scraping every second and
/// writing to `url`; nothing else changed.
fn agent_config(url: &str) -> String {
    let path = dashboards_dir().join("prometheus-agent.yml");
    let mut text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for (from, to) in [
        (
            "  scrape_interval: 30s\n",
            "  scrape_interval: 1s\n".to_owned(),
        ),
        (
            "  - url: https://prometheus.corp.example/api/v1/write\n",
            format!("  - url: {url}\n"),
        ),
    ] {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in {}",
            path.display()
        );
        text = text.replace(from, &to);
    }
    text
}

/// Scrapes and evaluates every second, so a test sees data within seconds;
/// runbook links start at [`RUNBOOK_BASE`].
fn prometheus_config(targets: &[SocketAddr], rule_files: &[PathBuf]) -> String {
    let mut yaml = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n  external_labels:\n    agentmon_runbook_base: {RUNBOOK_BASE}\nrule_files:\n",
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
    fn agent_config_is_the_shipped_one_with_the_test_url() {
        let yaml = agent_config("http://192.0.2.138:9090/api/v1/write");
        assert!(
            yaml.contains("  - url: http://192.0.2.138:9090/api/v1/write\n"),
            "{yaml}"
        );
        assert!(yaml.contains("  scrape_interval: 1s\n"), "{yaml}");
    }

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

//! The connection log as an operator and a log pipeline rely on it: its
//! mode, reopening after logrotate's rename and SIGHUP, UDP flow records,
//! interim records of a connection held open, and the user of each record.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{
    Agentmon, ChildGuard, NetLab, PeerCounts, REMOTE_TCP_V4, REMOTE_UDP_V4, ServerGuard,
    agent_copy, require_root, run_bounded, wait_until,
};
use serde_json::Value;

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
/// Bytes the lab's servers send back per TCP connection and per datagram.
const REPLY: u64 = 777;
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);

/// A lab with its servers, netpeer as Claude Code, and agentmon writing
/// `connections.jsonl` in a folder it creates.
struct LogLab {
    lab: NetLab,
    _servers: ServerGuard,
    claude: PathBuf,
    log: PathBuf,
    am: Agentmon,
}

impl LogLab {
    /// `config`: the config file's text.
    fn start(config: &str) -> Self {
        let lab = NetLab::new();
        let servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
        let claude = lab.dir().join("home/.local/share/claude/versions/9.9.9");
        agent_copy(Path::new(NETPEER), &claude);
        let config_path = lab.dir().join("agentmon.toml");
        fs::write(&config_path, config).unwrap();
        let log = lab.dir().join("var/log/agentmon/connections.jsonl");
        let am = Agentmon::builder()
            .config(&config_path)
            .arg("--connection-log")
            .arg(&log)
            .start();
        Self {
            lab,
            _servers: servers,
            claude,
            log,
            am,
        }
    }

    fn agent(&self, args: &[&str]) -> Command {
        self.lab.client_cmd(&self.claude, args)
    }

    /// One TCP connection of the agent, sending `send` bytes.
    fn tcp(&self, send: u64) -> PeerCounts {
        let (to, send, reply) = (
            REMOTE_TCP_V4.to_string(),
            send.to_string(),
            REPLY.to_string(),
        );
        let args = ["tcp", "--to", &to, "--send", &send, "--expect", &reply];
        PeerCounts::from_output(&run_bounded(&mut self.agent(&args), RUN))
    }

    /// Waits until the file at `path` holds `n` records, and returns them.
    fn wait_records(&self, path: &Path, n: usize) -> Vec<Value> {
        assert!(
            wait_until(SETTLE, || records(path).len() >= n),
            "{n} records expected in {}, have {:?}",
            path.display(),
            records(path)
        );
        let found = records(path);
        assert_eq!(found.len(), n, "{found:?}");
        found
    }
}

fn records(path: &Path) -> Vec<Value> {
    agentmon_tests::json_lines(path)
}

fn egress_bytes(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["egress_bytes"].as_u64().unwrap())
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// This test process's uid and user name, as `id` says.
fn me() -> (u64, String) {
    let id = |flag| {
        let out = run_bounded(Command::new("id").arg(flag), RUN);
        assert!(out.status.success(), "id {flag}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    (id("-u").parse().unwrap(), id("-un"))
}

fn assert_user(record: &Value) {
    let (uid, user) = me();
    assert_eq!(record["uid"], uid, "{record}");
    assert_eq!(record["user"], user, "{record}");
}

#[test]
fn renamed_log_and_sighup_go_on_in_a_new_file_losing_and_repeating_nothing() {
    if !require_root() {
        return;
    }
    let l = LogLab::start("");
    l.tcp(1_111);
    l.wait_records(&l.log, 1);
    // The folder and the file were created for the log, neither readable
    // by others.
    assert_eq!(mode(&l.log), 0o640);
    assert_eq!(mode(l.log.parent().unwrap()), 0o750);

    // logrotate renames the file; until the SIGHUP, records follow it.
    let old = l.log.with_extension("jsonl.1");
    fs::rename(&l.log, &old).unwrap();
    l.tcp(2_222);
    l.wait_records(&old, 2);
    assert!(!l.log.exists());

    l.am.hangup();
    assert!(
        wait_until(SETTLE, || l.log.exists()),
        "no new log after SIGHUP:\n{}",
        l.am.log_text()
    );
    assert_eq!(mode(&l.log), 0o640);
    l.tcp(3_333);
    let new = l.wait_records(&l.log, 1);
    assert_eq!(egress_bytes(&new), [3_333]);
    assert_eq!(egress_bytes(&records(&old)), [1_111, 2_222]);
    assert!(l.am.log_text().contains("reopened the connection log"));
    // Still serving: SIGHUP is handled, not the default exit.
    l.am.expect(
        "agentmon_egress_bytes_total",
        &[("tool", "claude-code"), ("proto", "tcp")],
        6_666.0,
    );
}

#[test]
fn a_udp_flow_gets_a_record_when_its_process_ends_and_records_name_the_user() {
    if !require_root() {
        return;
    }
    let l = LogLab::start("");
    let to = REMOTE_UDP_V4.to_string();
    let reply = REPLY.to_string();
    let udp = [
        "udp",
        "--to",
        &to,
        "--count",
        "3",
        "--size",
        "100",
        "--expect-size",
        &reply,
    ];
    let counts = PeerCounts::from_output(&run_bounded(&mut l.agent(&udp), RUN));
    assert_eq!(counts.sent, 300);
    let record = &l.wait_records(&l.log, 1)[0];
    assert_eq!(record["v"], 3);
    assert_eq!(record["event"], "close");
    assert_eq!(record["tool"], "claude-code");
    assert_eq!(record["proto"], "udp");
    assert_eq!(record["direction"], "egress");
    assert_eq!(record["remote_addr"], "203.0.113.10");
    assert_eq!(record["remote_port"], 7001);
    assert_eq!(record["local_addr"], Value::Null);
    assert_eq!(record["egress_bytes"], 300);
    assert_eq!(record["ingress_bytes"], 3 * REPLY);
    assert_eq!(record["egress_datagrams"], 3);
    assert_eq!(record["ingress_datagrams"], 3);
    assert_eq!(record["exe"], l.claude.display().to_string());
    let pid = record["pid"].as_u64().unwrap();
    assert_eq!(record["id"], format!("udp:{pid}:203.0.113.10:7001"));
    assert_user(record);
    let (start, end) = (
        record["start"].as_str().unwrap(),
        record["end"].as_str().unwrap(),
    );
    assert!(start.ends_with('Z') && start <= end, "{start} .. {end}");

    l.tcp(500);
    let tcp = &l.wait_records(&l.log, 2)[1];
    assert_eq!(
        (&tcp["proto"], &tcp["event"]),
        (&"tcp".into(), &"close".into())
    );
    assert_user(tcp);
}

#[test]
fn a_connection_held_open_gets_interim_records_with_running_totals() {
    if !require_root() {
        return;
    }
    let l = LogLab::start("[log]\ninterim_seconds = 1\n");
    let hold = l.lab.dir().join("go");
    let (to, reply) = (REMOTE_TCP_V4.to_string(), REPLY.to_string());
    let hold_arg = hold.display().to_string();
    let args = [
        "tcp",
        "--to",
        &to,
        "--send",
        "30000",
        "--expect",
        &reply,
        "--hold-file",
        &hold_arg,
        "--send-after",
        "20000",
    ];
    let agent = ChildGuard::spawn(&mut l.agent(&args));
    // Open, its first 30000 bytes acknowledged: an interim record says so.
    let interim_at_30k = || {
        records(&l.log)
            .iter()
            .any(|r| r["event"] == "interim" && r["egress_bytes"] == 30_000)
    };
    assert!(
        wait_until(SETTLE, interim_at_30k),
        "no interim record with 30000 bytes sent: {:?}",
        records(&l.log)
    );
    fs::write(&hold, b"").unwrap();
    PeerCounts::from_output(&agent.wait_output(RUN));
    assert!(
        wait_until(SETTLE, || records(&l.log)
            .iter()
            .any(|r| r["event"] == "close")),
        "no close record: {:?}",
        records(&l.log)
    );
    let all = records(&l.log);
    let (close, interim) = all.split_last().unwrap();
    assert_eq!(close["event"], "close");
    assert_eq!(close["egress_bytes"], 50_000);
    assert_eq!(close["ingress_bytes"], REPLY);
    assert!(!interim.is_empty());
    for r in interim {
        assert_eq!(r["event"], "interim", "{r}");
        assert_eq!(r["end"], Value::Null, "{r}");
        assert_eq!((&r["id"], &r["start"]), (&close["id"], &close["start"]));
        assert!(r["time"].as_str() <= close["time"].as_str(), "{r}");
    }
    // Running totals, never going back.
    let sent = egress_bytes(&all);
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "{sent:?}");
    // Summing only `close` records counts the connection once.
    let closed: u64 = all
        .iter()
        .filter(|r| r["event"] == "close")
        .map(|r| r["egress_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(closed, 50_000);
}

//! A `kill -9` of agentmon loses and doubles nothing: its pinned programs
//! go on counting while it is down, the next run takes up the maps and the
//! saved state, and the counters Prometheus scrapes continue without a
//! reset, up to exactly the bytes sent.

use std::{fs, path::Path, path::PathBuf, time::Duration};

use agentmon_tests::{
    Agentmon, ChildGuard, NetLab, PeerCounts, Prometheus, REMOTE_TCP_V4, ServerGuard, TempDir,
    agent_copy, ensure_bpffs, json_lines, require_root,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const REPLY: u64 = 4321;
const WAIT: Duration = Duration::from_secs(30);
const EGRESS: &str = r#"sum(agentmon_egress_bytes_total{tool="claude-code",proto="tcp"})"#;

/// A pin directory of this test's own on bpffs, removed on drop (a test
/// that fails must not leave programs attached).
struct Pins(PathBuf);

impl Pins {
    fn new(name: &str) -> Self {
        ensure_bpffs();
        Pins(PathBuf::from(format!(
            "/sys/fs/bpf/agentmon-test-{name}-{}",
            std::process::id()
        )))
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// An agent that sends `first` bytes, waits for `hold` to exist, sends
/// `then` more, reads the reply and closes.
fn held_agent(lab: &NetLab, claude: &Path, first: u64, hold: &Path, then: u64) -> ChildGuard {
    let args = [
        "tcp".to_owned(),
        "--to".into(),
        REMOTE_TCP_V4.to_string(),
        "--send".into(),
        first.to_string(),
        "--hold-file".into(),
        hold.display().to_string(),
        "--send-after".into(),
        then.to_string(),
        "--expect".into(),
        REPLY.to_string(),
    ];
    ChildGuard::spawn(&mut lab.client_cmd(claude, args))
}

fn release(agent: ChildGuard, hold: &Path) -> PeerCounts {
    fs::write(hold, "").unwrap();
    PeerCounts::from_output(&agent.wait_output(WAIT))
}

fn prometheus_value(prometheus: &Prometheus, expr: &str, want: f64) -> f64 {
    let samples = prometheus
        .wait_for(expr, WAIT, |s| s.len() == 1 && s[0].value == want)
        .unwrap_or_else(|e| panic!("{e}"));
    samples[0].value
}

/// A lab with its servers and netpeer at Claude Code's native path.
fn lab_with_claude() -> (NetLab, ServerGuard, PathBuf) {
    let lab = NetLab::new();
    let servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
    let claude = lab.dir().join("home/.local/share/claude/versions/9.9.9");
    agent_copy(Path::new(NETPEER), &claude);
    (lab, servers, claude)
}

#[test]
fn kill_9_loses_and_doubles_nothing_as_prometheus_sees_it() {
    if !require_root() {
        return;
    }
    let (lab, _servers, claude) = lab_with_claude();
    let pins = Pins::new("restart");
    let state = TempDir::new("state");
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let start = |log: &str| {
        Agentmon::builder()
            .listen(addr)
            .pin_dir(&pins.0)
            .state_dir(state.path())
            .arg("--connection-log")
            .arg(state.path().join(log))
            .start()
    };
    let prometheus = Prometheus::start(
        None,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: agentmon\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    );
    let mut first = start("first.jsonl");
    // One connection closes while agentmon is down, one spans the restart.
    let (hold_down, hold_up) = (lab.dir().join("hold-down"), lab.dir().join("hold-up"));
    let closes_while_down = held_agent(&lab, &claude, 300_000, &hold_down, 200_000);
    let spans_restart = held_agent(&lab, &claude, 100_000, &hold_up, 50_000);
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    first.expect("agentmon_egress_bytes_total", &tcp, 400_000.0);
    let before = prometheus_value(&prometheus, EGRESS, 400_000.0);

    first.kill();
    let sent_down = release(closes_while_down, &hold_down);
    assert_eq!(sent_down.sent, 500_000);
    let second = start("second.jsonl");
    let sent_up = release(spans_restart, &hold_up);
    assert_eq!(sent_up.sent, 150_000);

    second.expect("agentmon_egress_bytes_total", &tcp, 650_000.0);
    second.expect("agentmon_ingress_bytes_total", &tcp, 2.0 * REPLY as f64);
    let after = prometheus_value(&prometheus, EGRESS, 650_000.0);
    // What Prometheus computes as the increase across the restart: no
    // reset, and the growth is exactly what was sent after the last scrape
    // of the first run.
    let resets = prometheus
        .query(r#"sum(resets(agentmon_egress_bytes_total{tool="claude-code",proto="tcp"}[5m]))"#)
        .unwrap();
    assert_eq!(resets[0].value, 0.0, "Prometheus saw a counter reset");
    assert_eq!(after - before, 250_000.0);
    // Each connection counted once, as a connection too.
    second.expect(
        "agentmon_connections_total",
        &[
            ("tool", "claude-code"),
            ("proto", "tcp"),
            ("direction", "egress"),
        ],
        2.0,
    );

    // The log of the second run holds both connections with their totals.
    let mut totals: Vec<(u64, u64)> = json_lines(&state.path().join("second.jsonl"))
        .iter()
        .filter(|r| r["proto"] == "tcp" && r["tool"] == "claude-code")
        .map(|r| {
            (
                r["egress_bytes"].as_u64().unwrap(),
                r["ingress_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    totals.sort_unstable();
    assert_eq!(totals, [(150_000, REPLY), (500_000, REPLY)]);
    assert!(json_lines(&state.path().join("first.jsonl")).is_empty());
}

#[test]
fn a_clean_stop_takes_the_hooks_off_and_a_restart_counts_what_tcp_moved_meanwhile() {
    if !require_root() {
        return;
    }
    let (lab, _servers, claude) = lab_with_claude();
    let pins = Pins::new("stop");
    let state = TempDir::new("state");
    let start = || {
        Agentmon::builder()
            .pin_dir(&pins.0)
            .state_dir(state.path())
            .start()
    };
    let mut first = start();
    let hold = lab.dir().join("hold");
    let agent = held_agent(&lab, &claude, 100_000, &hold, 60_000);
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    first.expect("agentmon_egress_bytes_total", &tcp, 100_000.0);
    first.stop();
    // Stopped: no hook is left (the links were unpinned), the maps are.
    let dirs: Vec<String> = fs::read_dir(&pins.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs, ["maps-v1"], "pins left after a clean stop");

    // The agent sends while agentmon is stopped, then waits for the reply
    // and keeps the connection until the next run has seen it.
    let second = start();
    let sent = release(agent, &hold);
    assert_eq!(sent.sent, 160_000);
    second.expect("agentmon_egress_bytes_total", &tcp, 160_000.0);
    second.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
}

#[test]
fn maps_pinned_by_an_incompatible_version_are_replaced_with_one_warning() {
    if !require_root() {
        return;
    }
    let pins = Pins::new("old");
    // What an older agentmon with another map layout would have left.
    let old = pins.0.join("maps-v0");
    fs::create_dir_all(&old).unwrap();
    let state = TempDir::new("state");
    let am = Agentmon::builder()
        .pin_dir(&pins.0)
        .state_dir(state.path())
        .start();
    let warnings: Vec<String> = am
        .log_text()
        .lines()
        .filter(|l| l.contains("replacing maps pinned by an incompatible agentmon"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", am.log_text());
    assert!(warnings[0].contains("maps-v0"), "{}", warnings[0]);
    assert!(!old.exists());
    assert!(pins.0.join("maps-v1/CONNS").exists());
}

#[test]
fn maps_of_another_configured_size_are_replaced_at_the_next_start() {
    if !require_root() {
        return;
    }
    let pins = Pins::new("sizes");
    let state = TempDir::new("state");
    let start = |conns: u32| {
        let config = state.path().join(format!("agentmon-{conns}.toml"));
        fs::write(&config, format!("[kernel]\nconns = {conns}\n")).unwrap();
        Agentmon::builder()
            .pin_dir(&pins.0)
            .state_dir(state.path())
            .config(&config)
            .start()
    };
    let conns = [("map", "conns")];
    let mut first = start(65_536);
    first.expect("agentmon_kernel_map_capacity", &conns, 65_536.0);
    first.stop();
    let second = start(4_096);
    second.expect("agentmon_kernel_map_capacity", &conns, 4_096.0);
    let log = second.log_text();
    let warning = log
        .lines()
        .find(|l| l.contains("replacing maps pinned by an incompatible agentmon"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(warning.contains("other [kernel] sizes"), "{warning}");
}

//! What agentmon does on kernels without an optional feature, forced on this
//! one with the hidden `--without` flag: the same exact-byte assertions as
//! with every feature, and the loss, when there is one, shown in a metric.
//! Without uprobes, TLS is seen through its records: see tls_records.rs.

use std::{path::Path, time::Duration};

use agentmon_tests::{
    Agentmon, Internet, NetLab, PeerCounts, REMOTE_TCP_V4, REMOTE_TCP_V6, ServerGuard, agent_copy,
    require_root, run_bounded, wait_until, world,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const REPLY: u64 = 4321;
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);

fn tcp(lab: &NetLab, claude: &Path, to: std::net::SocketAddr, send: u64) -> PeerCounts {
    let args = [
        "tcp".to_owned(),
        "--to".into(),
        to.to_string(),
        "--send".into(),
        send.to_string(),
        "--expect".into(),
        REPLY.to_string(),
    ];
    PeerCounts::from_output(&run_bounded(&mut lab.client_cmd(claude, args), RUN))
}

fn lab_with_claude() -> (NetLab, ServerGuard, std::path::PathBuf) {
    let lab = NetLab::new();
    let servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
    let claude = lab.dir().join("home/.local/share/claude/versions/9.9.9");
    agent_copy(Path::new(NETPEER), &claude);
    (lab, servers, claude)
}

#[test]
fn without_sock_ops_connections_end_at_their_fin_with_exact_bytes() {
    if !require_root() {
        return;
    }
    let (lab, _servers, claude) = lab_with_claude();
    let log = lab.dir().join("connections.jsonl");
    let am = Agentmon::builder()
        .args(["--without", "sock-ops", "--connection-log"])
        .arg(&log)
        .start();
    am.expect(
        "agentmon_kernel_feature_available",
        &[("feature", "sock_ops")],
        0.0,
    );
    let counts = [
        tcp(&lab, &claude, REMOTE_TCP_V4, 70_000),
        tcp(&lab, &claude, REMOTE_TCP_V6, 5_555),
    ];
    assert_eq!(counts.map(|c| c.sent), [70_000, 5_555]);
    let tcp_labels = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp_labels, 75_555.0);
    am.expect(
        "agentmon_ingress_bytes_total",
        &tcp_labels,
        2.0 * REPLY as f64,
    );
    // Each connection ended at its FIN exchange: one log line each, with
    // its exact bytes.
    let lines = || agentmon_tests::json_lines(&log);
    assert!(
        wait_until(SETTLE, || lines().len() == 2),
        "two log lines expected: {:?}",
        lines()
    );
    let mut sent: Vec<u64> = lines()
        .iter()
        .map(|l| l["egress_bytes"].as_u64().unwrap())
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, [5_555, 70_000]);
    assert!(
        lines()
            .iter()
            .all(|l| l["ingress_bytes"].as_u64() == Some(REPLY))
    );
}

#[test]
fn without_the_tls_tie_plaintext_is_counted_untied_and_socket_bytes_stay_exact() {
    if !require_root() {
        return;
    }
    let mut w = world(NETPEER, "");
    let am = w.agentmon_without("tls-tie");
    w.aider_tls(2000, &[]);
    let conns = w.server_conns("203.0.113.20:443", 1);
    let kernel = [
        ("tool", "aider"),
        ("proto", "tcp"),
        ("dest", "api.model.test"),
    ];
    am.expect(
        "agentmon_egress_bytes_total",
        &kernel,
        conns[0].raw_in as f64,
    );
    am.expect(
        "agentmon_ingress_bytes_total",
        &kernel,
        conns[0].raw_out as f64,
    );
    // Nothing tied a TLS call to its socket: the probes' plaintext is
    // counted, as untied, and never put on a connection. The connection's
    // own figure comes from its records (TLS 1.3).
    let plaintext = [
        ("tool", "aider"),
        ("dest", "api.model.test"),
        ("direction", "egress"),
        ("library", "record"),
    ];
    am.expect(
        "agentmon_tls_plaintext_bytes_total",
        &plaintext,
        conns[0].plain_in as f64,
    );
    let m = am.expect(
        "agentmon_tls_untied_bytes_total",
        &[],
        (conns[0].plain_in + conns[0].plain_out) as f64,
    );
    let libraries = m.label_values("agentmon_tls_plaintext_bytes_total", "library");
    assert_eq!(libraries, ["record".to_owned()].into(), "{libraries:?}");
}

/// Without kernel BTF, exec events carry no command line: a script agent
/// is recognised from /proc while it lives (here it waits a second before
/// connecting), exactly; one gone before agentmon reads its exec is not
/// (the loss capture.rs shows with the feature); the metric says so.
#[test]
fn without_exec_args_a_script_agent_read_while_alive_is_counted_exactly() {
    if !require_root() {
        return;
    }
    let (lab, _servers, _) = lab_with_claude();
    let script = lab.dir().join("venv/bin/aider");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::copy(Internet::script("py_tcp.py"), &script).unwrap();
    let am = Agentmon::builder().args(["--without", "exec-args"]).start();
    am.expect(
        "agentmon_kernel_feature_available",
        &[("feature", "exec_args")],
        0.0,
    );
    let (host, port) = (
        REMOTE_TCP_V4.ip().to_string(),
        REMOTE_TCP_V4.port().to_string(),
    );
    let args = [
        script.to_str().unwrap(),
        &host,
        &port,
        "3000",
        "--sleep",
        "1",
    ];
    let out = run_bounded(&mut lab.client_cmd("python3", args), RUN);
    assert!(out.status.success(), "{out:?}");
    let aider_tcp = [("tool", "aider"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &aider_tcp, 3000.0);
    am.expect("agentmon_ingress_bytes_total", &aider_tcp, REPLY as f64);
}

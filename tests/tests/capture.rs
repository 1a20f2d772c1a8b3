//! The foundation end to end: the real kernel programs, agent-like processes
//! in a network namespace lab, and exact byte counts per tool in /metrics.

use std::{fs, path::Path, path::PathBuf, process::Command, time::Duration};

use agentmon_tests::{
    Agentmon, ChildGuard, Internet, Metrics, NetLab, PeerCounts, REMOTE_TCP_V4, REMOTE_TCP_V6,
    REMOTE_UDP_V4, REMOTE_UDP_V6, ServerGuard, TempDir, agent_copy, require_root, run_bounded,
    wait_until,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
/// Bytes the lab's servers send back per TCP connection and per datagram.
const REPLY: u64 = 4321;
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);

fn run(mut cmd: Command) -> PeerCounts {
    PeerCounts::from_output(&run_bounded(&mut cmd, RUN))
}

/// A lab with the remote servers running, and netpeer copied into the lab's
/// folder where Claude Code's native installer puts its binary.
struct Setup {
    lab: NetLab,
    _servers: ServerGuard,
    claude: PathBuf,
}

fn setup() -> Setup {
    let lab = NetLab::new();
    let servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
    let claude = claude_copy(lab.dir());
    Setup {
        lab,
        _servers: servers,
        claude,
    }
}

fn claude_copy(dir: &Path) -> PathBuf {
    let path = dir.join("home/.local/share/claude/versions/9.9.9");
    agent_copy(Path::new(NETPEER), &path);
    path
}

fn tcp_args(to: std::net::SocketAddr, send: u64) -> Vec<String> {
    [
        "tcp",
        "--to",
        &to.to_string(),
        "--send",
        &send.to_string(),
        "--expect",
        &REPLY.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn udp_args(to: std::net::SocketAddr, count: u64, size: u64, connected: bool) -> Vec<String> {
    let mut args = [
        "udp",
        "--to",
        &to.to_string(),
        "--count",
        &count.to_string(),
        "--size",
        &size.to_string(),
        "--expect-size",
        &REPLY.to_string(),
    ]
    .map(String::from)
    .to_vec();
    if connected {
        args.push("--connected".into());
    }
    args
}

fn tool_series(m: &Metrics, name: &str) -> Vec<String> {
    let mut tools: Vec<String> = m
        .series(name)
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .filter_map(|(l, _)| l.get("tool").cloned())
        .collect();
    tools.sort();
    tools.dedup();
    tools
}

#[test]
fn agent_bytes_equal_what_it_sent_tcp_udp_ipv4_ipv6_and_others_add_nothing() {
    if !require_root() {
        return;
    }
    let Setup {
        lab,
        _servers,
        claude,
    } = setup();
    let am = Agentmon::start();

    // IPv4, IPv6, and IPv4 through an IPv6 socket (v4-mapped).
    let mapped: std::net::SocketAddr = "[::ffff:203.0.113.10]:7000".parse().unwrap();
    let counts = [
        run(lab.client_cmd(&claude, tcp_args(REMOTE_TCP_V4, 100_000))),
        run(lab.client_cmd(&claude, tcp_args(REMOTE_TCP_V6, 54_321))),
        run(lab.client_cmd(&claude, tcp_args(mapped, 12_345))),
    ];
    assert_eq!(counts.map(|c| c.sent), [100_000, 54_321, 12_345]);
    let udp = [
        run(lab.client_cmd(&claude, udp_args(REMOTE_UDP_V4, 5, 300, false))),
        run(lab.client_cmd(&claude, udp_args(REMOTE_UDP_V6, 3, 200, true))),
    ];
    assert_eq!(udp.map(|c| c.sent), [1500, 600]);

    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    let udp = [("tool", "claude-code"), ("proto", "udp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 166_666.0);
    am.expect("agentmon_ingress_bytes_total", &tcp, 3.0 * REPLY as f64);
    am.expect("agentmon_egress_bytes_total", &udp, 2100.0);
    am.expect("agentmon_ingress_bytes_total", &udp, 8.0 * REPLY as f64);
    let out = [
        ("tool", "claude-code"),
        ("proto", "tcp"),
        ("direction", "egress"),
    ];
    am.expect("agentmon_connections_total", &out, 3.0);
    let out = [
        ("tool", "claude-code"),
        ("proto", "udp"),
        ("direction", "egress"),
    ];
    let before = am.expect("agentmon_connections_total", &out, 2.0);

    // The same traffic from a program that is not an agent counts for nobody.
    run(lab.client_cmd(NETPEER, tcp_args(REMOTE_TCP_V4, 100_000)));
    run(lab.client_cmd(NETPEER, udp_args(REMOTE_UDP_V4, 5, 300, false)));
    std::thread::sleep(Duration::from_secs(1));
    let after = am.scrape();
    for name in [
        "agentmon_egress_bytes_total",
        "agentmon_ingress_bytes_total",
    ] {
        assert_eq!(tool_series(&after, name), ["claude-code"], "{name}");
        assert_eq!(before.series(name), after.series(name), "{name} moved");
    }
    assert_eq!(after.value("agentmon_events_lost_total", &[]), Some(0.0));
}

#[test]
fn node_script_of_gemini_cli_is_attributed_to_gemini_cli() {
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let _servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
    let tmp = TempDir::new("gemini");
    let script = tmp
        .path()
        .join("lib/node_modules/@google/gemini-cli/bundle/gemini.js");
    fs::create_dir_all(script.parent().unwrap()).unwrap();
    fs::write(
        &script,
        r#"const net = require("net");
const [host, port, n] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
let received = 0;
const s = net.connect({ host, port }, () => s.end(Buffer.alloc(n, 97)));
s.on("data", (d) => { received += d.length; });
s.on("end", () => console.log(`sent=${n} received=${received}`));
"#,
    )
    .unwrap();
    let am = Agentmon::start();
    let counts = run(lab.client_cmd(
        "node",
        [script.to_str().unwrap(), "203.0.113.10", "7000", "31337"],
    ));
    assert_eq!(
        counts,
        PeerCounts {
            sent: 31_337,
            received: REPLY
        }
    );
    let tcp = [("tool", "gemini-cli"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 31_337.0);
    let m = am.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
    assert_eq!(
        tool_series(&m, "agentmon_egress_bytes_total"),
        ["gemini-cli"]
    );
}

#[test]
fn child_of_an_agent_counts_for_the_agent() {
    if !require_root() {
        return;
    }
    let Setup {
        lab,
        _servers,
        claude,
    } = setup();
    let am = Agentmon::start();
    // claude -> sh -> netpeer (from its own, non-agent path).
    let script = format!("{NETPEER} {}", tcp_args(REMOTE_TCP_V4, 7777).join(" "));
    let out = run_bounded(
        &mut lab.client_cmd(&claude, ["exec-child", "--", "/bin/sh", "-c", &script]),
        RUN,
    );
    assert!(out.status.success(), "{out:?}");
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 7777.0);
    am.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
}

#[test]
fn connection_in_the_first_millisecond_of_an_agent_is_counted() {
    if !require_root() {
        return;
    }
    let Setup {
        lab,
        _servers,
        claude,
    } = setup();
    let am = Agentmon::start();
    // netpeer's first system calls are socket() and connect(): each run
    // connects well within a millisecond of exec, before user space can
    // have looked at it. Twenty runs leave no room for luck.
    for _ in 0..20 {
        run(lab.client_cmd(&claude, tcp_args(REMOTE_TCP_V4, 1000)));
    }
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 20_000.0);
    am.expect("agentmon_ingress_bytes_total", &tcp, 20.0 * REPLY as f64);
    let out = [
        ("tool", "claude-code"),
        ("proto", "tcp"),
        ("direction", "egress"),
    ];
    am.expect("agentmon_connections_total", &out, 20.0);
}

#[test]
fn agent_that_exited_before_agentmon_read_its_exec_is_counted() {
    if !require_root() {
        return;
    }
    let Setup {
        lab,
        _servers,
        claude,
    } = setup();
    let am = Agentmon::start();
    // A busy daemon reads an exec late: by then a short-lived agent may
    // have exited and, until its parent reaps it, be a zombie whose /proc
    // has no exe link and no command line. Stopping the daemon makes that
    // certain; the kernel programs go on counting meanwhile.
    am.pause();
    let agent = ChildGuard::spawn(&mut lab.client_cmd(&claude, tcp_args(REMOTE_TCP_V4, 4444)));
    let stat = format!("/proc/{}/stat", agent.id());
    let zombie = || fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z "));
    assert!(wait_until(RUN, zombie), "the agent did not exit");
    am.resume();
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 4444.0);
    am.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
    // Reaped only now, so the daemon read the exec of a zombie.
    let counts = PeerCounts::from_output(&agent.wait_output(RUN));
    assert_eq!(counts.sent, 4444);
}

#[test]
fn agent_running_before_agentmon_is_found_and_counted_from_then_on() {
    if !require_root() {
        return;
    }
    let Setup {
        lab,
        _servers,
        claude,
    } = setup();
    let hold = lab.dir().join("go");
    let mut args = tcp_args(REMOTE_TCP_V4, 11_111);
    args.extend([
        "--hold-file".into(),
        hold.display().to_string(),
        "--send-after".into(),
        "22_222".replace('_', ""),
    ]);
    let agent = ChildGuard::spawn(&mut lab.client_cmd(&claude, &args));
    // The first 11111 bytes leave before agentmon runs.
    std::thread::sleep(Duration::from_millis(500));
    let am = Agentmon::start();
    am.expect("agentmon_agent_processes", &[("tool", "claude-code")], 1.0);
    fs::write(&hold, b"").unwrap();
    let counts = PeerCounts::from_output(&agent.wait_output(RUN));
    assert_eq!(
        counts,
        PeerCounts {
            sent: 33_333,
            received: REPLY
        }
    );
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 22_222.0);
    am.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
    am.expect("agentmon_agent_processes", &[("tool", "claude-code")], 0.0);
}

#[test]
fn open_connection_grows_at_scrape_time_and_its_close_is_logged() {
    if !require_root() {
        return;
    }
    let Setup {
        lab,
        _servers,
        claude,
    } = setup();
    let log = lab.dir().join("log/connections.jsonl");
    let am = Agentmon::builder()
        .arg("--connection-log")
        .arg(&log)
        .start();
    let hold = lab.dir().join("go");
    let mut args = tcp_args(REMOTE_TCP_V6, 30_000);
    args.extend([
        "--hold-file".into(),
        hold.display().to_string(),
        "--send-after".into(),
        "20000".into(),
    ]);
    let agent = ChildGuard::spawn(&mut lab.client_cmd(&claude, &args));
    let pid = agent.id();
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    // Still open: the bytes are read from the kernel at scrape time.
    am.expect("agentmon_egress_bytes_total", &tcp, 30_000.0);
    assert_eq!(
        fs::read_to_string(&log).unwrap_or_default(),
        "",
        "nothing closed yet"
    );
    // The local port the kernel picked, as `ss` in the client namespace shows it.
    let ss = run_bounded(
        &mut lab.client_cmd("ss", ["-tnH", "dst", "[2001:db8::10]:7000"]),
        RUN,
    );
    let ss = String::from_utf8_lossy(&ss.stdout).into_owned();
    let local_port: u16 = ss
        .split_whitespace()
        .nth(3)
        .and_then(|local| local.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no local port in `ss` output {ss:?}"));
    fs::write(&hold, b"").unwrap();
    PeerCounts::from_output(&agent.wait_output(RUN));
    am.expect("agentmon_egress_bytes_total", &tcp, 50_000.0);
    assert!(
        wait_until(SETTLE, || fs::read_to_string(&log)
            .is_ok_and(|t| t.lines().count() == 1)),
        "one log line expected, have {:?}",
        fs::read_to_string(&log)
    );
    let line: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(line["tool"], "claude-code");
    assert_eq!(line["pid"], pid);
    assert_eq!(line["root_pid"], pid);
    assert_eq!(line["exe"], claude.display().to_string());
    assert_eq!(line["argv0"], claude.display().to_string());
    assert_eq!(line["proto"], "tcp");
    assert_eq!(line["direction"], "egress");
    assert_eq!(line["remote_addr"], "2001:db8::10");
    assert_eq!(line["remote_port"], 7000);
    assert_eq!(line["local_addr"], "2001:db8::1");
    assert_eq!(line["local_port"], local_port);
    assert_eq!(line["egress_bytes"], 50_000);
    assert_eq!(line["ingress_bytes"], REPLY);
    assert!(line["ppid"].as_u64().unwrap() > 0);
    let (start, end) = (
        line["start"].as_str().unwrap(),
        line["end"].as_str().unwrap(),
    );
    assert!(start.ends_with('Z') && start <= end, "{start} .. {end}");
}

#[test]
fn connection_an_agent_accepts_is_ingress_and_counted() {
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let claude = claude_copy(lab.dir());
    let am = Agentmon::start();
    // The agent listens in the client namespace; the remote host connects.
    let ready = lab.dir().join("ready");
    let _agent = ChildGuard::spawn(
        &mut lab.client_cmd(
            &claude,
            [
                "serve",
                "--tcp",
                "203.0.113.1:7100",
                "--reply",
                "100",
                "--ready-file",
            ]
            .map(String::from)
            .into_iter()
            .chain([ready.display().to_string()]),
        ),
    );
    assert!(
        wait_until(SETTLE, || ready.exists()),
        "agent server not ready"
    );
    let counts = run(lab.remote_cmd(
        NETPEER,
        [
            "tcp",
            "--to",
            "203.0.113.1:7100",
            "--send",
            "5000",
            "--expect",
            "100",
        ],
    ));
    assert_eq!(
        counts,
        PeerCounts {
            sent: 5000,
            received: 100
        }
    );
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_ingress_bytes_total", &tcp, 5000.0);
    am.expect("agentmon_egress_bytes_total", &tcp, 100.0);
    let ingress = [
        ("tool", "claude-code"),
        ("proto", "tcp"),
        ("direction", "ingress"),
    ];
    let m = am.expect("agentmon_connections_total", &ingress, 1.0);
    assert_eq!(
        m.value("agentmon_connections_total", &[("direction", "egress")]),
        None,
        "the accepted connection must not count as egress"
    );
}

#[test]
fn socket_passed_to_another_agent_counts_for_the_process_that_uses_it() {
    if !require_root() {
        return;
    }
    socket_handed_over(false);
}

/// The same hand-over, all of it before agentmon reads an event: the
/// connection opens while claude is pending, user space labels it claude
/// from its opening event, and only codex's packets come after.
#[test]
fn socket_handed_over_before_agentmon_read_its_opening_loses_no_byte() {
    if !require_root() {
        return;
    }
    socket_handed_over(true);
}

fn socket_handed_over(paused: bool) {
    let Setup {
        lab,
        _servers,
        claude,
    } = setup();
    let codex = lab.dir().join(
        "lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex-x86_64-unknown-linux-musl",
    );
    agent_copy(Path::new(NETPEER), &codex);
    let am = Agentmon::start();
    let hold = lab.dir().join("go");
    let to = REMOTE_TCP_V4.to_string();
    // claude connects and sends 1000 bytes, then (once they are
    // acknowledged) execs codex, which gets the socket and, once agentmon
    // knows it as codex, sends 5000 more.
    let mut args: Vec<String> = ["tcp", "--to", &to, "--send", "1000", "--hand-over"]
        .map(String::from)
        .to_vec();
    args.push(codex.display().to_string());
    args.extend(tcp_args(REMOTE_TCP_V4, 0));
    args.extend([
        "--hold-file".into(),
        hold.display().to_string(),
        "--send-after".into(),
        "5000".into(),
    ]);
    if paused {
        am.pause();
    }
    let agent = ChildGuard::spawn(&mut lab.client_cmd(&claude, &args));
    if paused {
        let exe = format!("/proc/{}/exe", agent.id());
        let execd = wait_until(SETTLE, || fs::read_link(&exe).is_ok_and(|p| p == codex));
        am.resume();
        assert!(execd, "the agent did not exec codex");
    }
    am.expect("agentmon_agent_processes", &[("tool", "codex")], 1.0);
    fs::write(&hold, b"").unwrap();
    let counts = PeerCounts::from_output(&agent.wait_output(RUN));
    assert_eq!(
        counts,
        PeerCounts {
            sent: 5000,
            received: REPLY
        }
    );

    let claude_tcp = [("tool", "claude-code"), ("proto", "tcp")];
    let codex_tcp = [("tool", "codex"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &codex_tcp, 5000.0);
    am.expect("agentmon_ingress_bytes_total", &codex_tcp, REPLY as f64);
    let m = am.expect("agentmon_egress_bytes_total", &claude_tcp, 1000.0);
    assert_eq!(m.value("agentmon_ingress_bytes_total", &claude_tcp), None);
    for tool in ["claude-code", "codex"] {
        let labels = [("tool", tool), ("proto", "tcp"), ("direction", "egress")];
        assert_eq!(
            m.value("agentmon_connections_total", &labels),
            Some(1.0),
            "{tool}"
        );
    }
}

/// A script agent (python3 running .../bin/aider) that connects, sends and
/// exits before agentmon reads its exec: /proc no longer has its command
/// line, so it is judged by the one the kernel read at the exec. Paused,
/// agentmon reads the events only after the process is gone and reaped.
#[test]
fn script_agent_gone_before_agentmon_read_its_exec_is_counted() {
    if !require_root() {
        return;
    }
    let Setup { lab, _servers, .. } = setup();
    let script = lab.dir().join("venv/bin/aider");
    fs::create_dir_all(script.parent().unwrap()).unwrap();
    fs::copy(Internet::script("py_tcp.py"), &script).unwrap();
    let am = Agentmon::start();
    am.expect(
        "agentmon_kernel_feature_available",
        &[("feature", "exec_args")],
        1.0,
    );
    am.pause();
    let (host, port) = (
        REMOTE_TCP_V4.ip().to_string(),
        REMOTE_TCP_V4.port().to_string(),
    );
    let mut cmd = lab.client_cmd("python3", [script.to_str().unwrap(), &host, &port, "2500"]);
    let out = run_bounded(&mut cmd, RUN);
    am.resume();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        REPLY.to_string()
    );
    let aider_tcp = [("tool", "aider"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &aider_tcp, 2500.0);
    am.expect("agentmon_ingress_bytes_total", &aider_tcp, REPLY as f64);
}

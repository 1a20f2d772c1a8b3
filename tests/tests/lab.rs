//! The test network on its own, without agentmon: if this fails, every other
//! root test's failure is about the lab, not the daemon.

use std::{ffi::OsStr, path::Path, process::Command, time::Duration};

use agentmon_tests::{
    ChildGuard, NetLab, PeerCounts, REMOTE_TCP_V4, REMOTE_TCP_V6, REMOTE_UDP_V4, REMOTE_UDP_V6,
    require_root, run_bounded, wait_until,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const REPLY: usize = 4321;
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn run(mut cmd: Command) -> PeerCounts {
    PeerCounts::from_output(&run_bounded(&mut cmd, RUN_TIMEOUT))
}

#[test]
fn lab_carries_tcp_and_udp_over_both_families() {
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let _servers = lab.spawn_servers(Path::new(NETPEER), REPLY);

    for to in [REMOTE_TCP_V4, REMOTE_TCP_V6] {
        let to = to.to_string();
        let counts = run(lab.client_cmd(
            NETPEER,
            ["tcp", "--to", &to, "--send", "100000", "--expect", "4321"],
        ));
        assert_eq!(
            counts,
            PeerCounts {
                sent: 100_000,
                received: 4321
            },
            "tcp to {to}"
        );
    }

    // Unconnected sendto and connected send, one family each way round.
    for (to, connected) in [
        (REMOTE_UDP_V4, false),
        (REMOTE_UDP_V6, true),
        (REMOTE_UDP_V4, true),
    ] {
        let to = to.to_string();
        let mut args = vec![
            "udp",
            "--to",
            &to,
            "--count",
            "5",
            "--size",
            "300",
            "--expect-size",
            "4321",
        ];
        if connected {
            args.push("--connected");
        }
        let counts = run(lab.client_cmd(NETPEER, &args));
        assert_eq!(
            counts,
            PeerCounts {
                sent: 1500,
                received: 5 * 4321
            },
            "udp to {to} (connected: {connected})"
        );
    }

    // A wrong expectation is reported as a failure, not passed over.
    let to = REMOTE_TCP_V4.to_string();
    let out = run_bounded(
        &mut lab.client_cmd(
            NETPEER,
            ["tcp", "--to", &to, "--send", "10", "--expect", "1"],
        ),
        RUN_TIMEOUT,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "netpeer must fail when the reply size is wrong: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected 1 bytes back, received 4321"));
}

#[test]
fn lab_holds_connections_open_and_cleans_up_on_drop() {
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let servers = lab.spawn_servers(Path::new(NETPEER), 10);
    let (client_ns, remote_ns) = (lab.client_ns().to_owned(), lab.remote_ns().to_owned());
    let go = lab.dir().join("go");
    let to = REMOTE_TCP_V6.to_string();

    // A connection held open mid-transfer, from a forked (not exec'd) child.
    let held = ChildGuard::spawn(
        &mut lab.client_cmd(
            NETPEER,
            ["tcp", "--to", &to, "--send", "1000", "--hold-file"]
                .map(OsStr::new)
                .into_iter()
                .chain([go.as_os_str()])
                .chain(["--send-after", "234", "--expect", "10", "--children"].map(OsStr::new)),
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&go, b"").unwrap();
    let counts = PeerCounts::from_output(&held.wait_output(RUN_TIMEOUT));
    assert_eq!(
        counts,
        PeerCounts {
            sent: 1234,
            received: 10
        }
    );

    // A process the test leaves running inside the lab is killed with it.
    let stray = lab
        .client_cmd(
            NETPEER,
            [
                "tcp",
                "--to",
                &to,
                "--send",
                "1",
                "--hold-file",
                "/nonexistent",
                "--send-after",
                "1",
            ],
        )
        .spawn()
        .unwrap();
    let stray_pid = stray.id();
    let in_lab = wait_until(Duration::from_secs(5), || {
        let pids = run_bounded(
            Command::new("ip").args(["netns", "pids", &client_ns]),
            RUN_TIMEOUT,
        );
        String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .any(|p| p == stray_pid.to_string())
    });
    assert!(
        in_lab,
        "the stray client {stray_pid} never showed up in {client_ns}"
    );
    drop(servers);
    drop(lab);
    let mut stray = stray;
    let status = stray.wait().unwrap();
    assert!(!status.success(), "the stray client was killed: {status}");
    let list = run_bounded(Command::new("ip").args(["netns", "list"]), RUN_TIMEOUT);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.contains(&client_ns) && !list.contains(&remote_ns),
        "namespaces left behind:\n{list}"
    );
}

#[test]
fn test_internet_resolves_names_and_counts_raw_bytes() {
    use agentmon_tests::{Internet, default_records};
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let net = Internet::start(&lab, &default_records());
    let client = Internet::script("py_client.py");
    let py = |args: &[&str]| {
        let out = run_bounded(
            &mut lab.client_cmd(
                "python3",
                std::iter::once(client.as_os_str()).chain(args.iter().map(OsStr::new)),
            ),
            RUN_TIMEOUT,
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // glibc getaddrinfo + TLS with SNI, and a raw DNS query through a CNAME.
    let out = py(&[
        "--name",
        "api.model.test",
        "--tls",
        "--port",
        "443",
        "--path",
        "/v1/messages",
        "--body",
        "1000",
    ]);
    assert!(out.contains("received="), "{out}");
    py(&[
        "--name",
        "telemetry.vendor.test",
        "--resolver",
        "raw",
        "--port",
        "80",
        "--body",
        "10",
    ]);
    // A hostile answer still ends in an address the client can use.
    py(&[
        "--name",
        "x.hostile.test",
        "--resolver",
        "raw",
        "--port",
        "80",
        "--body",
        "10",
    ]);
    assert!(wait_until(Duration::from_secs(10), || net
        .server_conns()
        .len()
        == 3));
    let conns = net.server_conns();
    assert_eq!(conns[0].sni.as_deref(), Some("api.model.test"));
    assert!(conns[0].tls && conns[0].raw_in > 1000);
    assert_eq!(conns[1].local, "203.0.113.30:80");
    assert_eq!(conns[2].local, "203.0.113.20:80");
}

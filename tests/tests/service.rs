//! agentmon under systemd's notify protocol (`Type=notify`), spoken to a
//! socket of the test's own as systemd would: READY=1 only once /metrics
//! serves, watchdog pings, RELOADING=1 on SIGHUP and STOPPING=1 on SIGTERM.

use std::{
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agentmon_tests::{ChildGuard, TempDir, agentmon_bin, http_get, require_root};

/// The next notification, or None after `timeout`.
fn next(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Waits for a notification that contains `want`; panics with what came.
fn expect(socket: &UnixDatagram, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(msg) = next(socket, Duration::from_secs(1)) {
            if msg.lines().any(|l| l == want) {
                return msg;
            }
            seen.push(msg);
        }
    }
    panic!("no {want} within 30 s; got {seen:?}");
}

fn signal(child: &ChildGuard, sig: i32) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory-safety preconditions; the child is ours.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn ready_only_once_metrics_serve_then_watchdog_reload_and_stop() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // systemd names the watched process in WATCHDOG_PID; the shell's pid is
    // agentmon's once it execs.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(agentmon_bin())
        .args(["run", "--listen", &addr.to_string()])
        .args(["--pin-dir", "none", "--state-dir", "none"])
        .env("NOTIFY_SOCKET", &path)
        // Pings every second (half of it).
        .env("WATCHDOG_USEC", "2000000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = ChildGuard::spawn(&mut cmd);

    let ready = expect(&socket, "READY=1");
    assert!(
        ready.contains(&format!("STATUS=serving /metrics on {addr}")),
        "{ready}"
    );
    // Ready means serving, with the programs attached: no wait here.
    let metrics = http_get(addr, "/metrics", Duration::from_secs(5)).unwrap();
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l.starts_with("agentmon_bpf_programs_attached ")
                && l != "agentmon_bpf_programs_attached 0"),
        "programs not attached at READY=1"
    );
    expect(&socket, "WATCHDOG=1");
    expect(&socket, "WATCHDOG=1");

    signal(&child, libc::SIGHUP);
    let reloading = expect(&socket, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    expect(&socket, "READY=1");

    signal(&child, libc::SIGTERM);
    expect(&socket, "STOPPING=1");
    let out = child.wait_output(Duration::from_secs(30));
    assert!(out.status.success(), "{out:?}");
}

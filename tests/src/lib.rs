//! Support for agentmon's integration tests.
//!
//! Root tests (in `tests/tests/*.rs`) build a [`NetLab`]: two network namespaces
//! joined by a veth pair, with documentation addresses (203.0.113.0/24,
//! 2001:db8::/32), so every byte a test sends stays on this machine. `netpeer`
//! (this package's binary) plays the remote servers and the agent-like client;
//! [`Agentmon`] runs the daemon under test and [`Metrics`] reads what it exports.
//! Everything a helper starts is killed, and everything it creates removed, on drop.
//! [`Fleet`] runs three daemons as three hosts with a real [`Prometheus`] that
//! scrapes two and receives the third's remote writes, for the dashboard tests; [`panel_queries`] reads the dashboards.
//!
//! Tests that need root and BPF start with:
//! ```no_run
//! if !agentmon_tests::require_root() {
//!     return;
//! }
//! ```

mod agentmon;
mod agents;
mod curl;
mod fleet;
mod grafana;
mod http;
mod internet;
mod metrics;
mod netlab;
mod netns;
mod pki;
mod process;
mod prometheus;
mod world;

use std::{
    env, fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    thread,
    time::{Duration, Instant},
};

pub use agentmon::{Agentmon, AgentmonBuilder, agentmon_bin, journal_stream};
pub use agents::{AGENTS_HOME, agent_env, installed_agent};
pub use curl::Curl;
pub use fleet::{
    AGENTMON_PORT, ExtraHost, Fleet, HOST_B_V4, HOST_C_NAME, HostNet, JOB, LOOKBACK_SECONDS,
    RUNBOOK_BASE,
};
pub use grafana::{
    PanelQuery, SHAPES, agentmon_metric_names, dashboards, dashboards_dir, label_values_query,
    legend_labels, panel_queries, panels, shape, substitute,
};
pub use http::{HttpResponse, connect_from, http_get, http_get_from};
pub use internet::{
    DNS_V4, FAR_V4, Internet, MODEL_V4, MODEL_V6, REPLY_BODY, ServerConn, TELEMETRY_V4, WebServer,
    default_records, self_signed_cert,
};
pub use metrics::{Labels, Metrics, ParseError};
pub use netlab::{
    CLIENT_V4, CLIENT_V6, NetLab, REMOTE_TCP_V4, REMOTE_TCP_V6, REMOTE_UDP_V4, REMOTE_UDP_V6,
    REMOTE_V4, REMOTE_V6, ServerGuard, TCP_PORT, UDP_PORT,
};
pub use netns::{in_netns, spawn_in_netns};
pub use pki::{CertFiles, TestCa, served_certificate};
pub use process::{ChildGuard, PeerCounts, TempDir, run_bounded};
pub use prometheus::{Prometheus, PrometheusOpts, Sample, url_encode};
pub use world::{
    NETS, TEST_PURPOSES, World, labels, make_geoip, make_geoip_built, sum, world, world_with,
};

/// Where the kernel exposes its BTF; agentmon's programs need it.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Whether this process may run tests that need root and a BTF kernel.
///
/// Returns true when the effective uid is 0 and `/sys/kernel/btf/vmlinux`
/// exists. Otherwise, under CI (`CI` set, and not empty, `0` or `false`) it
/// panics, because in CI such a test must fail rather than pass by skipping; on a
/// developer's machine it prints "skipping: needs root and BTF" and returns false.
pub fn require_root() -> bool {
    let root = is_root();
    let btf = Path::new(VMLINUX_BTF).exists();
    if root && btf {
        hold_machine_lock();
        return true;
    }
    if in_ci() {
        panic!(
            "this test needs root and BTF (euid 0: {root}, {VMLINUX_BTF} present: {btf}); \
             CI must run it, not skip it"
        );
    }
    eprintln!("skipping: needs root and BTF");
    false
}

/// Root tests share the kernel's hooks: an agent-like process in one test run
/// is seen by every agentmon on the machine. Two runs at once (two checkouts,
/// or a benchmark) would count each other's traffic, so each test process
/// holds this lock from its first root test until it exits.
pub const MACHINE_LOCK: &str = "/run/lock/agentmon-tests.lock";

/// Takes [`MACHINE_LOCK`] (waiting for another holder, with one line on
/// stderr) and keeps it until this process exits. [`require_root`] calls it;
/// `cargo xtask bench` calls it too. Idempotent.
pub fn hold_machine_lock() {
    static HELD: std::sync::OnceLock<fs::File> = std::sync::OnceLock::new();
    HELD.get_or_init(|| {
        let _ = fs::create_dir_all("/run/lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(MACHINE_LOCK)
            .unwrap_or_else(|e| panic!("open {MACHINE_LOCK}: {e}"));
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: flock on a file descriptor we own; it has no other preconditions.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            eprintln!("waiting for {MACHINE_LOCK}: another agentmon test run or bench is using the kernel hooks");
            // SAFETY: as above; blocks until the other holder exits.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                panic!("flock {MACHINE_LOCK}: {}", std::io::Error::last_os_error());
            }
        }
        file
    });
}

/// The records of a JSON Lines file (none if it does not exist); panics on
/// a line that is not JSON.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("log line is JSON"))
        .collect()
}

/// Mounts bpffs at /sys/fs/bpf if it is not (systemd does on real hosts;
/// `cargo xtask setup` does here): each daemon pins its maps there.
pub fn ensure_bpffs() {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a zeroed out-parameter.
    let ok = unsafe { libc::statfs(c"/sys/fs/bpf".as_ptr(), &mut stat) } == 0;
    if ok && stat.f_type as i64 == BPF_FS_MAGIC {
        return;
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mount -t bpf bpf /sys/fs/bpf failed: {status}"
    );
}

/// Whether this runs under CI (`CI` set, and not empty, `0` or `false`),
/// where tests that need root must fail rather than skip.
pub fn in_ci() -> bool {
    env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A size line of /proc/PID/status in KiB (`VmRSS`, `VmHWM`, ...); panics
/// naming the process when it is gone.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is gone: {e}"));
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {status}"));
    value.trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// Polls `condition` every 20 ms until it holds or `timeout` has passed; checks
/// once more at the deadline. Returns whether it held, so the caller can assert
/// with a message that says what was awaited.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Copies the executable `src` to `dst`, creating `dst`'s parent folders, with
/// mode 0755. Tests use it to give `netpeer` an agent's path, such as
/// `<tmp>/.local/share/claude/versions/9.9.9`. Panics on failure.
pub fn agent_copy(src: &Path, dst: &Path) {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    fs::copy(src, dst)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod 0755 {}: {e}", dst.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_is_bounded() {
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(100), || false));
        assert!(start.elapsed() >= Duration::from_millis(100));
        let mut calls = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        }));
    }

    #[test]
    fn agent_copy_makes_an_executable_with_parents() {
        let dir = TempDir::new("agent-copy");
        let src = dir.path().join("src");
        fs::write(&src, b"#!/bin/sh\n").unwrap();
        let dst = dir.path().join(".local/share/claude/versions/9.9.9");
        agent_copy(&src, &dst);
        let mode = fs::metadata(&dst).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(fs::read(&dst).unwrap(), b"#!/bin/sh\n");
    }
}

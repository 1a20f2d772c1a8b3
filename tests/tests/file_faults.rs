//! agentmon's files going wrong under it. The connection log: a full disk
//! drops records counted in a metric with one warning, and writing resumes
//! when there is space; a removed folder is made again; a symbolic link
//! planted at the log's path in a world-writable folder is refused at start
//! and at a reopen, and the file it points to is left as it was. Without a
//! BPF file system for its pins, agentmon counts exactly and says, once,
//! that a restart starts afresh. (GeoIP files replaced, truncated and
//! corrupt: `destinations.rs`; config errors on reload: `reload.rs`.)

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{
    Agentmon, NetLab, PeerCounts, REMOTE_TCP_V4, ServerGuard, agent_copy, agentmon_bin,
    require_root, run_bounded, wait_until,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const REPLY: u64 = 555;
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);
const DROPPED: &str = "agentmon_log_records_dropped_total";

struct Lab {
    lab: NetLab,
    _servers: ServerGuard,
    claude: PathBuf,
}

impl Lab {
    fn new() -> Self {
        let lab = NetLab::new();
        let servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
        let claude = lab.dir().join("home/.local/share/claude/versions/9.9.9");
        agent_copy(Path::new(NETPEER), &claude);
        Self {
            lab,
            _servers: servers,
            claude,
        }
    }

    fn agentmon(&self, log: &Path) -> Agentmon {
        Agentmon::builder().arg("--connection-log").arg(log).start()
    }

    /// One TCP connection of the agent, sending `send` bytes.
    fn tcp(&self, send: u64) {
        let (to, n, reply) = (
            REMOTE_TCP_V4.to_string(),
            send.to_string(),
            REPLY.to_string(),
        );
        let args = ["tcp", "--to", &to, "--send", &n, "--expect", &reply];
        let out = run_bounded(&mut self.lab.client_cmd(&self.claude, args), RUN);
        assert_eq!(PeerCounts::from_output(&out).sent, send, "{out:?}");
    }
}

fn lines(path: &Path) -> usize {
    fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn log_lines_with(am: &Agentmon, text: &str) -> usize {
    am.log_text().lines().filter(|l| l.contains(text)).count()
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", at.display());
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_drops_records_counted_with_one_warning_and_writing_resumes() {
    if !require_root() {
        return;
    }
    let lab = Lab::new();
    let disk = Tmpfs::mount(&lab.lab.dir().join("small"), "64k");
    // A full file system (an empty log takes no block of it yet).
    let filler = disk.0.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .output()
        .unwrap();
    let log = disk.0.join("connections.jsonl");
    let am = lab.agentmon(&log);
    for n in 1..=3 {
        lab.tcp(100 * n);
    }
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 600.0);
    am.expect(DROPPED, &[("log", "connections")], 3.0);
    assert_eq!(lines(&log), 0);
    let warning = "cannot write the log file";
    assert_eq!(log_lines_with(&am, warning), 1, "{}", am.log_text());
    assert!(
        log_lines_with(&am, "agentmon_log_records_dropped_total") == 1,
        "the warning names the metric:\n{}",
        am.log_text()
    );

    // Space again: the next record is written, and the dropped stay counted.
    fs::remove_file(&filler).unwrap();
    lab.tcp(50);
    assert!(wait_until(SETTLE, || lines(&log) == 1), "{}", am.log_text());
    let m = am.expect("agentmon_egress_bytes_total", &tcp, 650.0);
    assert_eq!(m.value(DROPPED, &[("log", "connections")]), Some(3.0));
    assert_eq!(log_lines_with(&am, "the log file is written again"), 1);
    assert_eq!(log_lines_with(&am, warning), 1);
}

#[test]
fn a_removed_log_folder_is_made_again_and_later_records_land_in_it() {
    if !require_root() {
        return;
    }
    let lab = Lab::new();
    let folder = lab.lab.dir().join("var/log/agentmon");
    let log = folder.join("connections.jsonl");
    let am = lab.agentmon(&log);
    lab.tcp(100);
    assert!(wait_until(SETTLE, || lines(&log) == 1));
    fs::remove_dir_all(&folder).unwrap();
    // Housekeeping notices without a SIGHUP.
    assert!(
        wait_until(SETTLE, || log.exists()),
        "the log was not made again:\n{}",
        am.log_text()
    );
    assert_eq!(
        log_lines_with(&am, "the log file was removed or replaced"),
        1
    );
    assert_eq!(
        fs::metadata(&folder).unwrap().permissions().mode() & 0o777,
        0o750
    );
    assert_eq!(
        fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o640
    );
    lab.tcp(200);
    assert!(wait_until(SETTLE, || lines(&log) == 1), "{}", am.log_text());
    let record: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(record["egress_bytes"], 200, "{record}");
}

/// A world-writable folder with the sticky bit, as /tmp, holding a link
/// someone planted at the log's path to a root-only file.
fn planted(dir: &Path) -> (PathBuf, PathBuf) {
    let shared = dir.join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.join("victim");
    fs::write(&victim, "root:secret\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let log = shared.join("connections.jsonl");
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    (log, victim)
}

fn assert_untouched(victim: &Path) {
    assert_eq!(fs::read_to_string(victim).unwrap(), "root:secret\n");
    let mode = fs::metadata(victim).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_link_planted_at_the_log_path_is_refused_at_start_and_at_a_reopen() {
    if !require_root() {
        return;
    }
    let lab = Lab::new();
    let (log, victim) = planted(lab.lab.dir());
    let out = run_bounded(
        Command::new(agentmon_bin())
            .args(["run", "--listen", "127.0.0.1:0", "--connection-log"])
            .arg(&log),
        RUN,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("is a symbolic link") && errors[0].contains(&log.display().to_string()),
        "{}",
        errors[0]
    );
    assert_untouched(&victim);

    // Running, after logrotate moved the file away: a link planted before
    // the SIGHUP is not followed; the old file stays in use.
    fs::remove_file(&log).unwrap();
    let am = lab.agentmon(&log);
    lab.tcp(100);
    assert!(wait_until(SETTLE, || lines(&log) == 1));
    let rotated = log.with_extension("jsonl.1");
    fs::rename(&log, &rotated).unwrap();
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    am.hangup();
    assert!(
        wait_until(SETTLE, || log_lines_with(
            &am,
            "cannot reopen the connection log"
        ) == 1),
        "{}",
        am.log_text()
    );
    lab.tcp(200);
    assert!(
        wait_until(SETTLE, || lines(&rotated) == 2),
        "{}",
        am.log_text()
    );
    // Housekeeping does not follow it either.
    std::thread::sleep(Duration::from_secs(3));
    assert_untouched(&victim);
    assert!(fs::symlink_metadata(&log).unwrap().file_type().is_symlink());
}

#[test]
fn without_a_bpf_file_system_it_counts_exactly_and_says_a_restart_starts_afresh() {
    if !require_root() {
        return;
    }
    let lab = Lab::new();
    // As where /sys/fs/bpf is not mounted: the pin folder's parent is no bpffs.
    let pins = lab.lab.dir().join("not-bpffs/agentmon");
    let log = lab.lab.dir().join("connections.jsonl");
    let am = Agentmon::builder()
        .pin_dir(&pins)
        .arg("--connection-log")
        .arg(&log)
        .start();
    let warning = "no BPF filesystem here, so a restart of agentmon starts counting afresh";
    assert_eq!(log_lines_with(&am, warning), 1, "{}", am.log_text());
    assert_eq!(log_lines_with(&am, "mount -t bpf bpf"), 1);
    assert!(!pins.exists(), "nothing is pinned in a plain folder");
    lab.tcp(1234);
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 1234.0);
    am.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
}

//! agentmon with exactly the capabilities its systemd unit grants, as a
//! user that is not root: it captures an agent's bytes exactly, and with any
//! one capability taken away it stops at once with one line naming it.
//! Once attached, it keeps only what it needs while running, in every
//! thread.

use std::{collections::BTreeMap, fs, path::Path, process::Command, time::Duration};

use agentmon_tests::{
    Agentmon, NetLab, PeerCounts, REMOTE_TCP_V4, agent_copy, agentmon_bin, require_root,
    run_bounded,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/agentmon.service");
const REPLY: u64 = 4321;
/// A uid and gid with no passwd entry and no privileges of their own.
const NOBODY_ID: &str = "64999";

/// The capabilities in the unit's `AmbientCapabilities=`, e.g. `CAP_BPF`,
/// that this process can hand on. CAP_SYS_RESOURCE is in the unit for
/// kernels before 5.11 (memlock), which agentmon then needs; this machine's
/// sandbox has it in no set at all, and its kernel does not need it.
fn unit_capabilities() -> Vec<String> {
    let all = unit_capabilities_as_written();
    let bounding = caps::read(None, caps::CapSet::Bounding).unwrap();
    let (ours, not): (Vec<String>, Vec<String>) = all.into_iter().partition(|c| {
        c.parse::<caps::Capability>()
            .is_ok_and(|cap| bounding.contains(&cap))
    });
    assert!(
        not.iter().all(|c| c == "CAP_SYS_RESOURCE"),
        "this test cannot hand on {not:?}"
    );
    ours
}

/// The unit's set without CAP_SYS_ADMIN, which is optional (TLS probes)
/// and stands in for CAP_BPF and CAP_PERFMON.
fn unit_capabilities_but_sys_admin() -> Vec<String> {
    unit_capabilities()
        .into_iter()
        .filter(|c| c != "CAP_SYS_ADMIN")
        .collect()
}

fn unit_capabilities_as_written() -> Vec<String> {
    let unit = fs::read_to_string(UNIT).unwrap_or_else(|e| panic!("read {UNIT}: {e}"));
    let line = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("AmbientCapabilities="))
        .unwrap_or_else(|| panic!("{UNIT} has no AmbientCapabilities= line"));
    let caps: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    assert!(caps.iter().all(|c| c.starts_with("CAP_")), "{line}");
    caps
}

/// `setpriv` as an unprivileged uid holding exactly `caps` (inheritable,
/// ambient and bounding sets), as systemd does for the unit.
fn setpriv(caps: &[String]) -> Vec<String> {
    let list: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let set = format!("-all,{}", list.join(","));
    let set = set.trim_end_matches(',').to_owned();
    vec![
        "setpriv".into(),
        format!("--reuid={NOBODY_ID}"),
        format!("--regid={NOBODY_ID}"),
        "--clear-groups".into(),
        format!("--inh-caps={set}"),
        format!("--ambient-caps={set}"),
        format!("--bounding-set={set}"),
    ]
}

#[test]
fn the_units_capabilities_are_enough_to_capture_an_agent_of_another_user() {
    if !require_root() {
        return;
    }
    let caps = unit_capabilities();
    let lab = NetLab::new();
    let _servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
    let claude = lab.dir().join("home/.local/share/claude/versions/9.9.9");
    agent_copy(Path::new(NETPEER), &claude);
    let am = Agentmon::builder().under(setpriv(&caps)).start();
    // The daemon really runs unprivileged: its uid is not root's.
    let status = fs::read_to_string(format!("/proc/{}/status", am.pid().unwrap())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(NOBODY_ID), "{uid_line}");

    // The agent runs as root, another user than the daemon's.
    let args = [
        "tcp",
        "--to",
        &REMOTE_TCP_V4.to_string(),
        "--send",
        "70000",
        "--expect",
        &REPLY.to_string(),
    ];
    let out = run_bounded(&mut lab.client_cmd(&claude, args), Duration::from_secs(60));
    assert_eq!(PeerCounts::from_output(&out).sent, 70_000);
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    am.expect("agentmon_egress_bytes_total", &tcp, 70_000.0);
    am.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
    am.expect("agentmon_agent_processes", &[("tool", "claude-code")], 0.0);
    // The agent started after agentmon had dropped what it no longer
    // needs: that is what it captured with.
    assert_holds_only_what_it_needs(am.pid().unwrap(), &["CapEff", "CapPrm"]);
}

#[test]
fn without_cap_sys_admin_it_runs_and_says_in_one_line_that_tls_probes_are_off() {
    if !require_root() {
        return;
    }
    let am = Agentmon::builder()
        .under(setpriv(&unit_capabilities_but_sys_admin()))
        .start();
    let m = am.expect(
        "agentmon_kernel_feature_available",
        &[("feature", "uprobes")],
        0.0,
    );
    assert_eq!(
        m.value(
            "agentmon_kernel_feature_available",
            &[("feature", "sock_ops")]
        ),
        Some(1.0)
    );
    let log = am.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS probes unavailable"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("this kernel creates uprobes only for CAP_SYS_ADMIN"),
        "{}",
        lines[0]
    );
    // Without TLS probes it keeps four capabilities, not five.
    let pid = am.pid().unwrap();
    let threads = thread_caps(pid);
    let main = threads
        .iter()
        .find(|(tid, _)| *tid == pid.to_string())
        .unwrap();
    assert_eq!(main.1["CapEff"], WHILE_RUNNING & !SYS_ADMIN, "{main:x?}");
}

/// The main thread holds exactly [`WHILE_RUNNING`] in `sets`, and no
/// thread more (the uprobe closing thread holds none); none can hand any
/// on (inheritable, ambient).
fn assert_holds_only_what_it_needs(pid: u32, sets: &[&str]) {
    let threads = thread_caps(pid);
    for (tid, caps) in &threads {
        for set in sets {
            if *tid == pid.to_string() {
                assert_eq!(caps[*set], WHILE_RUNNING, "main thread {set}: {caps:x?}");
            }
            assert_eq!(
                caps[*set] & !WHILE_RUNNING,
                0,
                "thread {tid} {set}: {caps:x?}"
            );
        }
        assert_eq!(caps["CapInh"], 0, "thread {tid}: {caps:x?}");
        assert_eq!(caps["CapAmb"], 0, "thread {tid}: {caps:x?}");
    }
    assert!(
        threads.len() > 1,
        "the closing thread is missing: {threads:x?}"
    );
}

/// CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21, for
/// the TLS uprobes), CAP_PERFMON (38) and CAP_BPF (39): what agentmon
/// keeps once its programs are attached.
const WHILE_RUNNING: u64 = 1 << 2 | 1 << 19 | SYS_ADMIN | 1 << 38 | 1 << 39;
const SYS_ADMIN: u64 = 1 << 21;

/// Each thread of `pid` and its capability sets (`CapEff` and the like).
fn thread_caps(pid: u32) -> Vec<(String, BTreeMap<String, u64>)> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let mut threads: Vec<_> = tasks
        .map(|t| {
            let tid = t.unwrap().file_name().to_string_lossy().into_owned();
            let status = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
            let caps = status
                .lines()
                .filter_map(|l| l.split_once(":\t"))
                .filter(|(k, _)| k.starts_with("Cap"))
                .map(|(k, v)| (k.to_owned(), u64::from_str_radix(v.trim(), 16).unwrap()))
                .collect();
            (tid, caps)
        })
        .collect();
    threads.sort();
    assert!(!threads.is_empty());
    threads
}

#[test]
fn run_as_root_no_thread_keeps_more_than_the_five_it_needs_nor_can_regain_others() {
    if !require_root() {
        return;
    }
    let am = Agentmon::start();
    assert_holds_only_what_it_needs(am.pid().unwrap(), &["CapEff", "CapPrm", "CapBnd"]);
    let log = am.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("dropped every capability but those needed while running"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("kept=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_SYS_ADMIN CAP_PERFMON CAP_BPF"),
        "{line}"
    );
}

#[test]
fn each_capability_taken_away_stops_it_with_one_line_naming_it() {
    if !require_root() {
        return;
    }
    let caps = unit_capabilities_but_sys_admin();
    // CAP_SYS_RESOURCE, where this machine has it, is needed only before 5.11.
    let needed = caps.iter().filter(|c| *c != "CAP_SYS_RESOURCE");
    for missing in needed {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let wrapper = setpriv(&fewer);
        let mut cmd = Command::new(&wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(agentmon_bin())
            .args(["run", "--listen", "127.0.0.1:0"]);
        let out = run_bounded(&mut cmd, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(77), "without {missing}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "without {missing}:\n{stderr}");
        assert!(
            errors[0].contains(&format!("missing {missing} (to ")),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains("AmbientCapabilities="), "{}", errors[0]);
    }
}

//! agentmon with exactly the capabilities its systemd unit grants, as a
//! user that is not root: it captures an agent's bytes exactly, and with any
//! one capability taken away it stops at once with one line naming it.

use std::{fs, path::Path, process::Command, time::Duration};

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
}

#[test]
fn each_capability_taken_away_stops_it_with_one_line_naming_it() {
    if !require_root() {
        return;
    }
    let caps = unit_capabilities();
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

//! Process churn under an agent: 10,000 forks leave nothing behind in the
//! kernel's table of tracked processes or in agentmon's, and a connection
//! made after them is counted exactly; a process that execs from one
//! tool's binary into another's counts for the tool it became; an agent's
//! whole tree that ran while agentmon read no event counts when it reads;
//! a pid an agent's child had, recycled for an unrelated process, gives
//! that process nothing of the agent's.

use std::{path::Path, time::Duration};

use agentmon_tests::{
    PeerCounts, REMOTE_TCP_V4, agent_copy, require_root, run_bounded, status_kib, world,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const FORKS: u32 = 10_000;
const SETTLE: Duration = Duration::from_secs(30);
/// What the lab's servers answer each connection (`world`'s netpeer sink).
const REPLY: u64 = 321;

#[test]
fn ten_thousand_forks_leave_no_entry_and_later_bytes_count_exactly() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let claude = w.as_claude(Path::new(NETPEER));
    let pid = w.am.pid().unwrap();
    let rss_before = status_kib(pid, "VmRSS");
    // Each child exits at once; the parent reaps it before the next fork.
    let forks = format!(
        "python3 -c 'import os\nfor _ in range({FORKS}):\n    p = os.fork()\n    if p == 0: os._exit(0)\n    os.waitpid(p, 0)'"
    );
    w.agent_shell(&claude, &forks);
    let tracked = [("map", "tracked")];
    let m =
        w.am.wait_for_value("agentmon_kernel_map_entries", &tracked, SETTLE, |v| {
            v == 0.0
        });
    if let Err(m) = m {
        panic!("tracked entries left:\n{}", m.text());
    }
    let m = w.am.scrape();
    assert_eq!(
        m.value("agentmon_kernel_map_full_total", &tracked),
        Some(0.0)
    );
    let lost = m.value("agentmon_events_lost_total", &[]).unwrap_or(0.0);
    assert_eq!(lost, 0.0, "events lost through {FORKS} forks");
    w.expect("agentmon_agent_processes", &[("tool", "claude-code")], 0.0);

    // After the churn, a connection from a child of the agent is exact.
    let to = REMOTE_TCP_V4.to_string();
    let send = format!(
        "{} tcp --to {to} --send 5000 --expect {REPLY}",
        claude.display()
    );
    w.agent_shell(&claude, &send);
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    w.expect("agentmon_egress_bytes_total", &tcp, 5000.0);
    w.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
    let rss_after = status_kib(pid, "VmRSS");
    println!("RSS {rss_before} KiB before {FORKS} forks, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
}

#[test]
fn a_process_that_execs_into_another_tool_counts_for_the_one_it_became() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let claude = w.as_claude(Path::new(NETPEER));
    let codex = w
        .lab
        .dir()
        .join("opt/codex/codex-x86_64-unknown-linux-musl");
    agent_copy(Path::new(NETPEER), &codex);
    // claude's shell execs codex in its own place (same pid), which sends.
    let to = REMOTE_TCP_V4.to_string();
    let script = format!(
        "exec {} tcp --to {to} --send 7000 --expect {REPLY}",
        codex.display()
    );
    let args = ["exec-child", "--", "/bin/sh", "-c", &script];
    let out = run_bounded(&mut w.lab.client_cmd(&claude, args), SETTLE);
    assert_eq!(PeerCounts::from_output(&out).sent, 7000, "{out:?}");
    let codex_tcp = [("tool", "codex"), ("proto", "tcp")];
    w.expect("agentmon_egress_bytes_total", &codex_tcp, 7000.0);
    let claude_tcp = [("tool", "claude-code"), ("proto", "tcp")];
    let m = w.expect("agentmon_ingress_bytes_total", &codex_tcp, REPLY as f64);
    assert_eq!(m.value("agentmon_egress_bytes_total", &claude_tcp), None);
}

#[test]
fn an_agents_tree_that_ran_while_agentmon_read_nothing_counts_when_it_reads() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let claude = w.as_claude(Path::new(NETPEER));
    // A busy daemon reads the agent's exec after its shell has exec'd and
    // started a program of its own: the kernel saw both as pending, not
    // as untracked, and they belong to the agent. Stopping the daemon makes
    // that certain; the kernel programs go on counting meanwhile.
    w.am.pause();
    let to = REMOTE_TCP_V4.to_string();
    let script = format!("{NETPEER} tcp --to {to} --send 6000 --expect {REPLY}");
    let args = ["exec-child", "--", "/bin/sh", "-c", &script];
    let out = run_bounded(&mut w.lab.client_cmd(&claude, args), SETTLE);
    w.am.resume();
    assert_eq!(PeerCounts::from_output(&out).sent, 6000, "{out:?}");
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    w.expect("agentmon_egress_bytes_total", &tcp, 6000.0);
    w.expect("agentmon_ingress_bytes_total", &tcp, REPLY as f64);
}

#[test]
fn a_recycled_pid_of_an_agents_child_gives_an_unrelated_process_nothing() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let claude = w.as_claude(Path::new(NETPEER));
    let (first, second) = (
        w.lab.dir().join("first.pid"),
        w.lab.dir().join("second.pid"),
    );
    let to = REMOTE_TCP_V4.to_string();
    // In a pid namespace of its own: Claude Code's child writes its pid and
    // exits; the next pid handed out is set back to it (ns_last_pid), and
    // a process of no agent, forked by the namespace's init, gets it and
    // sends. agentmon reads all of it late, as a busy daemon would.
    let script = format!(
        "set -e\n\
         {claude} exec-child -- /bin/sh -c 'echo $$ > {first}'\n\
         pid=$(cat {first})\n\
         echo $((pid - 1)) > /proc/sys/kernel/ns_last_pid\n\
         /bin/sh -c 'echo $$ > {second}; exec {NETPEER} tcp --to {to} --send 4321 --expect {REPLY}'\n",
        claude = claude.display(),
        first = first.display(),
        second = second.display(),
    );
    let args = ["--pid", "--fork", "--mount-proc", "/bin/sh", "-c", &script];
    w.am.pause();
    let out = run_bounded(&mut w.lab.client_cmd("unshare", args), SETTLE);
    w.am.resume();
    assert_eq!(PeerCounts::from_output(&out).sent, 4321, "{out:?}");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_owned();
    assert_eq!(read(&first), read(&second), "the pid was not recycled");

    // The agent's own next connection counts, and nothing before it did.
    w.agent_shell(
        &claude,
        &format!("{NETPEER} tcp --to {to} --send 1000 --expect {REPLY}"),
    );
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    let m = w.expect("agentmon_egress_bytes_total", &tcp, 1000.0);
    assert_eq!(
        m.value("agentmon_connections_total", &tcp),
        Some(1.0),
        "{}",
        m.text()
    );
}

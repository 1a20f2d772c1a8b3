//! Property tests of the labels, against a model of the kernel and of what
//! is true: random forks, execs and exits, some exit events lost, pids
//! recycled from a small range, and user space reading the kernel's events
//! late, while the kernel goes on. The kernel's `TRACKED` map decides which
//! bytes count for which tool, so it must say what is true whenever user
//! space has caught up; the table must too once housekeeping has swept.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::{
    Exec, Tree,
    tests::{FakeMap, FakeProc},
};
use crate::agents::{Catalog, ToolId};
use monitor_common::{TOOL_PENDING, Tracked};

/// What processes exec: two agents that match on their path, and two
/// programs that match nothing.
const EXES: [&str; 4] = [
    "/home/u/.local/share/claude/versions/2.1.0",
    "/opt/codex/codex-x86_64-unknown-linux-musl",
    "/usr/bin/bash",
    "/usr/bin/python3",
];
const TOOLS: [Option<&str>; 4] = [Some("claude-code"), Some("codex"), None, None];
/// Pids come from 2..PIDS, lowest free first, so exits are soon reused;
/// but not while an event of the pid's last process waits to be read. The
/// kernel hands out pids in order up to pid_max (4,194,304 under systemd),
/// so a pid comes back only long after user space has read its events;
/// this model's pids come back as soon as that is true. (Reading /proc
/// for an exec, user space could not tell the new process from the old.)
const PIDS: u32 = 24;
const INIT: u32 = 1;

#[derive(Debug, Clone)]
enum Op {
    /// The live process at this index (modulo) forks.
    Fork(usize),
    /// init forks: a process of no agent's tree.
    ForkInit,
    /// The live process at this index execs `EXES[i]`.
    Exec(usize, usize),
    /// The live process at this index exits; `true`: its exit event is lost.
    Exit(usize, bool),
    /// User space reads up to this many of the kernel's events.
    Read(usize),
    /// Two of housekeeping's sweeps (stale entries go at the second), each
    /// after user space has read the events before it.
    Sweep,
}

/// A kernel event on its way to user space.
#[derive(Debug, Clone, Copy)]
enum Event {
    Exec {
        pid: u32,
        untracked: bool,
        exe: usize,
    },
    Fork {
        parent: u32,
        child: u32,
    },
    Exit {
        pid: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<usize>().prop_map(Op::Fork),
        1 => Just(Op::ForkInit),
        3 => (any::<usize>(), 0..EXES.len()).prop_map(|(p, e)| Op::Exec(p, e)),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(p, l)| Op::Exit(p, l)),
        3 => (1..4usize).prop_map(Op::Read),
        1 => Just(Op::Sweep),
    ]
}

/// The machine: live processes with the tool each truly belongs to, the
/// kernel's map and its events not read yet, /proc, and the table under test.
struct Machine {
    catalog: Catalog,
    truth: BTreeMap<u32, Option<ToolId>>,
    kernel: FakeMap,
    events: VecDeque<Event>,
    procs: FakeProc,
    tree: Tree,
}

impl Machine {
    fn new() -> Machine {
        let mut procs = FakeProc::default();
        procs.add(INIT, 0, "/sbin/init", &["/sbin/init"]);
        Machine {
            catalog: Catalog::builtin(),
            truth: BTreeMap::from([(INIT, None)]),
            kernel: FakeMap::default(),
            events: VecDeque::new(),
            procs,
            tree: Tree::default(),
        }
    }

    fn live(&self, i: usize) -> u32 {
        *self
            .truth
            .keys()
            .nth(i % self.truth.len())
            .expect("init lives")
    }

    fn fork(&mut self, parent: u32) {
        let Some(child) = (2..PIDS).find(|&p| !self.truth.contains_key(&p) && !self.waiting(p))
        else {
            return;
        };
        self.procs.fork(parent, child);
        self.truth.insert(child, self.truth[&parent]);
        // task_newtask: a tracked (or pending) parent's child inherits its
        // entry, and user space hears of the fork.
        if let Some(entry) = self.kernel.0.get(&parent).copied() {
            self.kernel.0.insert(child, entry);
            self.events.push_back(Event::Fork { parent, child });
        }
    }

    /// Whether an event about `pid` waits to be read.
    fn waiting(&self, pid: u32) -> bool {
        self.events.iter().any(|e| match *e {
            Event::Exec { pid: p, .. } | Event::Exit { pid: p } => p == pid,
            Event::Fork { parent, child } => parent == pid || child == pid,
        })
    }

    fn exec(&mut self, pid: u32, exe: usize) {
        let ppid = self.procs.ppid(pid);
        self.procs.remove(pid);
        self.procs.add(pid, ppid, EXES[exe], &[EXES[exe]]);
        if let Some(name) = TOOLS[exe] {
            self.truth.insert(pid, self.catalog.id(name));
        }
        // sched_process_exec: an untracked process becomes pending, and a
        // pending one pending on its own account.
        let before = self.kernel.0.get(&pid).copied();
        let untracked = before.is_none();
        if before.is_none_or(|t| t.tool == TOOL_PENDING) {
            let pending = Tracked {
                tool: TOOL_PENDING,
                root_tgid: pid,
            };
            self.kernel.0.insert(pid, pending);
        }
        self.events.push_back(Event::Exec {
            pid,
            untracked,
            exe,
        });
    }

    fn exit(&mut self, pid: u32, lost: bool) {
        if pid == INIT {
            return;
        }
        self.truth.remove(&pid);
        self.procs.remove(pid);
        // Children go to init; what they belong to stays.
        self.procs.reparent(pid, INIT);
        self.kernel.0.remove(&pid);
        if !lost {
            self.events.push_back(Event::Exit { pid });
        }
    }

    /// User space handles the oldest event. An exec with a later one of
    /// the same pid behind it is judged by its path, as the daemon does
    /// within one read of the ring buffer.
    fn read(&mut self) {
        let Some(event) = self.events.pop_front() else {
            return;
        };
        match event {
            Event::Exec {
                pid,
                untracked,
                exe,
            } => {
                let superseded = self
                    .events
                    .iter()
                    .any(|e| matches!(*e, Event::Exec { pid: p, .. } if p == pid));
                let gone = FakeProc::default();
                let source = if superseded { &gone } else { &self.procs };
                let catalog = &self.catalog;
                self.tree.on_exec(
                    &Exec::of_path(pid, untracked, EXES[exe]),
                    source,
                    catalog,
                    &mut self.kernel,
                );
            }
            Event::Fork { parent, child } => self.tree.on_fork(parent, child, &mut self.kernel),
            Event::Exit { pid } => {
                self.tree.on_exit(pid, &mut self.kernel);
            }
        }
    }

    fn read_all(&mut self) {
        while !self.events.is_empty() {
            self.read();
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Fork(i) => self.fork(self.live(i)),
            Op::ForkInit => self.fork(INIT),
            Op::Exec(i, e) => self.exec(self.live(i), e),
            Op::Exit(i, lost) => self.exit(self.live(i), lost),
            Op::Read(n) => (0..n).for_each(|_| self.read()),
            Op::Sweep => {
                for _ in 0..2 {
                    self.read_all();
                    let live = &self.truth;
                    self.tree
                        .sweep(&mut self.kernel, |pid| live.contains_key(&pid));
                }
            }
        }
    }

    fn kernel_tool(&self, pid: u32) -> Option<ToolId> {
        self.kernel.0.get(&pid).map(|e| e.tool)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_live_process_is_counted_for_the_tool_it_belongs_to(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        let mut m = Machine::new();
        for (step, op) in ops.iter().enumerate() {
            m.apply(op);
            if !m.events.is_empty() {
                continue;
            }
            for (&pid, &truth) in &m.truth {
                prop_assert_eq!(
                    m.kernel_tool(pid), truth,
                    "kernel label of pid {} after step {} ({:?})", pid, step, op
                );
            }
            if matches!(op, Op::Sweep) {
                for (&pid, &truth) in &m.truth {
                    prop_assert_eq!(
                        m.tree.get(pid).map(|p| p.tool), truth,
                        "table label of pid {} after the sweep at step {}", pid, step
                    );
                }
                for pid in m.tree.pids() {
                    prop_assert!(m.truth.contains_key(&pid), "pid {} is gone", pid);
                }
            }
        }
    }
}

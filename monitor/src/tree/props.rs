//! Property tests of the labels, against a model of the kernel and of what
//! is true: random forks, execs and exits, some exit events lost, pids
//! recycled from a small range. The kernel's `TRACKED` map decides which
//! bytes count for which tool, so it must say what is true after every
//! event; the table must too once housekeeping has swept.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{
    Tree,
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
/// Pids come from 2..PIDS, lowest free first, so exits are soon reused.
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
    /// Two of housekeeping's sweeps (stale entries go at the second).
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<usize>().prop_map(Op::Fork),
        1 => Just(Op::ForkInit),
        3 => (any::<usize>(), 0..EXES.len()).prop_map(|(p, e)| Op::Exec(p, e)),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(p, l)| Op::Exit(p, l)),
        1 => Just(Op::Sweep),
    ]
}

/// The machine: live processes with the tool each truly belongs to, the
/// kernel's map, /proc, and the table under test.
struct Machine {
    catalog: Catalog,
    truth: BTreeMap<u32, Option<ToolId>>,
    kernel: FakeMap,
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
        let Some(child) = (2..PIDS).find(|p| !self.truth.contains_key(p)) else {
            return;
        };
        self.procs.fork(parent, child);
        self.truth.insert(child, self.truth[&parent]);
        // task_newtask: a tracked (or pending) parent's child inherits its
        // entry, and user space hears of the fork.
        if let Some(entry) = self.kernel.0.get(&parent).copied() {
            self.kernel.0.insert(child, entry);
            self.tree.on_fork(parent, child, &mut self.kernel);
        }
    }

    fn exec(&mut self, pid: u32, e: usize) {
        let ppid = self.procs.ppid(pid);
        self.procs.remove(pid);
        self.procs.add(pid, ppid, EXES[e], &[EXES[e]]);
        if let Some(name) = TOOLS[e] {
            self.truth.insert(pid, self.catalog.id(name));
        }
        // sched_process_exec: an untracked process becomes pending.
        let before = match self.kernel.0.get(&pid) {
            Some(entry) => entry.tool,
            None => {
                let pending = Tracked {
                    tool: TOOL_PENDING,
                    root_tgid: pid,
                };
                self.kernel.0.insert(pid, pending);
                TOOL_PENDING
            }
        };
        let (procs, catalog) = (&self.procs, &self.catalog);
        self.tree
            .on_exec(pid, before, EXES[e], procs, catalog, &mut self.kernel);
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
            self.tree.on_exit(pid);
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Fork(i) => self.fork(self.live(i)),
            Op::ForkInit => self.fork(INIT),
            Op::Exec(i, e) => self.exec(self.live(i), e),
            Op::Exit(i, lost) => self.exit(self.live(i), lost),
            Op::Sweep => {
                for _ in 0..2 {
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

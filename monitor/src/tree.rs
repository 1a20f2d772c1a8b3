//! The agent process trees, kept in step with the kernel's `TRACKED` map.
//!
//! The kernel adds children on fork and marks every new exec as pending;
//! this table decides which processes are agents (roots), keeps what the
//! connection log needs to say about each process, and tells the kernel.

use std::collections::{HashMap, HashSet};

use monitor_common::{TOOL_PENDING, Tracked};
use tracing::{debug, info};

use crate::{
    agents::{Catalog, Strength, ToolId},
    procfs::{ProcInfo, ProcSource},
};

/// The kernel map of tracked processes, behind a trait so the logic can be
/// tested without a kernel.
pub trait TrackedMap {
    fn set(&mut self, tgid: u32, value: Tracked);
    fn remove(&mut self, tgid: u32);
    fn tgids(&self) -> Vec<u32>;
    fn get(&self, tgid: u32) -> Option<Tracked>;
}

/// An exec event: what the kernel saw when `tgid` exec'd.
#[derive(Debug, Clone, Copy)]
pub struct Exec<'a> {
    pub tgid: u32,
    /// The kernel did not track it before the exec (it is pending now).
    pub untracked: bool,
    /// The path handed to execve.
    pub filename: &'a str,
    /// The command line read at the exec (possibly cut short); empty
    /// without kernel BTF.
    pub argv: &'a [String],
}

impl<'a> Exec<'a> {
    /// An exec whose command line the kernel did not read.
    pub fn of_path(tgid: u32, untracked: bool, filename: &'a str) -> Self {
        Self {
            tgid,
            untracked,
            filename,
            argv: &[],
        }
    }
}

/// What the daemon knows of one tracked process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub tool: ToolId,
    /// The process whose match put this tree under watch.
    pub root: u32,
    pub ppid: u32,
    pub exe: String,
    pub argv0: String,
    /// Its real uid at its last exec (a fork keeps its parent's).
    pub uid: Option<u32>,
}

#[derive(Default)]
pub struct Tree {
    procs: HashMap<u32, Proc>,
    /// Kernel entries unknown here at the last sweep (see [`Tree::sweep`]).
    strangers: HashSet<u32>,
    /// Entries here the kernel no longer had at the last sweep.
    missing: HashSet<u32>,
}

impl Tree {
    pub fn get(&self, tgid: u32) -> Option<&Proc> {
        self.procs.get(&tgid)
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    /// The tracked processes.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Live processes per tool.
    pub fn counts(&self) -> HashMap<ToolId, usize> {
        let mut counts = HashMap::new();
        for p in self.procs.values() {
            *counts.entry(p.tool).or_default() += 1;
        }
        counts
    }

    /// Finds agents that were running before agentmon started, and all their
    /// descendants, and tracks them.
    pub fn scan(&mut self, src: &dyn ProcSource, catalog: &Catalog, map: &mut dyn TrackedMap) {
        let Ok(pids) = src.pids() else { return };
        let infos: Vec<ProcInfo> = pids
            .into_iter()
            .filter_map(|pid| src.read(pid, catalog.env_names()))
            .collect();
        let mut children: HashMap<u32, Vec<&ProcInfo>> = HashMap::new();
        for info in &infos {
            children.entry(info.ppid).or_default().push(info);
        }
        // Walk down from every process that matches on its own, carrying the
        // label; a descendant that matches another tool strongly starts its own tree.
        let pids: HashSet<u32> = infos.iter().map(|i| i.pid).collect();
        let mut stack: Vec<(&ProcInfo, Option<(ToolId, u32)>)> = infos
            .iter()
            .filter(|i| !pids.contains(&i.ppid))
            .map(|i| (i, None))
            .collect();
        let mut seen = HashSet::new();
        while let Some((info, inherited)) = stack.pop() {
            if !seen.insert(info.pid) {
                continue;
            }
            let label = match (catalog.match_process(info), inherited) {
                (Some(m), Some((tool, _))) if m.tool != tool && m.strength == Strength::Strong => {
                    Some((m.tool, info.pid))
                }
                (_, Some(inherited)) => Some(inherited),
                (Some(m), None) => Some((m.tool, info.pid)),
                (None, None) => None,
            };
            if let Some((tool, root)) = label {
                self.track(map, info, tool, root);
            }
            for child in children.get(&info.pid).into_iter().flatten() {
                stack.push((child, label));
            }
        }
        if !self.procs.is_empty() {
            info!(processes = self.procs.len(), "found agents already running");
        }
    }

    /// After a restart: takes up the processes the kernel kept tracking
    /// while agentmon was down that the /proc walk of [`Tree::scan`] did
    /// not reach (children whose agent parent exited, so that they were
    /// re-parented). Their kernel entries carry tool and root.
    pub fn resume(&mut self, src: &dyn ProcSource, catalog: &Catalog, map: &mut dyn TrackedMap) {
        for tgid in map.tgids() {
            if self.procs.contains_key(&tgid) {
                continue;
            }
            let Some(entry) = map.get(tgid) else { continue };
            if entry.tool as usize >= catalog.len() {
                continue;
            }
            if let Some(info) = src.read(tgid, catalog.env_names()) {
                self.track(map, &info, entry.tool, entry.root_tgid);
            }
        }
    }

    /// A process exec'd (see [`Exec`]). Returns whether it became the root
    /// of a new tree (it was not tracked before).
    pub fn on_exec(
        &mut self,
        exec: &Exec,
        src: &dyn ProcSource,
        catalog: &Catalog,
        map: &mut dyn TrackedMap,
    ) -> bool {
        let Exec {
            tgid, untracked, ..
        } = *exec;
        // A process that is already gone (or has exec'd again since) is
        // judged by what the kernel read at its exec: the path and the
        // command line. So is one that has exited but not been reaped yet,
        // whose exe link and command line a zombie no longer has. A short
        // script run by an interpreter is often gone by the time its event
        // is read.
        let read = src.read(tgid, catalog.env_names());
        let gone = read.is_none();
        let mut info = read.unwrap_or_else(|| ProcInfo {
            pid: tgid,
            ..ProcInfo::default()
        });
        if info.exe.is_none() {
            let real = src.resolve(exec.filename);
            info.exe_file.clone_from(&real);
            info.exe = Some(real.unwrap_or_else(|| exec.filename.into()));
        }
        if info.argv.is_empty() {
            info.argv = if exec.argv.is_empty() {
                vec![exec.filename.to_owned()]
            } else {
                exec.argv.to_vec()
            };
        }
        let found = catalog.match_process(&info);
        // The kernel keeps a tracked (or pending) process's label across its
        // execs and forks: one it did not track at all is not the process
        // this table knew under that pid, whose exit event was lost and
        // whose pid was recycled. It inherits nothing. A pending one may be
        // the child of an agent this table has judged since, and keeps it.
        if untracked && self.procs.remove(&tgid).is_some() {
            debug!(pid = tgid, "pid recycled: the table's entry was stale");
        }
        let current = self.procs.get(&tgid).map(|p| (p.tool, p.root));
        let label = match (current, found) {
            // A descendant keeps its root's label unless it is another tool itself.
            (Some((tool, _)), Some(m)) if m.tool != tool && m.strength == Strength::Strong => {
                Some((m.tool, tgid))
            }
            (Some(current), _) => Some(current),
            (None, Some(m)) => Some((m.tool, tgid)),
            (None, None) => None,
        };
        match label {
            Some((tool, root)) => {
                if current.is_none_or(|c| c.0 != tool) {
                    info!(pid = tgid, tool = catalog.name(tool), exe = %display_exe(&info), "tracking agent process");
                }
                if gone {
                    // Its children, forked before it went, inherit from the
                    // table. The kernel forgot it at its exit, and a label
                    // set now would outlive it; after a later exec, that
                    // exec's event sets the label.
                    self.remember(&info, tool, root);
                } else {
                    self.track(map, &info, tool, root);
                }
                current.is_none()
            }
            None if gone => false,
            // Pending and no agent, or a label we do not know (a lost
            // event): drop it.
            None => {
                map.remove(tgid);
                false
            }
        }
    }

    /// A tracked or pending process forked. The kernel already tracks the
    /// child with the parent's label; confirm or undo that. A child the
    /// kernel no longer has has exited since: a label set now would outlive
    /// it, so only the table hears of it (for its own children's forks).
    pub fn on_fork(&mut self, parent: u32, child: u32, map: &mut dyn TrackedMap) {
        // A new process: what this table knew under its pid was another's,
        // whose exit event was lost.
        self.procs.remove(&child);
        match self.procs.get(&parent).cloned() {
            Some(p) => {
                if map.get(child).is_some() {
                    map.set(
                        child,
                        Tracked {
                            tool: p.tool,
                            root_tgid: p.root,
                        },
                    );
                }
                self.procs.insert(child, Proc { ppid: parent, ..p });
            }
            // The parent was pending and turned out not to be an agent. A
            // child that has exec'd since is pending on its own account
            // (the kernel rooted it at itself): its exec event judges it.
            None => {
                let own = map
                    .get(child)
                    .is_some_and(|t| t.tool == TOOL_PENDING && t.root_tgid == child);
                if !own {
                    map.remove(child);
                }
            }
        }
    }

    /// A tracked process exited. The kernel removed its entry then; one
    /// there now was set by this table from an event read late.
    pub fn on_exit(&mut self, tgid: u32, map: &mut dyn TrackedMap) -> Option<Proc> {
        map.remove(tgid);
        self.strangers.remove(&tgid);
        self.missing.remove(&tgid);
        self.procs.remove(&tgid)
    }

    /// Removes kernel entries this table does not know for two sweeps in a
    /// row: pending processes whose exec event was lost, or processes whose
    /// exit event was. Two strikes, because an entry may be newer than the
    /// events read so far. Entries of this table the kernel has not had
    /// for two sweeps go too: their exit event was lost (the kernel removes
    /// a process at its exit), and the pid may be another process's now.
    pub fn sweep(&mut self, map: &mut dyn TrackedMap, alive: impl Fn(u32) -> bool) -> usize {
        let in_kernel: HashSet<u32> = map.tgids().into_iter().collect();
        let unknown: HashSet<u32> = in_kernel
            .iter()
            .filter(|t| !self.procs.contains_key(t))
            .copied()
            .collect();
        let stale = second_strike(&mut self.strangers, unknown);
        for tgid in &stale {
            map.remove(*tgid);
        }
        let missing: HashSet<u32> = self
            .procs
            .keys()
            .filter(|t| !in_kernel.contains(t))
            .copied()
            .collect();
        for tgid in second_strike(&mut self.missing, missing) {
            self.procs.remove(&tgid);
        }
        // Processes that died without an exit event (lost) leave the table too.
        self.procs.retain(|tgid, _| alive(*tgid));
        if !stale.is_empty() {
            debug!(removed = stale.len(), "swept stale kernel entries");
        }
        stale.len()
    }

    fn track(&mut self, map: &mut dyn TrackedMap, info: &ProcInfo, tool: ToolId, root: u32) {
        map.set(
            info.pid,
            Tracked {
                tool,
                root_tgid: root,
            },
        );
        self.remember(info, tool, root);
    }

    fn remember(&mut self, info: &ProcInfo, tool: ToolId, root: u32) {
        self.procs.insert(
            info.pid,
            Proc {
                tool,
                root,
                ppid: info.ppid,
                exe: display_exe(info),
                argv0: info.argv.first().cloned().unwrap_or_default(),
                uid: info.uid,
            },
        );
    }
}

/// The pids in `now` that were in `before` too; `before` becomes the rest.
fn second_strike(before: &mut HashSet<u32>, now: HashSet<u32>) -> Vec<u32> {
    let (twice, once): (Vec<u32>, Vec<u32>) = now.into_iter().partition(|t| before.contains(t));
    *before = once.into_iter().collect();
    twice
}

fn display_exe(info: &ProcInfo) -> String {
    info.exe
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, path::PathBuf};

    use super::*;

    #[derive(Default)]
    pub(super) struct FakeMap(pub(super) BTreeMap<u32, Tracked>);

    impl TrackedMap for FakeMap {
        fn set(&mut self, tgid: u32, value: Tracked) {
            self.0.insert(tgid, value);
        }
        fn remove(&mut self, tgid: u32) {
            self.0.remove(&tgid);
        }
        fn tgids(&self) -> Vec<u32> {
            self.0.keys().copied().collect()
        }
        fn get(&self, tgid: u32) -> Option<Tracked> {
            self.0.get(&tgid).copied()
        }
    }

    /// Processes, and links that [`ProcSource::resolve`] follows.
    #[derive(Default)]
    pub(super) struct FakeProc(Vec<ProcInfo>, HashMap<String, PathBuf>);

    impl FakeProc {
        pub(super) fn add(&mut self, pid: u32, ppid: u32, exe: &str, argv: &[&str]) {
            self.0.push(ProcInfo {
                pid,
                ppid,
                exe: Some(exe.into()),
                argv: argv.iter().map(|s| s.to_string()).collect(),
                ..ProcInfo::default()
            });
        }

        pub(super) fn remove(&mut self, pid: u32) {
            self.0.retain(|p| p.pid != pid);
        }

        /// `child` starts as a copy of `parent`.
        pub(super) fn fork(&mut self, parent: u32, child: u32) {
            let mut info = self.read(parent, &[]).expect("the parent lives");
            (info.pid, info.ppid) = (child, parent);
            self.0.push(info);
        }

        pub(super) fn ppid(&self, pid: u32) -> u32 {
            self.read(pid, &[]).map_or(0, |p| p.ppid)
        }

        /// The children of `from` (which exited) now have `to` as parent.
        pub(super) fn reparent(&mut self, from: u32, to: u32) {
            for p in self.0.iter_mut().filter(|p| p.ppid == from) {
                p.ppid = to;
            }
        }
    }

    impl ProcSource for FakeProc {
        fn pids(&self) -> std::io::Result<Vec<u32>> {
            Ok(self.0.iter().map(|p| p.pid).collect())
        }
        fn read(&self, pid: u32, _env: &[String]) -> Option<ProcInfo> {
            self.0.iter().find(|p| p.pid == pid).cloned()
        }
        fn resolve(&self, path: &str) -> Option<PathBuf> {
            self.1.get(path).cloned()
        }
    }

    const CLAUDE: &str = "/home/u/.local/share/claude/versions/2.1.0";
    const CODEX: &str = "/opt/codex/codex-x86_64-unknown-linux-musl";

    fn tool(catalog: &Catalog, name: &str) -> ToolId {
        catalog.id(name).unwrap()
    }

    #[test]
    fn pending_exec_becomes_an_agent_root_or_is_dropped() {
        let catalog = Catalog::builtin();
        let (mut tree, mut map, mut procs) =
            (Tree::default(), FakeMap::default(), FakeProc::default());
        procs.add(10, 1, CLAUDE, &[CLAUDE]);
        procs.add(11, 1, "/usr/bin/curl", &["curl"]);
        for pid in [10, 11] {
            map.set(
                pid,
                Tracked {
                    tool: TOOL_PENDING,
                    root_tgid: pid,
                },
            );
            tree.on_exec(&Exec::of_path(pid, true, ""), &procs, &catalog, &mut map);
        }
        let claude = tool(&catalog, "claude-code");
        assert_eq!(
            map.0.get(&10),
            Some(&Tracked {
                tool: claude,
                root_tgid: 10
            })
        );
        assert_eq!(map.0.get(&11), None, "a non-agent leaves the kernel map");
        assert_eq!(tree.get(10).unwrap().exe, CLAUDE);
        assert!(tree.get(11).is_none());
    }

    #[test]
    fn a_process_gone_before_its_exec_is_read_is_judged_by_its_path() {
        let catalog = Catalog::builtin();
        let (mut tree, mut map) = (Tree::default(), FakeMap::default());
        tree.on_exec(
            &Exec::of_path(12, true, CLAUDE),
            &FakeProc::default(),
            &catalog,
            &mut map,
        );
        assert_eq!(tree.get(12).map(|p| p.tool), catalog.id("claude-code"));
    }

    #[test]
    fn a_process_gone_before_its_exec_is_read_is_judged_by_the_file_its_path_links_to() {
        // npm's bin link to Claude Code's native binary, run as `claude`:
        // the kernel gives the link's path, /proc/<pid>/exe the binary's.
        let link = "/home/u/project/node_modules/.bin/claude";
        let real = "/home/u/project/node_modules/@anthropic-ai/claude-code/bin/claude.exe";
        let catalog = Catalog::builtin();
        let (mut tree, mut map) = (Tree::default(), FakeMap::default());
        let mut procs = FakeProc::default();
        tree.on_exec(&Exec::of_path(12, true, link), &procs, &catalog, &mut map);
        assert!(tree.get(12).is_none());
        procs.1.insert(link.into(), PathBuf::from(real));
        tree.on_exec(&Exec::of_path(13, true, link), &procs, &catalog, &mut map);
        let found = tree.get(13).unwrap();
        assert_eq!(Some(found.tool), catalog.id("claude-code"));
        assert_eq!(found.exe, real);
    }

    #[test]
    fn a_script_gone_before_its_exec_is_read_is_judged_by_the_kernels_command_line() {
        let catalog = Catalog::builtin();
        let (mut tree, mut map) = (Tree::default(), FakeMap::default());
        let python = "/usr/bin/python3";
        // Without the command line, a python3 is no agent.
        tree.on_exec(
            &Exec::of_path(14, true, python),
            &FakeProc::default(),
            &catalog,
            &mut map,
        );
        assert!(tree.get(14).is_none());
        let argv = [python.to_owned(), "/home/u/.venv/bin/aider".to_owned()];
        let exec = Exec {
            argv: &argv,
            ..Exec::of_path(15, true, python)
        };
        assert!(tree.on_exec(&exec, &FakeProc::default(), &catalog, &mut map));
        assert_eq!(tree.get(15).map(|p| p.tool), catalog.id("aider"));
        assert_eq!(tree.get(15).unwrap().argv0, python);
    }

    #[test]
    fn a_zombie_when_its_exec_is_read_is_judged_by_its_path() {
        // Exited, not yet reaped: /proc still has its stat, but no exe link
        // and an empty command line.
        let catalog = Catalog::builtin();
        let (mut tree, mut map) = (Tree::default(), FakeMap::default());
        let zombie = FakeProc(
            vec![ProcInfo {
                pid: 13,
                ppid: 1,
                comm: "9.9.9".into(),
                ..ProcInfo::default()
            }],
            HashMap::new(),
        );
        tree.on_exec(
            &Exec::of_path(13, true, CLAUDE),
            &zombie,
            &catalog,
            &mut map,
        );
        assert_eq!(tree.get(13).map(|p| p.tool), catalog.id("claude-code"));
        assert!(map.get(13).is_some());
    }
    #[test]
    fn children_inherit_the_label_until_they_are_another_tool() {
        let catalog = Catalog::builtin();
        let (mut tree, mut map, mut procs) =
            (Tree::default(), FakeMap::default(), FakeProc::default());
        procs.add(10, 1, CLAUDE, &[CLAUDE]);
        tree.on_exec(&Exec::of_path(10, true, ""), &procs, &catalog, &mut map);
        let claude = tool(&catalog, "claude-code");
        // claude forks a shell, which execs bash: still claude-code.
        tree.on_fork(10, 20, &mut map);
        procs.add(20, 10, "/usr/bin/bash", &["bash", "-c", "make"]);
        tree.on_exec(
            &Exec::of_path(20, false, "/usr/bin/bash"),
            &procs,
            &catalog,
            &mut map,
        );
        assert_eq!(
            tree.get(20).map(|p| (p.tool, p.root, p.ppid)),
            Some((claude, 10, 10))
        );
        // The shell runs codex: a tree of its own.
        tree.on_fork(20, 30, &mut map);
        procs.add(30, 20, CODEX, &["codex"]);
        tree.on_exec(&Exec::of_path(30, false, CODEX), &procs, &catalog, &mut map);
        let codex = tool(&catalog, "codex");
        assert_eq!(
            map.0.get(&30),
            Some(&Tracked {
                tool: codex,
                root_tgid: 30
            })
        );
        assert_eq!(tree.counts().get(&claude), Some(&2));
        assert_eq!(tree.counts().get(&codex), Some(&1));
        assert_eq!(tree.on_exit(20, &mut map).map(|p| p.tool), Some(claude));
        assert_eq!(tree.counts().get(&claude), Some(&1));
    }

    #[test]
    fn a_pending_childs_exec_keeps_the_label_its_parent_got_since() {
        // Claude Code forks a shell that execs before user space has read
        // Claude's exec: the kernel saw the shell as pending, not untracked.
        let catalog = Catalog::builtin();
        let (mut tree, mut map, mut procs) =
            (Tree::default(), FakeMap::default(), FakeProc::default());
        procs.add(10, 1, CLAUDE, &[CLAUDE]);
        procs.add(20, 10, "/usr/bin/bash", &["bash"]);
        let pending = Tracked {
            tool: TOOL_PENDING,
            root_tgid: 10,
        };
        map.set(10, pending);
        map.set(20, pending);
        tree.on_exec(&Exec::of_path(10, true, CLAUDE), &procs, &catalog, &mut map);
        tree.on_fork(10, 20, &mut map);
        tree.on_exec(
            &Exec::of_path(20, false, "/usr/bin/bash"),
            &procs,
            &catalog,
            &mut map,
        );
        let claude = tool(&catalog, "claude-code");
        assert_eq!(
            map.get(20).map(|t| (t.tool, t.root_tgid)),
            Some((claude, 10))
        );
        assert_eq!(tree.get(20).map(|p| p.tool), Some(claude));
    }

    #[test]
    fn an_untracked_exec_under_a_recycled_pid_inherits_nothing() {
        // Claude's shell (20) exited and its exit event was lost; pid 20 now
        // belongs to a process of no agent.
        let catalog = Catalog::builtin();
        let (mut tree, mut map, mut procs) =
            (Tree::default(), FakeMap::default(), FakeProc::default());
        procs.add(10, 1, CLAUDE, &[CLAUDE]);
        tree.on_exec(&Exec::of_path(10, true, CLAUDE), &procs, &catalog, &mut map);
        tree.on_fork(10, 20, &mut map);
        map.remove(20);
        procs.add(20, 1, "/usr/bin/python3", &["python3"]);
        tree.on_exec(
            &Exec::of_path(20, true, "/usr/bin/python3"),
            &procs,
            &catalog,
            &mut map,
        );
        assert_eq!(map.get(20), None);
        assert!(tree.get(20).is_none());
    }

    #[test]
    fn fork_of_a_dropped_pending_parent_is_undone_in_the_kernel() {
        let (mut tree, mut map) = (Tree::default(), FakeMap::default());
        map.set(
            41,
            Tracked {
                tool: TOOL_PENDING,
                root_tgid: 40,
            },
        );
        tree.on_fork(40, 41, &mut map);
        assert!(map.0.is_empty());
    }

    #[test]
    fn scan_finds_running_agents_and_their_descendants() {
        let catalog = Catalog::builtin();
        let (mut tree, mut map, mut procs) =
            (Tree::default(), FakeMap::default(), FakeProc::default());
        procs.add(1, 0, "/sbin/init", &["init"]);
        procs.add(5, 1, "/usr/bin/bash", &["bash"]);
        procs.add(10, 5, CLAUDE, &[CLAUDE]);
        procs.add(11, 10, "/usr/bin/bash", &["bash"]);
        procs.add(12, 11, "/usr/bin/rg", &["rg", "foo"]);
        procs.add(13, 11, CODEX, &["codex"]);
        procs.add(14, 13, "/usr/bin/git", &["git", "status"]);
        tree.scan(&procs, &catalog, &mut map);
        let (claude, codex) = (tool(&catalog, "claude-code"), tool(&catalog, "codex"));
        let label = |pid| map.0.get(&pid).map(|t| (t.tool, t.root_tgid));
        assert_eq!(label(1), None);
        assert_eq!(label(5), None);
        assert_eq!(label(10), Some((claude, 10)));
        assert_eq!(label(11), Some((claude, 10)));
        assert_eq!(label(12), Some((claude, 10)));
        assert_eq!(label(13), Some((codex, 13)));
        assert_eq!(label(14), Some((codex, 13)));
        assert_eq!(tree.len(), 5);
    }

    #[test]
    fn sweep_removes_unknown_kernel_entries_on_the_second_strike() {
        let (mut tree, mut map) = (Tree::default(), FakeMap::default());
        map.set(
            99,
            Tracked {
                tool: TOOL_PENDING,
                root_tgid: 99,
            },
        );
        assert_eq!(tree.sweep(&mut map, |_| true), 0, "first strike only");
        assert_eq!(tree.sweep(&mut map, |_| true), 1);
        assert!(map.0.is_empty());
    }
}

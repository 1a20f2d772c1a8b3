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
}

#[derive(Default)]
pub struct Tree {
    procs: HashMap<u32, Proc>,
    /// Kernel entries unknown here at the last sweep (see [`Tree::sweep`]).
    strangers: HashSet<u32>,
}

impl Tree {
    pub fn get(&self, tgid: u32) -> Option<&Proc> {
        self.procs.get(&tgid)
    }

    pub fn len(&self) -> usize {
        self.procs.len()
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

    /// A process exec'd. `tool_before` is its kernel label before the exec
    /// (`TOOL_PENDING` when it was not tracked and is now pending).
    pub fn on_exec(
        &mut self,
        tgid: u32,
        tool_before: u32,
        filename: &str,
        src: &dyn ProcSource,
        catalog: &Catalog,
        map: &mut dyn TrackedMap,
    ) {
        // A process that is already gone is judged by the path it exec'd.
        let info = src
            .read(tgid, catalog.env_names())
            .unwrap_or_else(|| ProcInfo {
                pid: tgid,
                ppid: 0,
                exe: Some(filename.into()),
                argv: vec![filename.to_owned()],
                comm: String::new(),
                env: Vec::new(),
            });
        let found = catalog.match_process(&info);
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
                self.track(map, &info, tool, root);
            }
            None if tool_before == TOOL_PENDING => map.remove(tgid),
            // The kernel had a label we do not know (a lost event): drop it.
            None => map.remove(tgid),
        }
    }

    /// A tracked or pending process forked. The kernel already tracks the
    /// child with the parent's label; confirm or undo that.
    pub fn on_fork(&mut self, parent: u32, child: u32, map: &mut dyn TrackedMap) {
        match self.procs.get(&parent).cloned() {
            Some(p) => {
                map.set(
                    child,
                    Tracked {
                        tool: p.tool,
                        root_tgid: p.root,
                    },
                );
                self.procs.insert(child, Proc { ppid: parent, ..p });
            }
            // The parent was pending and turned out not to be an agent.
            None => map.remove(child),
        }
    }

    pub fn on_exit(&mut self, tgid: u32) -> Option<Proc> {
        self.strangers.remove(&tgid);
        self.procs.remove(&tgid)
    }

    /// Removes kernel entries this table does not know for two sweeps in a
    /// row: pending processes whose exec event was lost, or processes whose
    /// exit event was. Two strikes, because an entry may be newer than the
    /// events read so far.
    pub fn sweep(&mut self, map: &mut dyn TrackedMap, alive: impl Fn(u32) -> bool) -> usize {
        let unknown: HashSet<u32> = map
            .tgids()
            .into_iter()
            .filter(|t| !self.procs.contains_key(t))
            .collect();
        let stale: Vec<u32> = unknown.intersection(&self.strangers).copied().collect();
        for tgid in &stale {
            map.remove(*tgid);
        }
        self.strangers = unknown
            .difference(&stale.iter().copied().collect())
            .copied()
            .collect();
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
        self.procs.insert(
            info.pid,
            Proc {
                tool,
                root,
                ppid: info.ppid,
                exe: display_exe(info),
                argv0: info.argv.first().cloned().unwrap_or_default(),
            },
        );
    }
}

fn display_exe(info: &ProcInfo) -> String {
    info.exe
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

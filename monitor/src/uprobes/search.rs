//! A file's probe points searched away from the event loop. A search of a
//! large program (Codex's 315 MB, Claude Code's Bun binary) takes tenths of
//! a second; on the event loop, every kernel event waits that long, and a
//! short-lived process exec'd meanwhile is gone before it is read. agentmon
//! hands each search to a thread ([`TlsProbes::search_with`]) and attaches
//! when its result comes back ([`TlsProbes::searched`]).
//!
//! [`TlsProbes::search_with`]: super::TlsProbes::search_with
//! [`TlsProbes::searched`]: super::TlsProbes::searched

use std::{collections::HashMap, path::Path};

use super::{FileId, Mapped, Plan, ProbeError, Target, TlsLib, plan};

/// What a search needs: the file as a process maps it, opened.
pub struct Search {
    pub(super) id: FileId,
    pub(super) file: Mapped,
    pub(super) is_exe: bool,
    pub(super) target: Target,
    pub(super) rustls: bool,
    /// The build's key in the kept plans, if it has one.
    pub(super) key: Option<String>,
}

/// A search's outcome: the plan with its functions resolved, none (not a TLS
/// library), or why it cannot be probed.
pub struct Searched {
    pub(super) search: Search,
    pub(super) plan: Result<Option<Plan>, ProbeError>,
    /// The library the file was found to be, also when it cannot be probed.
    pub(super) lib: Option<TlsLib>,
}

/// Runs `search` on this thread.
pub fn run(search: Search) -> Searched {
    run_with(search, plan::elf_offsets)
}

/// Runs `search`, reading the functions' offsets with `offsets` (the
/// attacher's, on the event loop: the unit tests' fakes read their own).
pub(super) fn run_with(
    search: Search,
    offsets: impl FnOnce(&Path, &[&str]) -> Result<HashMap<String, u64>, ProbeError>,
) -> Searched {
    let target = search.target.path();
    let found = plan::plan_for(&search.file.path, search.is_exe, target, search.rustls);
    let lib = found.as_ref().map(|plan| plan.lib);
    let plan = match found {
        None => Ok(None),
        Some(plan) => offsets(target, &plan::symbols(&plan))
            .and_then(|found| plan::resolve(&plan, &found))
            .map(Some),
    };
    Searched { search, plan, lib }
}

//! The uprobe manager: which TLS libraries the agents' processes map, and
//! attaching the kernel's TLS call probes (monitor-ebpf's `tls_calls.rs`)
//! to them. A library other processes map too is probed for each tracked
//! process alone (a pid-scoped uprobe: the kernel plants its breakpoint in
//! that process only, so nothing else ever traps into it) and unprobed when
//! the process exits; an agent's own executable is probed once per file.
//!
//! Covered: OpenSSL as `libssl.so.*` (`SSL_write`/`SSL_read` and the `_ex`
//! calls), OpenSSL linked into an executable that exports its symbols (node,
//! Electron's node), BoringSSL inside Bun single-file executables (Claude
//! Code's native binary, opencode), found by byte patterns
//! (`boringssl.rs`), and GnuTLS (`gnutls_record_send`/`_recv`).

pub mod awslc;
pub mod boringssl;
mod cache;
pub mod golang;
mod lib;
pub mod mapped;
mod needed;
pub mod openssl_stripped;
mod plan;
#[cfg(test)]
mod samples;
pub mod search;
mod target;
mod xrefs;

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use tracing::{debug, info, warn};

use self::cache::PlanCache;
pub use self::lib::TlsLib;
use self::mapped::Mapped;
pub use self::needed::{Needed, default_dirs, is_tls_library};
pub use self::plan::{Checked, Plan, Scope, check_file, elf_offsets, links_rustls};
use self::search::{Search, Searched};
pub use self::target::{Stamp, Target};
use crate::kernel::{
    AEAD_OPEN, AEAD_OPEN_RETURN, AEAD_SEAL, GO_TLS_READ, GO_TLS_RETURN, ProbeAt, TLS_ENTRY_READ,
    TLS_ENTRY_READ_EX, TLS_RETURN,
};

/// Why a file gets no probes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read the ELF file {path}: {reason}")]
    Elf { path: PathBuf, reason: String },
    #[error("{function} not found in the file")]
    Missing { function: String },
    #[error("cannot attach {program} at {at:?}: {source}")]
    Attach {
        program: &'static str,
        at: ProbeAt,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Attaching and detaching probes (the kernel, or a fake in tests).
pub trait Attacher {
    type Link;
    /// Attaches `program` at `at` in `target`, for process `pid` only, or
    /// for every process that maps the file.
    fn attach(
        &mut self,
        program: &'static str,
        target: &Path,
        at: &ProbeAt,
        lib: TlsLib,
        pid: Option<NonZeroU32>,
    ) -> Result<Self::Link, ProbeError>;
    fn detach(&mut self, program: &str, link: Self::Link);
    /// Opens the file process `pid` maps (see [`Target::open`]).
    fn open(&mut self, file: &Mapped, pid: u32, root: &Path, is_exe: bool) -> Option<Target> {
        Target::open(file, pid, root, is_exe)
    }
    /// File offsets of the named functions in `target` (missing ones left out).
    fn offsets(
        &mut self,
        target: &Path,
        names: &[&str],
    ) -> Result<HashMap<String, u64>, ProbeError> {
        elf_offsets(target, names)
    }
}

type Links<L> = Vec<(&'static str, L)>;

/// Probes attached once for a file, and the tracked processes mapping it.
struct Shared<L> {
    lib: TlsLib,
    links: Links<L>,
    users: HashSet<u32>,
    /// When the last user exited (detached after [`DETACH_AFTER`]).
    idle_since: Option<Instant>,
}

/// A file no tracked process maps keeps its shared probes this long:
/// registering a uprobe walks every mapping of the file on the machine, so
/// agents that start and exit often must not attach each time.
pub const DETACH_AFTER: Duration = Duration::from_secs(60);

type FileId = (u32, u32, u64);

pub struct TlsProbes<L> {
    /// Files probed for everyone who maps them ([`Scope::PerFile`]).
    shared: HashMap<FileId, Shared<L>>,
    /// Probes attached for one process ([`Scope::PerProcess`]), by pid and
    /// file, detached when the process exits.
    own: HashMap<u32, HashMap<FileId, (TlsLib, Links<L>)>>,
    /// Plans with their functions resolved, so a library is parsed once
    /// (while its size and modification time stay the same).
    plans: HashMap<FileId, (Option<Stamp>, Plan)>,
    /// The same, by build: another copy of a build (a reinstall, an
    /// agent's binary in each of several places) is not searched again,
    /// nor, with a state folder, a build an earlier run searched.
    kept: PlanCache,
    /// Files that are not TLS libraries, or whose probes failed: not again.
    skip: HashSet<FileId>,
    /// When each process's maps were last read, and the files it maps.
    scanned: HashMap<u32, (Instant, Vec<FileId>)>,
    /// When each process's maps were first read since its exec: young
    /// processes are looked at more often (see [`YOUNG`]).
    first_scan: HashMap<u32, Instant>,
    /// Told when a process becomes young, so that the watch over young
    /// processes sleeps while there are none.
    on_young: Option<Arc<Notify>>,
    /// When probes were last attached.
    last_attach: Option<Instant>,
    needed: Needed,
    /// Whether rustls on aws-lc is probed: only where its received records
    /// can be tied to their socket (the `rx_tie` kernel feature); else its
    /// records give both ways, per connection.
    rustls: bool,
    /// Hands a search to a thread (see `search.rs`); without one, files are
    /// searched on the caller's.
    searcher: Option<Searcher>,
    /// Files being searched, with the processes waiting for their probes
    /// (each with the file as it maps it).
    searching: HashMap<FileId, Vec<(u32, Mapped)>>,
    /// Probes are all detached: a search that ends later attaches nothing.
    stopped: bool,
}

/// Starts a search elsewhere; its result comes back to
/// [`TlsProbes::searched`]. Gives the search back when it cannot.
pub type Searcher = Box<dyn FnMut(Box<Search>) -> Result<(), Box<Search>> + Send>;

impl<L> Default for TlsProbes<L> {
    fn default() -> Self {
        Self {
            shared: HashMap::new(),
            own: HashMap::new(),
            plans: HashMap::new(),
            kept: PlanCache::default(),
            skip: HashSet::new(),
            scanned: HashMap::new(),
            first_scan: HashMap::new(),
            on_young: None,
            last_attach: None,
            needed: Needed::default(),
            rustls: true,
            searcher: None,
            searching: HashMap::new(),
            stopped: false,
        }
    }
}

/// Files smaller than this are searched on the caller's thread even with a
/// searcher: libssl (0.7 MB) and libgnutls (2 MB) by their symbols in a
/// millisecond or two, the tests' 4 to 7 MB static clients in under 30 ms.
/// Agents' single-file programs (node and Bun builds of 90 MB and more,
/// Codex's 315 MB) go to the searcher's thread.
const SEARCH_HERE_BELOW: u64 = 8 << 20;

/// A process's maps are read again at most this often (libraries come with
/// dlopen, e.g. Python's `import ssl`, so every new connection may look).
const RESCAN: Duration = Duration::from_millis(100);
const RESCAN_UNTIL_FOUND: Duration = Duration::from_millis(1);

/// For this long after its exec, a tracked process's maps are read every
/// [`RESCAN`] even when it makes no event (`State::probe_young`): agents
/// load their TLS add-ons in their first seconds and connect a few hundred
/// milliseconds later (Copilot CLI 1.0.102 loads `runtime.node` 0.4 s
/// before its first connection, and searching it takes 0.1 s), while the
/// housekeeping tick comes every 10 s by default and a connection's own
/// event comes too late for a search.
pub const YOUNG: Duration = Duration::from_secs(30);

impl<L> TlsProbes<L> {
    /// Probes rustls on aws-lc or not (see the field).
    pub fn with_rustls(mut self, rustls: bool) -> Self {
        self.rustls = rustls;
        self
    }

    /// Searches files with `searcher` from now on, away from the caller.
    pub fn search_with(&mut self, searcher: Searcher) {
        self.searcher = Some(searcher);
    }

    /// Keeps the plans found in the state folder `dir`, and uses those
    /// earlier runs kept there.
    pub fn keep_plans_in(&mut self, dir: &Path) {
        self.kept = PlanCache::load(dir);
        debug!(
            builds = self.kept.len(),
            "TLS probe points kept by earlier runs"
        );
    }

    /// Whether process `pid`'s maps are worth reading again at `now`.
    /// Checked before reading them: a process opening thousands of
    /// connections a second must not cost a `/proc/<pid>/maps` read each.
    pub fn due(&self, pid: u32, now: Instant) -> bool {
        // Until a TLS library shows up, look at every chance (ld.so maps
        // libraries after the exec event; Python dlopens libssl on import).
        match self.scanned.get(&pid) {
            None => true,
            Some((at, ids)) => {
                let wait = if ids.is_empty() {
                    RESCAN_UNTIL_FOUND
                } else {
                    RESCAN
                };
                now.duration_since(*at) >= wait
            }
        }
    }

    /// Looks at the files process `pid` maps (its `maps` text given) and
    /// attaches probes to TLS libraries it has none on yet.
    pub fn scan(
        &mut self,
        pid: u32,
        maps_text: &str,
        exe: Option<&Path>,
        root: &Path,
        attacher: &mut dyn Attacher<Link = L>,
        now: Instant,
    ) {
        if !self.due(pid, now) {
            return;
        }
        let mine = self.attach_files(pid, mapped::parse(maps_text), exe, root, attacher);
        self.scanned.insert(pid, (now, mine));
        if let Entry::Vacant(young) = self.first_scan.entry(pid) {
            young.insert(now);
            if let Some(notify) = &self.on_young {
                notify.notify_one();
            }
        }
    }

    /// Tells `notify` each time a process becomes young.
    pub fn notify_young(&mut self, notify: Arc<Notify>) {
        self.on_young = Some(notify);
    }

    /// Processes whose maps were first read less than [`YOUNG`] ago.
    pub fn young(&self, now: Instant) -> Vec<u32> {
        self.first_scan
            .iter()
            .filter(|(_, first)| now.duration_since(**first) < YOUNG)
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// Probes the TLS libraries process `pid` is about to map, from its
    /// executable's `DT_NEEDED` (see `needed.rs`): at its exec, before the
    /// dynamic loader has mapped them.
    pub fn expect(
        &mut self,
        pid: u32,
        exe: &Path,
        root: &Path,
        attacher: &mut dyn Attacher<Link = L>,
    ) {
        // A new program: young again from its first scan.
        self.first_scan.remove(&pid);
        let libraries = self.needed.tls_libraries(exe, root);
        if !libraries.is_empty() {
            self.attach_files(pid, libraries, None, root, attacher);
        }
    }

    /// Attaches probes for process `pid` to the TLS libraries among `files`
    /// that it has none on yet; returns the TLS libraries it now has.
    fn attach_files(
        &mut self,
        pid: u32,
        files: Vec<Mapped>,
        exe: Option<&Path>,
        root: &Path,
        attacher: &mut dyn Attacher<Link = L>,
    ) -> Vec<FileId> {
        let mut mine = Vec::new();
        for file in files {
            let id = file.id();
            if self
                .own
                .get(&pid)
                .is_some_and(|files| files.contains_key(&id))
            {
                mine.push(id);
                continue;
            }
            if let Some(shared) = self.shared.get_mut(&id) {
                shared.users.insert(pid);
                shared.idle_since = None;
                mine.push(id);
                continue;
            }
            if self.skip.contains(&id) {
                continue;
            }
            if let Some(waiting) = self.searching.get_mut(&id) {
                if waiting.iter().all(|(p, _)| *p != pid) {
                    waiting.push((pid, file));
                }
                continue;
            }
            let is_exe = target::is_exe(&file, exe, pid);
            let Some(target) = attacher.open(&file, pid, root, is_exe) else {
                debug!(pid, file = %file.path.display(), "cannot open the file the process maps; looked at again at its next scan");
                continue;
            };
            let Some((plan, target)) = self.plan(id, pid, &file, is_exe, target, attacher) else {
                continue;
            };
            if self.attach_one(pid, id, &file, &plan, target.path(), attacher) {
                mine.push(id);
            }
        }
        mine
    }

    /// Attaches `plan` to `target` for process `pid`, or for the file;
    /// returns whether `pid` has the file's probes now.
    fn attach_one(
        &mut self,
        pid: u32,
        id: FileId,
        file: &Mapped,
        plan: &Plan,
        target: &Path,
        attacher: &mut dyn Attacher<Link = L>,
    ) -> bool {
        let scope = match plan.scope {
            Scope::PerProcess => NonZeroU32::new(pid),
            Scope::PerFile => None,
        };
        let started = Instant::now();
        self.last_attach = Some(started);
        match attach_plan(plan, target, scope, attacher) {
            Ok(links) => {
                let (lib, probes) = (plan.lib.label(), links.len());
                let ms = started.elapsed().as_secs_f64() * 1e3;
                match scope {
                    Some(_) => {
                        debug!(pid, file = %file.path.display(), library = lib, probes, ms, "TLS probes attached for the process");
                        self.own
                            .entry(pid)
                            .or_default()
                            .insert(id, (plan.lib, links));
                    }
                    None => {
                        info!(file = %file.path.display(), library = lib, probes, ms, "TLS probes attached for the file");
                        self.shared.insert(
                            id,
                            Shared {
                                lib: plan.lib,
                                links,
                                users: HashSet::from([pid]),
                                idle_since: None,
                            },
                        );
                    }
                }
                true
            }
            // A process can leave while its probes are attached: only
            // a file that fails for everyone is given up.
            Err(e) if scope.is_some() => {
                debug!(pid, file = %file.path.display(), "cannot attach TLS probes for the process: {e}");
                false
            }
            Err(e) => {
                warn!(file = %file.path.display(), library = plan.lib.label(), "cannot attach TLS probes: {e}; this library's TLS 1.3 sizes come from records");
                self.skip.insert(id);
                false
            }
        }
    }

    /// The plan for a file, resolved once, with the file; None for a file
    /// that is not a TLS library or whose functions are missing (skipped
    /// from now on), or that is being searched elsewhere (attached for
    /// `pid` when that search ends).
    fn plan(
        &mut self,
        id: FileId,
        pid: u32,
        file: &Mapped,
        is_exe: bool,
        target: Target,
        attacher: &mut dyn Attacher<Link = L>,
    ) -> Option<(Plan, Target)> {
        let stamp = target.stamp();
        if let Some((known, plan)) = self.plans.get(&id)
            && *known == stamp
        {
            return Some((plan.clone(), target));
        }
        let key = cache::key(target.path());
        if let Some(plan) = key.as_deref().and_then(|k| self.kept.get(k, target.path())) {
            info!(file = %file.path.display(), library = plan.lib.label(), "TLS probe points known from another copy of this build or an earlier run");
            self.plans.insert(id, (stamp, plan.clone()));
            return Some((plan, target));
        }
        let search = Search {
            id,
            file: file.clone(),
            is_exe,
            target,
            rustls: self.rustls,
            key,
        };
        // Libraries and small programs take a few milliseconds: searched
        // here, they never wait behind a large one in the thread's queue.
        let small = search
            .target
            .stamp()
            .is_some_and(|(size, _, _)| size < SEARCH_HERE_BELOW);
        let search = match &mut self.searcher {
            Some(searcher) if !small => match searcher(Box::new(search)) {
                Ok(()) => {
                    debug!(pid, file = %file.path.display(), "searching the file for TLS probe points");
                    self.searching.insert(id, vec![(pid, file.clone())]);
                    return None;
                }
                // Its thread is gone: searched here.
                Err(search) => *search,
            },
            _ => search,
        };
        let done = search::run_with(search, |target, names| attacher.offsets(target, names));
        let plan = self.keep(&done)?;
        Some((plan, done.search.target))
    }

    /// Keeps what a search found: the plan, also by build for other copies
    /// and later runs, or the file skipped from now on.
    fn keep(&mut self, done: &Searched) -> Option<Plan> {
        let Search {
            id, file, target, ..
        } = &done.search;
        match &done.plan {
            Ok(Some(plan)) => {
                self.plans.insert(*id, (target.stamp(), plan.clone()));
                if let Some(key) = &done.search.key {
                    self.kept.put(key, plan, target.path());
                }
                Some(plan.clone())
            }
            Ok(None) => {
                self.skip.insert(*id);
                None
            }
            Err(e) => {
                let library = done.lib.map_or("", TlsLib::label);
                warn!(file = %file.path.display(), library, "cannot probe TLS library: {e}; its TLS 1.3 sizes come from records");
                self.skip.insert(*id);
                None
            }
        }
    }

    /// A search handed to the searcher ended: its file's probes go on for
    /// the processes that wait for them and have not exited.
    pub fn searched(&mut self, done: Searched, attacher: &mut dyn Attacher<Link = L>) {
        let id = done.search.id;
        let waiting = self.searching.remove(&id).unwrap_or_default();
        if self.stopped {
            return;
        }
        let Some(plan) = self.keep(&done) else {
            return;
        };
        let target = done.search.target.path();
        for (pid, file) in waiting {
            // Attaching for the file failed (and said so once).
            if self.skip.contains(&id) {
                break;
            }
            let has = match self.shared.get_mut(&id) {
                // Probed for the file by an earlier process of the list.
                Some(shared) => {
                    shared.users.insert(pid);
                    true
                }
                None => self.attach_one(pid, id, &file, &plan, target, attacher),
            };
            if has {
                let (_, ids) = self
                    .scanned
                    .entry(pid)
                    .or_insert_with(|| (Instant::now(), Vec::new()));
                ids.push(id);
            }
        }
    }

    /// A tracked process exited: its own probes go now; shared files nobody
    /// uses any more start to idle.
    pub fn exited(&mut self, pid: u32, now: Instant, attacher: &mut dyn Attacher<Link = L>) {
        for waiting in self.searching.values_mut() {
            waiting.retain(|(p, _)| *p != pid);
        }
        for (_, (_, links)) in self.own.remove(&pid).unwrap_or_default() {
            for (program, link) in links {
                attacher.detach(program, link);
            }
        }
        self.first_scan.remove(&pid);
        let Some((_, ids)) = self.scanned.remove(&pid) else {
            return;
        };
        for id in ids {
            let Some(shared) = self.shared.get_mut(&id) else {
                continue;
            };
            shared.users.remove(&pid);
            if shared.users.is_empty() {
                shared.idle_since = Some(now);
            }
        }
    }

    /// Detaches every probe (agentmon is stopping).
    pub fn detach_all(&mut self, attacher: &mut dyn Attacher<Link = L>) {
        self.stopped = true;
        self.searching.clear();
        let own = self.own.drain().flat_map(|(_, files)| files.into_values());
        let shared = self.shared.drain().map(|(_, s)| (s.lib, s.links));
        for (_, links) in own.chain(shared).collect::<Vec<_>>() {
            for (program, link) in links {
                attacher.detach(program, link);
            }
        }
        self.scanned.clear();
        self.first_scan.clear();
    }

    /// Detaches the probes of shared files idle for [`DETACH_AFTER`].
    pub fn reap(&mut self, now: Instant, attacher: &mut dyn Attacher<Link = L>) {
        let idle: Vec<FileId> = self
            .shared
            .iter()
            .filter(|(_, a)| {
                a.idle_since
                    .is_some_and(|t| now.duration_since(t) >= DETACH_AFTER)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(shared) = self.shared.remove(&id) {
                for (program, link) in shared.links {
                    attacher.detach(program, link);
                }
            }
        }
    }

    /// TLS libraries with probes that fire for process `pid`.
    pub fn libs_of(&self, pid: u32) -> impl Iterator<Item = TlsLib> + '_ {
        let own = self
            .own
            .get(&pid)
            .into_iter()
            .flat_map(|files| files.values().map(|(lib, links)| (*lib, links)));
        let shared = self
            .scanned
            .get(&pid)
            .into_iter()
            .flat_map(|(_, ids)| ids.iter())
            .filter_map(|id| self.shared.get(id).map(|a| (a.lib, &a.links)));
        own.chain(shared)
            .flat_map(|(lib, links)| links.iter().map(move |(p, _)| probe_lib(p, lib)))
    }

    /// Whether no probe was attached for `quiet` before `now`: a good time
    /// to unregister old ones, which slows attaching.
    pub fn quiet_since(&self, quiet: Duration, now: Instant) -> bool {
        self.last_attach
            .is_none_or(|at| now.duration_since(at) >= quiet)
    }

    /// Probes attached per library.
    pub fn attached(&self) -> HashMap<TlsLib, usize> {
        let shared = self.shared.values().map(|a| (&a.lib, &a.links));
        let own = self.own.values().flat_map(|files| files.values());
        let mut out = HashMap::new();
        for (lib, links) in shared.chain(own.map(|(lib, links)| (lib, links))) {
            for (program, _) in links {
                *out.entry(probe_lib(program, *lib)).or_default() += 1;
            }
        }
        out
    }
}

/// Attaches every probe of `plan`, each with a return probe if the plan
/// wants them; a required probe that cannot be attached fails the whole
/// file. Entry and return probes sit at the function's first byte (a
/// return probe must), so one breakpoint serves both.
///
/// Order matters while a process runs: return probes first, then reads,
/// then writes, each function's return probe before its entry. A write's
/// entry ties a connection to the probes (its plaintext then comes from
/// them, not from its records), so when one first fires, every probe that
/// counts bytes is already in place.
fn attach_plan<L>(
    plan: &Plan,
    target: &Path,
    pid: Option<NonZeroU32>,
    attacher: &mut dyn Attacher<Link = L>,
) -> Result<Links<L>, ProbeError> {
    let mut order: Vec<_> = plan.probes.iter().collect();
    order.sort_by_key(|(program, _, _)| attach_rank(program));
    let mut links = Vec::new();
    for (program, at, required) in order {
        let ret = if plan.uretprobes && !own_return(program) {
            match attacher.attach(TLS_RETURN, target, at, plan.lib, pid) {
                Ok(r) => Some(r),
                Err(e) if *required => return Err(undo(links, attacher, e)),
                Err(_) => continue,
            }
        } else {
            None
        };
        match attacher.attach(program, target, at, plan.lib, pid) {
            Ok(entry) => {
                links.extend(ret.map(|r| (TLS_RETURN, r)));
                links.push((*program, entry));
            }
            Err(e) => {
                if let Some(r) = ret {
                    attacher.detach(TLS_RETURN, r);
                }
                if *required {
                    return Err(undo(links, attacher, e));
                }
            }
        }
    }
    Ok(links)
}

/// When a program is attached within its plan: see [`attach_plan`].
fn attach_rank(program: &str) -> u8 {
    match program {
        GO_TLS_RETURN | AEAD_OPEN_RETURN => 0,
        TLS_ENTRY_READ | TLS_ENTRY_READ_EX | GO_TLS_READ | AEAD_OPEN => 1,
        _ => 2,
    }
}

/// aws-lc's programs, which rustls calls: they list their return probe in
/// the plan themselves, and count for rustls whatever the file's plan is
/// named (Codex's executable and Copilot CLI's add-on link OpenSSL too).
fn own_return(program: &str) -> bool {
    matches!(program, AEAD_SEAL | AEAD_OPEN | AEAD_OPEN_RETURN)
}

/// The library a probe of a file whose plan is `file_lib` counts for.
fn probe_lib(program: &str, file_lib: TlsLib) -> TlsLib {
    if own_return(program) {
        TlsLib::Rustls
    } else {
        file_lib
    }
}

/// Detaches `links` (a plan that failed) and passes its error on.
fn undo<L>(links: Links<L>, attacher: &mut dyn Attacher<Link = L>, e: ProbeError) -> ProbeError {
    for (program, link) in links {
        attacher.detach(program, link);
    }
    e
}

/// Path prefix for a process's view of the file system.
pub fn proc_root(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root"))
}

#[cfg(test)]
mod tests;

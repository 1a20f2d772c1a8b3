//! TLS library probes: which TLS libraries the agents' processes map, and
//! attaching the kernel's TLS probes to each such file once (by device and
//! inode), detaching them when no tracked process maps it any more.
//!
//! Covered: OpenSSL as `libssl.so.*` (`SSL_write`/`SSL_read` and the `_ex`
//! calls), OpenSSL linked into an executable that exports its symbols (node,
//! Electron's node), BoringSSL inside Bun single-file executables (Claude
//! Code's native binary, opencode), found by byte patterns
//! (`boringssl.rs`), and GnuTLS (`gnutls_record_send`/`_recv`).

pub mod boringssl;
pub mod maps;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use monitor_common::tls_lib;
use tracing::{info, warn};

use self::maps::Mapped;
use crate::kernel::{
    ProbeAt, TLS_ENTRY_READ, TLS_ENTRY_READ_EX, TLS_ENTRY_WRITE, TLS_ENTRY_WRITE_EX, TLS_RETURN,
};

/// The `library` label of a [`tls_lib`] id.
pub fn lib_label(lib: u32) -> &'static str {
    match lib {
        tls_lib::OPENSSL => "openssl",
        tls_lib::OPENSSL_STATIC => "openssl-static",
        tls_lib::BORINGSSL => "boringssl",
        tls_lib::GNUTLS => "gnutls",
        _ => "none",
    }
}

/// Every library id, for gauges that list them all.
pub const LIBS: [u32; 4] = [
    tls_lib::OPENSSL,
    tls_lib::OPENSSL_STATIC,
    tls_lib::BORINGSSL,
    tls_lib::GNUTLS,
];

/// Attaching and detaching probes (the kernel, or a fake in tests).
pub trait Attacher {
    type Link;
    fn attach(
        &mut self,
        program: &str,
        target: &Path,
        at: &ProbeAt,
        lib: u32,
    ) -> Result<Self::Link, String>;
    fn detach(&mut self, program: &str, link: Self::Link);
    /// File offsets of the named functions in `target` (missing ones left out).
    fn offsets(&mut self, target: &Path, names: &[&str]) -> Result<HashMap<String, u64>, String> {
        elf_offsets(target, names)
    }
}

/// What to probe in a file: (entry program, return-probe point) pairs.
struct Plan {
    lib: u32,
    /// (entry program, where, required)
    probes: Vec<(&'static str, ProbeAt, bool)>,
}

fn openssl_plan(lib: u32) -> Plan {
    let sym = |s: &str| ProbeAt::Symbol(s.to_owned());
    Plan {
        lib,
        probes: vec![
            (TLS_ENTRY_WRITE, sym("SSL_write"), true),
            (TLS_ENTRY_READ, sym("SSL_read"), true),
            // OpenSSL >= 1.1.1; Python's ssl module uses these.
            (TLS_ENTRY_WRITE_EX, sym("SSL_write_ex"), false),
            (TLS_ENTRY_READ_EX, sym("SSL_read_ex"), false),
        ],
    }
}

/// Decides what a mapped file is. `exe` is the process's executable.
fn plan_for(file: &Mapped, exe: Option<&Path>, target: &Path) -> Option<Plan> {
    let name = file.path.file_name()?.to_str()?;
    if name.starts_with("libssl.so") {
        return Some(openssl_plan(tls_lib::OPENSSL));
    }
    if name.starts_with("libgnutls.so") {
        let sym = |s: &str| ProbeAt::Symbol(s.to_owned());
        return Some(Plan {
            lib: tls_lib::GNUTLS,
            probes: vec![
                (TLS_ENTRY_WRITE, sym("gnutls_record_send"), true),
                (TLS_ENTRY_READ, sym("gnutls_record_recv"), true),
            ],
        });
    }
    if exe != Some(file.path.as_path()) {
        return None;
    }
    if exports_openssl(target) {
        return Some(openssl_plan(tls_lib::OPENSSL_STATIC));
    }
    bun_plan(target)
}

/// BoringSSL in a Bun single-file executable: no symbols, so its functions
/// are found by pattern; a file that does not match fails soft (metadata).
fn bun_plan(target: &Path) -> Option<Plan> {
    let file = std::fs::File::open(target).ok()?;
    // SAFETY: read-only map of an executable in use.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    if !boringssl::looks_like_bun(&map) {
        return None;
    }
    match boringssl::locate(&map) {
        Ok(found) => Some(Plan {
            lib: tls_lib::BORINGSSL,
            probes: vec![
                (TLS_ENTRY_WRITE, ProbeAt::Offset(found.ssl_write), true),
                (TLS_ENTRY_READ, ProbeAt::Offset(found.ssl_read), true),
            ],
        }),
        Err(e) => {
            warn!(file = %target.display(), "Bun executable, but its BoringSSL was not found ({e}); its TLS is seen as metadata only");
            None
        }
    }
}

/// Whether an executable exports OpenSSL's `SSL_write` (node does).
fn exports_openssl(path: &Path) -> bool {
    use object::{Object, ObjectSymbol};
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: read-only map of an executable that is being run; it is not
    // written while mapped for execution (ETXTBSY).
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return false;
    };
    let Ok(elf) = object::File::parse(&*map) else {
        return false;
    };
    elf.dynamic_symbols()
        .any(|s| s.name() == Ok("SSL_write") && !s.is_undefined())
}

struct Attached<L> {
    lib: u32,
    links: Vec<(&'static str, L)>,
    users: HashSet<u32>,
    /// When the last user exited (detached after [`DETACH_AFTER`]).
    idle_since: Option<Instant>,
}

/// A file no tracked process maps keeps its probes this long: registering
/// a uprobe walks every mapping of the file on the machine (tens of ms for
/// libssl), so agents that start and exit often must not attach each time.
pub const DETACH_AFTER: Duration = Duration::from_secs(60);

type FileId = (u32, u32, u64);

pub struct TlsProbes<L> {
    files: HashMap<FileId, Attached<L>>,
    /// Files that are not TLS libraries, or whose probes failed: not again.
    skip: HashSet<FileId>,
    /// When each process's maps were last read, and the files it maps.
    scanned: HashMap<u32, (Instant, Vec<FileId>)>,
}

impl<L> Default for TlsProbes<L> {
    fn default() -> Self {
        Self {
            files: HashMap::new(),
            skip: HashSet::new(),
            scanned: HashMap::new(),
        }
    }
}

/// A process's maps are read again at most this often (libraries come with
/// dlopen, e.g. Python's `import ssl`, so every new connection may look).
const RESCAN: Duration = Duration::from_millis(200);
const RESCAN_UNTIL_FOUND: Duration = Duration::from_millis(1);

impl<L> TlsProbes<L> {
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
    /// attaches probes to TLS libraries not seen before.
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
        let mut mine = Vec::new();
        for file in maps::parse(maps_text) {
            let id = file.id();
            if let Some(attached) = self.files.get_mut(&id) {
                attached.users.insert(pid);
                attached.idle_since = None;
                mine.push(id);
                continue;
            }
            if self.skip.contains(&id) {
                continue;
            }
            let target = attach_path(&file, root);
            let Some(plan) = plan_for(&file, exe, &target) else {
                self.skip.insert(id);
                continue;
            };
            match resolve(&plan, &target, attacher)
                .and_then(|plan| attach_plan(&plan, &target, attacher))
            {
                Ok(links) => {
                    info!(file = %file.path.display(), library = lib_label(plan.lib), probes = links.len(), "TLS probes attached");
                    self.files.insert(
                        id,
                        Attached {
                            lib: plan.lib,
                            links,
                            users: HashSet::from([pid]),
                            idle_since: None,
                        },
                    );
                    mine.push(id);
                }
                Err(e) => {
                    warn!(file = %file.path.display(), library = lib_label(plan.lib), "cannot attach TLS probes: {e}; this library's TLS is seen as metadata only");
                    self.skip.insert(id);
                }
            }
        }
        self.scanned.insert(pid, (now, mine));
    }

    /// A tracked process exited; files nobody uses any more start to idle.
    pub fn exited(&mut self, pid: u32, now: Instant) {
        let Some((_, ids)) = self.scanned.remove(&pid) else {
            return;
        };
        for id in ids {
            let Some(attached) = self.files.get_mut(&id) else {
                continue;
            };
            attached.users.remove(&pid);
            if attached.users.is_empty() {
                attached.idle_since = Some(now);
            }
        }
    }

    /// Detaches the probes of files idle for [`DETACH_AFTER`].
    pub fn reap(&mut self, now: Instant, attacher: &mut dyn Attacher<Link = L>) {
        let idle: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, a)| {
                a.idle_since
                    .is_some_and(|t| now.duration_since(t) >= DETACH_AFTER)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(attached) = self.files.remove(&id) {
                for (program, link) in attached.links {
                    attacher.detach(program, link);
                }
            }
        }
    }

    /// TLS libraries with probes that process `pid` maps.
    pub fn libs_of(&self, pid: u32) -> impl Iterator<Item = u32> + '_ {
        self.scanned
            .get(&pid)
            .into_iter()
            .flat_map(|(_, ids)| ids.iter())
            .filter_map(|id| self.files.get(id).map(|a| a.lib))
    }

    /// Probes attached per library.
    pub fn attached(&self) -> HashMap<u32, usize> {
        let mut out = HashMap::new();
        for a in self.files.values() {
            *out.entry(a.lib).or_default() += a.links.len();
        }
        out
    }
}

/// The path to attach through: the file's own path when it is the same file
/// here (device and inode), which stays valid after the process exits;
/// else through the process's root (another mount namespace).
fn attach_path(file: &Mapped, root: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let same = std::fs::metadata(&file.path).is_ok_and(|m| {
        m.ino() == file.inode
            && libc::major(m.dev()) == file.dev.0
            && libc::minor(m.dev()) == file.dev.1
    });
    if same {
        file.path.clone()
    } else {
        root.join(file.path.strip_prefix("/").unwrap_or(&file.path))
    }
}

/// File offsets of functions in an ELF file, with one read of it (aya would
/// parse the file again for every probe: slow on a 100 MB executable and
/// late for a short-lived process).
pub fn elf_offsets(target: &Path, names: &[&str]) -> Result<HashMap<String, u64>, String> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let file = std::fs::File::open(target).map_err(|e| format!("{}: {e}", target.display()))?;
    // SAFETY: a read-only map of a library or executable in use.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
    let elf = object::File::parse(&*map).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for sym in elf.dynamic_symbols().chain(elf.symbols()) {
        let Ok(name) = sym.name() else { continue };
        if sym.is_undefined() || !names.contains(&name) || out.contains_key(name) {
            continue;
        }
        let Some(index) = sym.section_index() else {
            continue;
        };
        let Ok(section) = elf.section_by_index(index) else {
            continue;
        };
        if let Some((file_offset, _)) = section.file_range() {
            out.insert(
                name.to_owned(),
                sym.address() - section.address() + file_offset,
            );
        }
    }
    Ok(out)
}

/// The plan with its symbols turned into file offsets.
fn resolve<L>(
    plan: &Plan,
    target: &Path,
    attacher: &mut dyn Attacher<Link = L>,
) -> Result<Plan, String> {
    let names: Vec<&str> = plan
        .probes
        .iter()
        .filter_map(|(_, at, _)| match at {
            ProbeAt::Symbol(name) => Some(name.as_str()),
            ProbeAt::Offset(_) => None,
        })
        .collect();
    let offsets = attacher.offsets(target, &names)?;
    let mut probes = Vec::new();
    for (program, at, required) in &plan.probes {
        match at {
            ProbeAt::Symbol(name) => match offsets.get(name) {
                Some(offset) => probes.push((*program, ProbeAt::Offset(*offset), *required)),
                None if *required => return Err(format!("{name} not found in the file")),
                None => {}
            },
            ProbeAt::Offset(_) => probes.push((*program, at.clone(), *required)),
        }
    }
    Ok(Plan {
        lib: plan.lib,
        probes,
    })
}

/// Attaches entry and return probes for every function of `plan`; a
/// required function that cannot be probed fails the whole file.
fn attach_plan<L>(
    plan: &Plan,
    target: &Path,
    attacher: &mut dyn Attacher<Link = L>,
) -> Result<Vec<(&'static str, L)>, String> {
    let mut links = Vec::new();
    for (program, at, required) in &plan.probes {
        let entry = attacher.attach(program, target, at, plan.lib);
        let result = entry.and_then(|e| {
            links.push((*program, e));
            attacher.attach(TLS_RETURN, target, at, plan.lib)
        });
        match result {
            Ok(r) => links.push((TLS_RETURN, r)),
            Err(e) if *required => {
                for (program, link) in links {
                    attacher.detach(program, link);
                }
                return Err(format!("{at:?}: {e}"));
            }
            Err(_) => {}
        }
    }
    Ok(links)
}

/// Path prefix for a process's view of the file system.
pub fn proc_root(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root"))
}

#[cfg(test)]
mod tests;

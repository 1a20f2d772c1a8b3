//! What to probe in a mapped file: which TLS library it is, the functions,
//! and whether the probes are attached per process or once for the file.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use tracing::warn;

use super::{
    ProbeError, TlsLib, awslc, boringssl, golang, openssl_stripped,
    xrefs::{LocateError, Program},
};
use crate::kernel::{
    AEAD_OPEN, AEAD_OPEN_RETURN, AEAD_SEAL, GO_TLS_READ, GO_TLS_RETURN, GO_TLS_WRITE, ProbeAt,
    TLS_ENTRY_READ, TLS_ENTRY_READ_EX, TLS_ENTRY_WRITE, TLS_ENTRY_WRITE_EX, TLS_ENTRY_WRITE_EX2,
};

/// Who a file's probes fire for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Attached for each tracked process that maps the file: the file is
    /// shared with processes that are not agents (libssl, libgnutls, node),
    /// and a uprobe attached for all would trap every one of them.
    PerProcess,
    /// Attached once for everyone who maps the file: an agent's own
    /// executable (a Bun single-file executable), which nothing else runs.
    PerFile,
}

/// What to probe in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub lib: TlsLib,
    pub scope: Scope,
    /// (program, where, required)
    pub probes: Vec<(&'static str, ProbeAt, bool)>,
    /// Whether each probe gets a return probe at the same place (C
    /// libraries); Go's plan lists probes on its return instructions.
    pub uretprobes: bool,
}

fn openssl_plan(lib: TlsLib) -> Plan {
    let sym = |s: &str| ProbeAt::Symbol(s.to_owned());
    Plan {
        lib,
        scope: Scope::PerProcess,
        probes: vec![
            (TLS_ENTRY_WRITE, sym("SSL_write"), true),
            (TLS_ENTRY_READ, sym("SSL_read"), true),
            // OpenSSL >= 1.1.1; Python's ssl module uses these.
            (TLS_ENTRY_WRITE_EX, sym("SSL_write_ex"), false),
            (TLS_ENTRY_READ_EX, sym("SSL_read_ex"), false),
        ],
        uretprobes: true,
    }
}

/// Decides what a mapped file is. `path` is the file's path as the process
/// maps it, `is_exe` whether it is the process's executable, and `target`
/// the path the file is read through; `rustls`: whether rustls on aws-lc is probed.
pub fn plan_for(path: &Path, is_exe: bool, target: &Path, rustls: bool) -> Option<Plan> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with("libssl.so") {
        return Some(openssl_plan(TlsLib::OpenSsl));
    }
    if name.starts_with("libgnutls.so") {
        let sym = |s: &str| ProbeAt::Symbol(s.to_owned());
        return Some(Plan {
            lib: TlsLib::GnuTls,
            scope: Scope::PerProcess,
            probes: vec![
                (TLS_ENTRY_WRITE, sym("gnutls_record_send"), true),
                (TLS_ENTRY_READ, sym("gnutls_record_recv"), true),
            ],
            uretprobes: true,
        });
    }
    // Else only executables, and native add-ons loaded at run time (node's
    // `.node` files) link their TLS library in.
    if !is_exe && !name.ends_with(".node") {
        return None;
    }
    let file = std::fs::File::open(target).ok()?;
    // SAFETY: a read-only map of an executable that is being run; it is not
    // written while mapped for execution (ETXTBSY).
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    if exports_openssl(&map) {
        return Some(openssl_plan(TlsLib::OpenSslStatic));
    }
    bun_plan(&map, target)
        .or_else(|| go_plan(&map, target))
        .or_else(|| stripped_plan(&map, target, rustls))
}

/// What a program without symbols links: OpenSSL 3, rustls on aws-lc, or
/// both (Codex: rustls for its model requests, and the openssl crate).
fn stripped_plan(map: &[u8], target: &Path, rustls: bool) -> Option<Plan> {
    let found = search_stripped(map, true, rustls && links_rustls(map));
    let openssl = found
        .openssl
        .and_then(|found| stripped_openssl_plan(found, target));
    let rustls = found.aws_lc.and_then(|found| rustls_plan(found, target));
    match (openssl, rustls) {
        (Some(mut openssl), Some(rustls)) => {
            // The aws-lc programs name their library themselves; the
            // cookie stays OpenSSL's.
            openssl.probes.extend(rustls.probes);
            Some(openssl)
        }
        (openssl, rustls) => openssl.or(rustls),
    }
}

/// What the searches of a stripped program found: None for a library
/// not looked for or not in the file.
pub(super) struct Stripped {
    pub openssl: Option<Result<openssl_stripped::Found, LocateError>>,
    pub aws_lc: Option<Result<awslc::Found, LocateError>>,
}

/// Searches `map` for OpenSSL 3 and aws-lc, as asked, reading the program
/// and scanning its code once for both: Codex links both and sends its
/// first request 0.4 s after its exec.
pub(super) fn search_stripped(map: &[u8], openssl: bool, aws_lc: bool) -> Stripped {
    let openssl = openssl && openssl_stripped::present(map);
    let aws_lc = aws_lc && awslc::present(map);
    if !openssl && !aws_lc {
        return Stripped {
            openssl: None,
            aws_lc: None,
        };
    }
    let mut code = match Program::read(map) {
        Ok(code) => code,
        Err(e) => {
            return Stripped {
                openssl: openssl.then(|| Err(e.clone())),
                aws_lc: aws_lc.then_some(Err(e)),
            };
        }
    };
    let ssl = openssl.then(|| openssl_stripped::Strings::of(&code.elf));
    let aead = aws_lc.then(|| awslc::strings(&code.elf));
    let mut wanted = HashSet::new();
    if let Some(Ok(strings)) = &ssl {
        wanted.extend(strings.all());
    }
    wanted.extend(aead.iter().flatten());
    code.scan(&wanted);
    Stripped {
        openssl: ssl.map(|s| s.and_then(|s| openssl_stripped::locate_in(&code, &s))),
        aws_lc: aead.map(|files| awslc::locate_in(map, &code, &files)),
    }
}

/// rustls on aws-lc, its default provider (`awslc.rs`): aws-lc's record
/// functions. Only in programs that link rustls: other users of aws-lc or
/// BoringSSL (whose file is laid out alike) seal their records elsewhere,
/// and a probe that saw only one way would hide the other's derived sizes.
fn rustls_plan(found: Result<awslc::Found, LocateError>, target: &Path) -> Option<Plan> {
    match found {
        Ok(found) => Some(Plan {
            lib: TlsLib::Rustls,
            scope: Scope::PerProcess,
            probes: vec![
                (AEAD_OPEN_RETURN, ProbeAt::Offset(found.open), true),
                (AEAD_OPEN, ProbeAt::Offset(found.open), true),
                (AEAD_SEAL, ProbeAt::Offset(found.seal), true),
            ],
            uretprobes: false,
        }),
        // rustls on ring: nothing to probe, the records tell the sizes.
        Err(LocateError::Absent(_)) => None,
        Err(e) => {
            warn!(file = %target.display(), "rustls on aws-lc, but aws-lc's record functions were not found ({e}); its TLS 1.3 sizes come from records");
            None
        }
    }
}

/// Whether an executable holds rustls (its source paths, which panic
/// messages keep in every build): `.../rustls-0.23.46/src/` as cargo
/// fetches it, `vendor__rustls-0.23.46/src/` as Bazel does (Copilot CLI's
/// add-on), `rustls/src/` from a checkout; not other crates' names
/// (`hyper-rustls-0.27.10`, `rustls-pki-types-1.12.0`).
pub fn links_rustls(map: &[u8]) -> bool {
    let versioned = memchr::memmem::find_iter(map, b"rustls-").any(|at| {
        let name_starts = at
            .checked_sub(1)
            .is_none_or(|i| !(map[i].is_ascii_alphanumeric() || map[i] == b'-'));
        name_starts && map.get(at + 7).is_some_and(u8::is_ascii_digit)
    });
    versioned || memchr::memmem::find(map, b"rustls/src/").is_some()
}

/// BoringSSL in a Bun single-file executable: no symbols, so its functions
/// are found by pattern; a file that does not match fails soft (metadata).
fn bun_plan(map: &[u8], target: &Path) -> Option<Plan> {
    if !boringssl::looks_like_bun(map) {
        return None;
    }
    match boringssl::locate(map) {
        Ok(found) => Some(Plan {
            lib: TlsLib::BoringSsl,
            scope: Scope::PerFile,
            probes: vec![
                (TLS_ENTRY_WRITE, ProbeAt::Offset(found.ssl_write), true),
                (TLS_ENTRY_READ, ProbeAt::Offset(found.ssl_read), true),
            ],
            uretprobes: true,
        }),
        Err(e) => {
            warn!(file = %target.display(), "Bun executable, but its BoringSSL was not found ({e}); its TLS 1.3 sizes come from records");
            None
        }
    }
}

/// Go's crypto/tls in a Go executable (`golang.rs`). Probed per process:
/// Go tools that agents run (gh, kubectl) are run by developers too, who
/// must not trap into them. A Go program without crypto/tls is no TLS
/// library; one that cannot be probed fails soft (metadata, records).
fn go_plan(map: &[u8], target: &Path) -> Option<Plan> {
    match golang::locate(map) {
        Ok(found) => {
            let at = ProbeAt::Offset;
            let mut probes = vec![
                (GO_TLS_WRITE, at(found.write), true),
                (GO_TLS_READ, at(found.read), true),
            ];
            probes.extend(found.returns.iter().map(|r| (GO_TLS_RETURN, at(*r), true)));
            Some(Plan {
                lib: TlsLib::Go,
                scope: Scope::PerProcess,
                probes,
                uretprobes: false,
            })
        }
        Err(golang::GoError::NotGo | golang::GoError::NoTls) => None,
        Err(e) => {
            warn!(file = %target.display(), "Go executable, but its crypto/tls cannot be probed ({e}); its TLS 1.3 sizes come from records");
            None
        }
    }
}

/// OpenSSL 3 in an executable without symbols (`openssl_stripped.rs`):
/// probed per process, as a program that is not only an agent's might be.
/// Its functions take the `_ex` calls' arguments (the count through a
/// pointer), so the same programs read them.
fn stripped_openssl_plan(
    found: Result<openssl_stripped::Found, LocateError>,
    target: &Path,
) -> Option<Plan> {
    match found {
        Ok(found) => {
            let write = if found.write_has_flags {
                TLS_ENTRY_WRITE_EX2
            } else {
                TLS_ENTRY_WRITE_EX
            };
            Some(Plan {
                lib: TlsLib::OpenSslStatic,
                scope: Scope::PerProcess,
                probes: vec![
                    (TLS_ENTRY_READ_EX, ProbeAt::Offset(found.read), true),
                    (write, ProbeAt::Offset(found.write), true),
                ],
                uretprobes: true,
            })
        }
        Err(LocateError::Absent(_)) => None,
        Err(e) => {
            warn!(file = %target.display(), "OpenSSL 3 linked in without symbols, but its functions were not found ({e}); its TLS 1.3 sizes come from records");
            None
        }
    }
}

/// The build id of an ELF file: the GNU build-id note, or Go's (Go's own
/// linker writes only that).
pub fn build_id(path: &Path) -> Option<Vec<u8>> {
    use object::{Object, ObjectSection};
    let file = std::fs::File::open(path).ok()?;
    // SAFETY: a read-only map of a library or executable in use.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    let elf = object::File::parse(&*map).ok()?;
    if let Ok(Some(id)) = elf.build_id() {
        return Some(id.to_vec());
    }
    let go = elf.section_by_name(".note.go.buildid")?.data().ok()?;
    Some(go.to_vec())
}

/// Whether an executable exports OpenSSL's `SSL_write` (node does).
fn exports_openssl(map: &[u8]) -> bool {
    use object::{Object, ObjectSymbol};
    let Ok(elf) = object::File::parse(map) else {
        return false;
    };
    elf.dynamic_symbols()
        .any(|s| s.name() == Ok("SSL_write") && !s.is_undefined())
}

/// File offsets of functions in an ELF file, with one read of it (aya would
/// parse the file again for every probe: slow on a 100 MB executable and
/// late for a short-lived process).
pub fn elf_offsets(target: &Path, names: &[&str]) -> Result<HashMap<String, u64>, ProbeError> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let elf_error = |reason: String| ProbeError::Elf {
        path: target.to_owned(),
        reason,
    };
    let file = std::fs::File::open(target).map_err(|e| elf_error(e.to_string()))?;
    // SAFETY: a read-only map of a library or executable in use.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| elf_error(e.to_string()))?;
    let elf = object::File::parse(&*map).map_err(|e| elf_error(e.to_string()))?;
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

/// The plan with its symbols turned into file offsets, given the offsets
/// found in the file.
pub fn resolve(plan: &Plan, offsets: &HashMap<String, u64>) -> Result<Plan, ProbeError> {
    let mut probes = Vec::new();
    for (program, at, required) in &plan.probes {
        match at {
            ProbeAt::Symbol(name) => match offsets.get(name) {
                Some(offset) => probes.push((*program, ProbeAt::Offset(*offset), *required)),
                None if *required => {
                    return Err(ProbeError::Missing {
                        function: name.clone(),
                    });
                }
                None => {}
            },
            ProbeAt::Offset(_) => probes.push((*program, at.clone(), *required)),
        }
    }
    Ok(Plan {
        probes,
        ..plan.clone()
    })
}

/// A file's TLS probe points, resolved as for a process that maps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub lib: TlsLib,
    /// The functions found: symbol names, or `SSL_write at 0x1234` for
    /// functions found by pattern.
    pub functions: Vec<String>,
}

/// What agentmon would probe in the file at `path`, resolved as when a
/// tracked process maps it (for `agentmon doctor`); `executable`: the file
/// is a program (node, a Bun executable), not a library. `None` when it is
/// no TLS library agentmon knows.
pub fn check_file(path: &Path, executable: bool) -> Option<Result<Checked, ProbeError>> {
    let plan = plan_for(path, executable, path, true)?;
    let names = symbols(&plan);
    let checked = elf_offsets(path, &names).and_then(|offsets| {
        let resolved = resolve(&plan, &offsets)?;
        let mut functions: Vec<String> = names
            .iter()
            .filter(|name| offsets.contains_key(**name))
            .map(|name| (*name).to_owned())
            .collect();
        for (program, at, _) in &plan.probes {
            if let ProbeAt::Offset(offset) = at {
                functions.push(format!("{program} at {offset:#x}"));
            }
        }
        Ok(Checked {
            lib: resolved.lib,
            functions,
        })
    });
    Some(checked)
}

/// The symbol names a plan needs resolved.
pub fn symbols(plan: &Plan) -> Vec<&str> {
    plan.probes
        .iter()
        .filter_map(|(_, at, _)| match at {
            ProbeAt::Symbol(name) => Some(name.as_str()),
            ProbeAt::Offset(_) => None,
        })
        .collect()
}

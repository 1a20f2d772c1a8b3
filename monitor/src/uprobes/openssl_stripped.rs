//! OpenSSL 3 linked into a stripped executable (Codex's release binary
//! vendors it through the openssl crate): no symbols, so the two functions
//! every `SSL_read`/`SSL_read_ex` and `SSL_write`/`SSL_write_ex` call goes
//! through, `ssl_read_internal` and `ssl_write_internal`, are found by what
//! OpenSSL writes into itself. OpenSSL 3's `ERR_raise` records the raising
//! function's name (`__func__`) and source file, so a function raising
//! errors holds a `lea` of its own name and one of `ssl/ssl_lib.c`.
//!
//! A function is believed only when all of these hold:
//! 1. exactly one function (an `.eh_frame` entry: stripping keeps them,
//!    unwinding needs them) holds `lea`s of both its name and the file;
//! 2. `SSL_read` (found the same way) calls the `ssl_read_internal` found,
//!    and `SSL_write` calls the `ssl_write_internal` found, where the
//!    program has them: one that never calls them (the openssl crate calls
//!    `SSL_read_ex` and `SSL_write_ex`) has them removed by the linker.
//!
//! OpenSSL 3.3 added a `flags` argument before `ssl_write_internal`'s
//! `written` pointer: `SSL_write` then sets a fifth argument register (R8)
//! before its call, which tells the layouts apart; without `SSL_write`,
//! the library's version text (`OpenSSL 3.6.3 9 Jun 2026`) does. OpenSSL
//! 1.1.1 records no function names and is not found. x86-64 only.

use std::collections::HashMap;

pub use super::xrefs::LocateError;
use super::xrefs::{Program, calls, read_only, string_starts};

/// File offsets of the two functions, and the write layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub read: u64,
    pub write: u64,
    /// `ssl_write_internal(s, buf, num, flags, written)` (OpenSSL 3.3+),
    /// else `(s, buf, num, written)`.
    pub write_has_flags: bool,
}

const LIBRARY: &str = "OpenSSL 3";
const FILE: &[u8] = b"ssl/ssl_lib.c\0";
const NAMES: [&str; 4] = [
    "ssl_read_internal",
    "ssl_write_internal",
    "SSL_read",
    "SSL_write",
];

/// Locates OpenSSL 3's read and write functions in the executable `data`.
/// (The search agentmon runs, alone: it shares its scan with aws-lc's.)
pub fn locate(data: &[u8]) -> Result<Found, LocateError> {
    let found = super::plan::search_stripped(data, true, false).openssl;
    found.unwrap_or(Err(LocateError::Absent(LIBRARY)))
}

/// Whether `data` may hold OpenSSL 3 (a function name it records).
pub(super) fn present(data: &[u8]) -> bool {
    memchr::memmem::find(data, b"ssl_write_internal\0").is_some()
}

/// Locates them in `code`, scanned for the `strings`.
pub(super) fn locate_in(code: &Program, strings: &Strings) -> Result<Found, LocateError> {
    let (text, frames) = (&code.text, &code.frames);
    // Functions holding `lea`s of the file's name, and of each function name.
    let mut with_file = Vec::new();
    let mut with_name: HashMap<&str, Vec<u64>> = HashMap::new();
    for &(at, target) in code.leas() {
        let Some(function) = frames.function_at(at) else {
            continue;
        };
        if strings.file.contains(&target) {
            with_file.push(function);
        }
        for (name, addrs) in &strings.names {
            if addrs.contains(&target) {
                with_name.entry(name).or_default().push(function);
            }
        }
    }
    let function = |name: &'static str| -> Result<(u64, u64), LocateError> {
        let mut found: Vec<u64> = with_name.get(name).cloned().unwrap_or_default();
        found.retain(|f| with_file.contains(f));
        found.sort_unstable();
        found.dedup();
        match found.as_slice() {
            [one] => Ok((*one, frames.end_of(*one))),
            [] => Err(LocateError::NotFound(name)),
            many => Err(LocateError::Ambiguous(name, many.len())),
        }
    };
    let read = function("ssl_read_internal")?;
    let write = function("ssl_write_internal")?;
    let body = |extent: (u64, u64)| text.body(extent);
    // A caller the program does not have (removed as unused) checks
    // nothing; one it has must call the function found.
    let caller =
        |name: &'static str, callee: (u64, u64), callee_name: &'static str| match function(name) {
            Ok(caller) => match body(caller).and_then(|b| calls(b, caller.0, callee.0)) {
                Some(r8_set) => Ok(Some(r8_set)),
                None => Err(LocateError::Unverified {
                    caller: name,
                    callee: callee_name,
                }),
            },
            Err(LocateError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
    caller("SSL_read", read, "ssl_read_internal")?;
    let r8_set = match caller("SSL_write", write, "ssl_write_internal")? {
        Some(r8_set) => r8_set,
        None => minor_version(&code.elf).ok_or(LocateError::NotFound("SSL_write"))? >= 3,
    };
    // Both lie in .text: the callers' checks found calls to them there.
    Ok(Found {
        read: text.offset(read.0),
        write: text.offset(write.0),
        write_has_flags: r8_set,
    })
}

/// OpenSSL 3's minor version from its version text (`OpenSSL 3.6.3 9 Jun
/// 2026`), when the file's read-only data holds exactly one.
fn minor_version(elf: &object::File) -> Option<u32> {
    let mut minors: Vec<u32> = read_only(elf).flat_map(|(_, data)| minors(data)).collect();
    minors.sort_unstable();
    minors.dedup();
    match minors[..] {
        [one] => Some(one),
        _ => None,
    }
}

/// The minor versions of the `OpenSSL 3.<minor>.<patch> ` texts in `data`
/// (not prose such as "OpenSSL 3.0 or later").
fn minors(data: &[u8]) -> impl Iterator<Item = u32> + '_ {
    const TEXT: &[u8] = b"OpenSSL 3.";
    memchr::memmem::find_iter(data, TEXT).filter_map(|at| {
        let number = |from: usize| {
            let rest = data.get(from..)?;
            let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let value = std::str::from_utf8(&rest[..len])
                .ok()?
                .parse::<u32>()
                .ok()?;
            Some((value, from + len))
        };
        let (minor, end) = number(at + TEXT.len())?;
        (data.get(end) == Some(&b'.')).then_some(())?;
        let (_, end) = number(end + 1)?;
        (data.get(end) == Some(&b' ')).then_some(minor)
    })
}

/// Where the strings sit in the file's read-only data: every copy (a
/// linker may merge a name into the tail of a longer string).
pub(super) struct Strings {
    file: Vec<u64>,
    names: Vec<(&'static str, Vec<u64>)>,
}

impl Strings {
    pub(super) fn of(elf: &object::File) -> Result<Self, LocateError> {
        let strings = Self::find(elf);
        if strings.file.is_empty() {
            return Err(LocateError::NotFound("ssl/ssl_lib.c"));
        }
        Ok(strings)
    }

    fn find(elf: &object::File) -> Self {
        let mut out = Strings {
            file: string_starts(elf, FILE),
            names: NAMES.iter().map(|n| (*n, Vec::new())).collect(),
        };
        for (base, data) in read_only(elf) {
            for (name, addrs) in &mut out.names {
                let needle = [name.as_bytes(), b"\0"].concat();
                for at in memchr::memmem::find_iter(data, &needle) {
                    addrs.push(base + at as u64);
                }
            }
        }
        out
    }

    /// Every address of every string.
    pub(super) fn all(&self) -> impl Iterator<Item = u64> + '_ {
        let names = self.names.iter().flat_map(|(_, addrs)| addrs);
        self.file.iter().chain(names).copied()
    }
}

#[cfg(test)]
#[path = "openssl_stripped_tests.rs"]
mod tests;

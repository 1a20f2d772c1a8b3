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
//!    and `SSL_write` calls the `ssl_write_internal` found.
//!
//! OpenSSL 3.3 added a `flags` argument before `ssl_write_internal`'s
//! `written` pointer: `SSL_write` then sets a fifth argument register (R8)
//! before its call, which tells the layouts apart. OpenSSL 1.1.1 records
//! no function names and is not found. x86-64 only.

use std::collections::HashMap;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, Register};
use object::{Architecture, Object, ObjectSection, SectionKind};

/// File offsets of the two functions, and the write layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub read: u64,
    pub write: u64,
    /// `ssl_write_internal(s, buf, num, flags, written)` (OpenSSL 3.3+),
    /// else `(s, buf, num, written)`.
    pub write_has_flags: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocateError {
    /// No OpenSSL 3 in the file: nothing to probe.
    #[error("no OpenSSL 3 in the file")]
    Absent,
    #[error("only x86-64 is probed")]
    Arch,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0} found in {1} places")]
    Ambiguous(&'static str, usize),
    #[error("{caller} does not call the {callee} found")]
    Unverified {
        caller: &'static str,
        callee: &'static str,
    },
    #[error("the file's .eh_frame cannot be read ({0})")]
    Frames(String),
}

const FILE: &[u8] = b"ssl/ssl_lib.c\0";
const NAMES: [&str; 4] = [
    "ssl_read_internal",
    "ssl_write_internal",
    "SSL_read",
    "SSL_write",
];

/// Locates OpenSSL 3's read and write functions in the executable `data`.
pub fn locate(data: &[u8]) -> Result<Found, LocateError> {
    if memchr::memmem::find(data, b"ssl_write_internal\0").is_none() {
        return Err(LocateError::Absent);
    }
    let elf = object::File::parse(data).map_err(|_| LocateError::Absent)?;
    if elf.architecture() != Architecture::X86_64 {
        return Err(LocateError::Arch);
    }
    let strings = Strings::find(&elf);
    if strings.file.is_empty() {
        return Err(LocateError::NotFound("ssl/ssl_lib.c"));
    }
    let text = elf
        .section_by_name(".text")
        .ok_or(LocateError::NotFound(".text"))?;
    let (text_addr, code) = (
        text.address(),
        text.data().map_err(|_| LocateError::NotFound(".text"))?,
    );
    let frames = Frames::read(&elf)?;
    // Functions holding `lea`s of the file's name, and of each function name.
    let mut with_file = Vec::new();
    let mut with_name: HashMap<&str, Vec<u64>> = HashMap::new();
    for (at, target) in rip_leas(code, text_addr) {
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
    // Extents from the file: outside .text (or reversed) is no body.
    let body = |(start, end): (u64, u64)| {
        let from = usize::try_from(start.checked_sub(text_addr)?).ok()?;
        let to = usize::try_from(end.checked_sub(text_addr)?).ok()?;
        code.get(from..to)
    };
    let ssl_read = function("SSL_read")?;
    if body(ssl_read)
        .and_then(|b| calls(b, ssl_read.0, read.0))
        .is_none()
    {
        return Err(LocateError::Unverified {
            caller: "SSL_read",
            callee: "ssl_read_internal",
        });
    }
    let ssl_write = function("SSL_write")?;
    let Some(r8_set) = body(ssl_write).and_then(|b| calls(b, ssl_write.0, write.0)) else {
        return Err(LocateError::Unverified {
            caller: "SSL_write",
            callee: "ssl_write_internal",
        });
    };
    let (text_offset, _) = text.file_range().ok_or(LocateError::NotFound(".text"))?;
    // Both lie in .text: the callers' checks found calls to them there.
    let offset = |addr: u64| addr - text_addr + text_offset;
    Ok(Found {
        read: offset(read.0),
        write: offset(write.0),
        write_has_flags: r8_set,
    })
}

/// Where the strings sit in the file's read-only data: every copy (a
/// linker may merge a name into the tail of a longer string).
struct Strings {
    file: Vec<u64>,
    names: Vec<(&'static str, Vec<u64>)>,
}

impl Strings {
    fn find(elf: &object::File) -> Self {
        let mut out = Strings {
            file: Vec::new(),
            names: NAMES.iter().map(|n| (*n, Vec::new())).collect(),
        };
        for section in elf.sections() {
            if !matches!(
                section.kind(),
                SectionKind::ReadOnlyData | SectionKind::ReadOnlyString
            ) {
                continue;
            }
            let Ok(data) = section.data() else { continue };
            let base = section.address();
            for at in memchr::memmem::find_iter(data, FILE) {
                // The path as compiled ("../ssl/ssl_lib.c" or "ssl/ssl_lib.c"):
                // from the string's start.
                let start = data[..at]
                    .iter()
                    .rposition(|b| *b == 0)
                    .map_or(0, |z| z + 1);
                out.file.push(base + start as u64);
            }
            for (name, addrs) in &mut out.names {
                let needle = [name.as_bytes(), b"\0"].concat();
                for at in memchr::memmem::find_iter(data, &needle) {
                    addrs.push(base + at as u64);
                }
            }
        }
        out
    }
}

/// The `lea reg, [rip + disp32]` instructions of `code` (loaded at `addr`)
/// and the addresses they load.
fn rip_leas(code: &[u8], addr: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
    code.windows(7).enumerate().filter_map(move |(i, w)| {
        // REX.W (rax-rdi or r8-r15), opcode 8D, ModRM mod=00 rm=101.
        if !matches!(w[0], 0x48 | 0x4c) || w[1] != 0x8d || w[2] & 0xc7 != 0x05 {
            return None;
        }
        let disp = i32::from_le_bytes([w[3], w[4], w[5], w[6]]);
        let at = addr + i as u64;
        Some((at, (at + 7).wrapping_add_signed(i64::from(disp))))
    })
}

/// Whether the function `code` (at `addr`) calls `callee` directly; if so,
/// whether it set R8 (a fifth argument) since its last branch before the call.
fn calls(code: &[u8], addr: u64, callee: u64) -> Option<bool> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut r8_set = false;
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.code() == Code::Call_rel32_64 && ins.near_branch_target() == callee {
            return Some(r8_set);
        }
        let branch = ins.near_branch_target() != 0
            || matches!(
                ins.mnemonic(),
                Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Call
            );
        if branch {
            r8_set = false;
        } else if ins.op_count() > 0 && matches!(ins.op0_register(), Register::R8 | Register::R8D) {
            r8_set = true;
        }
    }
    None
}

/// Function extents from `.eh_frame`, sorted by start.
struct Frames(Vec<(u64, u64)>);

impl Frames {
    fn read(elf: &object::File) -> Result<Self, LocateError> {
        use gimli::{BaseAddresses, CieOrFde, EhFrame, LittleEndian, UnwindSection};
        let section = elf
            .section_by_name(".eh_frame")
            .ok_or_else(|| LocateError::Frames("no .eh_frame".into()))?;
        let data = section
            .data()
            .map_err(|e| LocateError::Frames(e.to_string()))?;
        let eh_frame = EhFrame::new(data, LittleEndian);
        let mut bases = BaseAddresses::default().set_eh_frame(section.address());
        if let Some(text) = elf.section_by_name(".text") {
            bases = bases.set_text(text.address());
        }
        let mut out = Vec::new();
        let mut entries = eh_frame.entries(&bases);
        while let Some(entry) = entries
            .next()
            .map_err(|e| LocateError::Frames(e.to_string()))?
        {
            if let CieOrFde::Fde(partial) = entry
                && let Ok(fde) = partial.parse(EhFrame::cie_from_offset)
                && fde.len() > 0
            {
                out.push((fde.initial_address(), fde.initial_address() + fde.len()));
            }
        }
        out.sort_unstable();
        Ok(Self(out))
    }

    /// The start of the function holding `addr`.
    fn function_at(&self, addr: u64) -> Option<u64> {
        let i = self.0.partition_point(|(start, _)| *start <= addr);
        let (start, end) = *self.0.get(i.checked_sub(1)?)?;
        (addr < end).then_some(start)
    }

    fn end_of(&self, start: u64) -> u64 {
        let i = self.0.partition_point(|(s, _)| *s < start);
        self.0.get(i).map_or(start, |(_, end)| *end)
    }
}

#[cfg(test)]
#[path = "openssl_stripped_tests.rs"]
mod tests;

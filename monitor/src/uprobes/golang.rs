//! Go's crypto/tls in a Go executable: `(*Conn).Write` and `(*Conn).Read`
//! found by name in `.gopclntab` (the runtime's own function table, which
//! `strip` and `-ldflags=-s -w` keep because tracebacks need it), and the
//! return instructions of both found by decoding them, for the probes that
//! read their results (see monitor-ebpf's `go_tls.rs`: no uretprobes on Go).
//!
//! The table's layout is the one of Go 1.18 and later (header magic
//! `0xfffffff0`, `0xfffffff1` since 1.20); Go 1.17 was the first with the
//! register ABI the probes read, and is out of support since 2022. x86-64
//! only: the probes read amd64 registers.

use object::{Architecture, Object, ObjectSection};

/// The file offsets to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub write: u64,
    pub read: u64,
    /// Every return instruction of both functions.
    pub returns: Vec<u64>,
}

pub const WRITE: &str = "crypto/tls.(*Conn).Write";
pub const READ: &str = "crypto/tls.(*Conn).Read";

/// Why a Go executable's crypto/tls cannot be probed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GoError {
    #[error("not a Go executable")]
    NotGo,
    #[error("Go on {0:?}: only x86-64 is probed")]
    Arch(Architecture),
    #[error("Go function table with magic {0:#x}: Go 1.18 or later is probed")]
    Version(u32),
    #[error("Go function table is malformed ({0})")]
    Malformed(&'static str),
    /// A Go program that does not link crypto/tls: nothing to probe.
    #[error("no crypto/tls in this Go executable")]
    NoTls,
}

/// Locates crypto/tls in the Go executable `data`.
pub fn locate(data: &[u8]) -> Result<Found, GoError> {
    let elf = object::File::parse(data).map_err(|_| GoError::NotGo)?;
    let table = elf
        .section_by_name(".gopclntab")
        .and_then(|s| s.data().ok())
        .ok_or(GoError::NotGo)?;
    if elf.architecture() != Architecture::X86_64 {
        return Err(GoError::Arch(elf.architecture()));
    }
    let text = elf
        .section_by_name(".text")
        .ok_or(GoError::Malformed("no .text"))?;
    let funcs = functions(table, text.address())?;
    let (Some(write), Some(read)) = (funcs.find(WRITE)?, funcs.find(READ)?) else {
        return Err(GoError::NoTls);
    };
    let (text_addr, text_data) = (
        text.address(),
        text.data()
            .map_err(|_| GoError::Malformed("unreadable .text"))?,
    );
    let (text_offset, _) = text
        .file_range()
        .ok_or(GoError::Malformed(".text not in the file"))?;
    let offset = |addr: u64| addr - text_addr + text_offset;
    let mut returns = Vec::new();
    for (start, end) in [write, read] {
        let code = start
            .checked_sub(text_addr)
            .zip(end.checked_sub(text_addr))
            .and_then(|(from, to)| text_data.get(from as usize..to as usize))
            .ok_or(GoError::Malformed("function outside .text"))?;
        let found = return_addresses(code, start);
        if found.is_empty() {
            return Err(GoError::Malformed("a crypto/tls function without a return"));
        }
        returns.extend(found.into_iter().map(offset));
    }
    Ok(Found {
        write: offset(write.0),
        read: offset(read.0),
        returns,
    })
}

/// The addresses of the `ret` instructions of `code`, a whole function
/// loaded at `addr`. Go puts no data in functions (jump tables live in
/// read-only data), so decoding it from its entry sees every instruction.
fn return_addresses(code: &[u8], addr: u64) -> Vec<u64> {
    use iced_x86::{Decoder, DecoderOptions, Mnemonic};
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        let ins = decoder.decode();
        if ins.mnemonic() == Mnemonic::Ret {
            out.push(ins.ip());
        }
    }
    out
}

/// The function table of `.gopclntab`.
struct Functions<'a> {
    table: &'a [u8],
    nfunc: usize,
    text_start: u64,
    names: usize,
    pcln: usize,
}

fn functions(table: &[u8], text_address: u64) -> Result<Functions<'_>, GoError> {
    let magic = u32_at(table, 0).ok_or(GoError::Malformed("short header"))?;
    if magic != 0xffff_fff0 && magic != 0xffff_fff1 {
        return Err(GoError::Version(magic));
    }
    if table.get(7) != Some(&8) {
        return Err(GoError::Malformed("pointer size is not 8"));
    }
    let word = |i: usize| u64_at(table, 8 + 8 * i).ok_or(GoError::Malformed("short header"));
    let nfunc = usize::try_from(word(0)?).map_err(|_| GoError::Malformed("function count"))?;
    // Zero in a position-independent executable before relocation: the
    // table's base is then the start of .text, as the runtime's is.
    let text_start = match word(2)? {
        0 => text_address,
        start => start,
    };
    let names = usize::try_from(word(3)?).map_err(|_| GoError::Malformed("name offset"))?;
    let pcln = usize::try_from(word(7)?).map_err(|_| GoError::Malformed("table offset"))?;
    Ok(Functions {
        table,
        nfunc,
        text_start,
        names,
        pcln,
    })
}

impl Functions<'_> {
    /// The address range of the function named `name`.
    fn find(&self, name: &str) -> Result<Option<(u64, u64)>, GoError> {
        for i in 0..self.nfunc {
            let at = i
                .checked_mul(8)
                .and_then(|o| o.checked_add(self.pcln))
                .ok_or_else(short)?;
            let (entry, func) = (u32_at(self.table, at), u32_at(self.table, at + 4));
            let (Some(entry), Some(func), Some(next)) = (entry, func, u32_at(self.table, at + 8))
            else {
                return Err(short());
            };
            let func_at = self.pcln.checked_add(func as usize + 4).ok_or_else(short)?;
            let name_off = i32_at(self.table, func_at).ok_or_else(short)?;
            let name_at = usize::try_from(name_off)
                .ok()
                .and_then(|n| self.names.checked_add(n))
                .ok_or(GoError::Malformed("name offset"))?;
            let name_bytes = self.table.get(name_at..).ok_or_else(short)?;
            let name_end = name_bytes.iter().position(|b| *b == 0).ok_or_else(short)?;
            if &name_bytes[..name_end] == name.as_bytes() {
                let at = |off: u32| self.text_start.checked_add(u64::from(off));
                return match (at(entry), at(next)) {
                    (Some(start), Some(end)) if start < end => Ok(Some((start, end))),
                    _ => Err(GoError::Malformed("function extent")),
                };
            }
        }
        Ok(None)
    }
}

fn short() -> GoError {
    GoError::Malformed("function table cut short")
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    u32_at(b, at).map(|v| v as i32)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
#[path = "golang_tests.rs"]
mod tests;

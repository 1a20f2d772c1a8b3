//! Reading machine code of stripped x86-64 executables: function extents
//! from `.eh_frame` (stripping keeps it: unwinding needs it), the
//! addresses `lea`s load, and direct calls. Shared by the searches that
//! find a library's functions by the strings they use.

use std::collections::HashSet;

use gimli::{
    BaseAddresses, CieOrFde, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr,
    UnwindSection,
};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, Register};
use object::{Object, ObjectSection, SectionKind};

/// Why a search of a stripped executable for a library's functions found
/// nothing to probe.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LocateError {
    /// The library is not in the file (the name given): nothing to probe.
    #[error("no {0} in the file")]
    Absent(&'static str),
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

/// An executable's `.text`: where it is loaded, its bytes, and where they
/// lie in the file.
pub(super) struct Text<'a> {
    pub(super) addr: u64,
    pub(super) code: &'a [u8],
    file_offset: u64,
}

impl<'a> Text<'a> {
    pub(super) fn of(elf: &object::File<'a>) -> Option<Self> {
        let text = elf.section_by_name(".text")?;
        Some(Self {
            addr: text.address(),
            code: text.data().ok()?,
            file_offset: text.file_range()?.0,
        })
    }

    /// The bytes of `start..end`, read from the file: outside `.text` (or
    /// reversed) is no body.
    pub(super) fn body(&self, (start, end): (u64, u64)) -> Option<&'a [u8]> {
        let from = usize::try_from(start.checked_sub(self.addr)?).ok()?;
        let to = usize::try_from(end.checked_sub(self.addr)?).ok()?;
        self.code.get(from..to)
    }

    /// The file offset of an address in `.text`.
    pub(super) fn offset(&self, addr: u64) -> u64 {
        addr - self.addr + self.file_offset
    }
}

/// The file's read-only data sections: their addresses and bytes.
pub(super) fn read_only<'a>(elf: &'a object::File) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
    elf.sections().filter_map(|section| {
        let read_only = matches!(
            section.kind(),
            SectionKind::ReadOnlyData | SectionKind::ReadOnlyString
        );
        Some((
            section.address(),
            section.data().ok().filter(|_| read_only)?,
        ))
    })
}

/// Where the strings holding `needle` start, in the file's read-only data
/// (a path as compiled: "../ssl/ssl_lib.c", or absolute).
pub(super) fn string_starts(elf: &object::File, needle: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    for (base, data) in read_only(elf) {
        for at in memchr::memmem::find_iter(data, needle) {
            let start = data[..at]
                .iter()
                .rposition(|b| *b == 0)
                .map_or(0, |z| z + 1);
            out.push(base + start as u64);
        }
    }
    out
}

/// The `lea reg, [rip + disp32]` instructions of `code` (loaded at `addr`)
/// and the addresses they load.
/// The scan jumps from one opcode byte to the next with `memchr` (SIMD):
/// a byte-by-byte look at Codex's 251 MB of code took over a second, while
/// the program it searched for was already sending its first request.
pub(super) fn rip_leas(code: &[u8], addr: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
    memchr::memchr_iter(0x8d, code).filter_map(move |opcode| {
        let i = opcode.checked_sub(1)?;
        let w = code.get(i..i + 7)?;
        // REX.W (rax-rdi or r8-r15), opcode 8D, ModRM mod=00 rm=101.
        if !matches!(w[0], 0x48 | 0x4c) || w[2] & 0xc7 != 0x05 {
            return None;
        }
        let disp = i32::from_le_bytes([w[3], w[4], w[5], w[6]]);
        let at = addr + i as u64;
        Some((at, (at + 7).wrapping_add_signed(i64::from(disp))))
    })
}

/// Whether the function `code` (at `addr`) calls `callee` directly; if so,
/// whether it set R8 (a fifth argument) since its last branch before the call.
pub(super) fn calls(code: &[u8], addr: u64, callee: u64) -> Option<bool> {
    let mut decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut r8_set = false;
    while decoder.can_decode() {
        decoder.decode_out(&mut ins);
        if ins.code() == iced_x86::Code::Call_rel32_64 && ins.near_branch_target() == callee {
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

/// Function extents from `.eh_frame`. Most programs have `.eh_frame_hdr`,
/// a table of every function's start sorted for unwinders' binary search:
/// a function is then looked up when asked, where reading all of Codex's
/// 334,588 entries took 60 ms.
pub(super) enum Frames<'a> {
    Table {
        eh_frame: EhFrame<Slice<'a>>,
        hdr: ParsedEhFrameHdr<Slice<'a>>,
        bases: BaseAddresses,
    },
    /// Every (start, end), sorted by start.
    Read(Vec<(u64, u64)>),
}

type Slice<'a> = EndianSlice<'a, LittleEndian>;

impl<'a> Frames<'a> {
    pub(super) fn read(elf: &object::File<'a>) -> Result<Self, String> {
        let section = elf
            .section_by_name(".eh_frame")
            .ok_or_else(|| "no .eh_frame".to_owned())?;
        let data = section.data().map_err(|e| e.to_string())?;
        let eh_frame = EhFrame::new(data, LittleEndian);
        let mut bases = BaseAddresses::default().set_eh_frame(section.address());
        if let Some(text) = elf.section_by_name(".text") {
            bases = bases.set_text(text.address());
        }
        if let Some(hdr) = elf.section_by_name(".eh_frame_hdr")
            && let Ok(hdr_data) = hdr.data()
        {
            let bases = bases.clone().set_eh_frame_hdr(hdr.address());
            if let Ok(parsed) = EhFrameHdr::new(hdr_data, LittleEndian).parse(&bases, 8)
                && parsed.table().is_some()
            {
                return Ok(Self::Table {
                    eh_frame,
                    hdr: parsed,
                    bases,
                });
            }
        }
        every(&eh_frame, &bases).map(Self::Read)
    }

    /// The extent of the function holding `addr`.
    fn extent(&self, addr: u64) -> Option<(u64, u64)> {
        match self {
            Self::Table {
                eh_frame,
                hdr,
                bases,
            } => {
                let fde = hdr
                    .table()?
                    .fde_for_address(eh_frame, bases, addr, EhFrame::cie_from_offset)
                    .ok()?;
                let start = fde.initial_address();
                Some((start, start + fde.len()))
            }
            Self::Read(extents) => {
                let i = extents.partition_point(|(start, _)| *start <= addr);
                let (start, end) = *extents.get(i.checked_sub(1)?)?;
                (addr < end).then_some((start, end))
            }
        }
    }

    /// The start of the function holding `addr`.
    pub(super) fn function_at(&self, addr: u64) -> Option<u64> {
        self.extent(addr).map(|(start, _)| start)
    }

    /// The end of the function starting at `start` (`start` when none does).
    pub(super) fn end_of(&self, start: u64) -> u64 {
        self.extent(start)
            .filter(|(s, _)| *s == start)
            .map_or(start, |(_, end)| end)
    }
}

/// Every function's (start, end) in `.eh_frame`, sorted by start.
fn every(eh_frame: &EhFrame<Slice>, bases: &BaseAddresses) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    let mut entries = eh_frame.entries(bases);
    while let Some(entry) = entries.next().map_err(|e| e.to_string())? {
        if let CieOrFde::Fde(partial) = entry
            && let Ok(fde) = partial.parse(EhFrame::cie_from_offset)
            && fde.len() > 0
        {
            out.push((fde.initial_address(), fde.initial_address() + fde.len()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// A stripped x86-64 executable as the searches that find a library's
/// functions by the strings they use read it: parsed once, and its code
/// scanned once for the `lea`s of every search's strings (a pass over
/// Codex's 251 MB of code takes 90 ms; it links two libraries).
pub(super) struct Program<'a> {
    pub(super) elf: object::File<'a>,
    pub(super) text: Text<'a>,
    pub(super) frames: Frames<'a>,
    leas: Vec<(u64, u64)>,
}

impl<'a> Program<'a> {
    /// A file that is no ELF file holds no TLS library to probe.
    pub(super) fn read(data: &'a [u8]) -> Result<Self, LocateError> {
        let elf = object::File::parse(data).map_err(|_| LocateError::Absent("TLS library"))?;
        if elf.architecture() != object::Architecture::X86_64 {
            return Err(LocateError::Arch);
        }
        let text = Text::of(&elf).ok_or(LocateError::NotFound(".text"))?;
        let frames = Frames::read(&elf).map_err(LocateError::Frames)?;
        Ok(Self {
            elf,
            text,
            frames,
            leas: Vec::new(),
        })
    }

    /// Keeps the `lea`s that load one of `wanted`.
    pub(super) fn scan(&mut self, wanted: &HashSet<u64>) {
        self.leas = rip_leas(self.text.code, self.text.addr)
            .filter(|(_, target)| wanted.contains(target))
            .collect();
    }

    /// The `lea`s kept by [`Program::scan`]: (where, what it loads).
    pub(super) fn leas(&self) -> &[(u64, u64)] {
        &self.leas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rip_relative_leas_and_their_targets() {
        let code = [
            0x90, // nop
            0x48, 0x8d, 0x15, 0x10, 0x00, 0x00, 0x00, // lea rdx, [rip+0x10]
            0x4c, 0x8d, 0x05, 0xf0, 0xff, 0xff, 0xff, // lea r8, [rip-0x10]
            0x48, 0x8d, 0x44, 0x24, 0x08, 0x90, 0x90, // lea rax, [rsp+8]: not rip
        ];
        let leas: Vec<_> = rip_leas(&code, 0x1000).collect();
        assert_eq!(leas, vec![(0x1001, 0x1018), (0x1008, 0xfff)]);
    }

    #[test]
    fn leas_at_both_ends_of_the_code_are_found() {
        let code = [
            0x48, 0x8d, 0x05, 0x00, 0x00, 0x00, 0x00, // lea rax, [rip+0]
            0x8d, // a lone opcode byte
            0x4c, 0x8d, 0x3d, 0x01, 0x00, 0x00, 0x00, // lea r15, [rip+1]
        ];
        let leas: Vec<_> = rip_leas(&code, 0x1000).collect();
        assert_eq!(leas, vec![(0x1000, 0x1007), (0x1008, 0x1010)]);
        // Cut short, the last one is no lea.
        assert_eq!(rip_leas(&code[..14], 0x1000).count(), 1);
    }

    /// The table of `.eh_frame_hdr` gives each function of a real program
    /// (the tests' static musl client, stripped) the extent that reading
    /// every entry of `.eh_frame` gives it.
    #[test]
    fn the_table_finds_every_function_reading_every_entry_finds() {
        let Some(dir) = crate::uprobes::samples::dir() else {
            return;
        };
        let data = std::fs::read(dir.join("rustls_awslc_client.stripped")).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        let table = Frames::read(&elf).unwrap();
        let Frames::Table {
            eh_frame, bases, ..
        } = &table
        else {
            panic!("the client has no .eh_frame_hdr table");
        };
        let extents = every(eh_frame, bases).unwrap();
        assert!(extents.len() > 1000, "{}", extents.len());
        for &(start, end) in &extents {
            assert_eq!(table.function_at(start), Some(start));
            assert_eq!(table.function_at(end - 1), Some(start));
            assert_eq!(table.end_of(start), end);
        }
        let (_, last_end) = extents[extents.len() - 1];
        assert_eq!(table.function_at(last_end), None);
    }

    #[test]
    fn a_direct_call_is_found_with_whether_r8_was_set_before_it() {
        // mov rcx, rsp; call +0 (to 0x100a); ret
        let four_args = [
            0x48, 0x89, 0xe1, 0xe8, 0x02, 0x00, 0x00, 0x00, 0xc3, 0x90, 0xc3,
        ];
        assert_eq!(calls(&four_args, 0x1000, 0x100a), Some(false));
        assert_eq!(calls(&four_args, 0x1000, 0x2000), None);
        // xor ecx, ecx; mov r8, rsp; call +0 (to 0x100b); ret
        let five_args = [
            0x31, 0xc9, 0x49, 0x89, 0xe0, 0xe8, 0x01, 0x00, 0x00, 0x00, 0xc3, 0xc3,
        ];
        assert_eq!(calls(&five_args, 0x1000, 0x100b), Some(true));
        // mov r8, rsp; jmp +0; call: a branch between them forgets r8.
        let branch = [
            0x49, 0x89, 0xe0, 0xeb, 0x00, 0xe8, 0x01, 0x00, 0x00, 0x00, 0xc3, 0xc3,
        ];
        assert_eq!(calls(&branch, 0x1000, 0x100b), Some(false));
    }

    #[test]
    fn functions_are_found_by_their_extents() {
        let frames = Frames::Read(vec![(0x1000, 0x1040), (0x1040, 0x1100), (0x2000, 0x2010)]);
        assert_eq!(frames.function_at(0x1000), Some(0x1000));
        assert_eq!(frames.function_at(0x103f), Some(0x1000));
        assert_eq!(frames.function_at(0x1040), Some(0x1040));
        // Between functions, and before the first.
        assert_eq!(frames.function_at(0x1800), None);
        assert_eq!(frames.function_at(0x10), None);
        assert_eq!(frames.end_of(0x1040), 0x1100);
    }
}

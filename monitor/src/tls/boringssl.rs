//! Finding BoringSSL's `SSL_read`, `SSL_write` and `SSL_do_handshake` in a
//! symbol-less Bun executable (Bun itself, or a `bun build --compile` output
//! such as Claude Code's native binary), by the byte patterns of their
//! prologues, so that uprobes can be attached at file offsets.
//!
//! Each function is located on its own (never at a fixed distance from
//! another) and every match must pass all of these before it is believed:
//!
//! 1. a prologue pattern of that function (a table below, `??` = any byte)
//!    matches at a 16-byte-aligned address inside an executable `PT_LOAD`
//!    segment (and inside `.text`, when the file has section headers);
//! 2. the function's body raises, through `OPENSSL_PUT_ERROR`, exactly the
//!    error reasons BoringSSL's source gives that function in
//!    `ssl/ssl_lib.cc`: the call sites load the library code (`ERR_LIB_SSL`),
//!    the reason, and the address of the `ssl_lib.cc` path string, which is
//!    found in the file's read-only data first. Reason codes are part of
//!    BoringSSL's API and do not change between releases;
//! 3. its call structure: `SSL_read` calls a function raising
//!    `SSL_R_UNINITIALIZED` and `SSL_R_SSL_HANDSHAKE_FAILURE` from
//!    `ssl_lib.cc` (that is `ssl_read_impl`), and `SSL_write` calls one raising
//!    `SSL_R_CONNECTION_TYPE_NOT_SET` (that is `SSL_do_handshake`);
//! 4. exactly one place in the whole executable passes 1-3. None is
//!    [`LocateError::NotFound`], several are [`LocateError::Ambiguous`]: a
//!    missing probe is better than a probe on the wrong function.
//!
//! `SSL_do_handshake` is optional: it is reported only when its own pattern
//! and checks single it out and `SSL_write` calls exactly that function.
//!
//! The patterns come from Bun's x86-64 Linux builds 1.2.23, 1.3.0, 1.3.14,
//! 1.4.5 (glibc and musl) and the Claude Code native binaries 2.1.197 (Bun
//! 1.4.0) and 2.1.330 (Bun 1.4.4): register use and frame sizes differ
//! between them, which the variants and wildcards cover. The offsets found
//! were checked with uprobes during real requests (the plaintext lengths
//! seen at `SSL_write` and returned by `SSL_read` matched the server's
//! counts). Other architectures (aarch64) are not covered yet.
//!
//! ```no_run
//! use monitor::tls::boringssl;
//!
//! let exe = std::fs::read("/proc/1234/exe")?;
//! if boringssl::looks_like_bun(&exe) {
//!     match boringssl::locate(&exe) {
//!         // File offsets, for a uprobe attached with no symbol name.
//!         Ok(f) => println!("SSL_read at {:#x}, SSL_write at {:#x}", f.ssl_read, f.ssl_write),
//!         // Fail soft: no TLS plaintext for this binary, metadata only.
//!         Err(e) => eprintln!("no BoringSSL probes: {e}"),
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ops::Range;

use memchr::memmem;
use object::{
    Endianness, elf,
    read::elf::{FileHeader as _, ProgramHeader as _, SectionHeader as _},
};

/// File offsets of BoringSSL's entry points in one executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoringSsl {
    /// `int SSL_read(SSL *ssl, void *buf, int num)`.
    pub ssl_read: u64,
    /// `int SSL_write(SSL *ssl, const void *buf, int num)`.
    pub ssl_write: u64,
    /// `int SSL_do_handshake(SSL *ssl)`, when it could be singled out too.
    pub ssl_do_handshake: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("not a 64-bit ELF file")]
    NotElf,
    #[error("ELF machine {0} is not covered (x86-64 patterns only)")]
    UnsupportedArch(u16),
    #[error("no executable PT_LOAD segment")]
    NoText,
    #[error("no BoringSSL here: no ssl/ssl_lib.cc path string in the read-only data")]
    NoBoringSsl,
    #[error("{0}: no match of its prologue patterns passed the checks")]
    NotFound(&'static str),
    #[error("{0}: {1} places pass the checks, refusing to guess")]
    Ambiguous(&'static str, usize),
}

/// Whether the executable is Bun or made by `bun build --compile`, judged
/// cheaply: a `.bun*` section (Bun 1.3.14 and later put the compiled program
/// in `.bun`), or Bun's standalone-module trailer string near the end of the
/// file (older compiled executables) or in its read-only data (the runtime).
pub fn looks_like_bun(elf: &[u8]) -> bool {
    const TRAILER: &[u8] = b"\n---- Bun! ----\n";
    let Ok(image) = Image::parse(elf) else {
        return false;
    };
    if image.has_bun_section {
        return true;
    }
    let tail = &elf[elf.len().saturating_sub(64 * 1024)..];
    if memmem::find(tail, TRAILER).is_some() {
        return true;
    }
    image
        .loads
        .iter()
        .filter(|s| !s.exec)
        .any(|s| memmem::find(&elf[s.file.clone()], TRAILER).is_some())
}

/// Finds `SSL_read` and `SSL_write` (and `SSL_do_handshake` if it can) in
/// the bytes of an ELF executable with statically linked, symbol-less
/// BoringSSL. The offsets are file offsets, as a uprobe without a symbol
/// takes them.
pub fn locate(elf: &[u8]) -> Result<BoringSsl, LocateError> {
    let mut image = Image::parse(elf)?;
    if image.machine != elf::EM_X86_64 {
        return Err(LocateError::UnsupportedArch(image.machine.0));
    }
    image.markers = image.find_markers();
    if image.markers.is_empty() {
        // Without BoringSSL's ssl_lib.cc path no function can be verified.
        return Err(LocateError::NoBoringSsl);
    }
    // One pass over the code finds the prologue matches of all three.
    let [read, write, handshake] =
        image.prologue_matches([&SSL_READ, &SSL_WRITE, &SSL_DO_HANDSHAKE]);
    let ssl_read = image.verified_one(&SSL_READ, &read)?;
    let ssl_write = image.verified_one(&SSL_WRITE, &write)?;
    // Optional: dropped unless SSL_write calls exactly the function found.
    let ssl_do_handshake = image
        .verified_one(&SSL_DO_HANDSHAKE, &handshake)
        .ok()
        .filter(|&hs| image.calls(ssl_write).any(|c| c == hs));
    Ok(BoringSsl {
        ssl_read: ssl_read as u64,
        ssl_write: ssl_write as u64,
        ssl_do_handshake: ssl_do_handshake.map(|o| o as u64),
    })
}

// BoringSSL's error codes (include/openssl/err.h, include/openssl/ssl.h).
const ERR_LIB_SSL: u32 = 16;
const ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED: u32 = 66;
const SSL_R_BAD_LENGTH: u32 = 111;
const SSL_R_CONNECTION_TYPE_NOT_SET: u32 = 134;
const SSL_R_SSL_HANDSHAKE_FAILURE: u32 = 215;
const SSL_R_UNINITIALIZED: u32 = 226;

/// What identifies one function.
struct Spec {
    name: &'static str,
    /// Prologue patterns: hex bytes, `??` for any byte.
    prologues: &'static [&'static str],
    /// The reasons its body raises from ssl_lib.cc (exactly these).
    reasons: &'static [u32],
    /// If set, it must call a function raising (at least) these.
    callee_reasons: Option<&'static [u32]>,
}

// Shared pieces, spelled out in each pattern:
//   55 48 89 e5                  push rbp; mov rbp,rsp
//   41 57 41 56 (41 55 41 54) 53 push r15; push r14; ...; push rbx
//   64 48 8b 04 25 28 00 00 00   mov rax,fs:0x28 (stack protector, 2.1.330)
//   48 89 45 ??                  mov [rbp-x],rax
//   48 8b 47 ??                  mov rax,[rdi+s3]
//   c7 80 ?? ?? 00 00 00 00 00 00  mov dword [rax+rwstate],0 \ ssl_reset_
//   e8                           call ERR_clear_error          / error_state

/// `SSL_read` with `SSL_peek` inlined: it begins with the QUIC check
/// (`cmp qword [rdi+quic_method],0; je`).
const SSL_READ: Spec = Spec {
    name: "SSL_read",
    prologues: &["55 48 89 e5 41 57 41 56 53 50 48 83 bf ?? ?? 00 00 00 74 ??"],
    reasons: &[ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED],
    callee_reasons: Some(&[SSL_R_UNINITIALIZED, SSL_R_SSL_HANDSHAKE_FAILURE]),
};

/// `SSL_write`: keeps num, buf, ssl in r15d, r14, rbx, then
/// `ssl_reset_error_state`.
const SSL_WRITE: Spec = Spec {
    name: "SSL_write",
    prologues: &[
        "55 48 89 e5 41 57 41 56 41 55 41 54 53 48 83 ec ?? 41 89 d7 49 89 f6 48 89 fb \
         48 8b 47 ?? c7 80 ?? ?? 00 00 00 00 00 00 e8",
        "55 48 89 e5 41 57 41 56 41 55 41 54 53 48 83 ec ?? 41 89 d7 49 89 f6 48 89 fb \
         64 48 8b 04 25 28 00 00 00 48 89 45 ?? \
         48 8b 47 ?? c7 80 ?? ?? 00 00 00 00 00 00 e8",
    ],
    reasons: &[
        ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED,
        SSL_R_UNINITIALIZED,
        SSL_R_SSL_HANDSHAKE_FAILURE,
        SSL_R_BAD_LENGTH,
    ],
    callee_reasons: Some(&[SSL_R_CONNECTION_TYPE_NOT_SET]),
};

/// `SSL_do_handshake`: the small 1.4.x form (ssl in rbx) and the older one
/// with the handshake loop inlined (ssl in r12).
const SSL_DO_HANDSHAKE: Spec = Spec {
    name: "SSL_do_handshake",
    prologues: &[
        "55 48 89 e5 41 56 53 48 83 ec ?? 48 89 fb \
         48 8b 47 ?? c7 80 ?? ?? 00 00 00 00 00 00 e8",
        "55 48 89 e5 41 56 53 48 83 ec ?? 48 89 fb \
         64 48 8b 04 25 28 00 00 00 48 89 45 ?? \
         48 8b 47 ?? c7 80 ?? ?? 00 00 00 00 00 00 e8",
        "55 48 89 e5 41 57 41 56 41 55 41 54 53 48 83 ec ?? 49 89 fc \
         48 8b 47 ?? c7 80 ?? ?? 00 00 00 00 00 00 e8",
    ],
    reasons: &[SSL_R_CONNECTION_TYPE_NOT_SET],
    callee_reasons: None,
};

/// How far a function body is read at most.
const MAX_BODY: usize = 8 * 1024;
/// `push rbp; mov rbp,rsp`: every function here starts so (frame pointers).
const FRAME_SETUP: [u8; 4] = [0x55, 0x48, 0x89, 0xe5];

/// A prologue pattern: bytes, `None` for a wildcard. Every pattern begins
/// with [`FRAME_SETUP`], which is what the scan looks for.
struct Pattern {
    bytes: Vec<Option<u8>>,
}

impl Pattern {
    fn parse(text: &str) -> Pattern {
        let bytes: Vec<Option<u8>> = text
            .split_whitespace()
            .map(|t| match t {
                "??" => None,
                hex => Some(u8::from_str_radix(hex, 16).expect("pattern byte")),
            })
            .collect();
        debug_assert!(
            bytes.iter().zip(FRAME_SETUP).all(|(b, f)| *b == Some(f)),
            "pattern must begin with push rbp; mov rbp,rsp: {text}"
        );
        Pattern { bytes }
    }

    fn matches_at(&self, data: &[u8], at: usize) -> bool {
        data.get(at..at + self.bytes.len()).is_some_and(|window| {
            window
                .iter()
                .zip(&self.bytes)
                .all(|(d, p)| p.is_none_or(|p| p == *d))
        })
    }
}

/// A loadable segment: its bytes in the file and where they are mapped.
#[derive(Debug, Clone)]
struct Segment {
    file: Range<usize>,
    vaddr: u64,
    exec: bool,
}

/// The parts of an ELF executable the search needs.
struct Image<'a> {
    data: &'a [u8],
    machine: elf::Machine,
    loads: Vec<Segment>,
    /// File range of `.text`, when there are section headers.
    text: Option<Range<usize>>,
    has_bun_section: bool,
    /// Virtual address ranges of the ssl_lib.cc path strings: a reference to
    /// any address in one (the string's start up to its `ssl/`) counts.
    /// Filled by [`locate`] (see [`Image::find_markers`]).
    markers: Vec<Range<u64>>,
}

impl<'a> Image<'a> {
    fn parse(data: &'a [u8]) -> Result<Image<'a>, LocateError> {
        let header =
            elf::FileHeader64::<Endianness>::parse(data).map_err(|_| LocateError::NotElf)?;
        let endian = header.endian().map_err(|_| LocateError::NotElf)?;
        let machine = header.e_machine(endian);
        let phdrs = header
            .program_headers(endian, data)
            .map_err(|_| LocateError::NotElf)?;
        let mut loads = Vec::new();
        for ph in phdrs.iter().filter(|ph| ph.p_type(endian) == elf::PT_LOAD) {
            let start = usize::try_from(ph.p_offset(endian)).ok();
            let size = usize::try_from(ph.p_filesz(endian)).ok();
            let (Some(start), Some(size)) = (start, size) else {
                continue;
            };
            let end = start.saturating_add(size).min(data.len());
            if start >= end {
                continue;
            }
            loads.push(Segment {
                file: start..end,
                vaddr: ph.p_vaddr(endian),
                exec: ph.p_flags(endian).0 & elf::PF_X.0 != 0,
            });
        }
        if !loads.iter().any(|s| s.exec) {
            return Err(LocateError::NoText);
        }
        // Section headers are optional (sstrip); without them the whole
        // executable segment counts as text.
        let mut text = None;
        let mut has_bun_section = false;
        if let Ok(sections) = header.sections(endian, data) {
            for section in sections.iter() {
                let Ok(name) = sections.section_name(endian, section) else {
                    continue;
                };
                has_bun_section |= name.starts_with(b".bun");
                if name == b".text"
                    && let Some((off, size)) = section.file_range(endian)
                    && let (Ok(off), Ok(size)) = (usize::try_from(off), usize::try_from(size))
                {
                    text = Some(off..off.saturating_add(size).min(data.len()));
                }
            }
        }
        Ok(Image {
            data,
            machine,
            loads,
            text,
            has_bun_section,
            markers: Vec::new(),
        })
    }

    /// Where BoringSSL's `.../ssl/ssl_lib.cc` (or `.c`, before 2017) path
    /// strings are mapped, found in the non-executable segments.
    fn find_markers(&self) -> Vec<Range<u64>> {
        const NEEDLE: &[u8] = b"ssl/ssl_lib.c";
        let finder = memmem::Finder::new(NEEDLE);
        let mut markers = Vec::new();
        for seg in self.loads.iter().filter(|s| !s.exec) {
            let bytes = &self.data[seg.file.clone()];
            for at in finder.find_iter(bytes) {
                let rest = &bytes[at + NEEDLE.len()..];
                if !(rest.starts_with(b"\0") || rest.starts_with(b"c\0")) {
                    continue;
                }
                // The string's start: after the previous NUL (paths are short).
                let floor = at.saturating_sub(512);
                let start = bytes[floor..at]
                    .iter()
                    .rposition(|&b| b == 0)
                    .map_or(floor, |p| floor + p + 1);
                let vaddr = |i: usize| seg.vaddr + i as u64;
                markers.push(vaddr(start)..vaddr(at) + 1);
                if markers.len() >= 16 {
                    return markers;
                }
            }
        }
        markers
    }

    fn exec_segment(&self, file_off: usize) -> Option<&Segment> {
        self.loads
            .iter()
            .find(|s| s.exec && s.file.contains(&file_off))
    }

    fn vaddr_of(&self, file_off: usize) -> Option<u64> {
        let seg = self.exec_segment(file_off)?;
        Some(seg.vaddr + (file_off - seg.file.start) as u64)
    }

    fn file_of_exec(&self, vaddr: u64) -> Option<usize> {
        self.loads.iter().filter(|s| s.exec).find_map(|s| {
            let rel = vaddr.checked_sub(s.vaddr)?;
            let off = s.file.start.checked_add(usize::try_from(rel).ok()?)?;
            s.file.contains(&off).then_some(off)
        })
    }

    fn is_marker(&self, vaddr: u64) -> bool {
        self.markers.iter().any(|m| m.contains(&vaddr))
    }

    /// For each spec, the file offsets where one of its prologue patterns
    /// matches at a 16-byte-aligned frame setup in executable code.
    fn prologue_matches<const N: usize>(&self, specs: [&Spec; N]) -> [Vec<usize>; N] {
        let patterns: Vec<(usize, Pattern)> = specs
            .iter()
            .enumerate()
            .flat_map(|(i, spec)| spec.prologues.iter().map(move |p| (i, Pattern::parse(p))))
            .collect();
        let mut found: [Vec<usize>; N] = std::array::from_fn(|_| Vec::new());
        let finder = memmem::Finder::new(&FRAME_SETUP);
        for seg in self.loads.iter().filter(|s| s.exec) {
            let bytes = &self.data[seg.file.clone()];
            for at in finder.find_iter(bytes) {
                if !(seg.vaddr + at as u64).is_multiple_of(16) {
                    continue;
                }
                for (i, pattern) in &patterns {
                    let file_off = seg.file.start + at;
                    if pattern.matches_at(bytes, at) && !found[*i].contains(&file_off) {
                        found[*i].push(file_off);
                    }
                }
            }
        }
        found
    }

    /// The single one of `candidates` that passes every check of `spec`.
    fn verified_one(&self, spec: &Spec, candidates: &[usize]) -> Result<usize, LocateError> {
        let passed: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&c| self.verify(spec, c))
            .collect();
        match passed.as_slice() {
            [] => Err(LocateError::NotFound(spec.name)),
            [one] => Ok(*one),
            many => Err(LocateError::Ambiguous(spec.name, many.len())),
        }
    }

    fn verify(&self, spec: &Spec, start: usize) -> bool {
        if !self.is_function_start(start) {
            return false;
        }
        if let Some(text) = &self.text
            && !text.contains(&start)
        {
            return false;
        }
        let mut reasons = self.error_reasons(start);
        reasons.sort_unstable();
        let mut wanted = spec.reasons.to_vec();
        wanted.sort_unstable();
        if reasons != wanted {
            return false;
        }
        match spec.callee_reasons {
            None => true,
            Some(callee) => self.calls(start).any(|target| {
                let got = self.error_reasons(target);
                callee.iter().all(|r| got.contains(r))
            }),
        }
    }

    /// 16-byte aligned, in an executable segment, frame set up first.
    fn is_function_start(&self, file_off: usize) -> bool {
        self.vaddr_of(file_off).is_some_and(|v| v % 16 == 0)
            && self.data[file_off..].starts_with(&FRAME_SETUP)
    }

    /// The function's bytes: up to int3 padding (two 0xcc), the next
    /// aligned frame setup, the segment's end, or [`MAX_BODY`].
    fn body(&self, start: usize) -> Range<usize> {
        let Some(seg) = self.exec_segment(start) else {
            return start..start;
        };
        let limit = seg.file.end.min(start + MAX_BODY);
        let mut end = start + FRAME_SETUP.len();
        while end < limit {
            let here = &self.data[end..limit];
            if here.starts_with(&[0xcc, 0xcc]) {
                break;
            }
            if here.starts_with(&FRAME_SETUP) && self.vaddr_of(end).is_some_and(|v| v % 16 == 0) {
                break;
            }
            end += 1;
        }
        start..end
    }

    /// Direct call targets (`e8 rel32`) of the function at `start` that are
    /// function starts themselves.
    fn calls(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        let body = self.body(start);
        let data = self.data;
        body.clone().filter_map(move |i| {
            if data[i] != 0xe8 || i + 5 > body.end {
                return None;
            }
            let rel = i32::from_le_bytes(data[i + 1..i + 5].try_into().ok()?);
            let next = self.vaddr_of(i)? + 5;
            let target = self.file_of_exec(next.wrapping_add_signed(i64::from(rel)))?;
            self.is_function_start(target).then_some(target)
        })
    }

    /// The reasons the function at `start` raises from ssl_lib.cc, each once.
    ///
    /// A call site sets the library code, the reason and the file (and the
    /// line); BoringSSL since 2024 passes `ERR_put_error(lib, 0, reason,
    /// file, line)`: file in rcx, reason in edx; before, `(lib, reason,
    /// file, line)`: file in rdx, reason in esi. The file is a 32-bit
    /// immediate (`mov ecx/edx, imm32` in a non-PIE executable, as Bun's) or
    /// RIP-relative (`lea rcx/rdx, [rip+disp32]`).
    fn error_reasons(&self, start: usize) -> Vec<u32> {
        let body = self.body(start);
        let data = self.data;
        let mut reasons = Vec::new();
        for i in body.clone() {
            let (len, target, reason_opcode) = match data[i] {
                // mov ecx, imm32 / mov edx, imm32 (not mov r9d/r10d: REX.B).
                op @ (0xb9 | 0xba) if i + 5 <= body.end && !is_rex(data, i, body.start) => {
                    let imm = u32::from_le_bytes(data[i + 1..i + 5].try_into().unwrap());
                    (5, u64::from(imm), if op == 0xb9 { 0xba } else { 0xbe })
                }
                // lea rcx/rdx, [rip+disp32]
                0x48 if i + 7 <= body.end
                    && data[i + 1] == 0x8d
                    && matches!(data[i + 2], 0x0d | 0x15) =>
                {
                    let disp = i32::from_le_bytes(data[i + 3..i + 7].try_into().unwrap());
                    let Some(v) = self.vaddr_of(i) else { continue };
                    let opcode = if data[i + 2] == 0x0d { 0xba } else { 0xbe };
                    (7, (v + 7).wrapping_add_signed(i64::from(disp)), opcode)
                }
                _ => continue,
            };
            if !self.is_marker(target) {
                continue;
            }
            // The other arguments are set right around the file's.
            let window = i.saturating_sub(24).max(body.start)..(i + len + 24).min(body.end);
            let site = &data[window.clone()];
            let lib = [0xbf, ERR_LIB_SSL as u8, 0, 0, 0]; // mov edi, 16
            if memmem::find(site, &lib).is_none() {
                continue;
            }
            for k in window.clone() {
                if k == i
                    || data[k] != reason_opcode
                    || k + 5 > window.end
                    || is_rex(data, k, window.start)
                {
                    continue;
                }
                let imm = u32::from_le_bytes(data[k + 1..k + 5].try_into().unwrap());
                // Reasons are small; the file's address is not.
                if (1..0x1000).contains(&imm) && imm != ERR_LIB_SSL && !reasons.contains(&imm) {
                    reasons.push(imm);
                }
            }
        }
        reasons
    }
}

/// Whether the byte before `i` is a REX prefix that would make the opcode
/// at `i` address another register (r8-r15) or a 64-bit immediate.
fn is_rex(data: &[u8], i: usize, floor: usize) -> bool {
    i > floor && matches!(data[i - 1], 0x41 | 0x48 | 0x49)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// A minimal x86-64 ELF executable: one R segment holding `rodata`, one
    /// R+X segment holding `text` (also the `.text` section), one RW segment
    /// holding `data`, mapped at distinct addresses from their file offsets
    /// so that file offsets and addresses differ as in Bun.
    struct Elf {
        rodata: Vec<u8>,
        text: Vec<u8>,
        data: Vec<u8>,
        sections: bool,
    }

    const RODATA_OFF: usize = 0x1000;
    const RODATA_VADDR: u64 = 0x20_1000;
    const TEXT_OFF: usize = 0x4000;
    const TEXT_VADDR: u64 = 0x40_8000; // file offset + 0x404000
    const DATA_VADDR_GAP: u64 = 0x80_0000;

    impl Elf {
        fn new(rodata: Vec<u8>, text: Vec<u8>) -> Elf {
            Elf {
                rodata,
                text,
                data: Vec::new(),
                sections: true,
            }
        }

        fn text_vaddr(off_in_text: usize) -> u64 {
            TEXT_VADDR + off_in_text as u64
        }

        fn rodata_vaddr(off_in_rodata: usize) -> u64 {
            RODATA_VADDR + off_in_rodata as u64
        }

        fn build(&self) -> Vec<u8> {
            assert!(self.rodata.len() <= TEXT_OFF - RODATA_OFF);
            let data_off = (TEXT_OFF + self.text.len()).next_multiple_of(0x1000);
            let shstrtab: &[u8] = b"\0.text\0.shstrtab\0.bun\0";
            let shstr_off = data_off + self.data.len();
            let sh_off = (shstr_off + shstrtab.len()).next_multiple_of(8);
            let mut out = vec![0u8; sh_off];
            out[RODATA_OFF..RODATA_OFF + self.rodata.len()].copy_from_slice(&self.rodata);
            out[TEXT_OFF..TEXT_OFF + self.text.len()].copy_from_slice(&self.text);
            out[data_off..data_off + self.data.len()].copy_from_slice(&self.data);
            out[shstr_off..shstr_off + shstrtab.len()].copy_from_slice(shstrtab);

            let put16 = |o: &mut Vec<u8>, at: usize, v: u16| {
                o[at..at + 2].copy_from_slice(&v.to_le_bytes())
            };
            let put32 = |o: &mut Vec<u8>, at: usize, v: u32| {
                o[at..at + 4].copy_from_slice(&v.to_le_bytes())
            };
            let put64 = |o: &mut Vec<u8>, at: usize, v: u64| {
                o[at..at + 8].copy_from_slice(&v.to_le_bytes())
            };
            // ELF header.
            out[..4].copy_from_slice(b"\x7fELF");
            out[4] = 2; // 64-bit
            out[5] = 1; // little endian
            out[6] = 1; // version
            put16(&mut out, 16, 2); // ET_EXEC
            put16(&mut out, 18, 62); // EM_X86_64
            put32(&mut out, 20, 1);
            put64(&mut out, 24, TEXT_VADDR);
            put64(&mut out, 32, 64); // phoff
            put16(&mut out, 52, 64); // ehsize
            put16(&mut out, 54, 56); // phentsize
            put16(&mut out, 56, 3); // phnum
            put16(&mut out, 58, 64); // shentsize
            // Program headers: (flags, offset, vaddr, size).
            let segs = [
                (4u32, RODATA_OFF, RODATA_VADDR, self.rodata.len()),
                (5, TEXT_OFF, TEXT_VADDR, self.text.len()),
                (6, data_off, TEXT_VADDR + DATA_VADDR_GAP, self.data.len()),
            ];
            for (n, (flags, off, vaddr, size)) in segs.into_iter().enumerate() {
                let ph = 64 + n * 56;
                put32(&mut out, ph, 1); // PT_LOAD
                put32(&mut out, ph + 4, flags);
                put64(&mut out, ph + 8, off as u64);
                put64(&mut out, ph + 16, vaddr);
                put64(&mut out, ph + 24, vaddr);
                put64(&mut out, ph + 32, size as u64);
                put64(&mut out, ph + 40, size as u64);
                put64(&mut out, ph + 48, 0x1000);
            }
            if self.sections {
                // null, .text, .shstrtab, .bun
                let mut sh = vec![0u8; 4 * 64];
                let mut section = |n: usize,
                                   name: u32,
                                   ty: u32,
                                   flags: u64,
                                   addr: u64,
                                   off: usize,
                                   size: usize| {
                    let s = n * 64;
                    sh[s..s + 4].copy_from_slice(&name.to_le_bytes());
                    sh[s + 4..s + 8].copy_from_slice(&ty.to_le_bytes());
                    sh[s + 8..s + 16].copy_from_slice(&flags.to_le_bytes());
                    sh[s + 16..s + 24].copy_from_slice(&addr.to_le_bytes());
                    sh[s + 24..s + 32].copy_from_slice(&(off as u64).to_le_bytes());
                    sh[s + 32..s + 40].copy_from_slice(&(size as u64).to_le_bytes());
                    sh[s + 48..s + 56].copy_from_slice(&1u64.to_le_bytes());
                };
                section(1, 1, 1, 6, TEXT_VADDR, TEXT_OFF, self.text.len());
                section(2, 7, 3, 0, 0, shstr_off, shstrtab.len());
                section(
                    3,
                    17,
                    1,
                    3,
                    TEXT_VADDR + DATA_VADDR_GAP,
                    data_off,
                    self.data.len(),
                );
                put64(&mut out, 40, sh_off as u64);
                put16(&mut out, 60, 4); // shnum
                put16(&mut out, 62, 2); // shstrndx
                out.extend_from_slice(&sh);
            }
            out
        }
    }

    /// Hex bytes with `??` as 0.
    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|t| {
                if t == "??" {
                    0
                } else {
                    u8::from_str_radix(t, 16).unwrap()
                }
            })
            .collect()
    }

    /// Lays out functions 16-byte aligned with int3 padding, as lld does.
    struct Text {
        bytes: Vec<u8>,
    }

    impl Text {
        fn new() -> Text {
            Text {
                bytes: vec![0xcc; 16],
            }
        }

        /// Appends a function, returns its offset in the text.
        fn function(&mut self, body: &[u8]) -> usize {
            let at = self.bytes.len();
            self.bytes.extend_from_slice(body);
            self.bytes.extend_from_slice(&[0xcc, 0xcc]);
            while !self.bytes.len().is_multiple_of(16) {
                self.bytes.push(0xcc);
            }
            at
        }
    }

    /// How a call site passes `ERR_put_error`'s arguments.
    #[derive(Debug, Clone, Copy)]
    enum Form {
        /// `mov ecx, file; mov edi, 16; xor esi, esi; mov edx, reason;
        /// mov r8d, line` (BoringSSL since 2024, non-PIE).
        New,
        /// `mov edx, file; mov edi, 16; mov esi, reason; mov ecx, line`.
        Old,
        /// As `New`, with `lea rcx, [rip+disp32]` for the file (PIE).
        Pie,
    }

    /// An error site at `at` (offset in the text); the call to
    /// `ERR_put_error` is left out (nops).
    fn error_site(form: Form, file: u64, reason: u32, at: usize) -> Vec<u8> {
        let mut v = Vec::new();
        match form {
            Form::New | Form::Pie => {
                if let Form::Pie = form {
                    let next = Elf::text_vaddr(at + 7);
                    v.extend_from_slice(&[0x48, 0x8d, 0x0d]);
                    v.extend_from_slice(&((file as i64 - next as i64) as i32).to_le_bytes());
                } else {
                    v.push(0xb9);
                    v.extend_from_slice(&(file as u32).to_le_bytes());
                }
                v.extend_from_slice(&[0xbf, 0x10, 0, 0, 0, 0x31, 0xf6, 0xba]);
                v.extend_from_slice(&reason.to_le_bytes());
                v.extend_from_slice(&[0x41, 0xb8, 0xa3, 0x03, 0, 0]);
            }
            Form::Old => {
                v.push(0xba);
                v.extend_from_slice(&(file as u32).to_le_bytes());
                v.extend_from_slice(&[0xbf, 0x10, 0, 0, 0, 0xbe]);
                v.extend_from_slice(&reason.to_le_bytes());
                v.extend_from_slice(&[0xb9, 0xa0, 0x03, 0, 0]);
            }
        }
        v.extend_from_slice(&[0x90; 5]);
        v
    }

    fn call(from_text_off: usize, to_text_off: usize) -> Vec<u8> {
        let rel = to_text_off as i64 - (from_text_off as i64 + 5);
        let mut v = vec![0xe8];
        v.extend_from_slice(&(rel as i32).to_le_bytes());
        v
    }

    const RODATA: &[u8] = b"\0unrelated\0../../vendor/boringssl/ssl/ssl_lib.cc\0tail\0";
    fn marker() -> u64 {
        Elf::rodata_vaddr(memmem::find(RODATA, b"../../vendor").unwrap())
    }

    /// A fake BoringSSL: ssl_read_impl, SSL_do_handshake, SSL_read and
    /// SSL_write, with their prologues, error sites and calls.
    struct Fake {
        text: Text,
        read: usize,
        write: usize,
        handshake: usize,
    }

    fn fake(form: Form) -> Fake {
        // Appends an error site to the body of the function starting at `fn_at`.
        let site = |body: &mut Vec<u8>, fn_at: usize, reason: u32| {
            let at = fn_at + body.len();
            body.extend(error_site(form, marker(), reason, at));
        };
        let mut text = Text::new();
        // ssl_read_impl: raises UNINITIALIZED and HANDSHAKE_FAILURE.
        let at = text.bytes.len();
        let mut body = hex("55 48 89 e5 41 57 41 56 41 55 41 54 53 48 83 ec 38 48 89 fb");
        site(&mut body, at, SSL_R_UNINITIALIZED);
        site(&mut body, at, SSL_R_SSL_HANDSHAKE_FAILURE);
        body.extend(hex("5b 5d c3"));
        let read_impl = text.function(&body);
        // SSL_do_handshake (1.4.x form).
        let at = text.bytes.len();
        let mut body = hex(
            "55 48 89 e5 41 56 53 48 83 ec 10 48 89 fb 48 8b 47 30 c7 80 c4 00 00 00 00 00 00 00 e8 00 00 00 00",
        );
        site(&mut body, at, SSL_R_CONNECTION_TYPE_NOT_SET);
        body.extend(hex("5b 5d c3"));
        let handshake = text.function(&body);
        // SSL_read.
        let read = text.bytes.len();
        let mut body = hex("55 48 89 e5 41 57 41 56 53 50 48 83 bf 98 00 00 00 00 74 2e");
        site(&mut body, read, ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED);
        let here = read + body.len();
        body.extend(call(here, read_impl));
        body.extend(hex("5b 5d c3"));
        assert_eq!(text.function(&body), read);
        // SSL_write.
        let write = text.bytes.len();
        let mut body = hex(
            "55 48 89 e5 41 57 41 56 41 55 41 54 53 48 83 ec 18 41 89 d7 49 89 f6 48 89 fb \
             48 8b 47 30 c7 80 c4 00 00 00 00 00 00 00 e8 00 00 00 00",
        );
        site(&mut body, write, ERR_R_SHOULD_NOT_HAVE_BEEN_CALLED);
        let here = write + body.len();
        body.extend(call(here, handshake));
        for r in [
            SSL_R_SSL_HANDSHAKE_FAILURE,
            SSL_R_UNINITIALIZED,
            SSL_R_BAD_LENGTH,
        ] {
            site(&mut body, write, r);
        }
        body.extend(hex("5b 5d c3"));
        assert_eq!(text.function(&body), write);
        Fake {
            text,
            read,
            write,
            handshake,
        }
    }

    fn file_off(text_off: usize) -> u64 {
        (TEXT_OFF + text_off) as u64
    }

    #[test]
    fn finds_each_function_by_its_own_pattern() {
        for form in [Form::New, Form::Old, Form::Pie] {
            let f = fake(form);
            let exe = Elf::new(RODATA.to_vec(), f.text.bytes.clone()).build();
            let got = locate(&exe).unwrap_or_else(|e| panic!("{form:?}: {e}"));
            assert_eq!(
                got,
                BoringSsl {
                    ssl_read: file_off(f.read),
                    ssl_write: file_off(f.write),
                    ssl_do_handshake: Some(file_off(f.handshake)),
                },
                "{form:?}"
            );
            assert!(looks_like_bun(&exe));
        }
    }

    #[test]
    fn offsets_are_file_offsets_not_addresses() {
        let f = fake(Form::New);
        let exe = Elf::new(RODATA.to_vec(), f.text.bytes.clone()).build();
        let got = locate(&exe).unwrap();
        assert_ne!(got.ssl_write, Elf::text_vaddr(f.write));
        assert_eq!(&exe[got.ssl_write as usize..][..4], &FRAME_SETUP);
    }

    #[test]
    fn no_pattern_is_not_found() {
        let mut text = Text::new();
        text.function(&hex("55 48 89 e5 31 c0 5d c3"));
        let exe = Elf::new(RODATA.to_vec(), text.bytes).build();
        assert!(matches!(
            locate(&exe),
            Err(LocateError::NotFound("SSL_read"))
        ));
    }

    #[test]
    fn without_the_ssl_lib_string_nothing_is_believed() {
        let f = fake(Form::New);
        let exe = Elf::new(b"\0nothing here\0".to_vec(), f.text.bytes).build();
        assert!(matches!(locate(&exe), Err(LocateError::NoBoringSsl)));
    }

    #[test]
    fn a_pattern_without_its_error_sites_is_not_believed() {
        // SSL_write's prologue, but its body raises other reasons.
        let mut f = fake(Form::New);
        let at = f.write
            + memmem::find(&f.text.bytes[f.write..], &SSL_R_BAD_LENGTH.to_le_bytes()).unwrap();
        f.text.bytes[at] = 0x70;
        let exe = Elf::new(RODATA.to_vec(), f.text.bytes).build();
        assert!(matches!(
            locate(&exe),
            Err(LocateError::NotFound("SSL_write"))
        ));
    }

    #[test]
    fn a_wrong_callee_is_not_believed() {
        // SSL_read whose call goes elsewhere than ssl_read_impl.
        let mut f = fake(Form::New);
        let call_at = f.read + memmem::find(&f.text.bytes[f.read..], &[0xe8]).unwrap();
        let bogus = call(call_at, f.handshake);
        f.text.bytes[call_at..call_at + 5].copy_from_slice(&bogus);
        let exe = Elf::new(RODATA.to_vec(), f.text.bytes).build();
        assert!(matches!(
            locate(&exe),
            Err(LocateError::NotFound("SSL_read"))
        ));
    }

    #[test]
    fn two_verified_copies_are_ambiguous() {
        let f = fake(Form::New);
        let mut text = f.text.bytes.clone();
        // A second copy of SSL_read calling the same ssl_read_impl.
        let read_body = f.text.bytes[f.read..f.write].to_vec();
        let copy = text.len();
        let mut moved = read_body.clone();
        let call_at = memmem::find(&read_body, &[0xe8]).unwrap();
        let rel = i32::from_le_bytes(read_body[call_at + 1..call_at + 5].try_into().unwrap());
        let new_rel = rel - (copy - f.read) as i32;
        moved[call_at + 1..call_at + 5].copy_from_slice(&new_rel.to_le_bytes());
        text.extend_from_slice(&moved);
        let exe = Elf::new(RODATA.to_vec(), text).build();
        assert!(matches!(
            locate(&exe),
            Err(LocateError::Ambiguous("SSL_read", 2))
        ));
    }

    #[test]
    fn misaligned_matches_are_not_function_starts() {
        let f = fake(Form::New);
        let mut text = vec![0x90u8];
        // Shift everything by one byte: no start is aligned any more.
        text.extend_from_slice(&f.text.bytes);
        let exe = Elf::new(RODATA.to_vec(), text).build();
        assert!(matches!(
            locate(&exe),
            Err(LocateError::NotFound("SSL_read"))
        ));
    }

    #[test]
    fn handshake_is_optional() {
        let mut f = fake(Form::New);
        // Break SSL_do_handshake's own prologue: read and write still found.
        f.text.bytes[f.handshake + 12] = 0x90;
        let exe = Elf::new(RODATA.to_vec(), f.text.bytes.clone()).build();
        let got = locate(&exe).unwrap();
        assert_eq!(got.ssl_read, file_off(f.read));
        assert_eq!(got.ssl_do_handshake, None);
    }

    #[test]
    fn works_without_section_headers() {
        let f = fake(Form::New);
        let mut elf = Elf::new(RODATA.to_vec(), f.text.bytes.clone());
        elf.sections = false;
        let exe = elf.build();
        assert_eq!(locate(&exe).unwrap().ssl_read, file_off(f.read));
        // No .bun section and no trailer: not taken for Bun.
        assert!(!looks_like_bun(&exe));
        // The trailer of an older compiled executable.
        let mut with_trailer = exe.clone();
        with_trailer.extend_from_slice(b"\n---- Bun! ----\n");
        assert!(looks_like_bun(&with_trailer));
    }

    #[test]
    fn not_elf_and_other_machines() {
        assert!(matches!(locate(b"#!/bin/sh\n"), Err(LocateError::NotElf)));
        assert!(!looks_like_bun(b"\x7fELF"));
        let f = fake(Form::New);
        let mut exe = Elf::new(RODATA.to_vec(), f.text.bytes).build();
        exe[18] = 183; // EM_AARCH64
        assert!(matches!(
            locate(&exe),
            Err(LocateError::UnsupportedArch(183))
        ));
    }

    #[test]
    fn pattern_wildcards() {
        let p = Pattern::parse("55 48 89 e5 ?? 41");
        assert!(p.matches_at(&[0x55, 0x48, 0x89, 0xe5, 7, 0x41], 0));
        assert!(p.matches_at(&[0, 0x55, 0x48, 0x89, 0xe5, 0, 0x41], 1));
        assert!(!p.matches_at(&[0x55, 0x48, 0x89, 0xe5, 7, 0x42], 0));
        assert!(!p.matches_at(&[0x55, 0x48, 0x89], 0));
    }

    #[test]
    fn every_pattern_parses_and_begins_with_the_frame_setup() {
        for spec in [&SSL_READ, &SSL_WRITE, &SSL_DO_HANDSHAKE] {
            for text in spec.prologues {
                let p = Pattern::parse(text);
                assert!(p.bytes.len() >= 16, "{}: {text}", spec.name);
                assert!(
                    p.bytes.starts_with(&FRAME_SETUP.map(Some)),
                    "{}: {text}",
                    spec.name
                );
            }
        }
    }

    // ---- Real Bun executables ----

    /// What `cargo xtask setup` (step `bun`) installs: the npm `bun` package
    /// at this version, runtime at `BUN_DIR/bin/bun`.
    const PINNED_BUN: &str = "1.4.5";
    const BUN_DIR: &str = "/var/lib/agentmon/tools/bun";

    /// Offsets checked with uprobes during real TLS requests (the lengths
    /// seen at `SSL_write` and returned by `SSL_read` equal the plaintext the
    /// test server counted), by GNU build-id. Bun's `--compile` keeps the
    /// runtime's build-id and code, so the outputs share its entry.
    const KNOWN: &[(&str, &str, BoringSsl)] = &[
        (
            "bun 1.4.5 linux-x64",
            "b5188e4f53b53f3a346614bd78ba53f2ff234402",
            known(0x237e500, 0x23ffc30, 0x23640c0),
        ),
        (
            "bun 1.3.14 linux-x64",
            "a9a0d18db4f98a86ad4778800c5fa46943f81b2e",
            known(0x3a027c0, 0x3a02b50, 0x3a01880),
        ),
        (
            "bun 1.3.0 linux-x64",
            "c37f0b6d332674adde07d8bdeeb78773807b85e9",
            known(0x5f42c80, 0x5f43990, 0x5f42590),
        ),
        (
            "bun 1.2.23 linux-x64",
            "cb66d98a4b553ce003eaba8301f571ecec30bf5f",
            known(0x5edfac0, 0x5ee07d0, 0x5edf3d0),
        ),
        (
            "claude-code 2.1.197 (bun 1.4.0)",
            "2ba9a4dca997a53147167d7f967fdc840325054c",
            known(0x320d010, 0x320d3a0, 0x320c0e0),
        ),
        (
            "claude-code 2.1.330 (bun 1.4.4)",
            "d72a729b5627657c0649e49ae9d771fec0783039",
            known(0x311d810, 0x311d660, 0x30f4ae0),
        ),
    ];

    const fn known(ssl_read: u64, ssl_write: u64, hs: u64) -> BoringSsl {
        BoringSsl {
            ssl_read,
            ssl_write,
            ssl_do_handshake: Some(hs),
        }
    }

    fn build_id(exe: &[u8]) -> Option<String> {
        // The NT_GNU_BUILD_ID note near the start: namesz 4, descsz 20,
        // type 3, "GNU\0", then the id.
        let head = &exe[..exe.len().min(64 * 1024)];
        let at = memmem::find(head, b"\x04\0\0\0\x14\0\0\0\x03\0\0\0GNU\0")?;
        let id = head.get(at + 16..at + 36)?;
        Some(id.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// `bun build --compile` of the tests' Bun client, into `dir`.
    fn compile_client(bun: &Path, dir: &Path) -> PathBuf {
        let client = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/internet/bun_client.ts"
        );
        let out = dir.join("bun_client");
        let status = std::process::Command::new(bun)
            .args(["build", "--compile", client, "--outfile"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", bun.display()));
        assert!(
            status.success(),
            "{} build --compile {client} failed",
            bun.display()
        );
        out
    }

    fn check_real(path: &Path) {
        let exe = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            looks_like_bun(&exe),
            "{} does not look like Bun",
            path.display()
        );
        let started = std::time::Instant::now();
        let got = locate(&exe).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!(
            "{}: SSL_read {:#x}, SSL_write {:#x}, SSL_do_handshake {:?} ({:?})",
            path.display(),
            got.ssl_read,
            got.ssl_write,
            got.ssl_do_handshake.map(|o| format!("{o:#x}")),
            started.elapsed()
        );
        let id = build_id(&exe);
        if let Some((what, _, want)) = KNOWN.iter().find(|(_, k, _)| Some(*k) == id.as_deref()) {
            assert_eq!(&got, want, "{}: {what}", path.display());
        }
    }

    /// `AGENTMON_BUN_EXE` if set; else the pinned runtime from `cargo xtask
    /// setup` and a `bun build --compile` output made with it.
    #[test]
    fn real_bun_executables() {
        if let Some(exe) = std::env::var_os("AGENTMON_BUN_EXE") {
            check_real(Path::new(&exe));
            return;
        }
        let bun = Path::new(BUN_DIR).join("bin/bun");
        if !bun.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "no {}: `cargo xtask setup` (step `bun`) installs bun {PINNED_BUN} there; \
                 or set AGENTMON_BUN_EXE to a `bun build --compile` output",
                bun.display()
            );
            eprintln!(
                "skipped: no {} (cargo xtask setup, step `bun`)",
                bun.display()
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let compiled = compile_client(&bun, dir.path());
        check_real(&compiled);
        check_real(&bun);
        // The pinned version's offsets are known: it must be that build.
        let id = build_id(&std::fs::read(&compiled).unwrap());
        assert!(
            KNOWN.iter().any(|(_, k, _)| Some(*k) == id.as_deref()),
            "{} (build-id {id:?}) is not bun {PINNED_BUN} linux-x64",
            bun.display()
        );
    }
}

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
//! use monitor::uprobes::boringssl;
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
#[path = "boringssl_tests.rs"]
mod tests;

//! Tests of the BoringSSL locator (`boringssl.rs`).

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

        let put16 =
            |o: &mut Vec<u8>, at: usize, v: u16| o[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |o: &mut Vec<u8>, at: usize, v: u32| o[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 =
            |o: &mut Vec<u8>, at: usize, v: u64| o[at..at + 8].copy_from_slice(&v.to_le_bytes());
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
            let mut section =
                |n: usize, name: u32, ty: u32, flags: u64, addr: u64, off: usize, size: usize| {
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
    let at =
        f.write + memmem::find(&f.text.bytes[f.write..], &SSL_R_BAD_LENGTH.to_le_bytes()).unwrap();
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
            "no {}: `cargo xtask setup test` (step `bun`) installs bun {PINNED_BUN} there; \
             or set AGENTMON_BUN_EXE to a `bun build --compile` output",
            bun.display()
        );
        eprintln!(
            "skipped: no {} (cargo xtask setup test, step `bun`)",
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

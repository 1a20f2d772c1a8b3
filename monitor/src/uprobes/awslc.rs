//! aws-lc's record functions in a stripped executable: rustls's default
//! crypto provider (aws-lc-rs) seals each TLS record it sends with
//! `EVP_AEAD_CTX_seal` and opens each one it receives with
//! `EVP_AEAD_CTX_open` (which calls `EVP_AEAD_CTX_open_gather`). rustls
//! itself is Rust generics with nothing to find; these are C functions of
//! one file, `crypto/fipsmodule/cipher/aead.c`, whose errors are raised
//! with `OPENSSL_PUT_ERROR`: a call with the file's name (`lea` into rcx)
//! and the reason code (`mov` into edx). The reason codes are public and
//! stable (`include/openssl/cipher.h`); each function's set tells it from
//! the other functions of the file. Line numbers are not used: they move
//! between releases.
//!
//! A function is believed only when exactly one function of the file has
//! its set, and `EVP_AEAD_CTX_open` calls the `open_gather` found (or, as
//! clang builds it, has it inlined: it raises open_gather's error too).
//! x86-64 only.

use std::collections::{BTreeMap, BTreeSet};

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, Register};

pub use super::xrefs::LocateError;
use super::xrefs::{Program, calls, string_starts};

/// File offsets of the functions, and the aws-lc-sys version when the file
/// names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub seal: u64,
    pub open: u64,
    pub open_gather: u64,
    /// "0.47.0" from aws-lc-sys's symbol prefix (`aws_lc_0_47_0_`), which
    /// its assertion messages keep.
    pub version: Option<String>,
}

const LIBRARY: &str = "aws-lc";
const FILE: &[u8] = b"crypto/fipsmodule/cipher/aead.c\0";

// CIPHER_R_* reason codes (include/openssl/cipher.h).
const BAD_DECRYPT: u32 = 101;
const BUFFER_TOO_SMALL: u32 = 103;
const CTRL_NOT_IMPLEMENTED: u32 = 104;
const INVALID_OPERATION: u32 = 112;
const OUTPUT_ALIASES_INPUT: u32 = 115;
const TOO_LARGE: u32 = 117;

/// Which function a set of reason codes belongs to.
fn classify(reasons: &BTreeSet<u32>) -> Option<&'static str> {
    let has = |r: u32| reasons.contains(&r);
    if has(TOO_LARGE) && has(BUFFER_TOO_SMALL) && has(OUTPUT_ALIASES_INPUT) && !has(BAD_DECRYPT) {
        Some("EVP_AEAD_CTX_seal")
    } else if has(BAD_DECRYPT) && has(OUTPUT_ALIASES_INPUT) {
        Some("EVP_AEAD_CTX_open")
    } else if reasons.len() == 2 && has(CTRL_NOT_IMPLEMENTED) && has(OUTPUT_ALIASES_INPUT) {
        Some("EVP_AEAD_CTX_open_gather")
    } else if reasons.len() == 2 && has(INVALID_OPERATION) && has(OUTPUT_ALIASES_INPUT) {
        Some("EVP_AEAD_CTX_seal_scatter")
    } else {
        None
    }
}

/// Locates aws-lc's record functions in the executable `data`.
/// (The search agentmon runs, alone: it shares its scan with OpenSSL's.)
pub fn locate(data: &[u8]) -> Result<Found, LocateError> {
    let found = super::plan::search_stripped(data, false, true).aws_lc;
    found.unwrap_or(Err(LocateError::Absent(LIBRARY)))
}

/// Whether `data` may hold aws-lc (its `aead.c`'s name).
pub(super) fn present(data: &[u8]) -> bool {
    memchr::memmem::find(data, FILE).is_some()
}

/// Where the strings holding `aead.c`'s name start.
pub(super) fn strings(elf: &object::File) -> BTreeSet<u64> {
    string_starts(elf, FILE).into_iter().collect()
}

/// Locates them in `code` (of `data`), scanned for the `files` names.
pub(super) fn locate_in(
    data: &[u8],
    code: &Program,
    files: &BTreeSet<u64>,
) -> Result<Found, LocateError> {
    let (text, frames) = (&code.text, &code.frames);
    // The functions of aead.c: those that load its name.
    let mut functions = BTreeSet::new();
    for &(at, target) in code.leas() {
        if files.contains(&target)
            && let Some(function) = frames.function_at(at)
        {
            functions.insert(function);
        }
    }
    let body = |start: u64| text.body((start, frames.end_of(start)));
    let mut by_name: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut reasons_of = BTreeMap::new();
    for &function in &functions {
        let Some(bytes) = body(function) else {
            continue;
        };
        let raised = reasons(bytes, function, files);
        if let Some(name) = classify(&raised) {
            by_name.entry(name).or_default().push(function);
        }
        reasons_of.insert(function, raised);
    }
    let one = |name: &'static str| match by_name.get(name).map(Vec::as_slice) {
        Some([one]) => Ok(*one),
        None | Some([]) => Err(LocateError::NotFound(name)),
        Some(many) => Err(LocateError::Ambiguous(name, many.len())),
    };
    let (seal, open, open_gather) = (
        one("EVP_AEAD_CTX_seal")?,
        one("EVP_AEAD_CTX_open")?,
        one("EVP_AEAD_CTX_open_gather")?,
    );
    // clang inlines open_gather into open, which then raises its error too.
    let inlined = reasons_of[&open].contains(&CTRL_NOT_IMPLEMENTED);
    if !inlined
        && body(open)
            .and_then(|b| calls(b, open, open_gather))
            .is_none()
    {
        return Err(LocateError::Unverified {
            caller: "EVP_AEAD_CTX_open",
            callee: "EVP_AEAD_CTX_open_gather",
        });
    }
    Ok(Found {
        seal: text.offset(seal),
        open: text.offset(open),
        open_gather: text.offset(open_gather),
        version: version(data),
    })
}

/// The reason codes of the errors `code` (a function at `addr`) raises:
/// the `mov edx, imm` in the same straight run of instructions as a `lea`
/// of the file's name, up to the call that raises it. clang shares one
/// call among a function's errors: each sets its arguments and jumps to
/// it, so a run may also end in a jump to a call.
fn reasons(code: &[u8], addr: u64, files: &BTreeSet<u64>) -> BTreeSet<u32> {
    let body: Vec<Instruction> = Decoder::with_ip(64, code, addr, DecoderOptions::NONE)
        .into_iter()
        .collect();
    let (mut edx, mut file) = (None, false);
    let mut out = BTreeSet::new();
    for ins in &body {
        let raises = match ins.mnemonic() {
            Mnemonic::Call => true,
            Mnemonic::Jmp => jumps_to_a_call(&body, ins.near_branch_target()),
            _ => false,
        };
        if raises && let (Some(reason), true) = (edx, file) {
            out.insert(reason);
        }
        if raises || ins.near_branch_target() != 0 || ins.mnemonic() == Mnemonic::Ret {
            (edx, file) = (None, false);
        } else if ins.code() == Code::Mov_r32_imm32 && ins.op0_register() == Register::EDX {
            edx = Some(ins.immediate32());
        } else if ins.is_ip_rel_memory_operand()
            && ins.mnemonic() == Mnemonic::Lea
            && files.contains(&ins.ip_rel_memory_address())
        {
            file = true;
        }
    }
    out
}

/// Whether `target`, in `body`, is a call, or a few instructions before
/// one that set no other reason and do not branch.
fn jumps_to_a_call(body: &[Instruction], target: u64) -> bool {
    let Ok(at) = body.binary_search_by_key(&target, Instruction::ip) else {
        return false;
    };
    for ins in body[at..].iter().take(4) {
        if ins.mnemonic() == Mnemonic::Call {
            return true;
        }
        // Any write of RDX (EDX, DX, DL too) replaces the reason.
        let sets_rdx = ins.op_count() > 0
            && matches!(
                ins.op0_register(),
                Register::RDX | Register::EDX | Register::DX | Register::DL
            );
        if sets_rdx || ins.near_branch_target() != 0 || ins.mnemonic() == Mnemonic::Ret {
            return false;
        }
    }
    false
}

/// aws-lc-sys's version from its symbol prefix in the file's strings.
fn version(data: &[u8]) -> Option<String> {
    const PREFIX: &[u8] = b"aws_lc_";
    let tail = b"_EVP_AEAD_CTX_open";
    let end = memchr::memmem::find(data, tail)?;
    let start = memchr::memmem::rfind(&data[end.saturating_sub(32)..end], PREFIX)?
        + end.saturating_sub(32)
        + PREFIX.len();
    let parts: Vec<&str> = std::str::from_utf8(&data[start..end])
        .ok()?
        .split('_')
        .collect();
    (parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok())).then(|| parts.join("."))
}

#[cfg(test)]
#[path = "awslc_tests.rs"]
mod tests;

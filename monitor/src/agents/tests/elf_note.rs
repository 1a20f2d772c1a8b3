//! The `elf_note` condition, on hand-made ELF files of the two shapes that
//! share the name `copilot`: a Node single executable (postject's note) and
//! a program without it (AWS Copilot CLI is a Go program).

use std::path::PathBuf;

use super::{NODE, label, proc, rule, text, tool};
use crate::agents::elf_note::has_note_in;
use crate::agents::{Catalog, CatalogError, Strength};

const SEA: &[u8] = b"NODE_SEA_BLOB";

/// A 64-bit little-endian ELF file with one `PT_NOTE` segment holding
/// `notes` (name, contents).
fn elf_with_notes(notes: &[(&[u8], &[u8])]) -> Vec<u8> {
    let pad = |v: &mut Vec<u8>| v.resize(v.len().next_multiple_of(4), 0);
    let mut segment = Vec::new();
    for (name, desc) in notes {
        segment.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        segment.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        segment.extend_from_slice(&3u32.to_le_bytes());
        segment.extend_from_slice(name);
        segment.push(0);
        pad(&mut segment);
        segment.extend_from_slice(desc);
        pad(&mut segment);
    }
    let mut file = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (value, size) in [
        (2, 2),  // e_type: executable
        (62, 2), // e_machine: x86-64
        (1, 4),  // e_version
        (0, 8),  // e_entry
        (64, 8), // e_phoff: right after this header
        (0, 8),  // e_shoff: no sections
        (0, 4),  // e_flags
        (64, 2), // e_ehsize
        (56, 2), // e_phentsize
        (1, 2),  // e_phnum
        (64, 2), // e_shentsize
        (0, 2),  // e_shnum
        (0, 2),  // e_shstrndx
        // The one program header.
        (4, 4),   // p_type: PT_NOTE
        (4, 4),   // p_flags: R
        (120, 8), // p_offset: right after it
        (0, 8),   // p_vaddr
        (0, 8),   // p_paddr
        (segment.len() as u64, 8),
        (segment.len() as u64, 8),
        (4, 8), // p_align
    ] {
        file.extend_from_slice(&u64::to_le_bytes(value)[..size]);
    }
    assert_eq!(file.len(), 120);
    file.extend_from_slice(&segment);
    file
}

fn build_id() -> (&'static [u8], &'static [u8]) {
    (b"GNU", &[0x27; 20])
}

#[test]
fn a_note_is_found_by_its_name_among_others() {
    let sea = elf_with_notes(&[build_id(), (SEA, b"the application")]);
    assert!(has_note_in(&sea, SEA));
    assert!(!has_note_in(&sea, b"NODE_SEA"));
    let plain = elf_with_notes(&[build_id()]);
    assert!(!has_note_in(&plain, SEA));
    // Not ELF, or cut short inside the notes: no note, no panic.
    assert!(!has_note_in(b"#!/bin/sh\n", SEA));
    assert!(!has_note_in(&sea[..130], SEA));
}

/// GitHub's Copilot CLI where its install script puts it as root, and AWS
/// Copilot CLI at the same path.
#[test]
fn copilot_at_a_shared_path_is_named_only_when_it_is_a_node_single_executable() {
    let dir = tempfile::tempdir().unwrap();
    let github = dir.path().join("github");
    let aws = dir.path().join("aws");
    std::fs::write(&github, elf_with_notes(&[build_id(), (SEA, b"app")])).unwrap();
    std::fs::write(&aws, elf_with_notes(&[build_id()])).unwrap();
    let catalog = Catalog::builtin();
    for exe in [
        "/usr/local/bin/copilot",
        "/home/linuxbrew/.linuxbrew/Caskroom/copilot-cli/1.0.102/copilot",
    ] {
        let mut p = proc(exe, &["copilot"]);
        p.exe_file = Some(github.clone());
        assert_eq!(
            label(&catalog, &p),
            Some(("copilot".to_owned(), Strength::Strong)),
            "{exe}"
        );
        p.exe_file = Some(aws.clone());
        assert_eq!(label(&catalog, &p), None, "{exe}");
        // A file agentmon cannot open is not taken for GitHub's.
        p.exe_file = Some(PathBuf::from("/nonexistent/copilot"));
        assert_eq!(label(&catalog, &p), None, "{exe}");
    }
    // The note is asked of files named copilot only.
    let mut node = proc(NODE, &["node"]);
    node.exe_file = Some(github);
    assert_eq!(label(&catalog, &node), None);
}

#[test]
fn an_elf_note_condition_needs_an_exe_glob_and_a_name() {
    let alone = vec![rule(|r| r.elf_note = text("NODE_SEA_BLOB"))];
    let err = Catalog::new("", &[tool("x", alone)], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tool `x` rule 1: invalid elf_note \"NODE_SEA_BLOB\": add an exe glob beside it: \
         agentmon reads the file only of processes whose exe matches"
    );
    let empty = vec![rule(|r| {
        r.exe = text("**/x");
        r.elf_note = text("");
    })];
    assert!(matches!(
        Catalog::new("", &[tool("x", empty)], &[]),
        Err(CatalogError::BadCondition {
            field: "elf_note",
            ..
        })
    ));
}

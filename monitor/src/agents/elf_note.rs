//! Whether a program file carries an ELF note of a given name. postject,
//! which builds Node single executables, stores the application as a note
//! named `NODE_SEA_BLOB`: that tells GitHub's Copilot CLI (a Node single
//! executable) from AWS's Copilot CLI (a Go program), which installs a
//! `copilot` in the same places.

use std::{fs::File, path::Path};

use object::{
    Endianness, elf,
    read::elf::{FileHeader as _, ProgramHeader as _},
};

/// Reads only the headers: the map is lazy, and a note's contents (Copilot
/// CLI's application is a 90 MB note) are stepped over, never touched.
pub(super) fn has_note(path: &Path, name: &str) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // SAFETY: a read-only map of a program in use; only headers are read.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return false;
    };
    has_note_in(&map, name.as_bytes())
}

/// Over the notes of every `PT_NOTE` segment of a 64-bit ELF file.
pub(super) fn has_note_in(data: &[u8], name: &[u8]) -> bool {
    let Ok(header) = elf::FileHeader64::<Endianness>::parse(data) else {
        return false;
    };
    let Ok(endian) = header.endian() else {
        return false;
    };
    let Ok(segments) = header.program_headers(endian, data) else {
        return false;
    };
    segments.iter().any(|segment| {
        let Ok(Some(mut notes)) = segment.notes(endian, data) else {
            return false;
        };
        while let Ok(Some(note)) = notes.next() {
            if note.name() == name {
                return true;
            }
        }
        false
    })
}

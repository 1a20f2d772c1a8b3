//! The stripped builds `cargo xtask test` makes of the tests' clients
//! (`tests/clients`), in AGENTMON_AWSLC_SAMPLES: each `NAME.stripped` has
//! its unstripped `NAME` beside it, whose symbols are the truth the
//! searches are checked against.

use std::path::PathBuf;

use object::{Object, ObjectSection, ObjectSymbol};

/// The samples folder; `None` outside CI without it.
pub(super) fn dir() -> Option<PathBuf> {
    let dir = std::env::var_os("AGENTMON_AWSLC_SAMPLES");
    assert!(
        dir.is_some() || std::env::var_os("CI").is_none(),
        "AGENTMON_AWSLC_SAMPLES is not set: `cargo xtask test` builds the samples and sets it"
    );
    dir.map(PathBuf::from)
}

/// The file offset of the function `name` (or `<prefix>_name`, as
/// aws-lc-sys prefixes its symbols) in the unstripped ELF `data`.
pub(super) fn offset(data: &[u8], name: &str) -> u64 {
    let elf = object::File::parse(data).unwrap();
    let prefixed = format!("_{name}");
    let sym = elf
        .symbols()
        .find(|s| s.name().is_ok_and(|n| n == name || n.ends_with(&prefixed)))
        .unwrap_or_else(|| panic!("no symbol {name}"));
    let section = elf.section_by_index(sym.section_index().unwrap()).unwrap();
    sym.address() - section.address() + section.file_range().unwrap().0
}

use super::*;
use crate::{
    kernel::{AEAD_OPEN, AEAD_OPEN_RETURN, AEAD_SEAL, ProbeAt},
    uprobes::{TlsLib, plan::plan_for, samples},
};

fn set(codes: &[u32]) -> BTreeSet<u32> {
    codes.iter().copied().collect()
}

#[test]
fn each_function_is_told_by_its_reason_codes() {
    assert_eq!(classify(&set(&[117, 103, 115])), Some("EVP_AEAD_CTX_seal"));
    assert_eq!(classify(&set(&[115, 101, 103])), Some("EVP_AEAD_CTX_open"));
    assert_eq!(
        classify(&set(&[115, 104])),
        Some("EVP_AEAD_CTX_open_gather")
    );
    assert_eq!(
        classify(&set(&[115, 112])),
        Some("EVP_AEAD_CTX_seal_scatter")
    );
    // EVP_AEAD_CTX_init_with_direction, EVP_AEAD_CTX_copy, nothing.
    assert_eq!(classify(&set(&[120])), None);
    assert_eq!(classify(&set(&[108, 104])), None);
    assert_eq!(classify(&set(&[])), None);
}

#[test]
fn a_reason_counts_only_with_the_files_name_before_the_same_call() {
    let code = [
        0xba, 0x75, 0x00, 0x00, 0x00, // mov edx, 117
        0x48, 0x8d, 0x0d, 0x00, 0x10, 0x00, 0x00, // lea rcx, [rip+0x1000] (the file)
        0xe8, 0x00, 0x00, 0x00, 0x00, // call
        0xba, 0x67, 0x00, 0x00, 0x00, // mov edx, 103: no lea of the file
        0xe8, 0x00, 0x00, 0x00, 0x00, // call
        0xba, 0x73, 0x00, 0x00, 0x00, // mov edx, 115
        0x74, 0x00, // je: a branch forgets it
        0x48, 0x8d, 0x0d, 0xe3, 0x0f, 0x00, 0x00, // lea rcx, [rip+0xfe3] (the file)
        0xe8, 0x00, 0x00, 0x00, 0x00, // call
        0xc3,
    ];
    let files = set(&[])
        .into_iter()
        .map(u64::from)
        .collect::<BTreeSet<u64>>();
    assert!(reasons(&code, 0x1000, &files).is_empty());
    let files: BTreeSet<u64> = [0x1000 + 12 + 0x1000].into();
    assert_eq!(reasons(&code, 0x1000, &files), set(&[117]));
}

/// clang's shape: each error sets its arguments and jumps to one shared
/// call; a jump elsewhere raises nothing.
#[test]
fn a_reason_counts_when_its_run_jumps_to_the_shared_call() {
    let code = [
        0x48, 0x8d, 0x0d, 0x00, 0x10, 0x00, 0x00, // 0x1000 lea rcx, [rip+0x1000] (the file)
        0xba, 0x75, 0x00, 0x00, 0x00, // 0x1007 mov edx, 117
        0xeb, 0x1a, // 0x100c jmp 0x1028 (the call)
        0x48, 0x8d, 0x0d, 0xf2, 0x0f, 0x00, 0x00, // 0x100e lea rcx, [rip+0xff2] (the file)
        0xba, 0x67, 0x00, 0x00, 0x00, // 0x1015 mov edx, 103
        0xeb, 0x12, // 0x101a jmp 0x102e (the ret): not raised
        0xba, 0x73, 0x00, 0x00, 0x00, // 0x101c mov edx, 115
        0x48, 0x8d, 0x0d, 0xdf, 0x0f, 0x00, 0x00, // 0x1021 lea rcx, [rip+0xfdf] (the file)
        0xe8, 0x00, 0x00, 0x00, 0x00, // 0x1028 call
        0x90, // 0x102d
        0xc3, // 0x102e
    ];
    let files: BTreeSet<u64> = [0x2007].into();
    assert_eq!(reasons(&code, 0x1000, &files), set(&[115, 117]));
}

#[test]
fn rustls_is_told_by_its_source_paths_as_cargo_or_bazel_lays_them_out() {
    use crate::uprobes::links_rustls;
    assert!(links_rustls(
        b"\0/root/.cargo/registry/src/x/rustls-0.23.46/src/conn.rs\0"
    ));
    assert!(links_rustls(
        b"\0external/+c+vendor__rustls-0.23.46/src/conn.rs\0"
    ));
    assert!(links_rustls(b"rustls-0.23.46/src/conn.rs"));
    assert!(links_rustls(b"\0/src/rustls/src/conn.rs\0"));
    assert!(!links_rustls(b"\0/x/hyper-rustls-0.27.10/src/lib.rs\0"));
    assert!(!links_rustls(b"\0/x/rustls-pki-types-1.12.0/src/lib.rs\0"));
    assert!(!links_rustls(b"\0/x/openssl-0.10.81/src/ssl/mod.rs\0"));
}

#[test]
fn the_version_comes_from_the_symbol_prefix() {
    assert_eq!(
        version(b"..\0aws_lc_0_47_0_EVP_AEAD_CTX_open\0"),
        Some("0.47.0".into())
    );
    assert_eq!(version(b"..\0EVP_AEAD_CTX_open\0"), None);
    assert_eq!(version(b"aws_lc_x_EVP_AEAD_CTX_open"), None);
}

#[test]
fn a_file_without_aws_lc_is_absent() {
    assert_eq!(
        locate(b"\x7fELF not really"),
        Err(LocateError::Absent("aws-lc"))
    );
}

/// Stripped builds of rustls on aws-lc (`cargo xtask test` builds them,
/// from tests/clients/rustls_awslc: static for musl by gcc, and an add-on
/// by clang; see `samples.rs`): each function is where the unstripped
/// build's symbols say.
#[test]
fn finds_the_functions_of_stripped_builds_by_their_symbols() {
    let Some(dir) = samples::dir() else {
        return;
    };
    let mut checked = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("rustls_") || !name.ends_with(".stripped") {
            continue;
        }
        let stripped = std::fs::read(&path).unwrap();
        let found = locate(&stripped).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let full = std::fs::read(path.with_extension("")).unwrap();
        let want = [
            samples::offset(&full, "EVP_AEAD_CTX_seal"),
            samples::offset(&full, "EVP_AEAD_CTX_open"),
            samples::offset(&full, "EVP_AEAD_CTX_open_gather"),
        ];
        assert_eq!(
            [found.seal, found.open, found.open_gather],
            want,
            "{}",
            path.display()
        );
        assert!(found.version.is_some(), "{found:?}");
        // What the daemon probes in it, and nothing where the receive tie
        // is missing.
        let plan = plan_for(&path, true, &path, true).expect("a plan");
        assert_eq!(plan.lib, TlsLib::Rustls);
        let at = ProbeAt::Offset;
        let probes: Vec<_> = plan
            .probes
            .iter()
            .map(|(p, at, _)| (*p, at.clone()))
            .collect();
        assert_eq!(
            probes,
            [
                (AEAD_OPEN_RETURN, at(want[1])),
                (AEAD_OPEN, at(want[1])),
                (AEAD_SEAL, at(want[0])),
            ]
        );
        assert!(plan_for(&path, true, &path, false).is_none());
        checked.insert(path.file_name().unwrap().to_owned());
    }
    let want = [
        "rustls_awslc_client.stripped",
        "rustls_awslc_addon.node.stripped",
    ];
    assert_eq!(checked, want.map(std::ffi::OsString::from).into());
}

use super::*;
use crate::uprobes::samples;

#[test]
fn a_file_without_openssl_is_absent() {
    assert_eq!(
        locate(b"\x7fELF not really"),
        Err(LocateError::Absent("OpenSSL 3"))
    );
}

#[test]
fn the_minor_version_comes_from_the_version_text() {
    let data = b"\0OpenSSL 3.0 or later\0OpenSSL 3.6.3 9 Jun 2026\0OpenSSL 3.\0OpenSSL 3.12.0 \0";
    assert_eq!(minors(data).collect::<Vec<_>>(), [6, 12]);
    assert_eq!(minors(b"OpenSSL 3.6.3").count(), 0);
}

/// The openssl crate's vendored OpenSSL (3.6), static for musl and
/// stripped, as Codex links it (`cargo xtask test` builds it from
/// tests/clients/openssl_vendored; see `samples.rs`): its functions are
/// where the unstripped build's symbols say, and its `ssl_write_internal`
/// takes the `flags` argument OpenSSL 3.3 added.
#[test]
fn finds_the_functions_of_the_vendored_build_by_its_symbols() {
    let Some(dir) = samples::dir() else {
        return;
    };
    let stripped = std::fs::read(dir.join("openssl_vendored_client.stripped")).unwrap();
    let found = locate(&stripped).unwrap();
    let full = std::fs::read(dir.join("openssl_vendored_client")).unwrap();
    assert_eq!(
        (found.read, found.write),
        (
            samples::offset(&full, "ssl_read_internal"),
            samples::offset(&full, "ssl_write_internal")
        )
    );
    assert!(found.write_has_flags, "{found:?}");
}

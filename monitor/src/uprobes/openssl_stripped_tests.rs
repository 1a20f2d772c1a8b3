use super::*;

#[test]
fn a_file_without_openssl_is_absent() {
    assert_eq!(
        locate(b"\x7fELF not really"),
        Err(LocateError::Absent("OpenSSL 3"))
    );
}

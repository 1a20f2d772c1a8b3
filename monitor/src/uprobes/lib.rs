//! The TLS libraries agentmon probes, as the daemon names them.

use monitor_common::tls_lib;

/// A TLS library, decoded from its wire id (`monitor_common::tls_lib`, the
/// probes' attach cookie and `Conn::tls_lib`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsLib {
    /// `libssl.so.*`.
    OpenSsl,
    /// OpenSSL inside an executable that exports its symbols (node).
    OpenSslStatic,
    /// BoringSSL inside a Bun single-file executable, found by pattern.
    BoringSsl,
    /// `libgnutls.so.30`.
    GnuTls,
    /// Go's crypto/tls in a Go executable, found by name in `.gopclntab`.
    Go,
    /// rustls on aws-lc: aws-lc's record functions, found in stripped
    /// executables by the strings and error codes they hold.
    Rustls,
    /// No library: plaintext sizes derived from TLS record framing.
    Record,
}

impl TlsLib {
    /// Every library probes attach to, for gauges that list them all.
    pub const ALL: [TlsLib; 6] = [
        TlsLib::OpenSsl,
        TlsLib::OpenSslStatic,
        TlsLib::BoringSsl,
        TlsLib::GnuTls,
        TlsLib::Go,
        TlsLib::Rustls,
    ];

    /// The library of a wire id; `None` for 0 (no probe saw the connection)
    /// and for ids this daemon does not know.
    pub fn from_wire(id: u32) -> Option<Self> {
        match id {
            tls_lib::OPENSSL => Some(Self::OpenSsl),
            tls_lib::OPENSSL_STATIC => Some(Self::OpenSslStatic),
            tls_lib::BORINGSSL => Some(Self::BoringSsl),
            tls_lib::GNUTLS => Some(Self::GnuTls),
            tls_lib::GO => Some(Self::Go),
            tls_lib::RUSTLS => Some(Self::Rustls),
            _ => None,
        }
    }

    /// The wire id, the attach cookie of its probes.
    pub fn wire(self) -> u32 {
        match self {
            Self::OpenSsl => tls_lib::OPENSSL,
            Self::OpenSslStatic => tls_lib::OPENSSL_STATIC,
            Self::BoringSsl => tls_lib::BORINGSSL,
            Self::GnuTls => tls_lib::GNUTLS,
            Self::Go => tls_lib::GO,
            Self::Rustls => tls_lib::RUSTLS,
            Self::Record => tls_lib::RECORD,
        }
    }

    /// The `library` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::OpenSsl => "openssl",
            Self::OpenSslStatic => "openssl-static",
            Self::BoringSsl => "boringssl",
            Self::GnuTls => "gnutls",
            Self::Go => "go",
            Self::Rustls => "rustls",
            Self::Record => "record",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_ids_round_trip_and_unknown_ones_are_none() {
        for lib in TlsLib::ALL {
            assert_eq!(TlsLib::from_wire(lib.wire()), Some(lib));
        }
        assert_eq!(TlsLib::from_wire(0), None);
        assert_eq!(TlsLib::from_wire(99), None);
    }
}

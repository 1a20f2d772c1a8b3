//! Server name and ALPN from the first bytes a client sends on a TCP
//! connection, without decryption, so it works for every TLS stack.
//!
//! Why not `tls_parser::parse_tls_plaintext` alone: it parses whole records
//! and whole handshake messages, and answers `Incomplete` for anything cut
//! short. We see at most the first few kilobytes (the capture is bounded), a
//! post-quantum key share can push the ClientHello past that, and some stacks
//! split the ClientHello over two records. The server name sits early in the
//! extension list, so we join the handshake fragments ourselves, walk the
//! fixed ClientHello fields and the extension list with bounds checks, and hand
//! each *complete* SNI or ALPN extension to `tls_parser::parse_tls_extension`.
//! The tests check that this agrees with tls-parser's full parse wherever the
//! latter succeeds.
//!
//! With Encrypted ClientHello the name seen here is the outer, public name.

use tls_parser::{SNIType, TlsExtension};

use super::hostname::Hostname;

/// ALPN protocol names kept per ClientHello.
pub const MAX_ALPN: usize = 8;
/// Longest ALPN protocol name kept (longer ones are cut).
pub const MAX_ALPN_LEN: usize = 32;
/// Extensions looked at before giving up (real hellos carry about 20).
const MAX_EXTENSIONS: usize = 128;
/// Largest TLS plaintext record body (RFC 8446 5.1).
const MAX_RECORD_LEN: usize = 1 << 14;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;

/// What a ClientHello told about where the client wants to go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The `host_name` entry of the server_name extension, if it was captured
    /// and is a valid host name.
    pub sni: Option<Hostname>,
    /// Offered protocols (`h2`, `http/1.1`, ...), at most [`MAX_ALPN`],
    /// each lowercased, cut to [`MAX_ALPN_LEN`] and with any byte outside
    /// `[a-z0-9./_-]` replaced by `_`.
    pub alpn: Vec<String>,
}

/// True if `bytes` start like a TLS record carrying a ClientHello.
pub fn is_tls_client_hello(bytes: &[u8]) -> bool {
    let Some(head) = bytes.first_chunk::<6>() else {
        return false;
    };
    let record_len = usize::from(u16::from_be_bytes([head[3], head[4]]));
    head[0] == CONTENT_HANDSHAKE
        && head[1] == 3
        && head[2] <= 4
        && (1..=MAX_RECORD_LEN).contains(&record_len)
        && head[5] == HANDSHAKE_CLIENT_HELLO
}

/// The ClientHello at the start of `bytes`, or `None` if they do not start
/// with one. Works on a cut-off capture: whatever complete extensions were
/// captured are read, so `sni` is found as long as its extension is inside
/// `bytes`.
pub fn parse_client_hello(bytes: &[u8]) -> Option<ClientHello> {
    if !is_tls_client_hello(bytes) {
        return None;
    }
    let handshake = join_handshake_fragments(bytes);
    let mut hello = ClientHello::default();
    if let Some(extensions) = extension_block(&handshake) {
        read_extensions(extensions, &mut hello);
    }
    Some(hello)
}

/// The handshake bytes carried by the leading handshake records, joined,
/// up to the end of the first handshake message or of the capture. The
/// result is never longer than `bytes`.
fn join_handshake_fragments(bytes: &[u8]) -> Vec<u8> {
    let mut handshake = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((head, body)) = rest.split_first_chunk::<5>() {
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        if head[0] != CONTENT_HANDSHAKE || head[1] != 3 || len == 0 || len > MAX_RECORD_LEN {
            break;
        }
        let Some((fragment, after)) = body.split_at_checked(len) else {
            handshake.extend_from_slice(body);
            break;
        };
        handshake.extend_from_slice(fragment);
        rest = after;
        if let Some(head) = handshake.first_chunk::<4>() {
            let message_len = u32::from_be_bytes([0, head[1], head[2], head[3]]);
            if handshake.len() >= 4 + message_len as usize {
                break;
            }
        }
    }
    handshake
}

/// The (possibly cut) extension list of a ClientHello handshake message, or
/// `None` if the capture ends before it or the fixed fields are malformed.
fn extension_block(handshake: &[u8]) -> Option<&[u8]> {
    let mut r = Reader(handshake);
    if r.u8()? != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    let message_len = r.u24()?;
    // Stop at the end of the message even if more bytes were captured.
    let mut r = Reader(r.0.get(..message_len).unwrap_or(r.0));
    r.take(2 + 32)?; // legacy_version, random
    let session_id = usize::from(r.u8()?);
    r.take(session_id)?;
    let suites = usize::from(r.u16()?);
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    let extensions_len = usize::from(r.u16()?);
    Some(r.0.get(..extensions_len).unwrap_or(r.0))
}

fn read_extensions(mut block: &[u8], hello: &mut ClientHello) {
    for _ in 0..MAX_EXTENSIONS {
        let Some(head) = block.first_chunk::<4>() else {
            return;
        };
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        // A cut-off extension ends the walk: the rest was not captured.
        let Some((extension, rest)) = block.split_at_checked(4 + len) else {
            return;
        };
        block = rest;
        if kind != EXT_SERVER_NAME && kind != EXT_ALPN {
            continue;
        }
        match tls_parser::parse_tls_extension(extension) {
            Ok((_, TlsExtension::SNI(names))) if hello.sni.is_none() => {
                hello.sni = names
                    .iter()
                    .find(|(kind, _)| *kind == SNIType::HostName)
                    .and_then(|(_, name)| Hostname::parse(name));
            }
            Ok((_, TlsExtension::ALPN(protocols))) if hello.alpn.is_empty() => {
                hello.alpn = protocols
                    .iter()
                    .filter(|p| !p.is_empty())
                    .take(MAX_ALPN)
                    .map(|p| sanitise_alpn(p))
                    .collect();
            }
            _ => {}
        }
    }
}

fn sanitise_alpn(protocol: &[u8]) -> String {
    protocol
        .iter()
        .take(MAX_ALPN_LEN)
        .map(|&b| match b.to_ascii_lowercase() {
            c @ (b'a'..=b'z' | b'0'..=b'9' | b'.' | b'/' | b'-' | b'_') => char::from(c),
            _ => '_',
        })
        .collect()
}

/// A bounds-checked big-endian reader over a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    }
}

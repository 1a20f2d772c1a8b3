use tls_parser::{TlsExtension, TlsMessage, TlsMessageHandshake};

use crate::dest::client_hello::{MAX_ALPN, MAX_ALPN_LEN, is_tls_client_hello, parse_client_hello};

/// A client, the first bytes it sent, and the SNI and ALPN they carry.
type Fixture = (
    &'static str,
    &'static [u8],
    Option<&'static str>,
    &'static [&'static str],
);

/// First bytes sent by real clients on loopback (`testdata/README.md` says
/// how they were captured).
const FIXTURES: [Fixture; 4] = [
    (
        "openssl s_client",
        include_bytes!("../testdata/openssl_s_client.bin"),
        Some("api.model.test"),
        &["h2", "http/1.1"],
    ),
    (
        "openssl s_client -noservername",
        include_bytes!("../testdata/openssl_no_sni.bin"),
        None,
        &[],
    ),
    (
        "python ssl",
        include_bytes!("../testdata/python_ssl.bin"),
        Some("telemetry.vendor.test"),
        &["http/1.1"],
    ),
    (
        "node tls",
        include_bytes!("../testdata/node_tls.bin"),
        Some("api.model.test"),
        &["h2", "http/1.1"],
    ),
];

#[test]
fn real_client_hellos() {
    for (client, bytes, sni, alpn) in FIXTURES {
        assert!(is_tls_client_hello(bytes), "{client}");
        let hello = parse_client_hello(bytes).unwrap_or_else(|| panic!("{client}"));
        assert_eq!(hello.sni.as_ref().map(|h| h.as_str()), sni, "{client}");
        assert_eq!(hello.alpn, alpn, "{client}");
    }
}

/// Where tls-parser's strict, whole-record parse succeeds, the walker agrees.
#[test]
fn agrees_with_tls_parser_on_complete_hellos() {
    for (client, bytes, _, _) in FIXTURES {
        let (_, record) = tls_parser::parse_tls_plaintext(bytes).expect(client);
        let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello))) =
            record.msg.first()
        else {
            panic!("{client}: not a ClientHello");
        };
        let (_, extensions) =
            tls_parser::parse_tls_client_hello_extensions(hello.ext.unwrap()).unwrap();
        let mut sni = None;
        let mut alpn = Vec::new();
        for extension in extensions {
            match extension {
                TlsExtension::SNI(names) => {
                    sni = Some(String::from_utf8(names[0].1.to_vec()).unwrap())
                }
                TlsExtension::ALPN(protocols) => {
                    alpn = protocols
                        .iter()
                        .map(|p| String::from_utf8(p.to_vec()).unwrap())
                        .collect()
                }
                _ => {}
            }
        }
        let ours = parse_client_hello(bytes).unwrap();
        assert_eq!(ours.sni.map(|h| h.as_str().to_owned()), sni, "{client}");
        assert_eq!(ours.alpn, alpn, "{client}");
    }
}

#[test]
fn truncated_capture_has_sni_once_its_extension_is_in() {
    let (_, bytes, _, _) = FIXTURES[0];
    let name_end = find(bytes, b"api.model.test").unwrap() + b"api.model.test".len();
    for len in 0..bytes.len() {
        let hello = parse_client_hello(&bytes[..len]);
        if len < 6 {
            assert_eq!(hello, None);
            continue;
        }
        let sni = hello.unwrap().sni;
        assert_eq!(sni.is_some(), len >= name_end, "cut at {len}");
    }
}

#[test]
fn client_hello_split_over_two_records() {
    let (_, bytes, _, _) = FIXTURES[2];
    let handshake = &bytes[5..];
    let name_at = find(bytes, b"telemetry.vendor.test").unwrap() - 5;
    for split in [1, 40, name_at, name_at + 5, handshake.len() - 1] {
        let mut two = Vec::new();
        for part in [&handshake[..split], &handshake[split..]] {
            two.extend_from_slice(&[0x16, 0x03, 0x01]);
            two.extend_from_slice(&u16::try_from(part.len()).unwrap().to_be_bytes());
            two.extend_from_slice(part);
        }
        let hello = parse_client_hello(&two).unwrap();
        assert_eq!(
            hello.sni.unwrap().as_str(),
            "telemetry.vendor.test",
            "split at {split}"
        );
        assert_eq!(hello.alpn, ["http/1.1"]);
        // Cut one byte before the name ends: a ClientHello without SNI.
        let name_end = name_at + "telemetry.vendor.test".len();
        if split < name_end {
            let cut = &two[..10 + name_end - 1];
            assert_eq!(
                parse_client_hello(cut).unwrap().sni,
                None,
                "split at {split}"
            );
        }
    }
}

#[test]
fn garbage_is_not_tls() {
    let samples: [&[u8]; 7] = [
        b"",
        b"\x16\x03",
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
        b"\x16\x03\x01\x00\x00\x01",             // empty record
        b"\x16\x03\x03\x00\x30\x02\x00\x00\x2c", // ServerHello
        b"\x17\x03\x03\x00\x10\x01\x00\x00\x0c", // application data
        b"\x16\x07\x01\x00\x10\x01\x00\x00\x0c", // not version 3.x
    ];
    for bytes in samples {
        assert!(!is_tls_client_hello(bytes), "{bytes:?}");
        assert_eq!(parse_client_hello(bytes), None);
    }
}

/// A minimal ClientHello record with the given extensions.
fn hello_with(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut ext = Vec::new();
    for (kind, body) in extensions {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        ext.extend_from_slice(body);
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x11; 32]); // random
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]); // session id, suites, compression
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

fn sni(name: &[u8]) -> (u16, Vec<u8>) {
    let mut entry = vec![0];
    entry.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
    entry.extend_from_slice(name);
    let mut body = u16::try_from(entry.len()).unwrap().to_be_bytes().to_vec();
    body.extend_from_slice(&entry);
    (0, body)
}

fn alpn(protocols: &[&[u8]]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for p in protocols {
        list.push(u8::try_from(p.len()).unwrap());
        list.extend_from_slice(p);
    }
    let mut body = u16::try_from(list.len()).unwrap().to_be_bytes().to_vec();
    body.extend_from_slice(&list);
    (16, body)
}

#[test]
fn hostile_sni_is_dropped() {
    for name in [
        &b"evil\"} 1\n#"[..],
        b"a\0b.test",
        b"a..b",
        b"203.0.113.7",
        &[b'a'; 300],
    ] {
        let hello = parse_client_hello(&hello_with(&[sni(name)])).unwrap();
        assert_eq!(hello.sni, None, "{name:?}");
    }
    let hello = parse_client_hello(&hello_with(&[sni(b"API.Model.Test.")])).unwrap();
    assert_eq!(hello.sni.unwrap().as_str(), "api.model.test");
}

#[test]
fn alpn_is_sanitised_and_bounded() {
    let long = [b'x'; 200];
    let many: Vec<&[u8]> = vec![b"p"; 20];
    let hello = parse_client_hello(&hello_with(&[alpn(&[
        b"H2",
        b"a\"b{c}\n",
        &long,
        b"acme-tls/1",
    ])]))
    .unwrap();
    assert_eq!(hello.alpn[..2], ["h2", "a_b_c__"]);
    assert_eq!(hello.alpn[2], "x".repeat(MAX_ALPN_LEN));
    assert_eq!(hello.alpn[3], "acme-tls/1");
    let hello = parse_client_hello(&hello_with(&[alpn(&many)])).unwrap();
    assert_eq!(hello.alpn.len(), MAX_ALPN);
}

#[test]
fn malformed_extension_lengths_do_not_panic() {
    let mut bytes = hello_with(&[sni(b"api.model.test"), alpn(&[b"h2"])]);
    for i in 5..bytes.len() {
        let saved = bytes[i];
        for byte in [0x00, 0x01, 0x7f, 0xff] {
            bytes[i] = byte;
            let _ = parse_client_hello(&bytes);
        }
        bytes[i] = saved;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

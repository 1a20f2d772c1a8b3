use loona_hpack::Encoder;

use crate::dest::h2::{CLIENT_PREFACE, H2Conn, H2Request, MAX_HEADER_BLOCK, MAX_TABLE_SIZE};
use crate::dest::http::{MAX_PATH_LEN, Method};

/// What curl and node wrote on a cleartext HTTP/2 connection with prior
/// knowledge (`testdata/README.md` says how they were made).
const CURL: &[u8] = include_bytes!("../testdata/h2_curl.bin");
const NODE: &[u8] = include_bytes!("../testdata/h2_node.bin");

type Fields<'a> = (Option<Method>, Option<&'a str>, Option<&'a str>);

fn fields(r: &H2Request) -> Fields<'_> {
    (
        r.method,
        r.authority.as_ref().map(|h| h.as_str()),
        r.path.as_deref(),
    )
}

const HOST: Option<&str> = Some("api.anthropic.com");
const COUNT_ONLY: Fields<'static> = (None, None, None);

fn node_expected() -> Vec<Fields<'static>> {
    vec![
        (Some(Method::Post), HOST, Some("/v1/messages")),
        (Some(Method::Post), HOST, Some("/api/event_logging/batch")),
        (Some(Method::Get), HOST, Some("/v1/models")),
    ]
}

fn curl_expected() -> Vec<Fields<'static>> {
    vec![(Some(Method::Post), HOST, Some("/v1/messages"))]
}

/// Feeds whole (uncut) writes.
fn run<'a>(writes: impl IntoIterator<Item = &'a [u8]>) -> (H2Conn, Vec<H2Request>) {
    let mut conn = H2Conn::new();
    let mut out = Vec::new();
    for w in writes {
        out.extend(conn.feed(w, false));
    }
    (conn, out)
}

fn all_fields(requests: &[H2Request]) -> Vec<Fields<'_>> {
    requests.iter().map(fields).collect()
}

/// The preface, then each frame whole.
fn split_frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = vec![&bytes[..CLIENT_PREFACE.len()]];
    let mut at = CLIENT_PREFACE.len();
    while at < bytes.len() {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        out.push(&bytes[at..at + 9 + len]);
        at += 9 + len;
    }
    out
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn block(encoder: &mut Encoder<'_>, headers: &[(&str, &str)]) -> Vec<u8> {
    encoder.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

fn post(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "POST".into()),
        (":scheme", "https".into()),
        (":authority", "api.model.test".into()),
        (":path", path.into()),
        ("authorization", "Bearer secret".into()),
    ]
}

fn encode(encoder: &mut Encoder<'_>, headers: &[(&'static str, String)]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    block(encoder, &pairs)
}

const SETTINGS: &[u8] = &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];

#[test]
fn curl_request_head() {
    let (conn, out) = run([CURL]);
    assert_eq!(all_fields(&out), curl_expected());
    assert!(conn.synced() && conn.hpack_ok());
}

#[test]
fn node_requests_use_the_dynamic_table() {
    let (conn, out) = run([NODE]);
    assert_eq!(all_fields(&out), node_expected());
    assert!(conn.synced() && conn.hpack_ok());

    // Without the first request's block, the later ones refer to table
    // entries that are not there: counted, not decoded.
    let frames = split_frames(NODE);
    let first_headers = frames.iter().position(|f| f[3] == 1).unwrap();
    let rest = frames
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != first_headers)
        .map(|(_, f)| *f);
    let (conn, out) = run(rest);
    assert_eq!(all_fields(&out), [COUNT_ONLY, COUNT_ONLY]);
    assert!(conn.synced() && !conn.hpack_ok());
}

#[test]
fn any_split_into_two_writes() {
    for (bytes, expected) in [(CURL, curl_expected()), (NODE, node_expected())] {
        for at in 0..=bytes.len() {
            let (conn, out) = run([&bytes[..at], &bytes[at..]]);
            assert_eq!(all_fields(&out), expected, "split at {at}");
            assert!(conn.synced() && conn.hpack_ok());
        }
    }
}

#[test]
fn one_byte_at_a_time() {
    let (_, out) = run(NODE.chunks(1));
    assert_eq!(all_fields(&out), node_expected());
}

#[test]
fn uncaptured_frame_tails_are_skipped_by_length() {
    // Each frame its own write, captured up to 4096 bytes: the 5000-byte
    // DATA frame is cut, its tail skipped.
    let mut conn = H2Conn::new();
    let mut out = Vec::new();
    for w in split_frames(NODE) {
        out.extend(conn.feed_len(&w[..w.len().min(4096)], w.len()));
    }
    assert_eq!(all_fields(&out), node_expected());
    assert!(conn.synced() && conn.hpack_ok());

    // HEADERS followed by its DATA in one write: the cut falls in the DATA.
    let frames = split_frames(NODE);
    let mut writes: Vec<Vec<u8>> = Vec::new();
    for f in &frames {
        match writes.last_mut() {
            Some(last) if f[3] == 0 && last[3] == 1 => last.extend_from_slice(f),
            _ => writes.push(f.to_vec()),
        }
    }
    let mut conn = H2Conn::new();
    let mut out = Vec::new();
    for w in &writes {
        out.extend(conn.feed_len(&w[..w.len().min(4096)], w.len()));
    }
    assert_eq!(all_fields(&out), node_expected());
    assert!(conn.synced());
}

#[test]
fn cut_header_block_counts_and_breaks_hpack() {
    // 64-byte captures cut the 121-byte first HEADERS: that request and the
    // ones after it (whose table it fed) are counted only.
    let mut conn = H2Conn::new();
    let mut out = Vec::new();
    for w in split_frames(NODE) {
        out.extend(conn.feed_len(&w[..w.len().min(64)], w.len()));
    }
    assert_eq!(all_fields(&out), [COUNT_ONLY; 3]);
    assert!(conn.synced() && !conn.hpack_ok());
}

#[test]
fn unknown_gap_loses_sync() {
    // A truncated write of unknown length.
    let mut conn = H2Conn::new();
    let frames = split_frames(NODE);
    let data = frames.iter().position(|f| f[3] == 0).unwrap();
    let mut out = Vec::new();
    for f in &frames[..data] {
        out.extend(conn.feed(f, false));
    }
    assert_eq!(out.len(), 1);
    assert!(conn.feed(&frames[data][..4096], true).is_empty());
    assert!(!conn.synced() && !conn.hpack_ok());
    for f in &frames[data + 1..] {
        assert!(conn.feed(f, false).is_empty());
    }

    // A known gap that runs past the frame into unseen frame headers.
    let mut conn = H2Conn::new();
    let mut out = Vec::new();
    for f in &frames[..data] {
        out.extend(conn.feed(f, false));
    }
    let rest = frames[data..].concat();
    out.extend(conn.feed_len(&rest[..4096], rest.len()));
    assert_eq!(out.len(), 1);
    assert!(!conn.synced());
}

#[test]
fn preface_in_pieces_and_not_a_preface() {
    let (_, out) = run([&CURL[..5], &CURL[5..24], &CURL[24..]]);
    assert_eq!(all_fields(&out), curl_expected());

    let mut conn = H2Conn::new();
    assert!(
        conn.feed(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", false)
            .is_empty()
    );
    assert!(!conn.synced());
    assert!(conn.feed(&CURL[24..], false).is_empty());

    // A frame stream without the preface (attached mid-connection).
    let mut conn = H2Conn::new();
    assert!(conn.feed(&CURL[24..], false).is_empty());
    assert!(!conn.synced());
}

#[test]
fn padded_priority_continuation_and_trailers() {
    let mut enc = Encoder::new();
    let head = encode(&mut enc, &post("/v1/messages?beta=true#x"));
    let (a, b) = head.split_at(head.len() / 2);

    let mut padded = vec![3u8];
    padded.extend_from_slice(&[0x80, 0, 0, 0, 15]); // dependency, weight
    padded.extend_from_slice(a);
    padded.extend_from_slice(&[0, 0, 0]);
    let trailers = block(&mut enc, &[("x-checksum", "abc")]);
    let second = encode(&mut enc, &post("/api/event_logging/batch"));

    let bytes = [
        CLIENT_PREFACE,
        SETTINGS,
        &frame(0x1, 0x8 | 0x20, 1, &padded),
        &frame(0x9, 0x4, 1, b),
        &frame(0x0, 0x0, 1, b"{}"),
        // An extension frame and a PRIORITY frame between requests.
        &frame(0x10, 0x0, 0, b"whatever"),
        &frame(0x2, 0x0, 3, &[0, 0, 0, 0, 16]),
        // Trailers: HEADERS on an open stream, not a request.
        &frame(0x1, 0x1 | 0x4, 1, &trailers),
        &frame(0x1, 0x4 | 0x1, 3, &second),
        &frame(0x8, 0x0, 0, &[0, 1, 0, 0]),
    ]
    .concat();
    let host = Some("api.model.test");
    let expected = [
        (Some(Method::Post), host, Some("/v1/messages")),
        (Some(Method::Post), host, Some("/api/event_logging/batch")),
    ];
    for at in 0..=bytes.len() {
        let (conn, out) = run([&bytes[..at], &bytes[at..]]);
        assert_eq!(all_fields(&out), expected, "split at {at}");
        assert!(conn.synced() && conn.hpack_ok());
    }
}

#[test]
fn frames_a_client_cannot_send_lose_sync() {
    let mut enc = Encoder::new();
    let head = encode(&mut enc, &post("/x"));
    let (a, b) = head.split_at(4);
    let cases: [Vec<u8>; 6] = [
        // Another frame inside a header block.
        [
            frame(0x1, 0x0, 1, a),
            frame(0x0, 0x0, 1, b"x"),
            frame(0x9, 0x4, 1, b),
        ]
        .concat(),
        // CONTINUATION of another stream, or of nothing.
        [frame(0x1, 0x0, 1, a), frame(0x9, 0x4, 3, b)].concat(),
        frame(0x9, 0x4, 1, b),
        // Server-only and malformed frames.
        frame(0x1, 0x4, 2, &head),
        frame(0x5, 0x4, 1, &head),
        frame(0x4, 0x0, 0, &[0; 5]),
    ];
    for case in cases {
        let mut conn = H2Conn::new();
        let out = conn.feed(&[CLIENT_PREFACE, &case].concat(), false);
        assert!(out.is_empty() && !conn.synced(), "{case:02x?}");
    }

    // Padding longer than the payload.
    let mut conn = H2Conn::new();
    let mut padded = vec![200u8];
    padded.extend_from_slice(&head);
    let out = conn.feed(
        &[CLIENT_PREFACE, &frame(0x1, 0xc, 1, &padded)].concat(),
        false,
    );
    assert!(out.is_empty() && !conn.synced());
}

#[test]
fn table_size_and_block_size_are_bounded() {
    // A dynamic table size update (RFC 7541 6.3) to `size`.
    fn size_update(size: usize) -> Vec<u8> {
        let mut out = vec![0x3f];
        let mut rest = size - 31;
        while rest >= 128 {
            out.push(0x80 | (rest % 128) as u8);
            rest /= 128;
        }
        out.push(rest as u8);
        out
    }
    let host = Some("api.model.test");
    for (size, expected) in [
        (
            MAX_TABLE_SIZE,
            [
                (Some(Method::Post), host, Some("/a")),
                (Some(Method::Post), host, Some("/b")),
            ],
        ),
        (MAX_TABLE_SIZE + 1, [COUNT_ONLY; 2]),
    ] {
        let mut enc = Encoder::new();
        let mut first = size_update(size);
        first.extend(encode(&mut enc, &post("/a")));
        let next = encode(&mut enc, &post("/b"));
        let bytes = [
            CLIENT_PREFACE,
            &frame(0x1, 0x5, 1, &first),
            &frame(0x1, 0x5, 3, &next),
        ]
        .concat();
        let (conn, out) = run([&bytes[..]]);
        assert_eq!(all_fields(&out), expected, "table size {size}");
        assert!(conn.synced());
        assert_eq!(conn.hpack_ok(), size <= MAX_TABLE_SIZE);
    }

    // A header block larger than kept, over CONTINUATION frames.
    let mut enc = Encoder::new();
    let mut headers = post("/big");
    headers.push(("cookie", "c".repeat(MAX_HEADER_BLOCK)));
    let head = encode(&mut enc, &headers);
    let (a, b) = head.split_at(8000);
    let bytes = [
        CLIENT_PREFACE,
        &frame(0x1, 0x1, 1, a),
        &frame(0x9, 0x4, 1, b),
        &frame(0x1, 0x5, 3, &encode(&mut enc, &post("/c"))),
    ]
    .concat();
    let (conn, out) = run(bytes.chunks(4096));
    assert_eq!(all_fields(&out), [COUNT_ONLY; 2]);
    assert!(conn.synced() && !conn.hpack_ok());
}

#[test]
fn authority_method_and_path_forms() {
    let cases: [(&[(&str, &str)], Fields<'static>); 7] = [
        (
            &[
                (":method", "GET"),
                ("host", "Api.Model.Test:8443"),
                (":path", "/p"),
            ],
            (Some(Method::Get), Some("api.model.test"), Some("/p")),
        ),
        (
            &[
                (":method", "BREW"),
                (":authority", "user:pw@h.test:443"),
                (":path", "/a b\"c"),
            ],
            (Some(Method::Other), Some("h.test"), Some("/a_b_c")),
        ),
        (
            &[
                (":method", "POST"),
                (":authority", "203.0.113.5:443"),
                (":path", "/x"),
            ],
            (Some(Method::Post), None, Some("/x")),
        ),
        (
            // `host` does not stand in for an `:authority` that is there.
            &[
                (":authority", "203.0.113.5"),
                ("host", "h.test"),
                (":path", "/x"),
            ],
            (None, None, Some("/x")),
        ),
        (
            &[(":method", "CONNECT"), (":authority", "[::1]:443")],
            (Some(Method::Connect), None, None),
        ),
        (
            &[(":authority", "evil\"} 1\n#.test"), (":path", "*")],
            (None, None, Some("*")),
        ),
        (&[], (None, None, None)),
    ];
    for (headers, expected) in cases {
        let mut enc = Encoder::new();
        let bytes = [
            CLIENT_PREFACE,
            &frame(0x1, 0x5, 1, &block(&mut enc, headers)),
        ]
        .concat();
        let (conn, out) = run([&bytes[..]]);
        assert_eq!(all_fields(&out), [expected], "{headers:?}");
        assert!(conn.hpack_ok());
    }

    let long = format!("/{}", "a".repeat(1000));
    let mut enc = Encoder::new();
    let head = block(&mut enc, &[(":method", "GET"), (":path", &long)]);
    let (_, out) = run([&[CLIENT_PREFACE, &frame(0x1, 0x5, 1, &head)].concat()[..]]);
    assert_eq!(out[0].path.as_ref().map(String::len), Some(MAX_PATH_LEN));
}

#[test]
fn partial_write_reads_only_what_was_written() {
    // The write call took 30 of the 40 bytes captured from its buffer; the
    // rest is written again, whole, next.
    let mut conn = H2Conn::new();
    assert!(conn.feed_len(&CURL[..40], 30).is_empty());
    let out = conn.feed_len(&CURL[30..], CURL.len() - 30);
    assert_eq!(all_fields(&out), curl_expected());
}

#[test]
fn hostile_bytes_never_panic() {
    // xorshift: the same bytes on every run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..2000 {
        let len = (next() % 300) as usize;
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Random header blocks in well-formed frames reach the decoder (every
        // HPACK representation, Huffman strings, indices, size updates); raw
        // junk after the preface exercises the frame checks.
        let bytes = if round % 2 == 0 {
            [
                CLIENT_PREFACE,
                &frame(0x1, 0x5, 1, &junk),
                &frame(0x1, 0x5, 3, &junk),
            ]
            .concat()
        } else {
            [CLIENT_PREFACE, &junk].concat()
        };
        let mut conn = H2Conn::new();
        let mut at = 0;
        while at < bytes.len() {
            let n = 1 + (next() % 64) as usize;
            let end = bytes.len().min(at + n);
            let written = end - at + (next() % 4) as usize;
            let out = conn.feed_len(&bytes[at..end], written);
            assert!(out.len() <= 2);
            at = end;
        }
    }
}

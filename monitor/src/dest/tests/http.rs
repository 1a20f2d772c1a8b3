use crate::dest::http::{HttpRequest, HttpStart, MAX_PATH_LEN, Method, parse_request};

fn request(bytes: &[u8]) -> HttpRequest {
    match parse_request(bytes) {
        Some(HttpStart::Request(r)) => r,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

fn host(r: &HttpRequest) -> Option<&str> {
    r.host.as_ref().map(|h| h.as_str())
}

#[test]
fn complete_request() {
    let r = request(b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: API.Model.Test:8080\r\nContent-Length: 2\r\n\r\n{}");
    assert_eq!(r.method, Method::Post);
    assert_eq!(host(&r), Some("api.model.test"));
    assert_eq!(r.path, "/v1/messages");
}

#[test]
fn partial_head_yields_complete_lines() {
    let r = request(b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nhost: api.model.test\r\nAccept: text/ht");
    assert_eq!(
        (r.method, host(&r), r.path.as_str()),
        (Method::Get, Some("api.model.test"), "/x")
    );

    // The Host line itself is cut: no host yet.
    let r = request(b"GET /x HTTP/1.1\r\nHost: api.mod");
    assert_eq!((r.method, host(&r)), (Method::Get, None));

    // Only the request line.
    let r = request(b"PUT /y HTTP/1.1\r\n");
    assert_eq!(
        (r.method, host(&r), r.path.as_str()),
        (Method::Put, None, "/y")
    );
}

#[test]
fn partial_request_line_needs_a_known_method() {
    let r = request(b"DELETE /v1/fi");
    assert_eq!(
        (r.method, host(&r), r.path.as_str()),
        (Method::Delete, None, "")
    );
    let r = request(b"PATCH /a/b HTT");
    assert_eq!((r.method, r.path.as_str()), (Method::Patch, "/a/b"));
    assert_eq!(parse_request(b"GE"), None);
    assert_eq!(parse_request(b"HELLO world"), None);
    assert_eq!(request(b"BREW /pot HTTP/1.1\r\n\r\n").method, Method::Other);
}

#[test]
fn absolute_form_and_connect() {
    let r = request(
        b"GET http://user:pw@API.model.test:80/x?secret=1 HTTP/1.1\r\nHost: other.test\r\n\r\n",
    );
    assert_eq!((host(&r), r.path.as_str()), (Some("api.model.test"), "/x"));
    let r = request(b"GET https://api.model.test HTTP/1.1\r\n\r\n");
    assert_eq!((host(&r), r.path.as_str()), (Some("api.model.test"), ""));

    let r = request(b"CONNECT api.model.test:443 HTTP/1.1\r\nHost: api.model.test:443\r\n\r\n");
    assert_eq!(
        (r.method, host(&r), r.path.as_str()),
        (Method::Connect, Some("api.model.test"), "")
    );
}

#[test]
fn hostile_or_literal_hosts_are_dropped() {
    for value in [
        &b"203.0.113.5:80"[..],
        b"[2001:db8::1]:80",
        b"evil\"} 1",
        b"a..b",
        b"x.test:https",
        b"",
    ] {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n\r\n");
        if let Some(HttpStart::Request(r)) = parse_request(&bytes) {
            assert_eq!(r.host, None, "{value:?}");
        }
    }
}

#[test]
fn path_is_sanitised_and_bounded() {
    let r = request(b"GET /a\"b/{c}/%41|^ HTTP/1.1\r\n\r\n");
    assert_eq!(r.path, "/a_b/_c_/%41__");
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(1000));
    assert_eq!(request(long.as_bytes()).path.len(), MAX_PATH_LEN);
    assert_eq!(request(b"OPTIONS * HTTP/1.1\r\n\r\n").path, "*");
}

#[test]
fn path_loses_query_and_fragment() {
    let r = request(b"POST /v1/messages?beta=true&key=secret#frag HTTP/1.1\r\n\r\n");
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(request(b"GET /a#frag HTTP/1.1\r\n\r\n").path, "/a");
}

#[test]
fn http2_preface() {
    assert_eq!(
        parse_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"),
        Some(HttpStart::Http2Preface)
    );
    assert_eq!(
        parse_request(b"PRI * HTTP/2"),
        Some(HttpStart::Http2Preface)
    );
}

#[test]
fn not_http() {
    for bytes in [
        &b""[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"\x00\x01\x02",
        b"SSH-2.0-OpenSSH_9.6\r\n",
    ] {
        assert_eq!(parse_request(bytes), None, "{bytes:?}");
    }
}

#[test]
fn many_headers_keep_the_request_line() {
    let mut bytes = b"GET /many HTTP/1.1\r\n".to_vec();
    for _ in 0..100 {
        bytes.extend_from_slice(b"X-A: b\r\n");
    }
    bytes.extend_from_slice(b"Host: api.model.test\r\n\r\n");
    let r = request(&bytes);
    assert_eq!(
        (r.method, r.path.as_str(), host(&r)),
        (Method::Get, "/many", None)
    );
}

#[test]
fn every_prefix_and_byte_flip_is_survived() {
    let bytes = b"GET http://a.test/p?q HTTP/1.1\r\nHost: api.model.test:8080\r\nX: y\r\n\r\n";
    for len in 0..bytes.len() {
        let _ = parse_request(&bytes[..len]);
    }
    let mut mutated = bytes.to_vec();
    for i in 0..bytes.len() {
        for byte in [0x00, b'\n', b'\r', b' ', b':', 0xff] {
            mutated[i] = byte;
            let _ = parse_request(&mutated);
        }
        mutated[i] = bytes[i];
    }
}

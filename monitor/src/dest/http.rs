//! The first HTTP request on a plain-text connection: method, host and path.
//!
//! The head is parsed with `httparse`. It only hands out headers once the
//! whole head (up to the empty line) is there, but our capture of the first
//! bytes may end inside the head. So a partial head is cut after its last
//! complete line and closed with an empty line before parsing again: every
//! complete header line, the Host line in particular, is then read by
//! httparse itself.

use super::hostname::Hostname;

/// Longest path kept (longer ones are cut).
pub const MAX_PATH_LEN: usize = 256;
/// Header lines read; a head with more yields no host (the DNS name is used).
const MAX_HEADERS: usize = 64;
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Options,
    Connect,
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Other => "OTHER",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    /// From an absolute-form target (`GET http://host/ HTTP/1.1`, as sent to
    /// proxies) or the authority of a CONNECT, else the Host header; without
    /// the port. `None` if absent, not yet captured, or not a host name (IP
    /// literals included).
    pub host: Option<Hostname>,
    /// The target's path without query string or fragment, at most
    /// [`MAX_PATH_LEN`] bytes, every byte outside RFC 3986 `pchar` and `/`
    /// replaced by `_`. Empty for CONNECT and when the target was not
    /// captured.
    pub path: String,
}

/// What the first bytes of a plain-text connection were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpStart {
    Request(HttpRequest),
    /// HTTP/2 with prior knowledge (`PRI * HTTP/2.0` preface): the host is in
    /// a HEADERS frame we do not parse.
    Http2Preface,
}

/// The HTTP request (or HTTP/2 preface) at the start of `bytes`, or `None`
/// if they do not start with one.
pub fn parse_request(bytes: &[u8]) -> Option<HttpStart> {
    let preface = bytes.len().min(HTTP2_PREFACE.len());
    if preface >= b"PRI * HTTP/2".len() && bytes[..preface] == HTTP2_PREFACE[..preface] {
        return Some(HttpStart::Http2Preface);
    }

    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => return Some(HttpStart::Request(from_head(&request))),
        Ok(httparse::Status::Partial) => {}
        Err(httparse::Error::TooManyHeaders) => return request_line_only(bytes),
        Err(_) => return None,
    }
    if request.version.is_none() {
        // Not even the request line is complete: trust only a known method,
        // since any "token space" prefix gets this far.
        let method = Method::from_token(request.method?);
        return (method != Method::Other).then(|| {
            HttpStart::Request(HttpRequest {
                method,
                host: None,
                path: request
                    .path
                    .map(|p| sanitise_path(p.as_bytes()))
                    .unwrap_or_default(),
            })
        });
    }

    // Close the head after its last complete line and parse that.
    let last_line_end = bytes.iter().rposition(|&b| b == b'\n')?;
    let mut closed = Vec::with_capacity(last_line_end + 3);
    closed.extend_from_slice(&bytes[..=last_line_end]);
    closed.extend_from_slice(b"\r\n");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(&closed) {
        Ok(httparse::Status::Complete(_)) => Some(HttpStart::Request(from_head(&request))),
        // The cut landed inside a line httparse rejects once closed (for
        // example an obs-fold continuation): keep what the request line says.
        _ => request_line_only(bytes),
    }
}

/// The request line alone, for heads whose header lines cannot be read.
fn request_line_only(bytes: &[u8]) -> Option<HttpStart> {
    let mut request = httparse::Request::new(&mut []);
    match request.parse(bytes) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) if request.version.is_some() => {
            // No headers: the host can only come from the target.
            Some(HttpStart::Request(from_head(&request)))
        }
        _ => None,
    }
}

fn from_head(request: &httparse::Request<'_, '_>) -> HttpRequest {
    let method = Method::from_token(request.method.unwrap_or_default());
    let target = request.path.unwrap_or_default();
    if method == Method::Connect {
        // Authority form: `host:port`.
        return HttpRequest {
            method,
            host: host_without_port(target.as_bytes()),
            path: String::new(),
        };
    }
    let (target_host, path) = split_absolute_form(target);
    let host = target_host.and_then(host_without_port).or_else(|| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| host_without_port(h.value.trim_ascii()))
    });
    HttpRequest {
        method,
        host,
        path: sanitise_path(path.as_bytes()),
    }
}

/// `http://host:port/path` -> (Some("host:port"), "/path"); an origin-form
/// target is all path.
fn split_absolute_form(target: &str) -> (Option<&[u8]>, &str) {
    let scheme = ["http://", "https://"].into_iter().find(|scheme| {
        target
            .get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    });
    let Some(rest) = scheme.and_then(|scheme| target.get(scheme.len()..)) else {
        return (None, target);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    // Drop any `user:password@` (never let credentials reach the log).
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (Some(host.as_bytes()), path)
}

/// `host` or `host:port` -> the host name; IP literals and bracketed IPv6
/// give `None`.
fn host_without_port(value: &[u8]) -> Option<Hostname> {
    let host = match value.iter().rposition(|&b| b == b':') {
        Some(colon) if value[colon + 1..].iter().all(u8::is_ascii_digit) => &value[..colon],
        Some(_) => return None,
        None => value,
    };
    Hostname::parse(host)
}

/// A request target's path as agentmon keeps it (HTTP/1 and HTTP/2): no
/// query string or fragment (tokens, user data), at most [`MAX_PATH_LEN`]
/// bytes, bytes outside RFC 3986's path characters replaced by `_`.
pub(crate) fn sanitise_path(target: &[u8]) -> String {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    target[..end]
        .iter()
        .take(MAX_PATH_LEN)
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%".contains(&b) {
                char::from(b)
            } else {
                '_'
            }
        })
        .collect()
}

//! HTTP/2 request heads from what a client writes on one connection.
//!
//! The TLS probes hand us each plaintext write the client made, cut to the
//! first bytes the per-CPU buffer holds. HTTP/2 frames do not line up with
//! those writes: a frame header, a HEADERS payload or the client preface can
//! be split over several writes, and a long DATA frame is mostly never seen.
//! So [`H2Conn`] keeps, per connection, where it is in the frame stream and
//! how many bytes of the current frame are still to come, and skips what it
//! was not shown by length.
//!
//! Header blocks are HPACK-compressed against a dynamic table that the
//! client's encoder and the server's decoder build up over the whole
//! connection, so one decoder per connection sees every header block in
//! order, trailers included. Decoding uses `loona-hpack` (the maintained fork
//! of `hpack` that the loona server runs against h2spec): Huffman strings,
//! the dynamic table and size updates, errors instead of panics on bad input.
//! `h2` keeps its decoder private; `httlib-hpack` indexes past the end of a
//! truncated block.
//!
//! Two ways to lose information, and what each costs:
//! - A header block that was not captured whole (or is too large to keep)
//!   cannot be decoded, and the dynamic table may now miss its entries: the
//!   HPACK state is broken for good. Requests are still counted, with no
//!   fields, as long as the frames can be followed.
//! - Bytes of unknown length were not captured (a truncated write fed with
//!   [`H2Conn::feed`]), or bytes that cannot be a client's frames arrived:
//!   frame sync is lost for good and nothing more is returned
//!   ([`H2Conn::synced`] says so).
//!
//! Only `:method`, `:authority` (or `host`) and `:path` are kept; every other
//! header, credentials included, passes through the decoder's table and is
//! dropped.

use std::fmt;

use loona_hpack::Decoder;

use super::hostname::Hostname;
use super::http::{Method, sanitise_path};

/// What an HTTP/2 client writes first (RFC 9113 3.4).
pub const CLIENT_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest HPACK dynamic table accepted from a size update. The limit is the
/// server's SETTINGS_HEADER_TABLE_SIZE, which we do not see (it is read, not
/// written); clients start at the default 4096 and rarely go above it.
pub const MAX_TABLE_SIZE: usize = 64 * 1024;
/// Largest header block (HEADERS plus CONTINUATION payloads) kept for
/// decoding; a larger one is counted without fields.
pub const MAX_HEADER_BLOCK: usize = 16 * 1024;

const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// One request's head. All fields are `None` when the HPACK state could not
/// decode it (the request is still counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct H2Request {
    pub method: Option<Method>,
    /// `:authority`, else the `host` header, without port or user info;
    /// `None` for IP literals and anything that is not a host name.
    pub authority: Option<Hostname>,
    /// `:path` without query string or fragment, at most [`super::http::MAX_PATH_LEN`]
    /// bytes, every byte outside RFC 3986 `pchar` and `/` replaced by `_`
    /// (as for HTTP/1 heads).
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl Frame {
    fn parse(header: &[u8; FRAME_HEADER_LEN]) -> Frame {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *header;
        Frame {
            len: (usize::from(l0) << 16) | (usize::from(l1) << 8) | usize::from(l2),
            kind,
            flags,
            // The top bit is reserved and ignored (RFC 9113 4.1).
            stream: u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]),
        }
    }

    fn carries_header_block(self) -> bool {
        self.kind == HEADERS || self.kind == CONTINUATION
    }

    /// Whether a client may send this frame outside a header block (RFC 9113
    /// 6). A frame that fails this means we are not reading frames where the
    /// client wrote them.
    fn plausible(self) -> bool {
        let on_stream = self.stream != 0;
        match self.kind {
            DATA => on_stream,
            // Client-initiated streams are odd.
            HEADERS => self.stream % 2 == 1,
            PRIORITY => on_stream && self.len == 5,
            RST_STREAM => on_stream && self.len == 4,
            SETTINGS if self.flags & FLAG_ACK != 0 => !on_stream && self.len == 0,
            SETTINGS => !on_stream && self.len.is_multiple_of(6),
            // Servers push; clients never do.
            PUSH_PROMISE => false,
            PING => !on_stream && self.len == 8,
            GOAWAY => !on_stream && self.len >= 8,
            WINDOW_UPDATE => self.len == 4,
            // Only valid inside a header block, checked by the caller.
            CONTINUATION => false,
            // Extension frames (ALTSVC, ORIGIN, PRIORITY_UPDATE, ...) are
            // legal and ignored.
            _ => true,
        }
    }
}

/// Where the next byte belongs.
#[derive(Debug, Clone, Copy)]
enum Sync {
    Preface {
        matched: usize,
    },
    FrameHeader {
        buf: [u8; FRAME_HEADER_LEN],
        have: usize,
    },
    Payload {
        frame: Frame,
        remaining: usize,
    },
    Lost,
}

/// A header block still being assembled from HEADERS and CONTINUATION.
struct Block {
    stream: u32,
    /// Opens a new stream (a request), as opposed to trailers.
    request: bool,
    fragment: Vec<u8>,
    /// Every byte of the block was captured and kept.
    whole: bool,
}

/// One HTTP/2 connection's client-to-server byte stream.
pub struct H2Conn {
    sync: Sync,
    /// `None` once a header block could not be decoded.
    hpack: Option<Decoder<'static>>,
    block: Option<Block>,
    /// The captured payload of the current HEADERS or CONTINUATION frame.
    payload: Vec<u8>,
    payload_whole: bool,
    /// Highest stream a HEADERS frame opened.
    last_stream: u32,
}

impl Default for H2Conn {
    fn default() -> Self {
        H2Conn::new()
    }
}

impl fmt::Debug for H2Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Conn")
            .field("sync", &self.sync)
            .field("hpack_ok", &self.hpack_ok())
            .field("last_stream", &self.last_stream)
            .finish_non_exhaustive()
    }
}

impl H2Conn {
    /// A connection whose first write is still to come: it must start with
    /// the client preface.
    pub fn new() -> H2Conn {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
        H2Conn {
            sync: Sync::Preface { matched: 0 },
            hpack: Some(decoder),
            block: None,
            payload: Vec::new(),
            payload_whole: true,
            last_stream: 0,
        }
    }

    /// The next write: `write` is what was captured of it, `truncated` that
    /// the write was longer. The uncaptured rest has unknown length, so frame
    /// sync is lost after a truncated write unless the caller knows the
    /// length: prefer [`H2Conn::feed_len`]. Returns the requests whose head
    /// ended in this write.
    pub fn feed(&mut self, write: &[u8], truncated: bool) -> Vec<H2Request> {
        let len = (!truncated).then_some(write.len());
        self.feed_inner(write, len)
    }

    /// The next write of `len` bytes (what the write call returned), of
    /// which `captured` are the first. The uncaptured rest is skipped by
    /// length: frame sync holds when it lies inside one frame's payload.
    pub fn feed_len(&mut self, captured: &[u8], len: usize) -> Vec<H2Request> {
        self.feed_inner(captured, Some(len))
    }

    /// A write known to start at a frame boundary, after writes that were
    /// not seen (the kernel copies only writes that start with the preface or
    /// a HEADERS frame). Frame sync starts again here; the HPACK state is
    /// kept, unless a header block was cut off by the unseen writes.
    pub fn feed_at_frame(&mut self, write: &[u8], truncated: bool) -> Vec<H2Request> {
        if !matches!(self.sync, Sync::Preface { .. }) {
            if self.block.take().is_some() {
                self.hpack = None;
            }
            self.payload.clear();
            self.payload_whole = true;
            self.sync = Sync::FrameHeader {
                buf: [0; FRAME_HEADER_LEN],
                have: 0,
            };
        }
        self.feed(write, truncated)
    }

    /// Whether the frame stream is still followed. Once false, nothing more
    /// is returned for this connection.
    pub fn synced(&self) -> bool {
        !matches!(self.sync, Sync::Lost)
    }

    /// Whether request fields are still decoded (else requests are only
    /// counted).
    pub fn hpack_ok(&self) -> bool {
        self.hpack.is_some()
    }

    fn feed_inner(&mut self, captured: &[u8], len: Option<usize>) -> Vec<H2Request> {
        let mut out = Vec::new();
        // A partial write may return less than was captured from its buffer.
        let captured = &captured[..len.map_or(captured.len(), |l| l.min(captured.len()))];
        self.consume(captured, &mut out);
        match len {
            Some(len) => self.skip(len - captured.len(), &mut out),
            None => self.lose(),
        }
        out
    }

    fn consume(&mut self, mut bytes: &[u8], out: &mut Vec<H2Request>) {
        while !bytes.is_empty() {
            match self.sync {
                Sync::Lost => return,
                Sync::Preface { matched } => {
                    let want = &CLIENT_PREFACE[matched..];
                    let n = want.len().min(bytes.len());
                    if bytes[..n] != want[..n] {
                        return self.lose();
                    }
                    bytes = &bytes[n..];
                    self.sync = if matched + n == CLIENT_PREFACE.len() {
                        Sync::FrameHeader {
                            buf: [0; FRAME_HEADER_LEN],
                            have: 0,
                        }
                    } else {
                        Sync::Preface {
                            matched: matched + n,
                        }
                    };
                }
                Sync::FrameHeader { mut buf, have } => {
                    let n = (FRAME_HEADER_LEN - have).min(bytes.len());
                    buf[have..have + n].copy_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if have + n == FRAME_HEADER_LEN {
                        self.start_frame(Frame::parse(&buf), out);
                    } else {
                        self.sync = Sync::FrameHeader {
                            buf,
                            have: have + n,
                        };
                    }
                }
                Sync::Payload { frame, remaining } => {
                    let n = remaining.min(bytes.len());
                    if frame.carries_header_block() {
                        self.keep_payload(&bytes[..n]);
                    }
                    bytes = &bytes[n..];
                    self.advance(frame, remaining - n, out);
                }
            }
        }
    }

    /// Passes over `n` bytes that were written but not captured.
    fn skip(&mut self, n: usize, out: &mut Vec<H2Request>) {
        if n == 0 {
            return;
        }
        match self.sync {
            Sync::Payload { frame, remaining } if n <= remaining => {
                if frame.carries_header_block() {
                    self.payload_whole = false;
                }
                self.advance(frame, remaining - n, out);
            }
            // A frame header or the preface went unseen, or the gap runs
            // past the end of this frame into headers we did not see.
            _ => self.lose(),
        }
    }

    fn advance(&mut self, frame: Frame, remaining: usize, out: &mut Vec<H2Request>) {
        if remaining == 0 {
            self.end_frame(frame, out);
        } else {
            self.sync = Sync::Payload { frame, remaining };
        }
    }

    fn start_frame(&mut self, frame: Frame, out: &mut Vec<H2Request>) {
        match &self.block {
            // Inside a header block only its CONTINUATION frames may come.
            Some(block) if frame.kind != CONTINUATION || frame.stream != block.stream => {
                return self.lose();
            }
            Some(_) => {}
            None if !frame.plausible() => return self.lose(),
            None if frame.kind == HEADERS => {
                let request = frame.stream > self.last_stream;
                self.last_stream = self.last_stream.max(frame.stream);
                self.block = Some(Block {
                    stream: frame.stream,
                    request,
                    fragment: Vec::new(),
                    whole: true,
                });
            }
            None => {}
        }
        self.payload.clear();
        self.payload_whole = true;
        self.advance(frame, frame.len, out);
    }

    fn keep_payload(&mut self, bytes: &[u8]) {
        let kept = self.payload.len() + self.block.as_ref().map_or(0, |b| b.fragment.len());
        if kept + bytes.len() > MAX_HEADER_BLOCK {
            self.payload_whole = false;
        } else if self.payload_whole {
            self.payload.extend_from_slice(bytes);
        }
    }

    fn end_frame(&mut self, frame: Frame, out: &mut Vec<H2Request>) {
        self.sync = Sync::FrameHeader {
            buf: [0; FRAME_HEADER_LEN],
            have: 0,
        };
        if !frame.carries_header_block() {
            return;
        }
        let fragment = if !self.payload_whole {
            None
        } else if frame.kind == HEADERS {
            match header_fragment(&self.payload, frame.flags) {
                Some(fragment) => Some(fragment),
                // Padding longer than the payload: a connection error the
                // server will act on; we are likely misreading.
                None => return self.lose(),
            }
        } else {
            Some(&self.payload[..])
        };
        let Some(block) = self.block.as_mut() else {
            return self.lose();
        };
        match fragment {
            Some(fragment) if block.whole => block.fragment.extend_from_slice(fragment),
            _ => block.whole = false,
        }
        self.payload.clear();
        if frame.flags & FLAG_END_HEADERS == 0 {
            return;
        }
        if let Some(block) = self.block.take()
            && let Some(request) = self.finish(block)
        {
            out.push(request);
        }
    }

    /// Decodes a complete header block; the request it opens, if any.
    fn finish(&mut self, block: Block) -> Option<H2Request> {
        let fields = match self.hpack.as_mut() {
            Some(decoder) if block.whole => decode(decoder, &block.fragment),
            _ => None,
        };
        if fields.is_none() {
            // The table may now lack entries later blocks refer to.
            self.hpack = None;
        }
        block.request.then(|| fields.unwrap_or_default())
    }

    fn lose(&mut self) {
        self.sync = Sync::Lost;
        self.hpack = None;
        self.block = None;
        self.payload = Vec::new();
    }
}

/// The header block fragment of a HEADERS payload: without the pad length,
/// priority fields and padding. `None` if the flags promise more than the
/// payload holds.
fn header_fragment(payload: &[u8], flags: u8) -> Option<&[u8]> {
    let (pad, rest) = if flags & FLAG_PADDED != 0 {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let rest = if flags & FLAG_PRIORITY != 0 {
        rest.get(5..)?
    } else {
        rest
    };
    rest.get(..rest.len().checked_sub(pad)?)
}

fn decode(decoder: &mut Decoder<'static>, block: &[u8]) -> Option<H2Request> {
    let mut request = H2Request::default();
    // `host` stands in only for a missing `:authority` (RFC 9113 8.3.1).
    let (mut authority, mut host) = (None, None);
    decoder
        .decode_with_cb(block, |name, value| match &name[..] {
            b":method" => request.method = Some(method(&value)),
            b":authority" => authority = Some(parse_authority(&value)),
            b":path" => request.path = Some(sanitise_path(&value)),
            b"host" => host = Some(parse_authority(&value)),
            _ => {}
        })
        .ok()?;
    request.authority = authority.or(host).flatten();
    Some(request)
}

fn method(value: &[u8]) -> Method {
    match value {
        b"GET" => Method::Get,
        b"POST" => Method::Post,
        b"PUT" => Method::Put,
        b"DELETE" => Method::Delete,
        b"PATCH" => Method::Patch,
        b"HEAD" => Method::Head,
        b"OPTIONS" => Method::Options,
        b"CONNECT" => Method::Connect,
        _ => Method::Other,
    }
}

/// `user@host:port` -> the host name; IP literals give `None`.
fn parse_authority(value: &[u8]) -> Option<Hostname> {
    let host = match value.iter().rposition(|&b| b == b'@') {
        Some(at) => &value[at + 1..],
        None => value,
    };
    let host = match host.iter().rposition(|&b| b == b':') {
        Some(colon) if host[colon + 1..].iter().all(u8::is_ascii_digit) => &host[..colon],
        Some(_) => return None,
        None => host,
    };
    Hostname::parse(host)
}

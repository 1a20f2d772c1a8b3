//! HTTP/2 as a client writes it to a probed TLS library: one connection's
//! byte stream, cut into writes, some of them captured only in part, fed
//! to one decoder whose HPACK table lives across them.
//!
//! Input: `[n] [n little-endian u16 write lengths] [flags] [stream ...]`.
//! Bit i of `flags` (mod 8) makes write i a partial capture (its first half,
//! with its full length). Seeds are real captures behind `00 00`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::dest::h2::H2Conn;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16);
    if rest.len() < 2 * n + 1 {
        return;
    }
    let (cuts, rest) = rest.split_at(2 * n);
    let (&flags, mut stream) = rest.split_first().expect("checked above");
    let mut conn = H2Conn::new();
    for (i, cut) in cuts.chunks(2).enumerate() {
        let len = usize::from(u16::from_le_bytes([cut[0], cut[1]])).min(stream.len());
        let (write, more) = stream.split_at(len);
        stream = more;
        if flags >> (i % 8) & 1 == 1 {
            let _ = conn.feed_len(&write[..len / 2], len);
        } else if i % 3 == 2 {
            let _ = conn.feed_at_frame(write, false);
        } else {
            let _ = conn.feed(write, false);
        }
        let _ = (conn.synced(), conn.hpack_ok());
    }
    let _ = conn.feed(stream, false);
});

//! TLS record framing as the packet programs run it (monitor-common's
//! `framing`, the same code the kernel object is built from), over one
//! connection's two byte streams cut into packets.
//!
//! Input: `[n] [n × (flags, u16 LE length)] [seed] [bytes ...]`. Each of
//! the n segments takes its length from the bytes, in order, and goes one
//! way (flags bit 0: 1 = from the server); bit 1 marks it probed, bit 2
//! leaves a one-byte gap before it. The segments are fed twice: once whole,
//! once cut into packets of 1 to 8 bytes (from `seed`) with some packets
//! sent again in part or twice. Where the whole feed kept its framing, the cut one
//! must reach exactly the same figures: record headers cut across packets,
//! resent bytes and the per-packet bound must not change what is derived.
//! Seeds are real sessions (Python's ssl, TLS 1.3 and 1.2) behind their
//! segment table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor_common::{Records, framing, record_state as state};

struct Segment<'a> {
    out: bool,
    probed: bool,
    gap: bool,
    bytes: &'a [u8],
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 32);
    if rest.len() < 3 * n + 1 {
        return;
    }
    let (table, rest) = rest.split_at(3 * n);
    let (&seed, mut bytes) = rest.split_first().expect("checked above");
    let mut segments = Vec::new();
    for op in table.chunks(3) {
        let len = usize::from(u16::from_le_bytes([op[1], op[2]])).min(bytes.len());
        let (seg, more) = bytes.split_at(len);
        bytes = more;
        segments.push(Segment {
            out: op[0] & 1 == 0,
            probed: op[0] & 2 != 0,
            gap: op[0] & 4 != 0,
            bytes: seg,
        });
    }
    let whole = feed(&segments, None);
    let cut = feed(&segments, Some(seed));
    for out in [true, false] {
        let (w, c) = (way(&whole, out), way(&cut, out));
        if w.state & state::LOST == 0 {
            assert_eq!(w, c, "cut into packets, the {out} way's framing differs");
        }
        // A record counts when its header is seen, so its body may still
        // be on the way; but each counted record's header and plaintext
        // lie within the offsets its headers announced.
        for w in [&w, &c] {
            assert!(w.plain + 5 * u64::from(w.records) <= w.next, "{w:?}");
        }
    }
});

/// Feeds every segment, whole or cut by a small generator from `seed`.
fn feed(segments: &[Segment], seed: Option<u8>) -> Records {
    let mut r = Records::default();
    let mut offsets = [0u64; 2];
    let mut rng = seed.map(|s| u32::from(s) | 1);
    for (i, s) in segments.iter().enumerate() {
        let off = &mut offsets[usize::from(!s.out)];
        if i == 0 {
            if !s.out || !framing::is_client_hello(&s.bytes) {
                return r;
            }
            framing::start(&mut r);
        }
        if s.gap {
            *off += 1;
        }
        // The packet programs follow packets with payload only.
        if s.bytes.is_empty() {
            continue;
        }
        let Some(rng) = rng.as_mut() else {
            framing::follow(&mut r, &s.bytes, *off, s.out, s.probed);
            *off += s.bytes.len() as u64;
            continue;
        };
        let mut at = 0;
        while at < s.bytes.len() {
            *rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = (1 + (*rng >> 16) as usize % 8).min(s.bytes.len() - at);
            let (from, packet) = if *rng >> 28 == 0 && at > 0 {
                // Sent again from a little earlier: seen bytes, then new ones.
                let back = at.min(3);
                (at - back, &s.bytes[at - back..at + len])
            } else {
                (at, &s.bytes[at..at + len])
            };
            framing::follow(&mut r, &packet, *off + from as u64, s.out, s.probed);
            if *rng >> 28 == 1 {
                // A duplicate: nothing new.
                framing::follow(&mut r, &packet, *off + from as u64, s.out, s.probed);
            }
            at += len;
        }
        *off += s.bytes.len() as u64;
    }
    r
}

/// One way's figures.
#[derive(Debug, PartialEq)]
struct Way {
    next: u64,
    plain: u64,
    records: u32,
    part: [u8; 4],
    part_len: u8,
    state: u8,
}

/// A cut header's bytes count up to its length; the rest is stale.
fn way(r: &Records, out: bool) -> Way {
    let mut w = way_of(r, out);
    w.part[usize::from(w.part_len.min(4))..].fill(0);
    w
}

fn way_of(r: &Records, out: bool) -> Way {
    if out {
        Way {
            next: r.tx_next,
            plain: r.tx_plain,
            records: r.tx_records,
            part: r.tx_part,
            part_len: r.tx_part_len,
            state: r.tx_state,
        }
    } else {
        Way {
            next: r.rx_next,
            plain: r.rx_plain,
            records: r.rx_records,
            part: r.rx_part,
            part_len: r.rx_part_len,
            state: r.rx_state,
        }
    }
}

//! TLS record framing of tracked connections that began with a ClientHello.
//!
//! Record headers (type, version, length: 5 bytes) travel in the clear, so
//! following them in the packets this program sees anyway derives the
//! plaintext of any TLS 1.3 stack, probed or not: an application-data
//! record carries its plaintext plus a content type byte and a 16-byte
//! tag. In TLS 1.2 the overhead depends on the cipher suite, which the
//! ServerHello names in the clear: the bodies are summed here, and user
//! space subtracts the suite's overhead per record. The work per packet is
//! bounded (`MAX_RECORDS` headers); a gap in the stream or a packet with
//! more records than that ends the framing that way (`LOST`), so a figure
//! is derived whole or not at all.

use aya_ebpf::programs::SkBuffContext;
use monitor_common::{Conn, record_state as state};

use crate::{
    packets::{Packet, Way},
    tcp::widen,
};

/// Headers followed in one packet. A 64 KiB TSO or GRO packet of 16 KiB
/// records holds 5; a streamed response of small records (server-sent
/// events, a few hundred bytes each) merged by GRO up to about 250.
const MAX_RECORDS: u32 = 256;
const HEADER: u64 = 5;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const SERVER_HELLO: u8 = 2;
/// A TLS 1.3 record's plaintext is its length less this (tag and type).
const TLS13_OVERHEAD: u64 = 17;
/// The record of a 2-byte alert (close_notify) in TLS 1.3: not data.
const TLS13_ALERT_LEN: u64 = 2 + TLS13_OVERHEAD;

/// Whether the first bytes a connection sends are a ClientHello record.
#[inline(always)]
pub fn is_client_hello(ctx: &SkBuffContext, p: &Packet) -> bool {
    if p.payload_len < 6 {
        return false;
    }
    let Ok(h) = ctx.load::<[u8; 6]>(p.payload as usize) else {
        return false;
    };
    h[0] == HANDSHAKE && h[1] == 3 && h[5] == 1
}

/// Starts following a connection's records at its first byte sent (offset
/// 0 both ways, where a new `Conn`'s `tx_next` and `rx_next` already are).
#[inline(always)]
pub fn start(conn: *mut Conn) {
    // SAFETY: `conn` points into a live map value; the first data packet
    // comes before any record of the peer, so nothing else writes these.
    unsafe {
        (*conn).records.tx_state = state::FOLLOWED;
        (*conn).records.rx_state = state::FOLLOWED;
    }
}

/// Moves one way's framing over a data packet. `probed` (egress only): a
/// TLS probe ties this packet (or an earlier one) to its library call.
#[inline(always)]
pub fn follow(ctx: &SkBuffContext, conn: *mut Conn, p: &Packet, way: Way, probed: bool) {
    // SAFETY: `conn` points into a live map value. Each way's fields are
    // written by that way's program only; the other way's state is read.
    unsafe {
        let r = &mut (*conn).records;
        let s = &(*conn).seq;
        let out = way.out();
        let st = if out { r.tx_state } else { r.rx_state };
        if st & state::FOLLOWED == 0 || st & state::LOST != 0 {
            return;
        }
        let len = u64::from(p.payload_len);
        // Offsets as the sequence bookkeeping (already moved by this
        // packet) knows them.
        let from = if out {
            let end = p.seq.wrapping_add(p.payload_len);
            widen(s.tx_sent, end.wrapping_sub(s.tx_base)).saturating_sub(len)
        } else {
            widen(s.rx_seen, p.seq.wrapping_sub(s.rx_base))
        };
        let end = from + len;
        let (mut next, mut part, mut part_len) = if out {
            (r.tx_next, r.tx_part, r.tx_part_len)
        } else {
            (r.rx_next, r.rx_part, r.rx_part_len)
        };
        let mut st = st;
        if !out && from == 0 {
            r.cipher = server_cipher(ctx, p);
        }
        if probed && st & state::PROBED == 0 {
            // A probe that ties a connection after data went out missed
            // that data: the records have it all.
            if r.tx_records > 0 {
                st |= state::PROBED_LATE;
            }
            st |= state::PROBED;
        }
        if end <= next {
            // Sent again, or seen already.
        } else if from > next {
            st |= state::LOST;
        } else {
            let at = |off: u64| (u64::from(p.payload) + off - from) as usize;
            // A header cut by the last packet's end: its rest comes first.
            if part_len > 0 {
                let have = u64::from(part_len);
                let got = (end - next).min(HEADER - have);
                let mut h = [0u8; 5];
                for i in 0..4 {
                    if (i as u64) < have {
                        h[i] = part[i];
                    }
                }
                for i in 0..4u64 {
                    let to = (have + i) as usize;
                    if i < got && to < 5 {
                        h[to] = ctx.load::<u8>(at(next + i)).unwrap_or(0);
                    }
                }
                next += got;
                if have + got < HEADER {
                    part = [h[0], h[1], h[2], h[3]];
                    part_len = (have + got) as u8;
                } else {
                    part_len = 0;
                    st = header(r, out, st, &h);
                    next += body_len(&h);
                }
            }
            let mut records = 0;
            while next < end && records < MAX_RECORDS {
                records += 1;
                if end - next < HEADER {
                    for i in 0..4u64 {
                        if i < end - next {
                            part[i as usize] = ctx.load::<u8>(at(next + i)).unwrap_or(0);
                        }
                    }
                    part_len = (end - next) as u8;
                    next = end;
                    break;
                }
                let Ok(h) = ctx.load::<[u8; 5]>(at(next)) else {
                    st |= state::LOST;
                    break;
                };
                st = header(r, out, st, &h);
                next += HEADER + body_len(&h);
            }
            if next < end {
                st |= state::LOST;
            }
        }
        if out {
            r.tx_next = next;
            r.tx_part = part;
            r.tx_part_len = part_len;
            r.tx_state = st;
        } else {
            r.rx_next = next;
            r.rx_part = part;
            r.rx_part_len = part_len;
            r.rx_state = st;
        }
    }
}

/// The cipher suite in the ServerHello at the start of `p`, or 0: after
/// the record and handshake headers (9 bytes), the version (2) and random
/// (32), a session id of at most 32 bytes, then the suite.
#[inline(always)]
fn server_cipher(ctx: &SkBuffContext, p: &Packet) -> u16 {
    let at = p.payload as usize;
    let Ok(h) = ctx.load::<[u8; 6]>(at) else {
        return 0;
    };
    if h[0] != HANDSHAKE || h[5] != SERVER_HELLO {
        return 0;
    }
    let Ok(session_id) = ctx.load::<u8>(at + 43) else {
        return 0;
    };
    if session_id > 32 {
        return 0;
    }
    ctx.load::<[u8; 2]>(at + 44 + usize::from(session_id))
        .map(u16::from_be_bytes)
        .unwrap_or(0)
}

/// The length of the record a header starts.
#[inline(always)]
fn body_len(h: &[u8; 5]) -> u64 {
    u64::from(u16::from_be_bytes([h[3], h[4]]))
}

/// Takes in one record header; returns the way's new state.
#[inline(always)]
fn header(r: &mut monitor_common::Records, out: bool, st: u8, h: &[u8; 5]) -> u8 {
    if h[0] == APPLICATION_DATA {
        record(r, out, st, body_len(h))
    } else {
        st
    }
}

/// Counts one application-data record of `body` bytes; returns the way's
/// new state.
#[inline(always)]
fn record(r: &mut monitor_common::Records, out: bool, st: u8, body: u64) -> u8 {
    if out {
        let mut st = st;
        if st & (state::FINISHED | state::NOT_TLS13) == 0 {
            // The client's first: its TLS 1.3 Finished, if the server's
            // encrypted handshake came before it; else TLS 1.2 data.
            if r.rx_state & state::TLS13 != 0 {
                return st | state::FINISHED;
            }
            st |= state::NOT_TLS13;
        }
        if st & state::NOT_TLS13 != 0 {
            // TLS 1.2 hides no content type: every such record is data.
            r.tx_plain += body;
            r.tx_records += 1;
        } else if body != TLS13_ALERT_LEN && body > TLS13_OVERHEAD {
            r.tx_plain += body - TLS13_OVERHEAD;
            r.tx_records += 1;
        }
        return st;
    }
    if r.tx_state & state::NOT_TLS13 != 0 {
        r.rx_plain += body;
        r.rx_records += 1;
        return st;
    }
    if r.tx_state & state::FINISHED == 0 {
        // Before the client's Finished: the server's encrypted handshake.
        return st | state::TLS13;
    }
    if body != TLS13_ALERT_LEN && body > TLS13_OVERHEAD {
        r.rx_plain += body - TLS13_OVERHEAD;
        r.rx_records += 1;
    }
    st
}

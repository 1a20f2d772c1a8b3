//! TLS record framing of tracked connections that began with a ClientHello,
//! shared by the packet programs (monitor-ebpf's records.rs, reading the
//! packet) and the fuzz target (reading a slice), so what is fuzzed is what
//! the kernel runs.
//!
//! Record headers (type, version, length: 5 bytes) travel in the clear, so
//! following them in the packets the programs see anyway derives the
//! plaintext of any TLS 1.3 stack, probed or not: an application-data
//! record carries its plaintext plus a content type byte and a 16-byte
//! tag. In TLS 1.2 the overhead depends on the cipher suite, which the
//! ServerHello names in the clear: the bodies are summed here, and user
//! space subtracts the suite's overhead per record. The work per packet is
//! bounded ([`MAX_RECORDS`] headers); a gap in the stream or a packet with
//! more records than that ends the framing that way (`LOST`), so a figure
//! is derived whole or not at all.
//!
//! Everything is `#[inline(always)]`: the verifier checks the kernel's copy
//! as one function, as it did before this code was shared.

use crate::{Records, record_state as state};

/// Headers followed in one packet. A 64 KiB TSO or GRO packet of 16 KiB
/// records holds 5; a streamed response of small records (server-sent
/// events, a few hundred bytes each) merged by GRO up to about 250.
pub const MAX_RECORDS: u32 = 256;
const HEADER: u64 = 5;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const SERVER_HELLO: u8 = 2;
/// A TLS 1.3 record's plaintext is its length less this (tag and type).
pub const TLS13_OVERHEAD: u64 = 17;
/// The record of a 2-byte alert (close_notify) in TLS 1.3: not data.
const TLS13_ALERT_LEN: u64 = 2 + TLS13_OVERHEAD;

/// One packet's payload, read at offsets from its first byte.
pub trait Payload {
    /// Its length in bytes.
    fn size(&self) -> u64;
    /// `N` bytes at `at`, or `None` past the end (or where the kernel
    /// cannot read).
    fn load<const N: usize>(&self, at: u64) -> Option<[u8; N]>;
}

impl Payload for &[u8] {
    #[inline(always)]
    fn size(&self) -> u64 {
        self.len() as u64
    }

    #[inline(always)]
    fn load<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let at = usize::try_from(at).ok()?;
        self.get(at..at.checked_add(N)?)?.try_into().ok()
    }
}

/// Whether the first bytes a connection sends are a ClientHello record.
#[inline(always)]
pub fn is_client_hello(p: &impl Payload) -> bool {
    if p.size() < 6 {
        return false;
    }
    let Some(h) = p.load::<6>(0) else {
        return false;
    };
    h[0] == HANDSHAKE && h[1] == 3 && h[5] == 1
}

/// Starts following a connection's records at its first byte sent (offset
/// 0 both ways, where a new `Conn`'s `tx_next` and `rx_next` already are).
#[inline(always)]
pub fn start(r: &mut Records) {
    r.tx_state = state::FOLLOWED;
    r.rx_state = state::FOLLOWED;
}

/// Moves the framing to stream offsets that start `tx` and `rx` bytes
/// further on (a connection handed to another tool counts from there),
/// and starts the plaintext totals afresh: what follows is the new part's.
#[inline(always)]
pub fn rebase(r: &mut Records, tx: u64, rx: u64) {
    r.tx_next = r.tx_next.saturating_sub(tx);
    r.rx_next = r.rx_next.saturating_sub(rx);
    r.tx_plain = 0;
    r.rx_plain = 0;
    r.tx_records = 0;
    r.rx_records = 0;
}

/// Moves one way's framing over a data packet `p` whose first byte is at
/// stream offset `from`. `probed` (egress only): a TLS probe ties this
/// packet (or an earlier one) to its library call. Each way's fields are
/// written for that way only; the other way's state is read. `p` carries
/// payload: the programs never call this for a packet without any.
#[inline(always)]
pub fn follow(r: &mut Records, p: &impl Payload, from: u64, out: bool, probed: bool) {
    let st = if out { r.tx_state } else { r.rx_state };
    if st & state::FOLLOWED == 0 || st & state::LOST != 0 {
        return;
    }
    let len = p.size();
    // A stream offset near 2^64 is not one TCP carries; the sums below
    // would wrap.
    let Some(end) = from.checked_add(len) else {
        return;
    };
    let (mut next, mut part, mut part_len) = if out {
        (r.tx_next, r.tx_part, r.tx_part_len)
    } else {
        (r.rx_next, r.rx_part, r.rx_part_len)
    };
    let mut st = st;
    if !out && from == 0 {
        r.cipher = server_cipher(p);
    }
    if probed && st & state::PROBED == 0 {
        // A probe that ties a connection after data went out missed that
        // data: the records have it all.
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
                    h[to] = p.load::<1>(next + i - from).map_or(0, |b| b[0]);
                }
            }
            next += got;
            if have + got < HEADER {
                part = [h[0], h[1], h[2], h[3]];
                part_len = (have + got) as u8;
            } else {
                part_len = 0;
                st = header(r, out, st, &h);
                next = next.saturating_add(body_len(&h));
            }
        }
        let mut records = 0;
        while next < end && records < MAX_RECORDS {
            records += 1;
            if end - next < HEADER {
                for i in 0..4u64 {
                    if i < end - next {
                        part[i as usize] = p.load::<1>(next + i - from).map_or(0, |b| b[0]);
                    }
                }
                part_len = (end - next) as u8;
                next = end;
                break;
            }
            let Some(h) = p.load::<5>(next - from) else {
                st |= state::LOST;
                break;
            };
            st = header(r, out, st, &h);
            next = next.saturating_add(HEADER + body_len(&h));
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

/// The cipher suite in the ServerHello at the start of `p`, or 0: after
/// the record and handshake headers (9 bytes), the version (2) and random
/// (32), a session id of at most 32 bytes, then the suite.
#[inline(always)]
pub fn server_cipher(p: &impl Payload) -> u16 {
    let Some(h) = p.load::<6>(0) else {
        return 0;
    };
    if h[0] != HANDSHAKE || h[5] != SERVER_HELLO {
        return 0;
    }
    let Some([session_id]) = p.load::<1>(43) else {
        return 0;
    };
    if session_id > 32 {
        return 0;
    }
    p.load::<2>(44 + u64::from(session_id))
        .map_or(0, u16::from_be_bytes)
}

/// The length of the record a header starts.
#[inline(always)]
fn body_len(h: &[u8; 5]) -> u64 {
    u64::from(u16::from_be_bytes([h[3], h[4]]))
}

/// Takes in one record header; returns the way's new state.
#[inline(always)]
fn header(r: &mut Records, out: bool, st: u8, h: &[u8; 5]) -> u8 {
    if h[0] == APPLICATION_DATA {
        record(r, out, st, body_len(h))
    } else {
        st
    }
}

/// Counts one application-data record of `body` bytes; returns the way's
/// new state.
#[inline(always)]
fn record(r: &mut Records, out: bool, st: u8, body: u64) -> u8 {
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

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::*;

    fn rec(kind: u8, body: usize) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend((body as u16).to_be_bytes());
        r.resize(5 + body, 0xab);
        r
    }

    /// A ServerHello record naming `suite`, after a 32-byte session id.
    fn server_hello(suite: u16) -> Vec<u8> {
        let mut r = rec(HANDSHAKE, 80);
        r[5] = SERVER_HELLO;
        r[43] = 32;
        r[76..78].copy_from_slice(&suite.to_be_bytes());
        r
    }

    fn client_hello() -> Vec<u8> {
        let mut r = rec(HANDSHAKE, 200);
        r[5] = 1;
        r
    }

    /// Feeds `flights` (client first) in packets of at most `mtu` bytes.
    fn feed(flights: &[(bool, Vec<u8>)], mtu: usize) -> Records {
        let mut r = Records::default();
        assert!(is_client_hello(&flights[0].1.as_slice()));
        start(&mut r);
        let mut off = [0u64; 2];
        for (out, bytes) in flights {
            for packet in bytes.chunks(mtu) {
                let at = &mut off[usize::from(!out)];
                follow(&mut r, &packet, *at, *out, false);
                *at += packet.len() as u64;
            }
        }
        r
    }

    fn concat(records: &[Vec<u8>]) -> Vec<u8> {
        records.concat()
    }

    #[test]
    fn rebased_framing_goes_on_and_counts_only_what_follows() {
        let hello = client_hello();
        let server = concat(&[server_hello(0x1301), rec(APPLICATION_DATA, 1000)]);
        let first = concat(&[rec(APPLICATION_DATA, 1), rec(APPLICATION_DATA, 117)]);
        let mut r = feed(&[(true, hello.clone()), (false, server.clone())], 1460);
        follow(&mut r, &first.as_slice(), hello.len() as u64, true, false);
        assert_eq!((r.tx_plain, r.tx_records), (100, 1));
        // Handed over after everything so far: the new part starts at 0.
        rebase(
            &mut r,
            (hello.len() + first.len()) as u64,
            server.len() as u64,
        );
        let more = concat(&[rec(APPLICATION_DATA, 53), rec(APPLICATION_DATA, 217)]);
        follow(&mut r, &more.as_slice(), 0, true, false);
        follow(
            &mut r,
            &rec(APPLICATION_DATA, 317).as_slice(),
            0,
            false,
            false,
        );
        assert_eq!((r.tx_plain, r.tx_records), (36 + 200, 2));
        assert_eq!((r.rx_plain, r.rx_records), (300, 1));
        assert_eq!(r.tx_next, more.len() as u64);
        assert_eq!(r.tx_state & state::LOST, 0);
    }

    #[test]
    fn tls13_plaintext_is_records_less_tag_and_type_in_any_cut() {
        let flights = [
            (true, client_hello()),
            (
                false,
                concat(&[
                    server_hello(0x1301),
                    rec(20, 1),
                    rec(APPLICATION_DATA, 1000),
                ]),
            ),
            (
                true,
                concat(&[
                    rec(20, 1),
                    rec(APPLICATION_DATA, 53),
                    rec(APPLICATION_DATA, 117),
                ]),
            ),
            (
                false,
                concat(&[rec(APPLICATION_DATA, 217), rec(APPLICATION_DATA, 19)]),
            ),
        ];
        for mtu in [1, 2, 3, 4, 5, 6, 7, 13, 1460, 65536] {
            let r = feed(&flights, mtu);
            assert_eq!((r.tx_plain, r.tx_records), (100, 1), "mtu {mtu}");
            assert_eq!((r.rx_plain, r.rx_records), (200, 1), "mtu {mtu}");
            assert_eq!(r.tx_state & (state::LOST | state::NOT_TLS13), 0);
            assert_ne!(r.rx_state & state::TLS13, 0);
            assert_eq!(
                r.tx_next,
                flights[0].1.len() as u64 + flights[2].1.len() as u64
            );
        }
    }

    #[test]
    fn tls12_sums_bodies_and_names_the_cipher() {
        let flights = [
            (true, client_hello()),
            (false, server_hello(0xc02f)),
            (true, rec(APPLICATION_DATA, 300)),
            (false, rec(APPLICATION_DATA, 40)),
        ];
        let r = feed(&flights, 1460);
        assert_eq!(r.cipher, 0xc02f);
        assert_ne!(r.tx_state & state::NOT_TLS13, 0);
        assert_eq!((r.tx_plain, r.rx_plain), (300, 40));
    }

    #[test]
    fn a_gap_or_too_many_records_in_one_packet_ends_the_way() {
        let mut r = Records::default();
        start(&mut r);
        let hello = client_hello();
        follow(&mut r, &hello.as_slice(), 0, true, false);
        let data = rec(APPLICATION_DATA, 117);
        follow(
            &mut r,
            &data.as_slice(),
            hello.len() as u64 + 1,
            true,
            false,
        );
        assert_ne!(r.tx_state & state::LOST, 0);
        follow(&mut r, &data.as_slice(), hello.len() as u64, true, false);
        assert_eq!(r.tx_records, 0, "nothing counted after a gap");

        let many = |n: usize| concat(&std::iter::repeat_n(rec(20, 1), n).collect::<Vec<_>>());
        for (n, lost) in [
            (MAX_RECORDS as usize, false),
            (MAX_RECORDS as usize + 1, true),
        ] {
            let mut r = Records::default();
            start(&mut r);
            follow(&mut r, &many(n).as_slice(), 0, false, false);
            assert_eq!(r.rx_state & state::LOST != 0, lost, "{n} records");
        }
    }

    #[test]
    fn a_slice_reads_nothing_past_its_end() {
        let b: &[u8] = &[1, 2, 3];
        assert_eq!(b.load::<2>(1), Some([2, 3]));
        assert_eq!(b.load::<2>(2), None);
        assert_eq!(b.load::<1>(u64::MAX), None);
    }
}

//! TLS record framing of tracked connections that began with a ClientHello:
//! the packet programs' side of `monitor_common::framing`, which holds the
//! logic (shared with its fuzz target). This side finds a packet's offset
//! in the stream and reads its bytes from the socket buffer.

use aya_ebpf::programs::SkBuffContext;
use monitor_common::{Conn, framing};

use crate::{
    packets::{Packet, Way},
    tcp::widen,
};

/// A packet's payload as `framing` reads it.
struct InPacket<'a> {
    ctx: &'a SkBuffContext,
    at: u32,
    len: u32,
}

impl framing::Payload for InPacket<'_> {
    #[inline(always)]
    fn size(&self) -> u64 {
        u64::from(self.len)
    }

    #[inline(always)]
    fn load<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        self.ctx
            .load::<[u8; N]>(self.at as usize + at as usize)
            .ok()
    }
}

#[inline(always)]
fn payload<'a>(ctx: &'a SkBuffContext, p: &Packet) -> InPacket<'a> {
    InPacket {
        ctx,
        at: p.payload,
        len: p.payload_len,
    }
}

/// Whether the first bytes a connection sends are a ClientHello record.
#[inline(always)]
pub fn is_client_hello(ctx: &SkBuffContext, p: &Packet) -> bool {
    framing::is_client_hello(&payload(ctx, p))
}

/// Starts following a connection's records at its first byte sent.
#[inline(always)]
pub fn start(conn: *mut Conn) {
    // SAFETY: `conn` points into a live map value; the first data packet
    // comes before any record of the peer, so nothing else writes these.
    unsafe { framing::start(&mut (*conn).records) }
}

/// Moves one way's framing over a data packet. `probed` (egress only): a
/// TLS probe ties this packet (or an earlier one) to its library call.
#[inline(always)]
pub fn follow(ctx: &SkBuffContext, conn: *mut Conn, p: &Packet, way: Way, probed: bool) {
    // SAFETY: `conn` points into a live map value. Each way's fields are
    // written by that way's program only; the other way's state is read.
    unsafe {
        let s = &(*conn).seq;
        let len = u64::from(p.payload_len);
        // The packet's offset as the sequence bookkeeping (already moved
        // by this packet) knows it.
        let out = way.out();
        let from = if out {
            let end = p.seq.wrapping_add(p.payload_len);
            widen(s.tx_sent, end.wrapping_sub(s.tx_base)).saturating_sub(len)
        } else {
            widen(s.rx_seen, p.seq.wrapping_sub(s.rx_base))
        };
        framing::follow(&mut (*conn).records, &payload(ctx, p), from, out, probed);
    }
}

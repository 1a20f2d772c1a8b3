//! The packets of tracked sockets: every byte count, the first bytes sent
//! (for naming), DNS answers and the tie between TLS calls and sockets come
//! from here.

use aya_ebpf::{macros::cgroup_skb, programs::SkBuffContext};
use monitor_common::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, counter, sock_status};

use crate::{
    maps::{SOCKS, bump},
    tcp, udp,
};

const TCP_LISTEN: u32 = 10;
/// Answers from this port are DNS, over UDP or TCP: read for naming.
pub const DNS_PORT: u16 = 53;

/// Hook: cgroup_skb egress on the cgroup2 root, run for every IP packet a
/// local socket sends (before segmentation offload splits it, so a GSO
/// packet's payload is one write's worth). A packet of an untracked socket
/// costs this program one socket-storage lookup that finds nothing; no
/// syscall, file, pipe or unix-socket I/O reaches it at all. Allows all.
#[cgroup_skb(egress)]
pub fn skb_egress(ctx: SkBuffContext) -> i32 {
    packet(&ctx, Way::Out { tie_tls: true });
    1
}

/// The same as [`skb_egress`] without tying TLS calls to sockets, for
/// kernels whose verifier refuses `bpf_get_current_task` in packet programs.
#[cgroup_skb(egress)]
pub fn skb_egress_untied(ctx: SkBuffContext) -> i32 {
    packet(&ctx, Way::Out { tie_tls: false });
    1
}

/// Hook: cgroup_skb ingress on the cgroup2 root, run when a packet is
/// queued to a local socket (after GRO merged it). Costs untracked sockets
/// the same single lookup. Allows all.
#[cgroup_skb(ingress)]
pub fn skb_ingress(ctx: SkBuffContext) -> i32 {
    packet(&ctx, Way::In);
    1
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Out { tie_tls: bool },
    In,
}

impl Way {
    #[inline(always)]
    pub fn out(self) -> bool {
        matches!(self, Way::Out { .. })
    }
}

/// What the program needs of a packet's headers.
pub struct Packet {
    pub family: u16,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Ports in host byte order.
    pub sport: u16,
    pub dport: u16,
    /// Where the payload starts, from the network header, and its length.
    pub payload: u32,
    pub payload_len: u32,
    /// TCP only.
    pub seq: u32,
    pub ack: u32,
    pub tcp_flags: u8,
}

#[inline(always)]
fn packet(ctx: &SkBuffContext, way: Way) {
    // SAFETY: reading the context's `sk` field; the verifier checks it.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return;
    }
    let owner = SOCKS.get(sk.cast(), None);
    if owner.is_null() {
        return;
    }
    // SAFETY: a live socket-storage value; plain reads.
    let (status, proto) = unsafe { ((*owner).status, (*owner).proto) };
    if status == sock_status::IGNORED {
        return;
    }
    // A listener's packets (SYNs, the handshake's last ACK) are its
    // children's: an accepted socket counts from its own first packet.
    // SAFETY: as above, a checked context field.
    if unsafe { (*sk).state } == TCP_LISTEN {
        return;
    }
    let Some(p) = parse(ctx, proto) else {
        bump(counter::PACKETS_UNPARSED);
        return;
    };
    match proto {
        p_ if p_ == IPPROTO_TCP as u8 => tcp::packet(ctx, owner, &p, way),
        p_ if p_ == IPPROTO_UDP as u8 => udp::packet(ctx, owner, &p, way),
        _ => {}
    }
}

/// Reads the IP and TCP/UDP headers. None for anything else (IPv6
/// extension headers, IP fragments, a protocol other than the socket's).
#[inline(always)]
fn parse(ctx: &SkBuffContext, proto: u8) -> Option<Packet> {
    let first: u8 = ctx.load(0).ok()?;
    let mut p = Packet {
        family: 0,
        src: [0; 16],
        dst: [0; 16],
        sport: 0,
        dport: 0,
        payload: 0,
        payload_len: 0,
        seq: 0,
        ack: 0,
        tcp_flags: 0,
    };
    let l4 = match first >> 4 {
        4 => {
            let h: [u8; 20] = ctx.load(0).ok()?;
            // More fragments, or a fragment offset: not a whole datagram.
            if h[9] != proto || (h[6] & 0x3f) != 0 || h[7] != 0 {
                return None;
            }
            p.family = AF_INET;
            p.src[..4].copy_from_slice(&h[12..16]);
            p.dst[..4].copy_from_slice(&h[16..20]);
            u32::from(h[0] & 0x0f) * 4
        }
        6 => {
            let h: [u8; 40] = ctx.load(0).ok()?;
            if h[6] != proto {
                return None;
            }
            p.family = AF_INET6;
            p.src.copy_from_slice(&h[8..24]);
            p.dst.copy_from_slice(&h[24..40]);
            40
        }
        _ => return None,
    };
    let header_len = if proto == IPPROTO_TCP as u8 {
        let t: [u8; 14] = ctx.load(l4 as usize).ok()?;
        p.seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        p.ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        p.tcp_flags = t[13];
        p.sport = u16::from_be_bytes([t[0], t[1]]);
        p.dport = u16::from_be_bytes([t[2], t[3]]);
        u32::from(t[12] >> 4) * 4
    } else {
        let u: [u8; 4] = ctx.load(l4 as usize).ok()?;
        p.sport = u16::from_be_bytes([u[0], u[1]]);
        p.dport = u16::from_be_bytes([u[2], u[3]]);
        8
    };
    p.payload = l4 + header_len;
    p.payload_len = ctx.len().saturating_sub(p.payload);
    Some(p)
}

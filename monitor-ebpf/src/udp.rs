//! UDP: bytes and datagrams per (tracked process, remote address).
//!
//! The length tracepoints give the bytes but not the peer of an unconnected
//! socket; the cgroup sendmsg/recvmsg hooks see that peer just before, in the
//! same thread, so they note it in `UDP_PEER` for the tracepoint to take.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use monitor_common::{
    AF_INET, AF_INET6, EventHeader, UdpFlow, UdpFlowEvent, UdpKey, UdpPeer, counter, kind,
    payload_kind,
};

use crate::{
    maps::{UDP_FLOWS, UDP_PEER, atomic_add, bump, current_tgid, emit, off, tracked},
    payload,
    sockets::{DNS_PORT, Direction},
};

/// Hook: cgroup `sendmsg4` on the cgroup2 root: runs in udp_sendmsg() for a
/// datagram with an explicit destination, before the length tracepoint.
/// Always allows the datagram.
#[cgroup_sock_addr(sendmsg4)]
pub fn udp_sendmsg4(ctx: SockAddrContext) -> i32 {
    note_peer(&ctx, AF_INET);
    1
}

/// Hook: cgroup `sendmsg6`, as `udp_sendmsg4` for IPv6 sockets.
#[cgroup_sock_addr(sendmsg6)]
pub fn udp_sendmsg6(ctx: SockAddrContext) -> i32 {
    note_peer(&ctx, AF_INET6);
    1
}

/// Hook: cgroup `recvmsg4`: runs in udp_recvmsg() with the source of the
/// datagram being returned to a caller that asked for it (recvfrom/recvmsg).
#[cgroup_sock_addr(recvmsg4)]
pub fn udp_recvmsg4(ctx: SockAddrContext) -> i32 {
    note_peer(&ctx, AF_INET);
    1
}

/// Hook: cgroup `recvmsg6`, as `udp_recvmsg4` for IPv6 sockets.
#[cgroup_sock_addr(recvmsg6)]
pub fn udp_recvmsg6(ctx: SockAddrContext) -> i32 {
    note_peer(&ctx, AF_INET6);
    1
}

#[inline(always)]
fn note_peer(ctx: &SockAddrContext, family: u16) {
    if tracked(current_tgid()).is_none() {
        return;
    }
    let sa = ctx.sock_addr;
    // SAFETY: the verifier checks every field access of bpf_sock_addr.
    let mut peer = UdpPeer {
        family,
        // user_port holds the port in network byte order in its low 16 bits.
        port: u16::from_be(unsafe { (*sa).user_port } as u16),
        ..UdpPeer::default()
    };
    if family == AF_INET {
        peer.addr[..4].copy_from_slice(&unsafe { (*sa).user_ip4 }.to_ne_bytes());
    } else {
        for i in 0..4 {
            let word = unsafe { (*sa).user_ip6[i] }.to_ne_bytes();
            peer.addr[i * 4..i * 4 + 4].copy_from_slice(&word);
        }
    }
    let _ = UDP_PEER.insert(bpf_get_current_pid_tgid(), peer, 0);
}

#[inline(always)]
pub fn take_peer(pid_tgid: u64) -> Option<UdpPeer> {
    // SAFETY: copied out before removal.
    let peer = unsafe { UDP_PEER.get(pid_tgid).copied() }?;
    let _ = UDP_PEER.remove(pid_tgid);
    Some(peer)
}

/// Counts one datagram of a tracked process.
pub fn account(sock: u64, tgid: u32, tool: u32, peer: Option<UdpPeer>, bytes: u64, dir: Direction) {
    let peer = match peer {
        Some(p) => p,
        // No explicit address: the socket is connected, its peer is in sock_common.
        None => match connected_peer(sock) {
            Some(p) => p,
            None => return,
        },
    };
    if dir == Direction::Rx && peer.port == DNS_PORT {
        payload::capture(sock, tgid, payload_kind::DNS, bytes);
    }
    let key = UdpKey {
        tgid,
        rport: peer.port,
        family: peer.family,
        raddr: peer.addr,
    };
    if let Some(flow) = UDP_FLOWS.get_ptr_mut(key) {
        // SAFETY: map value; counters are only added to, from any CPU.
        unsafe {
            let (b, d) = match dir {
                Direction::Tx => (&raw mut (*flow).tx_bytes, &raw mut (*flow).tx_datagrams),
                Direction::Rx => (&raw mut (*flow).rx_bytes, &raw mut (*flow).rx_datagrams),
            };
            atomic_add(b, bytes);
            atomic_add(d, 1);
        }
        return;
    }
    let mut flow = UdpFlow {
        tool,
        ..UdpFlow::default()
    };
    match dir {
        Direction::Tx => (flow.tx_bytes, flow.tx_datagrams) = (bytes, 1),
        Direction::Rx => (flow.rx_bytes, flow.rx_datagrams) = (bytes, 1),
    }
    if UDP_FLOWS.insert(key, flow, 1).is_err() {
        bump(counter::UDP_FLOWS_FULL);
        return;
    }
    emit(UdpFlowEvent {
        header: EventHeader {
            kind: kind::UDP_FLOW,
            tgid,
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
        key,
        tool,
        inbound: (dir == Direction::Rx) as u32,
    });
}

#[inline(always)]
fn connected_peer(sock: u64) -> Option<UdpPeer> {
    let base = sock as *const u8;
    // SAFETY: kernel reads through the helper; a bad pointer only fails the read.
    unsafe {
        let family: u16 = bpf_probe_read_kernel(base.add(off!(skc_family)) as *const u16).ok()?;
        let dport: u16 = bpf_probe_read_kernel(base.add(off!(skc_dport)) as *const u16).ok()?;
        let mut peer = UdpPeer {
            family,
            port: u16::from_be(dport),
            ..UdpPeer::default()
        };
        if family == AF_INET6 {
            peer.addr =
                bpf_probe_read_kernel(base.add(off!(skc_v6_daddr)) as *const [u8; 16]).ok()?;
        } else {
            let a: [u8; 4] =
                bpf_probe_read_kernel(base.add(off!(skc_daddr)) as *const [u8; 4]).ok()?;
            peer.addr[..4].copy_from_slice(&a);
        }
        Some(peer)
    }
}

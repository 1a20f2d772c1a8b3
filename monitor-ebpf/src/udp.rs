//! UDP: bytes and datagrams per (tracked process, remote address), from
//! the packets of tracked sockets. The peer is read from each packet, so
//! unconnected sockets (sendto, recvfrom) are covered as connected ones.

use aya_ebpf::{helpers::bpf_ktime_get_ns, programs::SkBuffContext};
use monitor_common::{
    EventHeader, SockOwner, TOOL_PENDING, UdpFlow, UdpFlowEvent, UdpKey, counter, kind,
    payload_kind, sock_status,
};

use crate::{
    maps::{UDP_FLOWS, atomic_add, bump, emit, tracked},
    packets::{DNS_PORT, Packet, Way},
    payload,
};

/// Counts one datagram of a tracked socket (payload bytes; a GSO packet of
/// several datagrams counts as one datagram with all their bytes).
#[inline(always)]
pub fn packet(ctx: &SkBuffContext, owner: *mut SockOwner, p: &Packet, way: Way) {
    // SAFETY (owner): a live socket-storage value; plain field accesses.
    let (tgid, mut tool) = unsafe { ((*owner).tgid, (*owner).tool) };
    if tool == TOOL_PENDING {
        match tracked(tgid) {
            Some(t) => tool = t.tool,
            // Its process was judged not an agent (or left before it was
            // judged): this socket is not watched any more.
            None => {
                unsafe { (*owner).status = sock_status::IGNORED };
                return;
            }
        }
        unsafe { (*owner).tool = tool };
    }
    let out = way.out();
    let (raddr, rport) = if out {
        (p.dst, p.dport)
    } else {
        (p.src, p.sport)
    };
    let bytes = u64::from(p.payload_len);
    if !out && rport == DNS_PORT && bytes > 0 {
        let about = payload::About {
            sock: 0,
            tgid,
            kind: payload_kind::DNS,
            marks: [0; 2],
        };
        let src = payload::Source::Packet(ctx.skb.skb, p.payload);
        payload::emit_payload(src, bytes, &about);
    }
    let key = UdpKey {
        tgid,
        rport,
        family: p.family,
        raddr,
    };
    if add(key, bytes, out) {
        return;
    }
    let mut flow = UdpFlow {
        tool,
        ..UdpFlow::default()
    };
    if out {
        (flow.tx_bytes, flow.tx_datagrams) = (bytes, 1);
    } else {
        (flow.rx_bytes, flow.rx_datagrams) = (bytes, 1);
    }
    // BPF_NOEXIST: another CPU may have started the flow a moment ago.
    if UDP_FLOWS.insert(key, flow, 1).is_err() {
        if !add(key, bytes, out) {
            bump(counter::UDP_FLOWS_FULL);
        }
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
        inbound: u32::from(!out),
    });
}

/// Adds a datagram to an existing flow; false when there is none.
#[inline(always)]
fn add(key: UdpKey, bytes: u64, out: bool) -> bool {
    let Some(flow) = UDP_FLOWS.get_ptr_mut(key) else {
        return false;
    };
    // SAFETY: map value; counters are only added to, from any CPU.
    unsafe {
        let (b, d) = if out {
            (&raw mut (*flow).tx_bytes, &raw mut (*flow).tx_datagrams)
        } else {
            (&raw mut (*flow).rx_bytes, &raw mut (*flow).rx_datagrams)
        };
        atomic_add(b, bytes);
        atomic_add(d, 1);
    }
    true
}

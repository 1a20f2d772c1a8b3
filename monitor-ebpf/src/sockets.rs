//! Payload bytes of tracked processes, counted where the socket layer
//! reports them.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use monitor_common::{
    AF_INET, AF_INET6, Conn, IPPROTO_TCP, IPPROTO_UDP, TOOL_PENDING, conn_flags, payload_kind,
};

use crate::{
    maps::{CONNS, RESOLVED, atomic_add, current_tgid, off, tracked},
    payload,
    tcp::{hand_over, open_on_first_use},
    tls, udp,
};

const MSG_PEEK: i32 = 2;
pub const DNS_PORT: u16 = 53;

/// Hook: tracepoint `sock:sock_send_length`, fired by sock_sendmsg() in the
/// sender's context with the bytes the protocol accepted. One hook covers
/// send, sendto, sendmsg, sendmmsg, write, writev, sendfile and io_uring for
/// TCP and UDP alike, without kprobes.
#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn sock_send_length(ctx: TracePointContext) -> u32 {
    match account(&ctx, Direction::Tx) {
        Ok(()) | Err(_) => 0,
    }
}

/// Hook: tracepoint `sock:sock_recv_length`, fired by sock_recvmsg() in the
/// reader's context with the bytes handed to the process (it also fires for
/// EAGAIN, unix and netlink sockets: filtered here).
#[tracepoint(category = "sock", name = "sock_recv_length")]
pub fn sock_recv_length(ctx: TracePointContext) -> u32 {
    match account(&ctx, Direction::Rx) {
        Ok(()) | Err(_) => 0,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Tx,
    Rx,
}

fn account(ctx: &TracePointContext, dir: Direction) -> Result<(), i64> {
    // SAFETY (all reads): offsets come from this kernel's tracefs format file.
    let family: u16 = unsafe { ctx.read_at(off!(len_family))? };
    if family != AF_INET && family != AF_INET6 {
        return Ok(());
    }
    let tgid = current_tgid();
    let Some(entry) = tracked(tgid) else {
        return Ok(());
    };
    let protocol: u16 = unsafe { ctx.read_at(off!(len_protocol))? };
    let ret: i32 = unsafe { ctx.read_at(off!(len_ret))? };
    let sock: u64 = unsafe { ctx.read_at(off!(len_sk))? };
    // A peeked datagram or segment is read again later: count it then.
    let peek = dir == Direction::Rx && {
        let flags: i32 = unsafe { ctx.read_at(off!(len_flags))? };
        flags & MSG_PEEK != 0
    };
    if protocol == IPPROTO_UDP {
        // The peer noted by the cgroup hook belongs to this datagram whether
        // or not it went through: take it now.
        let peer = udp::take_peer(bpf_get_current_pid_tgid());
        if ret > 0 && !peek {
            udp::account(sock, tgid, entry.tool, peer, ret as u64, dir);
        }
        return Ok(());
    }
    if protocol != IPPROTO_TCP || ret <= 0 || peek {
        return Ok(());
    }
    let bytes = ret as u64;
    let (tx, rx) = match dir {
        Direction::Tx => (bytes, 0),
        Direction::Rx => (0, bytes),
    };
    // The common case, a known connection of the same owner, costs one lookup.
    let conn = match CONNS.get_ptr_mut(sock) {
        Some(conn) if same_owner(sock, conn, entry.tool) => {
            add(conn, bytes, dir);
            Some(conn)
        }
        // Passed to a process of another tool: it counts for its user now.
        Some(conn) => {
            hand_over(sock, conn, tgid, entry.tool, tx, rx);
            CONNS.get_ptr_mut(sock)
        }
        None => {
            let opened = open_on_first_use(sock, tgid, entry.tool, tx, rx, false);
            let conn = CONNS.get_ptr_mut(sock);
            if !opened && let Some(conn) = conn {
                // Another CPU opened it a moment ago.
                add(conn, bytes, dir);
            }
            conn
        }
    };
    if let Some(conn) = conn {
        name_from_payload(sock, conn, tgid, bytes, dir);
    }
    // Ties TLS library calls of this thread to this socket.
    tls::tie(sock, dir == Direction::Tx);
    Ok(())
}

/// Whether bytes of a process labelled `tool` belong to the connection's
/// owner: the same label, or a user still pending (not known to be another
/// tool). A connection opened while its process was pending takes the label
/// user space resolved it to (`RESOLVED`), or, until user space has, its
/// owner's current label; then the next call is a plain compare.
#[inline(always)]
fn same_owner(sock: u64, conn: *mut Conn, tool: u32) -> bool {
    // SAFETY: `conn` points into a live map value.
    let (owner_tool, owner) = unsafe { ((*conn).tool, (*conn).tgid) };
    if owner_tool == tool || tool == TOOL_PENDING {
        return true;
    }
    if owner_tool != TOOL_PENDING {
        return false;
    }
    // SAFETY: copied out of the map.
    let label = match unsafe { RESOLVED.get(sock).copied() } {
        Some(label) => label,
        None => match tracked(owner) {
            Some(t) => t.tool,
            None => return true,
        },
    };
    if label == TOOL_PENDING {
        return true;
    }
    // SAFETY: as above; a plain store of the label field.
    unsafe { (*conn).tool = label };
    label == tool
}

/// Captures what names the destination: the first bytes sent on the
/// connection (TLS ClientHello, HTTP request head), and DNS over TCP answers.
#[inline(always)]
fn name_from_payload(sock: u64, conn: *mut Conn, tgid: u32, bytes: u64, dir: Direction) {
    // SAFETY: `conn` points into a live map value; a plain flag store.
    unsafe {
        match dir {
            Direction::Tx if (*conn).flags & conn_flags::FIRST_TX_SEEN == 0 => {
                (*conn).flags |= conn_flags::FIRST_TX_SEEN;
                payload::capture(sock, tgid, payload_kind::FIRST_TX, bytes);
            }
            Direction::Rx if (*conn).rport == DNS_PORT => {
                payload::capture(sock, tgid, payload_kind::DNS, bytes);
            }
            _ => {}
        }
    }
}

#[inline(always)]
fn add(conn: *mut Conn, bytes: u64, dir: Direction) {
    // SAFETY: map values live as long as the entry; the counters are only
    // ever added to, from any CPU, hence atomics.
    unsafe {
        match dir {
            Direction::Tx => atomic_add(&raw mut (*conn).tx_bytes, bytes),
            Direction::Rx => atomic_add(&raw mut (*conn).rx_bytes, bytes),
        }
    }
}

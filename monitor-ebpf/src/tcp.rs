//! TCP connections of tracked sockets: opened at their first packet,
//! counted from sequence and acknowledgement numbers, closed by sock_ops
//! (or, without it, by their FIN and RST packets).
//!
//! Bytes sent are what the peer acknowledged, so they equal what the other
//! side received; bytes received are what arrived in order. Retransmits
//! never count twice, and nothing here runs for untracked sockets.

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::{bpf_get_socket_cookie, bpf_ktime_get_ns},
    programs::SkBuffContext,
};
use monitor_common::{
    Conn, ConnEvent, EventHeader, SockOwner, TOOL_PENDING, TcpSeq, conn_flags, counter, framing,
    kind, lru, origin, payload_kind, sock_status,
};

use crate::{
    maps::{CONNS, EVENTS, RESOLVED, SSL_SOCKS, Session, bump, deferred, lru_remove, tracked},
    packets::{DNS_PORT, Packet, Way},
    payload, records, tls_calls,
};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
/// An offset not seen yet (a FIN).
const UNSEEN: u64 = u64::MAX;

/// One packet of a tracked TCP socket.
#[inline(always)]
pub fn packet(ctx: &SkBuffContext, owner: *mut SockOwner, p: &Packet, way: Way) {
    let skb = ctx.skb.skb;
    // SAFETY (owner): a live socket-storage value; plain field accesses.
    let cookie = match unsafe { (*owner).status } {
        sock_status::WATCHED => unsafe { (*owner).cookie },
        sock_status::NEW => match open(skb, owner, p, way) {
            Some(cookie) => cookie,
            None => return,
        },
        // Adopted by user space, which made its `CONNS` entry.
        _ => unsafe {
            (*owner).status = sock_status::WATCHED;
            (*owner).cookie
        },
    };
    let Some(conn) = CONNS.get_ptr_mut(cookie) else {
        // Closed, or user space found its process is not an agent.
        unsafe { (*owner).status = sock_status::IGNORED };
        return;
    };
    follow_owner(cookie, conn);
    count(conn, p, way);
    // SAFETY: `conn` points into a live map value.
    let (tgid, flags, rport) = unsafe { ((*conn).tgid, (*conn).flags, (*conn).rport) };
    if p.payload_len > 0 {
        // The first bytes sent name the connection; DNS answers name others.
        let capture = match way {
            Way::Out { .. } if flags & conn_flags::FIRST_TX_SEEN == 0 => {
                unsafe { (*conn).flags |= conn_flags::FIRST_TX_SEEN };
                if unsafe { (*conn).origin } == origin::CONNECT && records::is_client_hello(ctx, p)
                {
                    records::start(conn);
                }
                Some(payload_kind::FIRST_TX)
            }
            Way::In if rport == DNS_PORT => Some(payload_kind::DNS),
            _ => None,
        };
        if let Some(kind) = capture {
            let about = payload::About {
                sock: cookie,
                tgid,
                kind,
                marks: [0; 2],
            };
            let src = payload::Source::Packet(skb, p.payload);
            payload::emit_payload(src, u64::from(p.payload_len), &about);
        }
        // Whether a probe sees this connection: only egress asks (the
        // first data record goes out in the packet that ties it).
        let probed = match way {
            Way::Out { tie_tls } => {
                // SAFETY: a plain read of a live map value.
                (tie_tls && tls_calls::tie(cookie, tgid)) || unsafe { (*conn).tls_lib } != 0
            }
            Way::In => false,
        };
        records::follow(ctx, conn, p, way, probed);
    }
    if flags & conn_flags::STATE_CB == 0 && finished(conn) {
        close(cookie, conn);
        unsafe { (*owner).status = sock_status::IGNORED };
    }
}

/// The first packet of a tracked socket: start watching it. A connect()ed
/// socket's first packet is its SYN leaving; anything else is a socket
/// accepted on a tracked listener (it carries the listener's owner).
#[inline(always)]
fn open(skb: *mut __sk_buff, owner: *mut SockOwner, p: &Packet, way: Way) -> Option<u64> {
    // SAFETY: `skb` is this program's context.
    let cookie = unsafe { bpf_get_socket_cookie(skb.cast()) };
    let out = way.out();
    let connect = out && p.tcp_flags & SYN != 0 && p.tcp_flags & ACK == 0;
    // SAFETY (owner): a live socket-storage value.
    let (tgid, tool, owner_flags) = unsafe { ((*owner).tgid, (*owner).tool, (*owner).flags) };
    let (local, remote) = if out {
        ((p.src, p.sport), (p.dst, p.dport))
    } else {
        ((p.dst, p.dport), (p.src, p.sport))
    };
    let conn = Conn {
        tgid,
        tool,
        start_ns: unsafe { bpf_ktime_get_ns() },
        raddr: remote.0,
        laddr: local.0,
        rport: remote.1,
        lport: local.1,
        family: p.family,
        origin: if connect {
            origin::CONNECT
        } else {
            origin::ACCEPT
        },
        flags: owner_flags & conn_flags::STATE_CB,
        seq: TcpSeq {
            tx_fin: UNSEEN,
            rx_fin: UNSEEN,
            ..TcpSeq::default()
        },
        ..Conn::default()
    };
    // BPF_NOEXIST: two CPUs may see the first packets at once; one wins,
    // and only the winner announces the connection.
    let won = CONNS.insert(cookie, conn, 1).is_ok();
    if !won && CONNS.get_ptr(cookie).is_none() {
        bump(counter::CONNS_FULL);
        unsafe { (*owner).status = sock_status::IGNORED };
        return None;
    }
    unsafe {
        (*owner).cookie = cookie;
        (*owner).status = sock_status::WATCHED;
    }
    if let Some(conn) = CONNS.get_ptr(cookie).filter(|_| won) {
        emit_conn(kind::CONN_OPEN, cookie, conn);
    }
    Some(cookie)
}

/// Keeps the connection's label equal to its owner's tool: a label still
/// pending takes what user space resolved; a process that exec'd into
/// another tool hands the connection over (the old tool's part ends here,
/// the new one's starts with this packet). User space may have resolved a
/// pending label before such an exec: the owner's tool now decides.
#[inline(always)]
fn follow_owner(cookie: u64, conn: *mut Conn) {
    // SAFETY: `conn` points into a live map value.
    let (mut label, tgid) = unsafe { ((*conn).tool, (*conn).tgid) };
    // Gone from `TRACKED` reads as pending: nothing to follow. (A plain
    // value, not an Option: the verifier refuses reading the register of
    // an Option's unset payload.)
    let now = tracked(tgid).map_or(TOOL_PENDING, |t| t.tool);
    if label == TOOL_PENDING {
        // SAFETY: copied out of the map.
        label = unsafe { RESOLVED.get(cookie).copied() }.unwrap_or(now);
        if label == TOOL_PENDING {
            return;
        }
        unsafe { (*conn).tool = label };
    }
    if now == TOOL_PENDING || now == label {
        return;
    }
    emit_conn(kind::CONN_CLOSE, cookie, conn);
    // SAFETY: as above; this CPU rewrites the value it just reported.
    unsafe {
        (*conn).tool = now;
        (*conn).start_ns = bpf_ktime_get_ns();
        (*conn).tls_tx = 0;
        (*conn).tls_rx = 0;
        (*conn).tls_lib = 0;
        (*conn).flags &= !conn_flags::FIRST_TX_SEEN;
    }
    rebase(conn);
    emit_conn(kind::CONN_OPEN, cookie, conn);
}

/// Starts the connection's counts again where the part just reported
/// ended: what the peer acknowledged and what arrived so far. Bytes in
/// flight (sent, not yet acknowledged) count for the new part when their
/// acknowledgement comes, so no byte is lost between the two; the
/// anchors stay, so the new part needs no packet to find its bases.
#[inline(always)]
fn rebase(conn: *mut Conn) {
    // SAFETY: `conn` points into a live map value.
    unsafe {
        let (tx, rx) = ((*conn).tx_bytes, (*conn).rx_bytes);
        let s = &mut (*conn).seq;
        s.tx_base = s.tx_base.wrapping_add(tx as u32);
        s.rx_base = s.rx_base.wrapping_add(rx as u32);
        s.tx_sent = s.tx_sent.saturating_sub(tx);
        s.tx_acked = s.tx_acked.saturating_sub(tx);
        s.rx_seen = s.rx_seen.saturating_sub(rx);
        s.rx_acked = s.rx_acked.saturating_sub(rx);
        if s.tx_fin != UNSEEN {
            s.tx_fin = s.tx_fin.saturating_sub(tx);
        }
        if s.rx_fin != UNSEEN {
            s.rx_fin = s.rx_fin.saturating_sub(rx);
        }
        framing::rebase(&mut (*conn).records, tx, rx);
        (*conn).tx_bytes = 0;
        (*conn).rx_bytes = 0;
    }
}

/// Moves the connection's counters on by one packet's sequence and
/// acknowledgement numbers. Each direction's base is anchored at the first
/// packet that shows it (a SYN, or for a socket adopted mid-stream the
/// first packet seen: counting starts there).
#[inline(always)]
fn count(conn: *mut Conn, p: &Packet, way: Way) {
    // SAFETY: `conn` points into a live map value. Another CPU may update
    // the same value at once (egress and ingress); every field only moves
    // forward, and the close reconciles with the socket's own numbers.
    unsafe {
        let flags = (*conn).flags;
        let s = &mut (*conn).seq;
        let start = p.seq.wrapping_add(u32::from(p.tcp_flags & SYN != 0));
        let end = start.wrapping_add(p.payload_len);
        let acks = p.tcp_flags & ACK != 0;
        let mut anchored = flags;
        if way.out() {
            if anchored & conn_flags::TX_ANCHORED == 0 {
                s.tx_base = start;
                anchored |= conn_flags::TX_ANCHORED;
            }
            if acks && anchored & conn_flags::RX_ANCHORED == 0 {
                s.rx_base = p.ack;
                anchored |= conn_flags::RX_ANCHORED;
            }
            // A segment without payload says nothing of what was sent: a
            // pure ACK after our FIN carries the FIN's sequence number + 1.
            let sent = widen(s.tx_sent, end.wrapping_sub(s.tx_base));
            if p.payload_len > 0 && sent > s.tx_sent {
                s.tx_sent = sent;
            }
            if p.tcp_flags & FIN != 0 {
                s.tx_fin = sent;
            }
            if acks {
                s.rx_acked = advance(s.rx_acked, p.ack.wrapping_sub(s.rx_base));
            }
        } else {
            if anchored & conn_flags::RX_ANCHORED == 0 {
                s.rx_base = start;
                anchored |= conn_flags::RX_ANCHORED;
            }
            if acks && anchored & conn_flags::TX_ANCHORED == 0 {
                s.tx_base = p.ack;
                anchored |= conn_flags::TX_ANCHORED;
            }
            if acks {
                s.tx_acked = advance(s.tx_acked, p.ack.wrapping_sub(s.tx_base));
            }
            // In order: starts at or before what has arrived so far. A
            // segment past a hole waits for our acknowledgements.
            let from = widen(s.rx_seen, start.wrapping_sub(s.rx_base));
            let to = from + u64::from(p.payload_len);
            if p.payload_len > 0 && from <= s.rx_seen && to > s.rx_seen {
                s.rx_seen = to;
            }
            if p.tcp_flags & FIN != 0 {
                s.rx_fin = to;
            }
        }
        if p.tcp_flags & RST != 0 {
            anchored |= conn_flags::RESET;
        }
        (*conn).flags = anchored;
        settle_bytes(conn);
    }
}

/// The byte counters from the sequence bookkeeping: a FIN takes one
/// sequence number but carries no byte.
#[inline(always)]
pub fn settle_bytes(conn: *mut Conn) {
    // SAFETY: `conn` points into a live map value.
    unsafe {
        let s = &(*conn).seq;
        let tx = s.tx_acked.min(s.tx_sent);
        let rx = s.rx_seen.max(s.rx_acked.min(s.rx_fin));
        if tx > (*conn).tx_bytes {
            (*conn).tx_bytes = tx;
        }
        if rx > (*conn).rx_bytes {
            (*conn).rx_bytes = rx;
        }
    }
}

/// `off` (32 bits past a base) as a 64-bit offset near `near`: sequence
/// numbers wrap every 4 GiB, and no packet jumps 2 GiB.
#[inline(always)]
pub fn widen(near: u64, off: u32) -> u64 {
    let delta = off.wrapping_sub(near as u32) as i32;
    if delta >= 0 {
        near + delta as u64
    } else {
        near.saturating_sub(u64::from(delta.unsigned_abs()))
    }
}

/// The larger of `cur` and `off` widened near it.
#[inline(always)]
pub fn advance(cur: u64, off: u32) -> u64 {
    cur.max(widen(cur, off))
}

/// Whether both directions finished (each FIN acknowledged), or a RST ended
/// the connection: the close, for sockets without state callbacks.
#[inline(always)]
fn finished(conn: *const Conn) -> bool {
    // SAFETY: `conn` points into a live map value.
    unsafe {
        let s = &(*conn).seq;
        (*conn).flags & conn_flags::RESET != 0
            || (s.tx_fin != UNSEEN
                && s.tx_acked > s.tx_fin
                && s.rx_fin != UNSEEN
                && s.rx_acked > s.rx_fin)
    }
}

/// Ends a watched connection: its last counts go to user space.
#[inline(always)]
pub fn close(cookie: u64, conn: *const Conn) {
    emit_conn(kind::CONN_CLOSE, cookie, conn);
    // SAFETY: plain reads of a live map value before removing it.
    let (tgid, ssl) = unsafe { ((*conn).tgid, (*conn).ssl) };
    // Whether its label came from there or not (user space may answer
    // after the kernel found the owner's tool itself).
    lru_remove(&RESOLVED, lru::RESOLVED, &cookie);
    // The session's tie goes with its socket, unless the session moved on
    // to another socket since.
    // SAFETY: copied out of the map.
    let session = Session::new(tgid, ssl);
    if ssl != 0 && unsafe { SSL_SOCKS.get(session).copied() } == Some(cookie) {
        lru_remove(&SSL_SOCKS, lru::SSL_SOCKS, &session);
    }
    let _ = CONNS.remove(cookie);
}

/// Sends a connection event, written straight into the ring buffer: the
/// record is too large to build on the 512-byte BPF stack as well.
#[inline(always)]
fn emit_conn(event_kind: u32, cookie: u64, conn: *const Conn) {
    let Some(mut entry) = EVENTS.reserve::<ConnEvent>(0) else {
        bump(counter::EVENTS_LOST);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` is the reserved record; `conn` a live value.
    unsafe {
        (*event).header = EventHeader {
            kind: event_kind,
            tgid: (*conn).tgid,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*event).sock = cookie;
        (*event).conn = *conn;
    }
    // Closes wait for the drain tick. Opens take the default wake-up
    // (none while user space is busy, so churn stays cheap): user space
    // looks for new TLS libraries at an agent's connect, before its first
    // TLS write, which waits for the server's handshake.
    let flags = if event_kind == kind::CONN_CLOSE {
        deferred()
    } else {
        0
    };
    entry.submit(flags);
}

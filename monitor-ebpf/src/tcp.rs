//! TCP connection lifecycle.

use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{
    AF_INET, AF_INET6, Conn, ConnEvent, EventHeader, IPPROTO_TCP, TOOL_PENDING, counter, kind,
    origin,
};

use crate::maps::{CONNS, EVENTS, PROMPT, RESOLVED, bump, current_tgid, deferred, off, tracked};

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_LISTEN: u8 = 10;

/// Hook: tracepoint `sock:inet_sock_set_state`, the stable hook on every TCP
/// state change (tcpstates/tcplife use it). `CLOSE -> SYN_SENT` runs in the
/// connect() caller's context, so it attributes outbound connections.
#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    match try_inet_sock_set_state(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_inet_sock_set_state(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY (all reads): offsets come from this kernel's tracefs format file.
    let protocol: u16 = unsafe { ctx.read_at(off!(iss_protocol))? };
    if protocol != IPPROTO_TCP {
        return Ok(());
    }
    let newstate: i32 = unsafe { ctx.read_at(off!(iss_newstate))? };
    if newstate == TCP_ESTABLISHED {
        return note_local_port(ctx);
    }
    if newstate != TCP_SYN_SENT {
        return Ok(());
    }
    let tgid = current_tgid();
    let Some(entry) = tracked(tgid) else {
        return Ok(());
    };
    let sock: u64 = unsafe { ctx.read_at(off!(iss_skaddr))? };
    let family: u16 = unsafe { ctx.read_at(off!(iss_family))? };
    let mut conn = Conn {
        tgid,
        tool: entry.tool,
        start_ns: unsafe { bpf_ktime_get_ns() },
        family,
        origin: origin::CONNECT,
        // Ports in this tracepoint are already in host byte order.
        rport: unsafe { ctx.read_at(off!(iss_dport))? },
        lport: unsafe { ctx.read_at(off!(iss_sport))? },
        ..Conn::default()
    };
    if family == AF_INET6 {
        conn.raddr = unsafe { ctx.read_at(off!(iss_daddr_v6))? };
        conn.laddr = unsafe { ctx.read_at(off!(iss_saddr_v6))? };
    } else {
        let r: [u8; 4] = unsafe { ctx.read_at(off!(iss_daddr))? };
        let l: [u8; 4] = unsafe { ctx.read_at(off!(iss_saddr))? };
        conn.raddr[..4].copy_from_slice(&r);
        conn.laddr[..4].copy_from_slice(&l);
    }
    open(sock, conn, false);
    Ok(())
}

/// `-> ESTABLISHED` of a watched connection: connect() moves to SYN_SENT
/// before it picks the local port, so the port is known only now.
#[inline(always)]
fn note_local_port(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY (reads): offsets from this kernel's tracefs format file.
    let sock: u64 = unsafe { ctx.read_at(off!(iss_skaddr))? };
    let Some(conn) = CONNS.get_ptr_mut(sock) else {
        return Ok(());
    };
    // SAFETY: live map value; only this socket's handshake writes the port.
    unsafe {
        if (*conn).lport == 0 {
            (*conn).lport = ctx.read_at(off!(iss_sport))?;
        }
    }
    Ok(())
}

/// Hook: tracepoint `tcp:tcp_destroy_sock`, fired once when a TCP socket is
/// freed, after its owner closed it. Not the move to `TCP_CLOSE`: a FIN in
/// FIN_WAIT2 closes the socket in softirq (tcp_time_wait -> tcp_done) while
/// the reply may still wait, unread, in its receive queue.
#[tracepoint(category = "tcp", name = "tcp_destroy_sock")]
pub fn tcp_destroy_sock(ctx: TracePointContext) -> u32 {
    match try_tcp_destroy_sock(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_tcp_destroy_sock(ctx: &TracePointContext) -> Result<(), i64> {
    // SAFETY: offset from this kernel's tracefs format file.
    let sock: u64 = unsafe { ctx.read_at(off!(destroy_skaddr))? };
    // SAFETY: copied out before the entry is removed.
    let Some(conn) = (unsafe { CONNS.get(sock).copied() }) else {
        return Ok(());
    };
    let _ = CONNS.remove(sock);
    if conn.tool == TOOL_PENDING {
        let _ = RESOLVED.remove(sock);
    }
    emit_conn(kind::CONN_CLOSE, sock, &conn, unsafe { bpf_ktime_get_ns() });
    Ok(())
}

/// Sends a connection event, written straight into the ring buffer: the
/// record is too large to build on the 512-byte BPF stack as well.
#[inline(always)]
fn emit_conn(event_kind: u32, sock: u64, conn: *const Conn, ktime_ns: u64) {
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
            ktime_ns,
        };
        (*event).sock = sock;
        (*event).conn = *conn;
    }
    // A socket first seen in use may be an accepted one: user space checks
    // the process's listening ports while it lives. A connect() can wait for
    // the default wake-up (none while user space is busy: churn stays cheap).
    let flags = if event_kind == kind::CONN_CLOSE {
        deferred()
    } else if unsafe { (*conn).origin } == origin::FIRST_USE {
        PROMPT
    } else {
        0
    };
    entry.submit(flags);
}

/// A process of another tool used a watched socket (it was passed over a
/// unix socket or across exec): the owner's connection ends here with its
/// counts, and the user's starts with these bytes.
#[inline(always)]
pub fn hand_over(sock: u64, old: *const Conn, tgid: u32, tool: u32, tx: u64, rx: u64) {
    // SAFETY: `old` points into a live map value, sent before replacing it.
    emit_conn(kind::CONN_CLOSE, sock, old, unsafe { bpf_ktime_get_ns() });
    open_on_first_use(sock, tgid, tool, tx, rx, true);
}

/// Starts watching `sock` and tells user space. Unless `replace`, fails when
/// another CPU watches it already.
#[inline(always)]
fn open(sock: u64, conn: Conn, replace: bool) -> bool {
    // BPF_NOEXIST: two CPUs may find the same socket at once; one wins.
    let flags = if replace { 0 } else { 1 };
    if CONNS.insert(sock, conn, flags).is_err() {
        if unsafe { CONNS.get(sock).is_none() } {
            bump(counter::CONNS_FULL);
        }
        return false;
    }
    emit_conn(kind::CONN_OPEN, sock, &conn, conn.start_ns);
    true
}

/// A tracked process moved bytes on a TCP socket that is not in `CONNS`: it
/// was accepted, inherited, passed over a unix socket, or opened before
/// agentmon started. Read its addresses from `struct sock_common` and watch
/// it from now on. Returns false when the socket is not worth watching.
/// Inlined: BPF calls take at most five arguments.
#[inline(always)]
pub fn open_on_first_use(sock: u64, tgid: u32, tool: u32, tx: u64, rx: u64, replace: bool) -> bool {
    let base = sock as *const u8;
    let read_u16 = |o: usize| unsafe { bpf_probe_read_kernel(base.add(o) as *const u16) };
    let Ok(state) = (unsafe { bpf_probe_read_kernel(base.add(off!(skc_state))) }) else {
        return false;
    };
    // Listening sockets carry no payload of their own.
    if state == TCP_LISTEN {
        return false;
    }
    let (Ok(family), Ok(dport_be), Ok(num)) = (
        read_u16(off!(skc_family)),
        read_u16(off!(skc_dport)),
        read_u16(off!(skc_num)),
    ) else {
        return false;
    };
    let mut conn = Conn {
        tgid,
        tool,
        start_ns: unsafe { bpf_ktime_get_ns() },
        tx_bytes: tx,
        rx_bytes: rx,
        family,
        origin: origin::FIRST_USE,
        rport: u16::from_be(dport_be),
        lport: num,
        ..Conn::default()
    };
    let read_addr = |o: usize, dst: &mut [u8; 16], len: usize| -> bool {
        let src = unsafe { base.add(o) };
        if len == 16 {
            match unsafe { bpf_probe_read_kernel(src as *const [u8; 16]) } {
                Ok(a) => *dst = a,
                Err(_) => return false,
            }
        } else {
            match unsafe { bpf_probe_read_kernel(src as *const [u8; 4]) } {
                Ok(a) => dst[..4].copy_from_slice(&a),
                Err(_) => return false,
            }
        }
        true
    };
    let ok = match family {
        AF_INET => {
            read_addr(off!(skc_daddr), &mut conn.raddr, 4)
                && read_addr(off!(skc_rcv_saddr), &mut conn.laddr, 4)
        }
        AF_INET6 => {
            read_addr(off!(skc_v6_daddr), &mut conn.raddr, 16)
                && read_addr(off!(skc_v6_rcv_saddr), &mut conn.laddr, 16)
        }
        _ => false,
    };
    ok && open(sock, conn, replace)
}

//! The close of tracked TCP connections, from the socket's own state
//! changes.

use aya_ebpf::{
    bindings::{
        BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG,
        BPF_SOCK_OPS_TCP_CONNECT_CB,
    },
    macros::sock_ops,
    programs::SockOpsContext,
};
use monitor_common::{SockOwner, conn_flags, sock_status};

use crate::{
    maps::{CONNS, SOCKS},
    tcp,
};

const TCP_CLOSE: u32 = 7;

/// Hook: sock_ops on the cgroup2 root. For every TCP socket it runs only at
/// connection set-up (connect, the handshake's end: a handful of calls per
/// connection, none per packet); a tracked socket is then asked for state
/// callbacks, so its move to TCP_CLOSE, after the last FIN or RST, ends the
/// connection with the socket's final sequence numbers. Never changes the
/// socket's behaviour.
#[sock_ops]
pub fn sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_TCP_CONNECT_CB | BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => watch_state(&ctx),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == TCP_CLOSE => closed(&ctx),
        _ => {}
    }
    1
}

/// The owner of the callback's socket, if it is a tracked one.
#[inline(always)]
fn owner_of(ctx: &SockOpsContext) -> Option<*mut SockOwner> {
    // SAFETY: a checked context field.
    let sk = unsafe { (*ctx.ops).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    let owner = SOCKS.get(sk.cast(), None);
    (!owner.is_null()).then_some(owner)
}

#[inline(always)]
fn watch_state(ctx: &SockOpsContext) {
    let Some(owner) = owner_of(ctx) else { return };
    // SAFETY: a live socket-storage value.
    unsafe {
        if (*owner).status == sock_status::IGNORED {
            return;
        }
        let flags = ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG;
        if ctx.set_cb_flags(flags as i32).is_ok() {
            (*owner).flags |= conn_flags::STATE_CB;
            if (*owner).status == sock_status::WATCHED
                && let Some(conn) = CONNS.get_ptr_mut((*owner).cookie)
            {
                (*conn).flags |= conn_flags::STATE_CB;
            }
        }
    }
}

#[inline(always)]
fn closed(ctx: &SockOpsContext) {
    let Some(owner) = owner_of(ctx) else { return };
    // SAFETY: a live socket-storage value and a live map value.
    unsafe {
        if (*owner).status != sock_status::WATCHED {
            return;
        }
        (*owner).status = sock_status::IGNORED;
        let cookie = (*owner).cookie;
        let Some(conn) = CONNS.get_ptr_mut(cookie) else {
            return;
        };
        // The socket's own numbers are final now: a packet counted on
        // another CPU at the same moment cannot leave the totals short.
        let (una, rcv_nxt) = ((*ctx.ops).snd_una, (*ctx.ops).rcv_nxt);
        let flags = (*conn).flags;
        let s = &mut (*conn).seq;
        if flags & conn_flags::TX_ANCHORED != 0 {
            s.tx_acked = tcp::advance(s.tx_acked, una.wrapping_sub(s.tx_base));
        }
        if flags & conn_flags::RX_ANCHORED != 0 {
            s.rx_acked = tcp::advance(s.rx_acked, rcv_nxt.wrapping_sub(s.rx_base));
        }
        tcp::settle_bytes(conn);
        tcp::close(cookie, conn);
    }
}

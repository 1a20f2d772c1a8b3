//! Go's crypto/tls: `(*Conn).Write(b []byte) (int, error)` and
//! `(*Conn).Read(b []byte) (int, error)`, probed in the executable, whose
//! `.gopclntab` names them even when stripped (user space finds them).
//!
//! Go passes arguments and results in registers (ABIInternal, amd64: the
//! receiver in RAX, the slice's pointer and length in RBX and RCX; `n`
//! comes back in RAX) and keeps the running goroutine in R14. A goroutine
//! can move to another thread while it waits inside a call and its stack
//! can be copied, so a call is keyed by goroutine, and its result is read
//! by probes on the function's return instructions: a uretprobe would
//! rewrite a return address on a stack Go may move.

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use monitor_common::{NO_MARK, TlsCall, lru, tls_lib};

use crate::{
    maps::{
        GO_CALLS, GoCall, TLS_CALLS, current_task, current_tgid, lru_insert, lru_remove, tracked,
    },
    tls_calls,
};

/// Hook: uprobe on `crypto/tls.(*Conn).Write`.
#[uprobe]
pub fn go_tls_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, 1)
}

/// Hook: uprobe on `crypto/tls.(*Conn).Read`.
#[uprobe]
pub fn go_tls_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, 0)
}

/// Hook: uprobes on every return instruction of both functions.
#[uprobe]
pub fn go_tls_return(ctx: ProbeContext) -> u32 {
    let tgid = current_tgid();
    // SAFETY: `regs` is the probe's context, readable as a whole.
    let (g, n) = unsafe { ((*ctx.regs).r14, (*ctx.regs).rax as i64) };
    let key = GoCall { tgid, _pad: 0, g };
    // SAFETY: copied out before removal.
    let Some(call) = (unsafe { GO_CALLS.get(key).copied() }) else {
        return 0;
    };
    lru_remove(&GO_CALLS, lru::GO_CALLS, &key);
    let task = current_task();
    // A write whose packet never came (nothing sent yet) leaves its thread
    // mark; this thread's, if the goroutine did not move.
    // SAFETY: copied out of the map.
    if call.write == 1 && unsafe { TLS_CALLS.get(task).copied() }.is_some_and(|c| c == call) {
        lru_remove(&TLS_CALLS, lru::TLS_CALLS, &task);
    }
    if n > 0 {
        tls_calls::count(task, &call, n as u64);
    }
    0
}

#[inline(always)]
fn enter(ctx: &ProbeContext, write: u32) -> u32 {
    let tgid = current_tgid();
    if tracked(tgid).is_none() {
        return 0;
    }
    // SAFETY: `regs` is the probe's context, readable as a whole.
    let (conn, buf, g) = unsafe { ((*ctx.regs).rax, (*ctx.regs).rbx, (*ctx.regs).r14) };
    // net/http reads each response on a goroutine of its own, which can
    // read the response to this write's request before the write returns:
    // the request's mark is what was received when it began.
    let rx_mark = if write == 1 {
        tls_calls::received(tgid, conn)
    } else {
        NO_MARK
    };
    let call = TlsCall {
        ssl: conn,
        buf,
        len_out: 0,
        rx_mark,
        lib: tls_lib::GO,
        write,
        tgid,
        _pad: 0,
    };
    lru_insert(
        &GO_CALLS,
        lru::GO_CALLS,
        &GoCall { tgid, _pad: 0, g },
        &call,
    );
    // Only a write ties: its first record goes out from this thread before
    // the goroutine can wait. A read waits on this thread's goroutine
    // scheduler, which runs others that send on other sockets meanwhile.
    if write == 1 {
        lru_insert(&TLS_CALLS, lru::TLS_CALLS, &current_task(), &call);
    }
    0
}

//! rustls on aws-lc (Codex): aws-lc's `EVP_AEAD_CTX_seal` and
//! `EVP_AEAD_CTX_open`, which rustls's default provider calls once per TLS
//! 1.3 record it sends and receives. User space finds them in stripped
//! executables (`uprobes/awslc.rs`).
//!
//! Both take `(ctx, out, *out_len, max_out, nonce, nonce_len, in, in_len,
//! ad, ad_len)`: the last four on the stack (SysV x86-64). A TLS 1.3
//! record's additional data is its 5-byte header `17 03 03 LL LL`, which
//! leaves out every other user of the functions (TLS 1.2's is 13 bytes,
//! QUIC's a packet header). The record's plaintext ends with its content
//! type: its size less one is what the application wrote or reads.
//!
//! A call names its key (`ctx`, one per direction and key), not its
//! socket. A sealed record is counted through the thread's next packet, as
//! a write made in memory (`tls_calls::count`); an opened one on the
//! socket this thread last received on (`RX_SOCKS`, from the receive
//! tracepoint below), which rustls read the record from just before. A
//! first write that TCP holds back (Nagle, without TCP_NODELAY) leaves in
//! a packet sent outside the thread: the tie then comes with a later
//! packet, and the connection's sizes come from its records.

use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{btf_tracepoint, uprobe, uretprobe},
    programs::{BtfTracePointContext, ProbeContext, RetProbeContext},
};
use monitor_common::{NO_MARK, TlsCall, counter, lru, tls_lib};

use crate::{
    maps::{
        RX_SOCKS, RxSock, SOCKS, TLS_CALLS, add_to, current_task, current_tgid, lru_insert,
        lru_put, lru_remove, tracked,
    },
    tls_calls,
};

/// TLS content type of application data.
const APPLICATION_DATA: u8 = 0x17;

/// Hook: uprobe on aws-lc's `EVP_AEAD_CTX_seal`: a record about to be
/// encrypted in place.
#[uprobe]
pub fn aead_seal(ctx: ProbeContext) -> u32 {
    let tgid = current_tgid();
    if tracked(tgid).is_none() {
        return 0;
    }
    let (Some(key), Some((input, len))) = (ctx.arg::<u64>(0), tls13_record(&ctx)) else {
        return 0;
    };
    if len < 2 || content_type(input + len - 1) != Some(APPLICATION_DATA) {
        return 0;
    }
    let call = TlsCall {
        ssl: key,
        buf: input,
        len_out: 0,
        rx_mark: NO_MARK,
        lib: tls_lib::RUSTLS,
        write: 1,
        tgid,
        _pad: 0,
    };
    tls_calls::count(current_task(), &call, len - 1);
    0
}

/// Hook: uprobe on `EVP_AEAD_CTX_open`: a received record, decrypted into
/// `out` with its length at `*out_len` by the return.
#[uprobe]
pub fn aead_open(ctx: ProbeContext) -> u32 {
    let tgid = current_tgid();
    if tracked(tgid).is_none() {
        return 0;
    }
    let (Some(key), Some(out), Some(out_len)) =
        (ctx.arg::<u64>(0), ctx.arg::<u64>(1), ctx.arg::<u64>(2))
    else {
        return 0;
    };
    if tls13_record(&ctx).is_none() {
        return 0;
    }
    let call = TlsCall {
        ssl: key,
        buf: out,
        len_out: out_len,
        rx_mark: NO_MARK,
        lib: tls_lib::RUSTLS,
        write: 0,
        tgid,
        _pad: 0,
    };
    lru_insert(&TLS_CALLS, lru::TLS_CALLS, &current_task(), &call);
    0
}

/// Hook: uretprobe on `EVP_AEAD_CTX_open`: 1 when the record was genuine.
#[uretprobe]
pub fn aead_open_return(ctx: RetProbeContext) -> u32 {
    let task = current_task();
    // SAFETY: copied out before removal.
    let Some(call) = (unsafe { TLS_CALLS.get(task).copied() }) else {
        return 0;
    };
    if call.lib != tls_lib::RUSTLS {
        return 0;
    }
    lru_remove(&TLS_CALLS, lru::TLS_CALLS, &task);
    if ctx.ret::<i32>() != 1 {
        return 0;
    }
    // SAFETY: user reads; a bad pointer fails cleanly.
    let Ok(len) = (unsafe { bpf_probe_read_user(call.len_out as *const u64) }) else {
        return 0;
    };
    if len < 2 || content_type(call.buf + len - 1) != Some(APPLICATION_DATA) {
        return 0;
    }
    let bytes = len - 1;
    // Every record on the socket it was read from, not through a tie of
    // its key: a key tied in `SSL_SOCKS` would outlive the connection
    // (only the sealing key's tie goes at the close), and rustls frees
    // and reallocates keys.
    // SAFETY: copied out of the map.
    let counted = match unsafe { RX_SOCKS.get(task).copied() } {
        Some(rx) if rx.tgid == call.tgid => {
            let counted = TlsCall { buf: 0, ..call };
            tls_calls::add_plaintext(rx.cookie, &counted, bytes).is_some()
        }
        _ => false,
    };
    if !counted {
        add_to(counter::TLS_UNTIED_BYTES, bytes);
    }
    0
}

/// Hook: `tcp_rcv_space_adjust(sk)` (tp_btf), which TCP calls in the
/// receiving thread for every part of a receive that copied data: the
/// thread's last socket of a tracked process. Any other socket costs one
/// socket-storage lookup that finds nothing. Attached by user space only
/// while some process's aws-lc is probed.
#[btf_tracepoint(function = "tcp_rcv_space_adjust")]
pub fn tcp_rcv_space_adjust(ctx: BtfTracePointContext) -> u32 {
    // The tracepoint's one argument, a `struct sock *`.
    let sk: *mut core::ffi::c_void = ctx.arg(0);
    let owner = SOCKS.get(sk, None);
    if owner.is_null() {
        return 0;
    }
    // SAFETY: a live socket-storage value.
    let (cookie, tgid) = unsafe { ((*owner).cookie, (*owner).tgid) };
    if cookie == 0 || tgid != current_tgid() {
        return 0;
    }
    let task = current_task();
    // SAFETY: copied out of the map.
    let had = unsafe { RX_SOCKS.get(task).copied() };
    if had.is_some_and(|h| h.cookie == cookie && h.tgid == tgid) {
        return 0;
    }
    let rx = RxSock {
        tgid,
        _pad: 0,
        cookie,
    };
    lru_put(&RX_SOCKS, lru::RX_SOCKS, &task, &rx, had.is_none());
    0
}

/// The input and its length of a seal or open call, if its additional data
/// is a TLS 1.3 record header.
#[inline(always)]
fn tls13_record(ctx: &ProbeContext) -> Option<(u64, u64)> {
    // SAFETY: `regs` is the probe's context, readable as a whole.
    let sp = unsafe { (*ctx.regs).rsp };
    // At entry the return address is at sp: in, in_len, ad, ad_len follow.
    // SAFETY: user read; a bad pointer fails cleanly.
    let [input, len, ad, ad_len] =
        unsafe { bpf_probe_read_user((sp + 8) as *const [u64; 4]) }.ok()?;
    if ad_len != 5 {
        return None;
    }
    // SAFETY: as above.
    let header = unsafe { bpf_probe_read_user(ad as *const [u8; 3]) }.ok()?;
    (header == [APPLICATION_DATA, 3, 3]).then_some((input, len))
}

#[inline(always)]
fn content_type(at: u64) -> Option<u8> {
    // SAFETY: user read; a bad pointer fails cleanly.
    unsafe { bpf_probe_read_user(at as *const u8) }.ok()
}

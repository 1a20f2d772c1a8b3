//! TLS library probes: plaintext sizes per connection, and the heads of
//! requests written in plaintext, without decrypting anything ourselves.
//!
//! An entry probe notes the call per thread (`TLS_CALLS`, keyed by the
//! thread's task address); the packet the library sends inside the call
//! ties its `SSL *` to the socket (`SSL_SOCKS`, from the egress program,
//! which runs in the sending thread); the return probe adds the bytes to
//! that connection. The same programs serve every library: the attach
//! cookie says which (`monitor_common::tls_lib`).
//!
//! The probes are attached per tracked process for libraries that other
//! processes map too (user space's choice), so untracked processes never
//! trap into them.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_probe_read_user, generated, generated::bpf_get_attach_cookie},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use monitor_common::{NO_MARK, TLS_HEAD_LEN, TlsCall, counter, lru, payload_kind, tls_lib};

use crate::{
    maps::{
        CONNS, RX_SOCKS, SSL_SOCKS, Session, TLS_CALLS, TLS_HEAD_SCRATCH, TLS_HEADS, TLS_PENDING,
        add_to, atomic_add, current_task, current_tgid, lru_insert, lru_put, lru_remove, tls_tie,
        tracked,
    },
    payload,
};

/// Hook: uprobe on `SSL_write(ssl, buf, num)` (OpenSSL, BoringSSL) and
/// `gnutls_record_send(session, data, size)`: same argument layout.
#[uprobe]
pub fn tls_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, 1, None)
}

/// Hook: uprobe on `SSL_read(ssl, buf, num)` and `gnutls_record_recv`.
#[uprobe]
pub fn tls_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, 0, None)
}

/// Hook: uprobe on `SSL_write_ex(ssl, buf, num, size_t *written)` (Python's
/// ssl module uses the `_ex` calls).
#[uprobe]
pub fn tls_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, 1, Some(3))
}

/// Hook: uprobe on OpenSSL 3.3+'s `ssl_write_internal(ssl, buf, num, flags,
/// size_t *written)`.
#[uprobe]
pub fn tls_write_ex2(ctx: ProbeContext) -> u32 {
    enter(&ctx, 1, Some(4))
}

/// Hook: uprobe on `SSL_read_ex(ssl, buf, num, size_t *readbytes)`.
#[uprobe]
pub fn tls_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, 0, Some(3))
}

/// Hook: uretprobe on every function above: the call's result.
#[uretprobe]
pub fn tls_return(ctx: RetProbeContext) -> u32 {
    finish(&ctx);
    0
}

#[inline(always)]
fn enter(ctx: &ProbeContext, write: u32, len_out_arg: Option<usize>) -> u32 {
    // One lookup for a process that maps a file probed for all processes
    // (an agent's own executable) without being tracked.
    let tgid = current_tgid();
    if tracked(tgid).is_none() {
        return 0;
    }
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return 0;
    };
    let len_out = len_out_arg.and_then(|n| ctx.arg::<u64>(n)).unwrap_or(0);
    // SAFETY: the helper only reads the cookie of the running attachment.
    let lib = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    let call = TlsCall {
        ssl,
        buf,
        len_out,
        rx_mark: NO_MARK,
        lib,
        write,
        tgid,
        _pad: 0,
    };
    lru_insert(&TLS_CALLS, lru::TLS_CALLS, &current_task(), &call);
    0
}

#[inline(always)]
fn finish(ctx: &RetProbeContext) {
    let task = current_task();
    // SAFETY: copied out before removal.
    let Some(call) = (unsafe { TLS_CALLS.get(task).copied() }) else {
        return;
    };
    lru_remove(&TLS_CALLS, lru::TLS_CALLS, &task);
    let bytes = if call.len_out != 0 {
        // `_ex`: 1 on success, the count in *len_out.
        if ctx.ret::<i32>() != 1 {
            return;
        }
        // SAFETY: user read; a bad pointer fails cleanly.
        match unsafe { bpf_probe_read_user(call.len_out as *const u64) } {
            Ok(n) => n,
            Err(_) => return,
        }
    } else if call.lib == tls_lib::GNUTLS {
        // ssize_t
        let n = ctx.ret::<i64>();
        if n <= 0 {
            return;
        }
        n as u64
    } else {
        // int
        let n = ctx.ret::<i32>();
        if n <= 0 {
            return;
        }
        n as u64
    };
    count(task, &call, bytes);
}

/// Adds a finished call's `bytes` to its connection, or keeps them until
/// the thread's next packet names it.
#[inline(always)]
pub fn count(task: u64, call: &TlsCall, bytes: u64) {
    let sock = match tied(call.tgid, call.ssl) {
        Some(sock) => sock,
        // A read on a session no write has tied yet (the peer spoke first),
        // or any call on a kernel without the tie: counted as untied,
        // never guessed.
        None if call.write == 0 || !tls_tie() => {
            add_to(counter::TLS_UNTIED_BYTES, bytes);
            return;
        }
        // No packet left inside the call: the library works on memory
        // buffers (node, Bun) and the event loop sends on the same thread
        // next; or the socket's queue held the data back. The thread's
        // next packet on a socket of this process ties it.
        None => {
            keep_pending(task, call, bytes);
            keep_head(task, call.buf, bytes);
            return;
        }
    };
    let _ = add_plaintext(sock, call, bytes);
}

/// The plaintext received so far on the connection session `ssl` of
/// process `tgid` is tied to; [`NO_MARK`] when it is tied to none yet.
#[inline(always)]
pub fn received(tgid: u32, ssl: u64) -> u64 {
    let Some(conn) = tied(tgid, ssl).and_then(|sock| CONNS.get_ptr(sock)) else {
        return NO_MARK;
    };
    // SAFETY: live map value, read whole.
    unsafe { (*conn).tls_rx }
}

/// The open connection TLS session `ssl` is tied to. A tie to a closed one
/// is to a session whose memory a later one reuses (rustls frees a key at
/// each key change), which is tied anew.
#[inline(always)]
fn tied(tgid: u32, ssl: u64) -> Option<u64> {
    // SAFETY: copied out of the map.
    let sock = unsafe { SSL_SOCKS.get(Session::new(tgid, ssl)).copied() }?;
    CONNS.get_ptr(sock).map(|_| sock)
}

/// Keeps a write made in memory until the thread's next packet. Another
/// such write of the same session before that packet adds to it (both go
/// out on one socket); one of another session is counted as untied, as
/// the thread's next packet can tie only one.
#[inline(always)]
fn keep_pending(task: u64, call: &TlsCall, bytes: u64) {
    let mut pending = TlsCall {
        len_out: bytes,
        ..*call
    };
    // SAFETY: copied out of the map.
    let before = unsafe { TLS_PENDING.get(task).copied() };
    if let Some(before) = before {
        if before.ssl == call.ssl && before.tgid == call.tgid {
            pending.len_out += before.len_out;
        } else {
            add_to(counter::TLS_UNTIED_BYTES, before.len_out);
        }
    }
    lru_put(
        &TLS_PENDING,
        lru::TLS_PENDING,
        &task,
        &pending,
        before.is_none(),
    );
}

/// Adds plaintext bytes of `call` to the connection `sock`, and copies the
/// request head it wrote, if it is one. Returns the marks (see
/// `PayloadEvent::marks`, a write's request's) when the connection is
/// known, `None` when the bytes went nowhere.
#[inline(always)]
pub fn add_plaintext(sock: u64, call: &TlsCall, bytes: u64) -> Option<[u64; 2]> {
    let conn = CONNS.get_ptr_mut(sock)?;
    // SAFETY: live map value; counters only grow, from any CPU.
    let marks = unsafe {
        if call.write == 1 {
            atomic_add(&raw mut (*conn).tls_tx, bytes);
        } else {
            atomic_add(&raw mut (*conn).tls_rx, bytes);
        }
        (*conn).tls_lib = call.lib;
        [
            (*conn).tls_tx.wrapping_sub(bytes),
            (*conn).tls_rx.min(call.rx_mark),
        ]
    };
    if call.write == 1 && call.buf != 0 && starts_request(call.buf, bytes) {
        let about = payload::About {
            sock,
            tgid: current_tgid(),
            kind: payload_kind::TLS_REQUEST,
            marks,
        };
        payload::emit_payload(payload::Source::User(call.buf), bytes, &about);
    }
    Some(marks)
}

/// Whether a plaintext write of `bytes` starts like an HTTP/1 request, the
/// HTTP/2 preface, or HTTP/2 frames that may hold a request: a HEADERS
/// frame, or any frame followed by more in the same write (under load an
/// event loop coalesces the end of one request's DATA with the next
/// request's HEADERS). A write that is one DATA frame is not copied.
#[inline(always)]
fn starts_request(buf: u64, bytes: u64) -> bool {
    // SAFETY: user read; a bad pointer fails cleanly.
    let Ok(head) = (unsafe { bpf_probe_read_user(buf as *const [u8; 4]) }) else {
        return false;
    };
    if matches!(
        &head,
        b"GET " | b"POST" | b"PUT " | b"HEAD" | b"DELE" | b"PATC" | b"OPTI" | b"CONN" | b"PRI "
    ) {
        return true;
    }
    let frame_len = (u64::from(head[1]) << 8) | u64::from(head[2]);
    head[0] == 0 && (head[3] == 1 || frame_len + 9 < bytes)
}

/// Called by the egress program for a data packet of a tracked connection
/// of process `tgid`, in the context of the thread that sends it (packets
/// sent later from softirq run in whatever thread was interrupted, which a
/// TLS call of the same process only rarely is): inside a TLS call, the
/// library's `SSL *` uses `sock`; a write the thread's TLS library made in
/// memory goes out now, on `sock`.
/// Returns whether a probed call of this process was on the thread.
#[inline(always)]
pub fn tie(sock: u64, tgid: u32) -> bool {
    let task = current_task();
    // SAFETY (map reads): copied out of the maps.
    // An aws-lc open in flight (`aead.rs`) sends nothing and is tied by
    // what the thread received, never by a packet.
    if let Some(call) = unsafe { TLS_CALLS.get(task).copied() }
        && call.lib != tls_lib::RUSTLS
    {
        if call.tgid == tgid {
            tie_session(tgid, call.ssl, sock);
            // A Go call ties once: its goroutine may wait and leave the
            // thread, whose next goroutines send on other sockets.
            if call.lib == tls_lib::GO {
                lru_remove(&TLS_CALLS, lru::TLS_CALLS, &task);
            }
            return true;
        }
        return false;
    }
    if let Some(pending) = unsafe { TLS_PENDING.get(task).copied() }
        && pending.tgid == tgid
    {
        lru_remove(&TLS_PENDING, lru::TLS_PENDING, &task);
        tie_session(tgid, pending.ssl, sock);
        // Its buffer may be reused by now: the head was kept at return.
        let counted = TlsCall { buf: 0, ..pending };
        let marks = add_plaintext(sock, &counted, pending.len_out);
        send_head(task, sock, tgid, marks.unwrap_or_default());
        return true;
    }
    false
}

/// Forgets what the exiting thread `task` left in the TLS maps: a call in
/// flight, and a write made in memory that no packet carried, whose bytes
/// are counted as untied.
#[inline(always)]
pub fn thread_exit(task: u64) {
    lru_remove(&TLS_CALLS, lru::TLS_CALLS, &task);
    // SAFETY: copied out of the map.
    if let Some(pending) = unsafe { TLS_PENDING.get(task).copied() } {
        add_to(counter::TLS_UNTIED_BYTES, pending.len_out);
        lru_remove(&TLS_PENDING, lru::TLS_PENDING, &task);
    }
    lru_remove(&TLS_HEADS, lru::TLS_HEADS, &task);
    lru_remove(&RX_SOCKS, lru::RX_SOCKS, &task);
}

/// Ties TLS session `ssl` to connection `sock`, which takes the tie with it
/// when it closes (`tcp::close`): a session outlives none of its sockets.
#[inline(always)]
fn tie_session(tgid: u32, ssl: u64, sock: u64) {
    let key = Session::new(tgid, ssl);
    // SAFETY: copied out of the map.
    let had = unsafe { SSL_SOCKS.get(key).copied() };
    if had == Some(sock) {
        return;
    }
    lru_put(&SSL_SOCKS, lru::SSL_SOCKS, &key, &sock, had.is_none());
    if let Some(conn) = CONNS.get_ptr_mut(sock) {
        // SAFETY: live map value; only this connection's packets and TLS
        // calls write its session.
        unsafe { (*conn).ssl = ssl };
    }
}

/// Keeps the head of a request written in memory, while its buffer is valid.
#[inline(always)]
fn keep_head(task: u64, buf: u64, bytes: u64) {
    if !starts_request(buf, bytes) {
        return;
    }
    let Some(head) = TLS_HEAD_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let len = payload::bounded(bytes, TLS_HEAD_LEN);
    // SAFETY: per-CPU scratch value; the length is bounded for the verifier.
    unsafe {
        let copied = generated::bpf_probe_read_user(
            (*head).data.as_mut_ptr().cast(),
            len,
            buf as *const core::ffi::c_void,
        );
        (*head).len = if copied == 0 { len } else { 0 };
        // By reference: a 1 KiB value must not be copied onto the BPF stack.
        lru_insert(&TLS_HEADS, lru::TLS_HEADS, &task, &*head);
    }
}

/// Sends the kept request head of this thread, now that its socket is known.
#[inline(always)]
fn send_head(task: u64, sock: u64, tgid: u32, marks: [u64; 2]) {
    let Some(head) = TLS_HEADS.get_ptr(task) else {
        return;
    };
    // SAFETY: `head` is a live map value until the removal below.
    let (data, len) = unsafe { ((*head).data.as_ptr(), u64::from((*head).len)) };
    let about = payload::About {
        sock,
        tgid,
        kind: payload_kind::TLS_REQUEST,
        marks,
    };
    payload::emit_payload(payload::Source::Kernel(data), len, &about);
    lru_remove(&TLS_HEADS, lru::TLS_HEADS, &task);
}

//! The first bytes of tracked sockets, for naming destinations: the TLS
//! ClientHello (SNI) or HTTP request head a process sends first on a TCP
//! connection, and the DNS answers it receives. At most `PAYLOAD_LEN` bytes
//! per capture, only for tracked processes, and only at those moments.
//!
//! The socket hooks know the socket but not the user buffer, so the entry
//! of each socket syscall notes the buffer per thread (`STASH`) and the
//! socket hooks, which run inside that syscall, copy from it.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{EventHeader, PAYLOAD_LEN, PayloadEvent, Stash, counter, kind, stash_kind};

use crate::maps::{EVENTS, STASH, bump, deferred, off, tracked};

/// Hooks: tracepoints `syscalls:sys_enter_{write,sendto,read,recvfrom}`
/// (flat buffers), `sys_enter_{writev,readv}` (iovec arrays) and
/// `sys_enter_{sendmsg,recvmsg}` (msghdr). These are the calls TLS stacks,
/// HTTP clients and resolvers use; the entry is the only place the user
/// buffer is visible without kprobes. One `TRACKED` lookup for others.
#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::FLAT)
}

/// See [`sys_enter_write`].
#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::FLAT)
}

/// See [`sys_enter_write`].
#[tracepoint(category = "syscalls", name = "sys_enter_read")]
pub fn sys_enter_read(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::FLAT)
}

/// See [`sys_enter_write`].
#[tracepoint(category = "syscalls", name = "sys_enter_recvfrom")]
pub fn sys_enter_recvfrom(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::FLAT)
}

/// See [`sys_enter_write`].
#[tracepoint(category = "syscalls", name = "sys_enter_writev")]
pub fn sys_enter_writev(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::IOVEC)
}

/// See [`sys_enter_write`].
#[tracepoint(category = "syscalls", name = "sys_enter_readv")]
pub fn sys_enter_readv(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::IOVEC)
}

/// See [`sys_enter_write`].
#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::MSGHDR)
}

/// See [`sys_enter_write`].
#[tracepoint(category = "syscalls", name = "sys_enter_recvmsg")]
pub fn sys_enter_recvmsg(ctx: TracePointContext) -> u32 {
    note(&ctx, stash_kind::MSGHDR)
}

#[inline(always)]
fn note(ctx: &TracePointContext, kind: u32) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if tracked((pid_tgid >> 32) as u32).is_none() {
        return 0;
    }
    // SAFETY: offsets come from this kernel's tracefs format files.
    let (Ok(ptr), Ok(len)) = (unsafe {
        (
            ctx.read_at::<u64>(off!(sys_buf)),
            ctx.read_at::<u64>(off!(sys_len)),
        )
    }) else {
        return 0;
    };
    let _ = STASH.insert(
        pid_tgid,
        Stash {
            ptr,
            len,
            kind,
            _pad: 0,
        },
        0,
    );
    0
}

/// The first user buffer of the current thread's syscall and its length.
#[inline(always)]
fn first_buffer(stash: &Stash) -> Option<(u64, u64)> {
    // SAFETY (user reads): the helpers fail cleanly on a bad pointer.
    let iovec = |at: u64| -> Option<(u64, u64)> {
        let base: u64 = unsafe { bpf_probe_read_user(at as *const u64) }.ok()?;
        let len: u64 = unsafe { bpf_probe_read_user((at + 8) as *const u64) }.ok()?;
        Some((base, len))
    };
    match stash.kind {
        stash_kind::FLAT => Some((stash.ptr, stash.len)),
        stash_kind::IOVEC if stash.len > 0 => iovec(stash.ptr),
        stash_kind::MSGHDR => {
            // struct user_msghdr: msg_iov at 16, msg_iovlen at 24 (x86_64 and
            // aarch64 user ABI).
            let iov: u64 = unsafe { bpf_probe_read_user((stash.ptr + 16) as *const u64) }.ok()?;
            let count: u64 = unsafe { bpf_probe_read_user((stash.ptr + 24) as *const u64) }.ok()?;
            if count == 0 {
                return None;
            }
            iovec(iov)
        }
        _ => None,
    }
}

/// Copies the first `moved` bytes of the current syscall's buffer (what it
/// just sent, or just received) into a payload event.
#[inline(always)]
pub fn capture(sock: u64, tgid: u32, payload_kind: u32, moved: u64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: copied out of the map.
    let Some(stash) = (unsafe { STASH.get(pid_tgid).copied() }) else {
        return;
    };
    let Some((ptr, avail)) = first_buffer(&stash) else {
        return;
    };
    // A syscall without a note (sendfile, io_uring) must not use an older
    // one: a buffer shorter than what moved is not this syscall's.
    if stash.kind == stash_kind::FLAT && moved > avail {
        return;
    }
    let about = About {
        sock,
        tgid,
        kind: payload_kind,
        marks: [0; 2],
    };
    emit_payload(Source::User(ptr), moved.min(avail), &about);
}

/// What a payload event is about.
pub struct About {
    pub sock: u64,
    pub tgid: u32,
    /// A `payload_kind`.
    pub kind: u32,
    /// See `PayloadEvent::marks`.
    pub marks: [u64; 2],
}

/// Where a payload event's bytes are read from.
pub enum Source {
    User(u64),
    Kernel(*const u8),
}

/// Sends a payload event with the first `len` bytes (at most `PAYLOAD_LEN`)
/// of `src`, written straight into the ring buffer.
#[inline(always)]
pub fn emit_payload(src: Source, len: u64, about: &About) {
    if len == 0 {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<PayloadEvent>(0) else {
        bump(counter::EVENTS_LOST);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points into the reserved record; the length passed to
    // the helper is bounded by the array size, as the verifier requires.
    unsafe {
        (*event).header = EventHeader {
            kind: kind::PAYLOAD,
            tgid: about.tgid,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*event).sock = about.sock;
        (*event).kind = about.kind;
        (*event).marks = about.marks;
        let len = bounded(len, PAYLOAD_LEN);
        let dst = (*event).data.as_mut_ptr().cast();
        let copied = match src {
            Source::User(ptr) => generated::bpf_probe_read_user(dst, len, ptr as *const _),
            Source::Kernel(ptr) => generated::bpf_probe_read_kernel(dst, len, ptr.cast()),
        };
        (*event).len = if copied == 0 { len } else { 0 };
    }
    entry.submit(deferred());
}

/// `len` capped at `max` (a power of two) in a form the verifier can follow
/// to a bound on a helper's size argument.
#[inline(always)]
pub fn bounded(len: u64, max: usize) -> u32 {
    let len = (len.min(max as u64) as u32) & (2 * max as u32 - 1);
    if len > max as u32 { max as u32 } else { len }
}

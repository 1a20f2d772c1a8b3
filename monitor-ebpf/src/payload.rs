//! Copies of the first bytes of payloads, for naming destinations and
//! reading request heads: at most `PAYLOAD_LEN` bytes per event, only for
//! tracked sockets, and only at those moments (the first data a connection
//! sends, DNS answers, TLS plaintext writes that start a request).

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::{bpf_ktime_get_ns, generated},
};
use monitor_common::{EventHeader, PAYLOAD_LEN, PayloadEvent, counter, kind};

use crate::maps::{EVENTS, bump, deferred};

/// What a payload event is about.
pub struct About {
    /// The socket's cookie.
    pub sock: u64,
    pub tgid: u32,
    /// A `payload_kind`.
    pub kind: u32,
    /// See `PayloadEvent::marks`.
    pub marks: [u64; 2],
}

/// Where a payload event's bytes are read from.
pub enum Source {
    /// A user-space buffer of the current process.
    User(u64),
    /// Kernel memory (a map value).
    Kernel(*const u8),
    /// A packet, from this offset of its network header on.
    Packet(*mut __sk_buff, u32),
}

/// Sends a payload event with the first `len` bytes (at most `PAYLOAD_LEN`)
/// of `src`, written straight into the ring buffer.
#[inline(always)]
pub fn emit_payload(src: Source, len: u64, about: &About) {
    let len = bounded(len, PAYLOAD_LEN);
    if len == 0 {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<PayloadEvent>(0) else {
        bump(counter::EVENTS_LOST);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points into the reserved record; the length passed to
    // the helpers is bounded by the array size, as the verifier requires.
    unsafe {
        (*event).header = EventHeader {
            kind: kind::PAYLOAD,
            tgid: about.tgid,
            ktime_ns: bpf_ktime_get_ns(),
        };
        (*event).sock = about.sock;
        (*event).kind = about.kind;
        (*event).marks = about.marks;
        let dst = (*event).data.as_mut_ptr().cast();
        let copied = match src {
            Source::User(ptr) => generated::bpf_probe_read_user(dst, len, ptr as *const _),
            Source::Kernel(ptr) => generated::bpf_probe_read_kernel(dst, len, ptr.cast()),
            Source::Packet(skb, offset) => {
                // The helper refuses a length that may be zero. `len` is
                // 1..=PAYLOAD_LEN here; this form shows the verifier so, and
                // the volatile read keeps the compiler from folding it back
                // into plain `len`, whose lower bound the verifier lost.
                let n = core::ptr::read_volatile(&len);
                let n = (n.wrapping_sub(1) & (PAYLOAD_LEN as u32 - 1)) + 1;
                generated::bpf_skb_load_bytes(skb.cast(), offset, dst, n)
            }
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

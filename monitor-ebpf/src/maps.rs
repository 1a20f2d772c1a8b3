//! Maps and load-time globals shared by the programs.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_get_current_pid_tgid,
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use monitor_common::{
    Conn, Stash, TlsCall, TlsHead, TpOffsets, Tracked, UdpFlow, UdpKey, UdpPeer, counter,
};

/// Tracked processes: tgid -> tool. Roots are added by user space; children
/// are added by the fork program before they first run.
#[map]
pub static TRACKED: HashMap<u32, Tracked> = HashMap::with_max_entries(65_536, 0);

/// Open TCP connections of tracked processes, keyed by `struct sock *`.
#[map]
pub static CONNS: HashMap<u64, Conn> = HashMap::with_max_entries(65_536, 0);

/// The tool user space resolved a connection to, for connections opened
/// while their process was pending (labelled `TOOL_PENDING` in `CONNS`).
/// Written by user space, read only when a socket's user and label differ.
#[map]
pub static RESOLVED: LruHashMap<u64, u32> = LruHashMap::with_max_entries(16_384, 0);

/// UDP traffic per (tracked process, remote address).
#[map]
pub static UDP_FLOWS: HashMap<UdpKey, UdpFlow> = HashMap::with_max_entries(16_384, 0);

/// Peer of the UDP datagram a thread is sending or receiving right now,
/// keyed by pid_tgid. LRU so that a hook whose datagram never reached the
/// length tracepoint (a failed send) cannot leak entries.
#[map]
pub static UDP_PEER: LruHashMap<u64, UdpPeer> = LruHashMap::with_max_entries(4_096, 0);

/// The user buffer of the socket syscall each tracked thread is in, keyed
/// by pid_tgid; see `payload.rs`. LRU: entries are overwritten, never removed.
#[map]
pub static STASH: LruHashMap<u64, Stash> = LruHashMap::with_max_entries(8_192, 0);

/// TLS library calls in flight, keyed by pid_tgid (see `tls.rs`).
#[map]
pub static TLS_CALLS: LruHashMap<u64, TlsCall> = LruHashMap::with_max_entries(8_192, 0);

/// The socket behind each `SSL *` (or GnuTLS session) of tracked processes,
/// learned from the socket syscall inside a TLS call.
#[map]
pub static SSL_SOCKS: LruHashMap<u64, u64> = LruHashMap::with_max_entries(65_536, 0);

/// The TCP socket each tracked thread received from last (event loops read
/// the socket, then decrypt from memory).
#[map]
pub static LAST_RECV: LruHashMap<u64, u64> = LruHashMap::with_max_entries(8_192, 0);

/// A TLS write made in memory, waiting for the thread's next send to learn
/// its socket; `len_out` holds its byte count.
#[map]
pub static TLS_PENDING: LruHashMap<u64, TlsCall> = LruHashMap::with_max_entries(8_192, 0);

/// Request heads of TLS writes made in memory, by thread, until tied.
#[map]
pub static TLS_HEADS: LruHashMap<u64, TlsHead> = LruHashMap::with_max_entries(1_024, 0);

/// Per-CPU scratch space to build a [`TlsHead`] (too large for the stack).
#[map]
pub static TLS_HEAD_SCRATCH: PerCpuArray<TlsHead> = PerCpuArray::with_max_entries(1, 0);

/// Discrete events for user space.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Self-monitoring counters, see `monitor_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::LEN, 0);

/// Tracepoint field offsets, written by the loader from tracefs `format` files.
#[unsafe(no_mangle)]
pub static OFFSETS: TpOffsets = TpOffsets {
    newtask_pid: 0,
    newtask_clone_flags: 0,
    exec_filename: 0,
    exit_pid: 0,
    exit_group_dead: 0,
    iss_skaddr: 0,
    iss_oldstate: 0,
    iss_newstate: 0,
    iss_sport: 0,
    iss_dport: 0,
    iss_family: 0,
    iss_protocol: 0,
    iss_saddr: 0,
    iss_daddr: 0,
    iss_saddr_v6: 0,
    iss_daddr_v6: 0,
    len_sk: 0,
    len_family: 0,
    len_protocol: 0,
    len_ret: 0,
    len_flags: 0,
    skc_daddr: 0,
    skc_rcv_saddr: 0,
    skc_dport: 0,
    skc_num: 0,
    skc_family: 0,
    skc_v6_daddr: 0,
    skc_v6_rcv_saddr: 0,
    skc_state: 0,
    destroy_skaddr: 0,
    sys_buf: 0,
    sys_len: 0,
};

/// Reads one field of [`OFFSETS`]. The volatile read keeps the compiler from
/// folding the zero initialiser into the code.
macro_rules! off {
    ($field:ident) => {{
        // Callers are often inside unsafe blocks already.
        #[allow(unused_unsafe)]
        // SAFETY: a plain read of a static.
        let value = unsafe { core::ptr::read_volatile(&raw const $crate::maps::OFFSETS.$field) };
        value as usize
    }};
}
pub(crate) use off;

#[inline(always)]
pub fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// The one lookup every hook pays for an untracked process.
#[inline(always)]
pub fn tracked(tgid: u32) -> Option<Tracked> {
    // SAFETY: the value is copied out before the map can change it.
    unsafe { TRACKED.get(tgid).copied() }
}

#[inline(always)]
pub fn bump(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no other writer on this CPU while we run.
        unsafe { *slot += 1 };
    }
}

/// Submit flags for an event user space must see at once (exec, fork, exit,
/// connection opens): it reads /proc of that process while it still lives.
/// Forced, because the default (wake when user space has caught up) never
/// fires while a deferred event waits unread before it.
pub const PROMPT: u64 = BPF_RB_FORCE_WAKEUP as u64;

/// Ring buffer bytes past which a deferred event wakes user space anyway.
const WAKE_AT: u64 = 1024 * 1024;

/// Submit flags for an event user space may read up to one drain tick later
/// (connection closes, payload heads): waking agentmon costs the traced
/// thread microseconds per event on a VM, so it is left to the tick, unless
/// the ring buffer is filling up.
#[inline(always)]
pub fn deferred() -> u64 {
    if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) > WAKE_AT {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Sends `value` on the ring buffer, or counts it as lost.
#[inline(always)]
pub fn emit<T: 'static>(value: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(value);
            entry.submit(PROMPT);
        }
        None => bump(counter::EVENTS_LOST),
    }
}

/// Adds to a counter in a map value that other CPUs may add to at once.
///
/// # Safety
/// `dst` must point into a live map value.
#[inline(always)]
pub unsafe fn atomic_add(dst: *mut u64, val: u64) {
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            dst, val,
        )
    };
}

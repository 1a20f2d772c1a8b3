//! Maps and load-time globals shared by the programs.

use aya_ebpf::{
    bindings::{
        BPF_F_CLONE, BPF_F_NO_PREALLOC, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
        bpf_map_type::BPF_MAP_TYPE_SK_STORAGE,
    },
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::{btf_map, map},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use monitor_common::{
    Conn, NO_FIELD, PolicyDeny, PolicyHost, PolicyNet, SockOwner, TlsCall, TlsHead, TpOffsets,
    Tracked, UdpFlow, UdpKey, capacity, counter, setting,
};

/// Tracked processes: tgid -> tool. Roots are added by user space; children
/// are added by the fork program before they first run.
#[map]
pub static TRACKED: HashMap<u32, Tracked> = HashMap::with_max_entries(capacity::TRACKED, 0);

/// The owner of every socket a tracked process created, in the socket
/// itself (socket storage): a packet of any other socket costs one lookup
/// that finds nothing. Cloned to sockets accepted on a tracked listener.
#[btf_map]
pub static SOCKS: SockStorage = SockStorage::new();

/// A socket-storage map definition (BTF-defined, as the kernel requires
/// for this map type). aya-ebpf's own `SkStorage` fixes its flags without
/// `BPF_F_CLONE`, which accepted sockets need.
#[repr(C)]
pub struct SockStorage {
    r#type: *const [i32; BPF_MAP_TYPE_SK_STORAGE as usize],
    key: *const i32,
    value: *const SockOwner,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; (BPF_F_NO_PREALLOC | BPF_F_CLONE) as usize],
}

// SAFETY: the fields are placeholders the loader replaces; never dereferenced.
unsafe impl Sync for SockStorage {}

impl SockStorage {
    const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    /// The owner stored in socket `sk` (a `struct bpf_sock *` or a program
    /// context the kernel accepts as one), creating it from `init` if given.
    #[inline(always)]
    pub fn get(&self, sk: *mut core::ffi::c_void, init: Option<&mut SockOwner>) -> *mut SockOwner {
        let (value, flags) = match init {
            Some(v) => (
                core::ptr::from_mut(v).cast(),
                u64::from(aya_ebpf::bindings::BPF_SK_STORAGE_GET_F_CREATE),
            ),
            None => (core::ptr::null_mut(), 0),
        };
        let map = core::ptr::from_ref(self).cast_mut().cast();
        // SAFETY: the helper checks `sk`; the map pointer is this map.
        unsafe { aya_ebpf::helpers::generated::bpf_sk_storage_get(map, sk, value, flags) }.cast()
    }
}

/// Open TCP connections of tracked processes, keyed by socket cookie.
#[map]
pub static CONNS: HashMap<u64, Conn> = HashMap::with_max_entries(capacity::CONNS, 0);

/// The tool user space resolved a connection to, for connections opened
/// while their process was pending (labelled `TOOL_PENDING` in `CONNS`).
/// Written by user space, read only while a connection's label is pending.
#[map]
pub static RESOLVED: LruHashMap<u64, u32> = LruHashMap::with_max_entries(capacity::RESOLVED, 0);

/// UDP traffic per (tracked process, remote address).
#[map]
pub static UDP_FLOWS: HashMap<UdpKey, UdpFlow> = HashMap::with_max_entries(capacity::UDP_FLOWS, 0);

/// TLS library calls in flight, keyed by the thread's task address (see
/// `tls.rs`). LRU: a call whose return was never seen cannot leak.
#[map]
pub static TLS_CALLS: LruHashMap<u64, TlsCall> =
    LruHashMap::with_max_entries(capacity::TLS_CALLS, 0);

/// The socket cookie behind each `SSL *` (or GnuTLS session) of tracked
/// processes, learned from the packet a TLS call sends; removed when the
/// socket closes.
#[map]
pub static SSL_SOCKS: LruHashMap<Session, u64> =
    LruHashMap::with_max_entries(capacity::SSL_SOCKS, 0);

/// A TLS session of a process. By process: two processes may hold
/// sessions at the same address (Go's heaps start at the same place).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Session {
    pub tgid: u32,
    pub _pad: u32,
    pub ssl: u64,
}

impl Session {
    #[inline(always)]
    pub fn new(tgid: u32, ssl: u64) -> Self {
        Self { tgid, _pad: 0, ssl }
    }
}

/// A TLS write made in memory, waiting for the thread's next packet to learn
/// its socket; `len_out` holds its byte count. Keyed by task address.
#[map]
pub static TLS_PENDING: LruHashMap<u64, TlsCall> =
    LruHashMap::with_max_entries(capacity::TLS_PENDING, 0);

/// The socket each thread of a tracked process last received on (see
/// `aead.rs`), keyed by task address. LRU: an exit missed cannot leak.
#[map]
pub static RX_SOCKS: LruHashMap<u64, RxSock> = LruHashMap::with_max_entries(capacity::RX_SOCKS, 0);

/// A socket cookie and the process that received on it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RxSock {
    pub tgid: u32,
    pub _pad: u32,
    pub cookie: u64,
}

/// Go crypto/tls calls in flight, by goroutine (see `go_tls.rs`): a
/// goroutine can change threads inside a call. LRU: a call whose return
/// was never seen cannot leak.
#[map]
pub static GO_CALLS: LruHashMap<GoCall, TlsCall> =
    LruHashMap::with_max_entries(capacity::GO_CALLS, 0);

/// A goroutine of a process: its `g` address, unique while it lives.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoCall {
    pub tgid: u32,
    pub _pad: u32,
    pub g: u64,
}

/// Request heads of TLS writes made in memory, by task, until tied.
#[map]
pub static TLS_HEADS: LruHashMap<u64, TlsHead> =
    LruHashMap::with_max_entries(capacity::TLS_HEADS, 0);

/// Per-CPU scratch space to build a [`TlsHead`] (too large for the stack).
#[map]
pub static TLS_HEAD_SCRATCH: PerCpuArray<TlsHead> = PerCpuArray::with_max_entries(1, 0);

/// Tools whose policy is enforced (1), by tool index (`policy.rs`).
#[map]
pub static POLICY_TOOLS: Array<u32> = Array::with_max_entries(1_024, 0);

/// Networks each enforced tool's policy denies (`policy.rs`). Not pinned
/// (the daemon fills it at every start). Sized for a large country: DB-IP's
/// country file has 293,238 networks for the US, 57,179 for Germany.
/// Entries are allocated as inserted (an LPM trie is never preallocated).
#[map]
pub static POLICY_NETS: LpmTrie<PolicyNet, PolicyDeny> = LpmTrie::with_max_entries(1 << 19, 0);

/// Addresses each tree resolved from names its policy denies.
#[map]
pub static POLICY_HOSTS: LruHashMap<PolicyHost, PolicyDeny> =
    LruHashMap::with_max_entries(capacity::POLICY_HOSTS, 0);

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
    task_mm: NO_FIELD,
    mm_arg_start: NO_FIELD,
    mm_arg_end: NO_FIELD,
    mm_exe_file: NO_FIELD,
    file_inode: NO_FIELD,
    inode_ino: NO_FIELD,
};

/// What the loader found this kernel allows, written once before any probe
/// is attached: see `monitor_common::setting`.
#[map]
pub static SETTINGS: Array<u32> = Array::with_max_entries(setting::LEN, 0);

/// Whether TLS calls are tied to sockets on this kernel: kernels that
/// refuse the task helper in packet programs get the egress program
/// without the tie, and the TLS probes then count every call as untied.
#[inline(always)]
pub fn tls_tie() -> bool {
    SETTINGS.get(setting::TLS_TIE).is_some_and(|v| *v != 0)
}

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

/// The running thread's `task_struct` address: the key TLS calls are kept
/// under, because the packet programs can read it (`bpf_get_current_task`
/// is open to every program type with CAP_PERFMON since 5.8) while they
/// cannot read a pid before 6.10.
#[inline(always)]
pub fn current_task() -> u64 {
    // SAFETY: the helper has no preconditions.
    unsafe { bpf_get_current_task() }
}

/// The one lookup every hook pays for an untracked process.
#[inline(always)]
pub fn tracked(tgid: u32) -> Option<Tracked> {
    // SAFETY: the value is copied out before the map can change it.
    unsafe { TRACKED.get(tgid).copied() }
}

#[inline(always)]
pub fn bump(index: u32) {
    add_to(index, 1);
}

/// Adds `n` to a self-monitoring counter.
#[inline(always)]
pub fn add_to(index: u32, n: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no other writer on this CPU while we run.
        unsafe { *slot += n };
    }
}

/// Puts `value` under `key` in the LRU map `which` (`monitor_common::lru`),
/// counting a key that was not there: with the removals, user space can
/// tell how many keys the map dropped to make room.
#[inline(always)]
pub fn lru_insert<K, V>(map: &LruHashMap<K, V>, which: u32, key: &K, value: &V) {
    lru_put(map, which, key, value, map.get_ptr(key).is_none());
}

/// [`lru_insert`] for a caller that looked `key` up already: `new` says
/// it was not there.
#[inline(always)]
pub fn lru_put<K, V>(map: &LruHashMap<K, V>, which: u32, key: &K, value: &V, new: bool) {
    if map.insert(key, value, 0).is_ok() && new {
        bump(counter::LRU_CREATED + which);
    }
}

/// Removes `key` from the LRU map `which`, counting it if it was there.
#[inline(always)]
pub fn lru_remove<K, V>(map: &LruHashMap<K, V>, which: u32, key: &K) {
    if map.remove(key).is_ok() {
        bump(counter::LRU_DELETED + which);
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
/// (connection opens and closes, payload heads): waking agentmon costs the traced
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

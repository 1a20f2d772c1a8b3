//! Types shared by the kernel programs (`monitor-ebpf`) and the daemon (`monitor`).
//!
//! Every type here is a wire format: `#[repr(C)]`, `Copy`, no implicit padding
//! (explicit `_pad` fields) and a compile-time size check. Event kinds and
//! constants are never renumbered; add new ones at the end.
#![no_std]

/// Tool id stored for a process that has exec'd but that user space has not
/// classified yet. Such a process is tracked provisionally so that nothing it
/// does in its first microseconds is missed; user space then either gives it a
/// real tool id or removes it.
pub const TOOL_PENDING: u32 = u32::MAX;

/// `AF_INET` and `AF_INET6`, as the kernel reports them.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;

/// Value of the `TRACKED` map, keyed by tgid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// Index of the tool in the daemon's catalog, or [`TOOL_PENDING`].
    pub tool: u32,
    /// tgid of the process whose match put this tree under watch.
    pub root_tgid: u32,
}

/// How a TCP connection came to be watched.
pub mod origin {
    /// A tracked process called connect() (seen in `SYN_SENT`).
    pub const CONNECT: u8 = 1;
    /// First seen when a tracked process sent or received on it: an accepted
    /// socket, one inherited or passed from another process, or one opened
    /// before agentmon started. User space works out its direction.
    pub const FIRST_USE: u8 = 2;
}

/// Value of the `CONNS` map, keyed by the kernel's `struct sock *`.
///
/// The byte counters are added to atomically by the kernel programs and read
/// by the daemon at scrape time and once more at close.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    pub tgid: u32,
    pub tool: u32,
    pub start_ns: u64,
    /// Payload bytes the process handed to the socket (sendmsg return values).
    pub tx_bytes: u64,
    /// Payload bytes the process read from the socket (recvmsg return values).
    pub rx_bytes: u64,
    /// Remote and local address: 4 bytes for IPv4 (rest zero), 16 for IPv6.
    pub raddr: [u8; 16],
    pub laddr: [u8; 16],
    /// Ports in host byte order.
    pub rport: u16,
    pub lport: u16,
    pub family: u16,
    pub origin: u8,
    /// See [`conn_flags`].
    pub flags: u8,
    /// Plaintext bytes seen by the TLS library probes, each way.
    pub tls_tx: u64,
    pub tls_rx: u64,
    /// The [`tls_lib`] whose probes saw them (0: none).
    pub tls_lib: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<Conn>() == 96);

/// TLS libraries, as attach cookies of the TLS probes and in [`Conn::tls_lib`].
/// A wire format: never renumber.
pub mod tls_lib {
    /// OpenSSL as a shared library (libssl.so.1.1, libssl.so.3).
    pub const OPENSSL: u32 = 1;
    /// OpenSSL linked into an executable that exports its symbols (node).
    pub const OPENSSL_STATIC: u32 = 2;
    /// BoringSSL inside a Bun single-file executable, found by pattern.
    pub const BORINGSSL: u32 = 3;
    /// GnuTLS (libgnutls.so.30).
    pub const GNUTLS: u32 = 4;
}

/// A TLS library call in flight on a thread: noted at entry, finished at
/// return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCall {
    /// The `SSL *` (or `gnutls_session_t`).
    pub ssl: u64,
    /// The plaintext buffer.
    pub buf: u64,
    /// For the `_ex` calls: where the library stores the byte count.
    pub len_out: u64,
    /// [`tls_lib`].
    pub lib: u32,
    /// 1 for writes, 0 for reads.
    pub write: u32,
}
const _: () = assert!(size_of::<TlsCall>() == 32);

/// Bits of [`Conn::flags`].
pub mod conn_flags {
    /// The first bytes the process sent were captured for naming.
    pub const FIRST_TX_SEEN: u8 = 1;
}

/// Key of the `UDP_FLOWS` map: one tracked process and one remote address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UdpKey {
    pub tgid: u32,
    pub rport: u16,
    pub family: u16,
    pub raddr: [u8; 16],
}
const _: () = assert!(size_of::<UdpKey>() == 24);

/// Value of the `UDP_FLOWS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpFlow {
    pub tool: u32,
    pub _pad: u32,
    pub tx_bytes: u64,
    pub tx_datagrams: u64,
    pub rx_bytes: u64,
    pub rx_datagrams: u64,
}
const _: () = assert!(size_of::<UdpFlow>() == 40);

/// The peer of the UDP datagram a thread is sending or receiving, noted by the
/// cgroup sendmsg/recvmsg hooks and consumed by the sock length tracepoints.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpPeer {
    pub family: u16,
    pub port: u16,
    pub _pad: u32,
    pub addr: [u8; 16],
}
const _: () = assert!(size_of::<UdpPeer>() == 24);

/// The user buffer of the socket syscall a tracked thread is in, noted at
/// syscall entry so the socket hooks can copy the first bytes of it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stash {
    /// A flat buffer, an `iovec` array or a `msghdr`, see [`stash_kind`].
    pub ptr: u64,
    /// Bytes in a flat buffer, or entries in an `iovec` array.
    pub len: u64,
    pub kind: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<Stash>() == 24);

pub mod stash_kind {
    pub const FLAT: u32 = 1;
    pub const IOVEC: u32 = 2;
    pub const MSGHDR: u32 = 3;
}

/// The head of a plaintext write made in memory, kept until the thread's
/// next send tells its socket (node, Bun reuse the buffer by then).
pub const TLS_HEAD_LEN: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsHead {
    pub len: u32,
    pub _pad: u32,
    pub data: [u8; TLS_HEAD_LEN],
}
const _: () = assert!(size_of::<TlsHead>() == 8 + TLS_HEAD_LEN);

/// Most bytes copied from one syscall for naming: enough for a TLS
/// ClientHello with post-quantum key shares, an HTTP request head or a DNS
/// answer. Never payload beyond that, and never stored.
pub const PAYLOAD_LEN: usize = 4096;

/// What a [`PayloadEvent`] holds.
pub mod payload_kind {
    /// The first bytes a tracked process sent on a TCP connection.
    pub const FIRST_TX: u32 = 1;
    /// A DNS answer a tracked process received (UDP or TCP, port 53).
    pub const DNS: u32 = 2;
    /// Plaintext a TLS library wrote that starts like an HTTP/1 request or
    /// HTTP/2 frames: a request head to read.
    pub const TLS_REQUEST: u32 = 3;
}

/// The first bytes of a send or receive, for naming the destination.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PayloadEvent {
    pub header: EventHeader,
    /// The socket (`struct sock *`).
    pub sock: u64,
    pub kind: u32,
    /// Bytes valid in `data`.
    pub len: u32,
    /// `TLS_REQUEST`: the connection's plaintext counters when the request
    /// began (bytes written before this write, bytes read so far), so user
    /// space can size each request as the difference to the next one.
    pub marks: [u64; 2],
    pub data: [u8; PAYLOAD_LEN],
}
const _: () = assert!(size_of::<PayloadEvent>() == 16 + 32 + PAYLOAD_LEN);

/// Indexes of the per-CPU `COUNTERS` array.
pub mod counter {
    /// Ring buffer full: an event could not be sent.
    pub const EVENTS_LOST: u32 = 0;
    /// `CONNS` full: a tracked TCP connection is not counted.
    pub const CONNS_FULL: u32 = 1;
    /// `UDP_FLOWS` full: a tracked UDP flow is not counted.
    pub const UDP_FLOWS_FULL: u32 = 2;
    /// `TRACKED` full: a process could not be tracked.
    pub const TRACKED_FULL: u32 = 3;
    /// TLS plaintext bytes whose socket was not known (not counted).
    pub const TLS_UNTIED_BYTES: u32 = 4;
    pub const LEN: u32 = 5;
}

/// Event kinds on the ring buffer. A wire format: never renumber.
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const CONN_OPEN: u32 = 4;
    pub const CONN_CLOSE: u32 = 5;
    pub const UDP_FLOW: u32 = 6;
    pub const PAYLOAD: u32 = 7;
}

/// First bytes of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    pub kind: u32,
    pub tgid: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the event happened.
    pub ktime_ns: u64,
}
const _: () = assert!(size_of::<EventHeader>() == 16);

pub const EXEC_FILENAME_LEN: usize = 256;

/// A process called execve. Sent for every exec on the machine so that user
/// space can recognise agents; the process is tracked as [`TOOL_PENDING`]
/// until then unless it was already tracked.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Tool the process had before this exec ([`TOOL_PENDING`] if none).
    pub tool: u32,
    /// Length of `filename` without its NUL.
    pub filename_len: u32,
    /// The path handed to execve (may be relative), NUL-terminated.
    pub filename: [u8; EXEC_FILENAME_LEN],
}
const _: () = assert!(size_of::<ExecEvent>() == 16 + 8 + EXEC_FILENAME_LEN);

/// A tracked (or pending) process forked a new process (not a thread).
/// `header.tgid` is the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_tgid: u32,
    pub tool: u32,
}
const _: () = assert!(size_of::<ForkEvent>() == 24);

/// The last thread of a tracked process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitEvent {
    pub header: EventHeader,
}

/// A tracked TCP connection opened ([`kind::CONN_OPEN`]) or ended
/// ([`kind::CONN_CLOSE`]: the socket was destroyed, with the final byte counts).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnEvent {
    pub header: EventHeader,
    /// The kernel's `struct sock *`, the key of `CONNS`.
    pub sock: u64,
    pub conn: Conn,
}
const _: () = assert!(size_of::<ConnEvent>() == 16 + 8 + 96);

/// A tracked process sent to or received from a new UDP peer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpFlowEvent {
    pub header: EventHeader,
    pub key: UdpKey,
    pub tool: u32,
    /// 0: first datagram was sent (outbound), 1: received (inbound).
    pub inbound: u32,
}
const _: () = assert!(size_of::<UdpFlowEvent>() == 16 + 24 + 8);

/// Offsets of tracepoint fields, read by the daemon from tracefs `format`
/// files at load time and handed to the programs as a global, because they
/// move between kernel versions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TpOffsets {
    /// task:task_newtask
    pub newtask_pid: u32,
    pub newtask_clone_flags: u32,
    /// sched:sched_process_exec (`filename` is a `__data_loc`)
    pub exec_filename: u32,
    /// sched:sched_process_exit; `exit_group_dead` is [`NO_FIELD`] on kernels without it.
    pub exit_pid: u32,
    pub exit_group_dead: u32,
    /// sock:inet_sock_set_state
    pub iss_skaddr: u32,
    pub iss_oldstate: u32,
    pub iss_newstate: u32,
    pub iss_sport: u32,
    pub iss_dport: u32,
    pub iss_family: u32,
    pub iss_protocol: u32,
    pub iss_saddr: u32,
    pub iss_daddr: u32,
    pub iss_saddr_v6: u32,
    pub iss_daddr_v6: u32,
    /// sock:sock_send_length and sock:sock_recv_length (same layout, checked at load)
    pub len_sk: u32,
    pub len_family: u32,
    pub len_protocol: u32,
    pub len_ret: u32,
    pub len_flags: u32,
    /// Offsets in `struct sock_common`, used for sockets first seen on use.
    pub skc_daddr: u32,
    pub skc_rcv_saddr: u32,
    pub skc_dport: u32,
    pub skc_num: u32,
    pub skc_family: u32,
    pub skc_v6_daddr: u32,
    pub skc_v6_rcv_saddr: u32,
    pub skc_state: u32,
    /// tcp:tcp_destroy_sock
    pub destroy_skaddr: u32,
    /// syscalls:sys_enter_{read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg}:
    /// the buffer (or iovec, or msghdr) and the length (or iovec count).
    pub sys_buf: u32,
    pub sys_len: u32,
}
const _: () = assert!(size_of::<TpOffsets>() == 32 * 4);

/// Marks a tracepoint field the running kernel does not have.
pub const NO_FIELD: u32 = u32::MAX;

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)] with explicit padding and no pointers.
    unsafe impl aya::Pod for Tracked {}
    unsafe impl aya::Pod for Conn {}
    unsafe impl aya::Pod for UdpKey {}
    unsafe impl aya::Pod for UdpFlow {}
    unsafe impl aya::Pod for TpOffsets {}
    unsafe impl aya::Pod for Stash {}
    unsafe impl aya::Pod for TlsCall {}
}

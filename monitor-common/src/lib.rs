//! Types shared by the kernel programs (`monitor-ebpf`) and the daemon (`monitor`).
//!
//! Every type here is a wire format: `#[repr(C)]`, `Copy`, no implicit padding
//! (explicit `_pad` fields) and a compile-time size check. Event kinds and
//! constants are never renumbered; add new ones at the end.
#![no_std]

pub mod framing;

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
    /// A tracked process called connect() (its SYN was seen leaving).
    pub const CONNECT: u8 = 1;
    /// Found open in a tracked process by user space (it existed before
    /// agentmon started, or before its process was recognised), or handed
    /// over between tools. User space works out its direction.
    pub const FIRST_USE: u8 = 2;
    /// Accepted on a listening socket of a tracked process (the child
    /// socket inherits the listener's owner).
    pub const ACCEPT: u8 = 3;
}

/// Value of the `SOCKS` socket storage: the owner of one socket that a
/// tracked process created (or that user space adopted). A socket without
/// it is untracked, and the packet programs stop at that one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOwner {
    /// The socket's cookie, the key of `CONNS`; set when its first packet
    /// is seen (an accepted socket inherits its listener's value).
    pub cookie: u64,
    /// The process that created (or holds) the socket, and its tool.
    pub tgid: u32,
    pub tool: u32,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub proto: u8,
    /// See [`sock_status`].
    pub status: u8,
    /// [`conn_flags::STATE_CB`] once sock_ops asked for state callbacks
    /// (before the connection's first packet: copied into `Conn::flags`).
    pub flags: u8,
    pub _pad: [u8; 5],
}
const _: () = assert!(size_of::<SockOwner>() == 24);

/// [`SockOwner::status`].
pub mod sock_status {
    /// No packet seen yet (TCP: no `CONNS` entry).
    pub const NEW: u8 = 0;
    /// TCP: `CONNS[cookie]` holds its counts. (UDP sockets stay `NEW`:
    /// their flows are keyed by peer in `UDP_FLOWS`.)
    pub const WATCHED: u8 = 1;
    /// Not an agent's after all, or closed: every later packet stops here.
    pub const IGNORED: u8 = 2;
    /// Put in place by user space for a socket found open; watched from its
    /// next packet on, with [`origin::FIRST_USE`].
    pub const ADOPTED: u8 = 3;
}

/// Sequence-number bookkeeping of a watched TCP connection. Offsets are
/// bytes past the first payload byte of each direction (`*_base` is that
/// byte's sequence number), widened to 64 bits as the 32-bit sequence
/// numbers advance. Kept by the packet programs; see monitor-ebpf's tcp.rs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpSeq {
    pub tx_base: u32,
    pub rx_base: u32,
    /// Highest payload offset sent, and acknowledged by the peer (which
    /// counts our FIN as one more).
    pub tx_sent: u64,
    pub tx_acked: u64,
    /// Highest payload offset received in order, and acknowledged by us
    /// (which counts the peer's FIN as one more).
    pub rx_seen: u64,
    pub rx_acked: u64,
    /// Offset of our FIN and of the peer's FIN, `u64::MAX` until seen.
    pub tx_fin: u64,
    pub rx_fin: u64,
}
const _: () = assert!(size_of::<TcpSeq>() == 56);

/// Value of the `CONNS` map, keyed by the socket's cookie.
///
/// The kernel programs update it from the packets of the connection; the
/// daemon reads it at scrape time and once more at close.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    pub tgid: u32,
    pub tool: u32,
    pub start_ns: u64,
    /// Payload bytes the peer acknowledged: what the other side received.
    pub tx_bytes: u64,
    /// Payload bytes received from the peer, in order.
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
    /// The TLS session (`SSL *`, GnuTLS session, Go `*tls.Conn`) last tied
    /// to this connection: its `SSL_SOCKS` entry is removed at the close.
    pub ssl: u64,
    pub seq: TcpSeq,
    pub records: Records,
}
const _: () = assert!(size_of::<Conn>() == 104 + 56 + 56);

/// TLS record framing of a connection whose first bytes were a
/// ClientHello: record headers are not encrypted, so the packet programs
/// follow them and derive the plaintext where no probe sees it. TLS 1.3
/// only: each application-data record carries its plaintext, one content
/// type byte and a 16-byte tag. Kept by [`framing`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Records {
    /// Stream offset (as in [`TcpSeq`]) of the next record header's first
    /// byte not seen yet, each way.
    pub tx_next: u64,
    pub rx_next: u64,
    /// Plaintext of the application-data records, each way (TLS 1.2: their
    /// bodies, see [`record_state::NOT_TLS13`]).
    pub tx_plain: u64,
    pub rx_plain: u64,
    /// Application-data records counted, each way.
    pub tx_records: u32,
    pub rx_records: u32,
    /// The bytes of a header cut by a packet's end, each way.
    pub tx_part: [u8; 4],
    pub rx_part: [u8; 4],
    pub tx_part_len: u8,
    pub rx_part_len: u8,
    /// See [`record_state`]: one byte per way, each written by one program.
    pub tx_state: u8,
    pub rx_state: u8,
    /// The cipher suite of the server's ServerHello (0 until seen): TLS
    /// 1.2 records carry a per-suite overhead user space subtracts.
    pub cipher: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<Records>() == 56);

/// [`Records::tx_state`] and [`Records::rx_state`].
pub mod record_state {
    /// Records are followed this way (the first bytes sent were a ClientHello).
    pub const FOLLOWED: u8 = 1;
    /// rx: an application-data record came before the client's first one,
    /// as only TLS 1.3's encrypted handshake does.
    pub const TLS13: u8 = 2;
    /// tx: the client's first application-data record (its TLS 1.3
    /// Finished) went out.
    pub const FINISHED: u8 = 4;
    /// tx: the client sent application data on a connection that is not
    /// TLS 1.3 (TLS 1.2): `tx_plain` and `rx_plain` hold the record
    /// bodies, and user space subtracts the cipher's overhead per record.
    pub const NOT_TLS13: u8 = 8;
    /// tx: a TLS probe saw this connection's data: its figures are exact,
    /// the derived ones are not used.
    pub const PROBED: u8 = 16;
    /// Framing lost this way (a gap in the stream, or more records in one
    /// packet than a program follows): nothing more is derived.
    pub const LOST: u8 = 32;
    /// tx: the probe tied the connection only after data records went out
    /// (its library was probed late): its figures miss them.
    pub const PROBED_LATE: u8 = 64;
}

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
    /// No probe: sizes derived from TLS record framing. Never a probe's
    /// cookie; the kernel never writes it.
    pub const RECORD: u32 = 5;
    /// Go's crypto/tls, found by name in the executable's `.gopclntab`.
    pub const GO: u32 = 6;
    /// rustls on aws-lc: aws-lc's record functions, found in stripped
    /// executables by the strings and error codes they hold.
    pub const RUSTLS: u32 = 7;
}

/// A TLS library call in flight on a thread (keyed by the thread's
/// `task_struct` address, which the packet programs can read too): noted at
/// entry, finished at return.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCall {
    /// The `SSL *` (or `gnutls_session_t`).
    pub ssl: u64,
    /// The plaintext buffer.
    pub buf: u64,
    /// For the `_ex` calls: where the library stores the byte count.
    /// For a write waiting for its socket (`TLS_PENDING`): its byte count.
    pub len_out: u64,
    /// A Go write's connection's received plaintext at the call's entry
    /// ([`NO_MARK`] if unknown then): a response that another goroutine
    /// reads while the write is still inside the kernel came before the
    /// request this write starts (`tls_calls.rs`, `add_plaintext`).
    pub rx_mark: u64,
    /// [`tls_lib`].
    pub lib: u32,
    /// 1 for writes, 0 for reads.
    pub write: u32,
    /// The calling process: a socket is tied to the call only if it is
    /// this process's.
    pub tgid: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<TlsCall>() == 48);

/// [`TlsCall::rx_mark`] when there is none.
pub const NO_MARK: u64 = u64::MAX;

/// Bits of [`Conn::flags`].
pub mod conn_flags {
    /// The first bytes the process sent were captured for naming.
    pub const FIRST_TX_SEEN: u8 = 1;
    /// `TcpSeq::tx_base` / `rx_base` are known.
    pub const TX_ANCHORED: u8 = 2;
    pub const RX_ANCHORED: u8 = 4;
    /// The sock_ops program asked for state callbacks on this socket: its
    /// close comes from there. Without it, from its FIN or RST packets.
    pub const STATE_CB: u8 = 8;
    /// A RST was seen either way.
    pub const RESET: u8 = 16;
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

/// Most bytes copied from one packet for naming: enough for a TLS
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

/// The first bytes of a packet's payload (or of a TLS plaintext write), for
/// naming the destination and reading request heads.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PayloadEvent {
    pub header: EventHeader,
    /// The socket's cookie.
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

/// Entries each bounded kernel map holds (`with_max_entries` on the eBPF
/// side); user space exports them with the fill levels.
pub mod capacity {
    pub const TRACKED: u32 = 65_536;
    pub const CONNS: u32 = 65_536;
    pub const RESOLVED: u32 = 16_384;
    pub const UDP_FLOWS: u32 = 16_384;
    pub const TLS_CALLS: u32 = 8_192;
    pub const SSL_SOCKS: u32 = 65_536;
    pub const TLS_PENDING: u32 = 8_192;
    pub const GO_CALLS: u32 = 16_384;
    pub const TLS_HEADS: u32 = 1_024;
    pub const POLICY_HOSTS: u32 = 16_384;
    pub const RX_SOCKS: u32 = 8_192;
}

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
    /// A tracked socket's packet whose headers were not read (IPv6
    /// extension headers, a truncated packet): its bytes wait for the next.
    pub const PACKETS_UNPARSED: u32 = 5;
    /// Socket storage for a tracked process's new socket could not be
    /// allocated: that socket is not counted.
    pub const SOCKS_FULL: u32 = 6;
    /// Keys added to each LRU map by the kernel, at `LRU_CREATED + lru::*`.
    pub const LRU_CREATED: u32 = 7;
    /// Keys the kernel removed from each LRU map, at `LRU_DELETED + lru::*`.
    /// What was added and is neither there nor removed was evicted.
    pub const LRU_DELETED: u32 = LRU_CREATED + super::lru::LEN;
    pub const LEN: u32 = LRU_DELETED + super::lru::LEN;
}

/// The LRU maps: a full LRU map makes room by dropping its least recently
/// used entry, which no helper reports. agentmon counts the keys added and
/// removed (kernel and user space) and the keys there now; the difference
/// is `agentmon_kernel_map_evictions_total{map}`.
pub mod lru {
    pub const RESOLVED: u32 = 0;
    pub const TLS_CALLS: u32 = 1;
    pub const SSL_SOCKS: u32 = 2;
    pub const TLS_PENDING: u32 = 3;
    pub const GO_CALLS: u32 = 4;
    pub const TLS_HEADS: u32 = 5;
    pub const POLICY_HOSTS: u32 = 6;
    pub const RX_SOCKS: u32 = 7;
    pub const LEN: u32 = 8;
    /// Metric label and kernel map name, by index.
    pub const NAMES: [(&str, &str); LEN as usize] = [
        ("resolved", "RESOLVED"),
        ("tls_calls", "TLS_CALLS"),
        ("ssl_socks", "SSL_SOCKS"),
        ("tls_pending", "TLS_PENDING"),
        ("go_calls", "GO_CALLS"),
        ("tls_heads", "TLS_HEADS"),
        ("policy_hosts", "POLICY_HOSTS"),
        ("rx_socks", "RX_SOCKS"),
    ];
}

/// Indexes of the `SETTINGS` array, written by the loader.
pub mod setting {
    /// 1: the egress program ties TLS calls to their sockets.
    pub const TLS_TIE: u32 = 0;
    pub const LEN: u32 = 1;
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
    pub const POLICY_BLOCK: u32 = 8;
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
/// Bytes of the new program's command line an exec event carries: enough
/// for an interpreter and the script it runs (`python3 .../bin/aider`).
pub const EXEC_ARGS_LEN: usize = 256;

/// A process called execve. Sent for every exec on the machine so that user
/// space can recognise agents; the process is tracked as [`TOOL_PENDING`]
/// until then unless it was already tracked.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// 1 when the kernel tracked nothing under this pid before this exec
    /// (it is pending from now on); 0 when the process was tracked or
    /// pending already, as the child of a tracked or pending parent.
    pub untracked: u32,
    /// Length of `filename` without its NUL.
    pub filename_len: u32,
    /// The path handed to execve (may be relative), NUL-terminated.
    pub filename: [u8; EXEC_FILENAME_LEN],
    /// Length of the command line read into `args`; 0 when it could not
    /// be read (no kernel BTF to find it by).
    pub args_len: u32,
    pub _pad: u32,
    /// The inode number of the program this exec loaded
    /// (`mm->exe_file`); 0 when it could not be read. A process whose
    /// `/proc/<pid>/exe` is another file by the time user space reads this
    /// event has exec'd again since.
    pub exe_ino: u64,
    /// The start of the command line as `/proc/<pid>/cmdline` has it
    /// (NUL-separated), read in the kernel: a process that is gone before
    /// user space reads /proc is still judged by its script.
    pub args: [u8; EXEC_ARGS_LEN],
}
const _: () = assert!(size_of::<ExecEvent>() == 16 + 8 + EXEC_FILENAME_LEN + 8 + 8 + EXEC_ARGS_LEN);

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
/// ([`kind::CONN_CLOSE`]: the socket closed, with the final byte counts).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnEvent {
    pub header: EventHeader,
    /// The socket's cookie, the key of `CONNS`.
    pub sock: u64,
    pub conn: Conn,
}
const _: () = assert!(size_of::<ConnEvent>() == 16 + 8 + size_of::<Conn>());

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

/// `PolicyNet::tool` of the networks the `*` entry of a policy denies:
/// kept once, for every enforced tool.
pub const POLICY_ALL: u32 = u32::MAX - 1;

/// Key of `POLICY_NETS`, an LPM trie: the networks a tool's policy denies.
/// The prefix length counts the 32 bits of `tool` plus the address's
/// (IPv4 as IPv4-mapped IPv6: 96 + its prefix).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyNet {
    pub tool: u32,
    pub addr: [u8; 16],
}
const _: () = assert!(size_of::<PolicyNet>() == 20);

/// Key of `POLICY_HOSTS`: an address a tree resolved from a name its
/// tool's policy denies.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyHost {
    pub root_tgid: u32,
    pub addr: [u8; 16],
}
const _: () = assert!(size_of::<PolicyHost>() == 20);

/// Value of `POLICY_NETS` and `POLICY_HOSTS`: which rule denies, and on
/// which remote ports (0: every port).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyDeny {
    /// Index into the daemon's table of rule labels.
    pub rule: u32,
    pub ports: [u16; POLICY_PORTS],
}
pub const POLICY_PORTS: usize = 6;
const _: () = assert!(size_of::<PolicyDeny>() == 16);

/// A connect() or sendmsg() the policy refused (`header.tgid` the caller).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PolicyBlockEvent {
    pub header: EventHeader,
    pub rule: u32,
    pub family: u16,
    pub port: u16,
    /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub proto: u16,
    pub _pad: [u8; 6],
    /// IPv4 as IPv4-mapped IPv6.
    pub addr: [u8; 16],
}
const _: () = assert!(size_of::<PolicyBlockEvent>() == 16 + 16 + 16);

/// Offsets of tracepoint fields, read by the daemon from tracefs `format`
/// files at load time, and of the three kernel struct fields the exec
/// program follows to the command line, read from the kernel's BTF; handed
/// to the programs as a global, because they move between kernel builds.
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
    /// `task_struct.mm`, `mm_struct.arg_start` and `mm_struct.arg_end`;
    /// [`NO_FIELD`] without kernel BTF (then exec events carry no command
    /// line).
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `mm_struct.exe_file`, `file.f_inode` and `inode.i_ino`, from BTF
    /// with the above.
    pub mm_exe_file: u32,
    pub file_inode: u32,
    pub inode_ino: u32,
}
const _: () = assert!(size_of::<TpOffsets>() == 11 * 4);

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
    unsafe impl aya::Pod for SockOwner {}
    unsafe impl aya::Pod for TlsCall {}
    unsafe impl aya::Pod for TlsHead {}
    unsafe impl aya::Pod for PolicyNet {}
    unsafe impl aya::Pod for PolicyHost {}
    unsafe impl aya::Pod for PolicyDeny {}
}

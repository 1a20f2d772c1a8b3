//! Per-tool traffic totals from the kernel's per-connection counters.
//!
//! The kernel keeps cumulative counters per connection and per UDP flow.
//! This module remembers what it last read of each and turns the growth into
//! increments, so the exported counters never go backwards: a connection's
//! last bytes are added when its close event arrives, and an open
//! connection's growth at every scrape.
//!
//! It also keeps what the connection log says about each connection and
//! flow: who opened it, when (wall-clock time, see `clock`), and when it was
//! last reported.

mod conn;
#[cfg(test)]
pub mod fakes;
pub mod records;
mod resume;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::SystemTime,
};

use monitor_common::{AF_INET6, Conn, UdpFlow, UdpKey, origin};

pub use self::conn::{ConnReport, OpenConn};
use self::resume::dest_of;
use crate::{
    agents::ToolId,
    clock::Clock,
    requests::{Request, RequestRecord, RequestSizes},
    saved::{SavedConn, SavedFlow},
    tree::Proc,
    uprobes::TlsLib,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Opened by the agent (TCP), or whose first datagram it sent (UDP).
    Egress,
    /// Accepted by the agent, or whose first datagram it received.
    Ingress,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        }
    }
}

/// The destination labels of a connection or flow, decided once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Dest {
    /// The `dest` label: a catalog host, a registrable domain, `ip` or `other`.
    pub name: String,
    pub country: String,
    pub asn: String,
    pub purpose: &'static str,
}

/// What named a connection, for the log (all already sanitised).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// The first bytes were a TLS ClientHello.
    pub tls: bool,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub http_host: Option<String>,
    pub http_method: Option<&'static str>,
    pub dns_name: Option<String>,
    /// The name that won (SNI, then HTTP Host, then DNS), if any.
    pub host: Option<String>,
    pub asn_org: Option<String>,
}

/// Where increments go (the Prometheus metrics, or a fake in tests).
pub trait Counters {
    fn bytes(&mut self, tool: ToolId, proto: Proto, dest: &Dest, sent: u64, received: u64);
    fn connection(&mut self, tool: ToolId, proto: Proto, direction: Direction, dest: &Dest);
    /// Plaintext bytes a TLS library moved.
    fn tls_bytes(&mut self, tool: ToolId, dest: &Dest, lib: TlsLib, sent: u64, received: u64);
    /// An HTTP request; `purpose` is the path's class when known, else the
    /// destination's.
    fn http_request(
        &mut self,
        tool: ToolId,
        dest: &Dest,
        method: &'static str,
        purpose: &'static str,
    );
    /// The plaintext sizes of one HTTP request on a probed TLS connection.
    fn request_size(&mut self, tool: ToolId, purpose: &'static str, sent: u64, received: u64);
}

/// Observes a finished request's sizes; records that several concurrent
/// requests share are left out of the per-request figures.
fn size_request(tool: ToolId, done: Option<RequestRecord>, counters: &mut dyn Counters) {
    if let Some(r) = done.filter(|r| r.heads == 1) {
        counters.request_size(tool, r.purpose, r.egress_bytes, r.ingress_bytes);
    }
}

/// What a labeler is told of the connection or flow it labels.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub pid: u32,
    /// Its process: the tool, and the root of the tree (whose DNS answers
    /// name the address).
    pub proc: &'a Proc,
    pub proto: Proto,
    pub direction: Direction,
    pub remote: SocketAddr,
    /// The socket cookie of a TCP connection.
    pub sock: Option<u64>,
    /// Bytes sent and received so far.
    pub bytes: (u64, u64),
}

/// Decides a connection's labels from what is known of it and the names
/// seen so far.
pub type Labeler<'a> = dyn FnMut(&Subject<'_>, &mut Names) -> Dest + 'a;

/// Read access to the kernel's counter maps.
pub trait KernelCounters {
    fn conn(&self, sock: u64) -> Option<Conn>;
    fn flows(&self) -> Vec<(UdpKey, UdpFlow)>;
    fn remove_flow(&mut self, key: &UdpKey);
}

/// A connection without a name source after this long is labelled with
/// what is known (a DNS name or its address): the first bytes a client sends
/// come within the first syscalls, so a later SNI is not expected.
pub const SETTLE_NS: u64 = 1_000_000_000;

/// When a connection's (or flow's) last log record was written, in
/// monotonic time (awake time: a suspend does not make one due), and the
/// byte counts it had.
#[derive(Debug, Clone, Copy)]
struct Logged {
    ns: u64,
    bytes: (u64, u64),
}

impl Logged {
    fn new(now_ns: u64) -> Self {
        Self {
            ns: now_ns,
            bytes: (0, 0),
        }
    }

    /// An interim record is due `every_ns` after the last record (or the
    /// start), once the counts moved since: an idle keep-alive connection
    /// or DNS flow adds nothing to the log. Marks it written when due.
    fn due(&mut self, now_ns: u64, every_ns: u64, bytes: (u64, u64)) -> bool {
        if now_ns.saturating_sub(self.ns) < every_ns || bytes == self.bytes {
            return false;
        }
        *self = Self { ns: now_ns, bytes };
        true
    }
}

/// A UDP flow's totals at one moment, for the connection log: when its
/// process was found gone, or while it lives.
#[derive(Debug, Clone)]
pub struct FlowReport {
    pub pid: u32,
    pub proc: Proc,
    pub dest: Dest,
    /// The direction of its first datagram.
    pub direction: Direction,
    pub remote: SocketAddr,
    /// What named its peer when it was labelled (a DNS name, the AS).
    pub names: Names,
    /// When its first datagram was seen.
    pub start: SystemTime,
    pub at: SystemTime,
    /// Totals since its first datagram.
    pub totals: UdpFlow,
}

struct FlowState {
    proc: Proc,
    dest: Dest,
    names: Names,
    direction: Direction,
    start: SystemTime,
    logged: Logged,
    last: UdpFlow,
}

impl FlowState {
    fn report(&self, key: &UdpKey, at: SystemTime) -> FlowReport {
        FlowReport {
            pid: key.tgid,
            proc: self.proc.clone(),
            dest: self.dest.clone(),
            direction: self.direction,
            remote: SocketAddr::new(ip(key.family, &key.raddr), key.rport),
            names: self.names.clone(),
            start: self.start,
            at,
            totals: self.last,
        }
    }
}

#[derive(Default)]
pub struct Traffic {
    conns: HashMap<u64, OpenConn>,
    flows: HashMap<UdpKey, FlowState>,
    /// What the run before a restart had counted of each connection and
    /// flow, taken up when this run first meets them (see `saved.rs`).
    resumed_conns: HashMap<u64, SavedConn>,
    resumed_flows: HashMap<UdpKey, SavedFlow>,
    clock: Clock,
}

/// The address in a kernel address field; v4-mapped IPv6 becomes IPv4.
pub fn ip(family: u16, addr: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*addr)).to_canonical()
    } else {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    }
}

impl Traffic {
    /// Traffic whose wall-clock times come from `clock` (a fake in tests).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            clock,
            ..Self::default()
        }
    }

    /// Whether `sock` is a watched TCP connection.
    pub fn is_open(&self, sock: u64) -> bool {
        self.conns.contains_key(&sock)
    }

    /// A tracked process opened (or accepted, or was found with) a TCP
    /// connection. `listening` tells whether the local port is a listening
    /// one in the process's network namespace, which makes a socket found
    /// open inbound.
    pub fn on_open(
        &mut self,
        sock: u64,
        conn: &Conn,
        proc: &Proc,
        listening: impl FnOnce() -> bool,
    ) {
        // Met already (registered at a restart, then its open event came).
        if self
            .conns
            .get(&sock)
            .is_some_and(|c| c.start_ns == conn.start_ns)
        {
            return;
        }
        let inbound = match conn.origin {
            origin::ACCEPT => true,
            origin::FIRST_USE => listening(),
            _ => false,
        };
        let direction = if inbound {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        self.conns.insert(
            sock,
            OpenConn {
                tool: proc.tool,
                pid: conn.tgid,
                proc: proc.clone(),
                direction,
                remote: SocketAddr::new(ip(conn.family, &conn.raddr), conn.rport),
                local: SocketAddr::new(ip(conn.family, &conn.laddr), conn.lport),
                start_ns: conn.start_ns,
                start: self.clock.wall(conn.start_ns),
                logged: Logged::new(self.clock.monotonic_ns()),
                names: Names::default(),
                dest: None,
                // Bytes counted before the open event (first-use sockets)
                // are in the metrics once the connection is labelled.
                seen: (conn.tx_bytes, conn.rx_bytes),
                counted: (0, 0),
                tls_seen: (0, 0),
                tls_counted: (0, 0),
                tls_lib: None,
                framing_lost: false,
                probe_seen: (0, 0),
                requests: RequestSizes::default(),
            },
        );
        if let Some(open) = self.conns.get_mut(&sock) {
            open.update(conn);
        }
        let resumed = self
            .resumed_conns
            .remove(&sock)
            .filter(|s| s.start_ns == conn.start_ns);
        if let (Some(saved), Some(open)) = (resumed, self.conns.get_mut(&sock)) {
            open.direction = saved.direction();
            open.counted = saved.counted;
            open.tls_counted = saved.tls_counted;
            open.names.host = saved.host;
            open.dest = saved.dest.map(dest_of);
        }
    }

    /// Takes the kernel's latest byte counts of `sock` (before it is
    /// labelled, so that the policy's verdict says how much it had sent).
    /// Only the counts: who sees its plaintext is decided later, once a
    /// probe had its chance to tie it.
    pub fn saw(&mut self, sock: u64, conn: &Conn) {
        if let Some(open) = self.conns.get_mut(&sock) {
            open.saw(conn);
        }
    }

    /// Whether `sock`'s labels are decided.
    pub fn is_labelled(&self, sock: u64) -> bool {
        self.conns.get(&sock).is_some_and(|c| c.dest.is_some())
    }

    /// First bytes of a connection labelled before they came (it sent
    /// nothing in its first second): its labels stay, the names they give
    /// go to the log, and, when they name another host than its labels
    /// were decided by, `judge` sees the connection with the better name.
    pub fn named_late(
        &mut self,
        sock: u64,
        name: impl FnOnce(&mut Names),
        judge: impl FnOnce(&Subject<'_>, &Names, &Dest),
    ) {
        let Some(open) = self.conns.get_mut(&sock) else {
            return;
        };
        let Some(dest) = &open.dest else { return };
        let mut late = Names::default();
        name(&mut late);
        let better = late.sni.clone().or_else(|| late.http_host.clone());
        open.names.tls |= late.tls;
        open.names.sni = open.names.sni.take().or(late.sni);
        open.names.alpn = open.names.alpn.take().or(late.alpn);
        open.names.http_host = open.names.http_host.take().or(late.http_host);
        open.names.http_method = open.names.http_method.or(late.http_method);
        let Some(better) = better.filter(|b| open.names.host.as_ref() != Some(b)) else {
            return;
        };
        open.names.host = Some(better);
        let subject = Subject {
            pid: open.pid,
            proc: &open.proc,
            proto: Proto::Tcp,
            direction: open.direction,
            remote: open.remote,
            sock: Some(sock),
            bytes: open.seen,
        };
        judge(&subject, &open.names, dest);
    }

    /// The connection whose first bytes named it, to record what they said
    /// and settle its labels.
    pub fn named(
        &mut self,
        sock: u64,
        name: impl FnOnce(&mut Names),
        label: &mut Labeler<'_>,
        counters: &mut dyn Counters,
    ) {
        if let Some(open) = self.conns.get_mut(&sock) {
            if open.dest.is_some() {
                return;
            }
            name(&mut open.names);
            open.settle(sock, label, counters);
            // A plain HTTP request named it: that is a request too.
            if let (Some(method), Some(dest)) = (open.names.http_method, &open.dest) {
                counters.http_request(open.tool, dest, method, dest.purpose);
            }
        }
    }

    /// Decides `sock`'s labels now if not yet; returns its host name (None
    /// for an unknown connection, Some(None) when it has no name).
    pub fn settle(
        &mut self,
        sock: u64,
        label: &mut Labeler<'_>,
        counters: &mut dyn Counters,
    ) -> Option<Option<String>> {
        let open = self.conns.get_mut(&sock)?;
        open.settle(sock, label, counters);
        Some(open.names.host.clone())
    }

    /// Counts HTTP requests read on `sock` from a plaintext write that
    /// began at `marks`, and sizes the request before them.
    pub fn count_requests(
        &mut self,
        sock: u64,
        requests: &[Request],
        marks: [u64; 2],
        counters: &mut dyn Counters,
    ) {
        let Some(open) = self.conns.get_mut(&sock) else {
            return;
        };
        let Some(dest) = &open.dest else {
            return;
        };
        for r in requests {
            counters.http_request(open.tool, dest, r.method, r.purpose.unwrap_or(dest.purpose));
        }
        let done = open.requests.begin(requests, dest.purpose, marks);
        size_request(open.tool, done, counters);
    }

    /// The kernel saw the connection close; `conn` has the final counts.
    pub fn on_close(
        &mut self,
        sock: u64,
        conn: &Conn,
        end_ns: u64,
        label: &mut Labeler<'_>,
        counters: &mut dyn Counters,
    ) -> Option<ConnReport> {
        let mut open = self.conns.remove(&sock)?;
        open.update(conn);
        open.settle(sock, label, counters);
        // Request marks are the probes' counts: so is their end.
        let done = open.requests.end([open.probe_seen.0, open.probe_seen.1]);
        size_request(open.tool, done, counters);
        Some(open.report(sock, self.clock.wall(end_ns)))
    }

    /// A tracked process exchanged its first datagram with a new peer.
    pub fn on_udp_flow(
        &mut self,
        key: UdpKey,
        proc: &Proc,
        inbound: bool,
        label: &mut Labeler<'_>,
        counters: &mut dyn Counters,
    ) {
        if self.flows.contains_key(&key) {
            return;
        }
        let direction = if inbound {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        // A flow the run before a restart counted goes on from its
        // baseline, under the labels it had, and is not a new flow.
        let mut names = Names::default();
        let (dest, last) = match self.resumed_flows.remove(&key) {
            Some(saved) => {
                let last = UdpFlow {
                    tx_bytes: saved.counted.0,
                    rx_bytes: saved.counted.1,
                    ..UdpFlow::default()
                };
                (dest_of(saved.dest), last)
            }
            None => {
                let remote = SocketAddr::new(ip(key.family, &key.raddr), key.rport);
                let subject = Subject {
                    pid: key.tgid,
                    proc,
                    proto: Proto::Udp,
                    direction,
                    remote,
                    sock: None,
                    bytes: (0, 0),
                };
                let dest = label(&subject, &mut names);
                counters.connection(proc.tool, Proto::Udp, direction, &dest);
                (dest, UdpFlow::default())
            }
        };
        self.flows.insert(
            key,
            FlowState {
                proc: proc.clone(),
                dest,
                names,
                direction,
                start: self.clock.now(),
                logged: Logged::new(self.clock.monotonic_ns()),
                last,
            },
        );
    }

    /// Reports of the connections and flows due an interim record (see
    /// [`Logged::due`]), with their totals as of the last refresh; each
    /// counts as logged now.
    pub fn due(&mut self, every_ns: u64) -> (Vec<ConnReport>, Vec<FlowReport>) {
        let (now_ns, at) = (self.clock.monotonic_ns(), self.clock.now());
        let conns = self
            .conns
            .iter_mut()
            .filter(|(_, open)| open.dest.is_some())
            .filter_map(|(sock, open)| {
                let due = open.logged.due(now_ns, every_ns, open.seen);
                due.then(|| open.report(*sock, at))
            })
            .collect();
        let flows = self
            .flows
            .iter_mut()
            .filter_map(|(key, flow)| {
                let bytes = (flow.last.tx_bytes, flow.last.rx_bytes);
                let due = flow.logged.due(now_ns, every_ns, bytes);
                due.then(|| flow.report(key, at))
            })
            .collect();
        (conns, flows)
    }

    /// Reads every open connection and UDP flow and adds their growth.
    /// Connections older than [`SETTLE_NS`] at `now_ns` get their labels.
    /// `proc_of` finds a UDP flow's process (None: not an agent, or gone);
    /// flows of processes that are gone are read one last time, removed,
    /// and returned for the log.
    pub fn refresh<'p>(
        &mut self,
        kernel: &mut dyn KernelCounters,
        now_ns: u64,
        proc_of: impl Fn(u32) -> Option<&'p Proc>,
        label: &mut Labeler<'_>,
        counters: &mut dyn Counters,
    ) -> Vec<FlowReport> {
        let mut ended = Vec::new();
        for (sock, open) in &mut self.conns {
            // Missing: closed in the kernel, its close event is on its way.
            if let Some(conn) = kernel.conn(*sock) {
                open.update(&conn);
            }
            if open.dest.is_some() || now_ns.saturating_sub(open.start_ns) > SETTLE_NS {
                open.settle(*sock, label, counters);
            }
        }
        for (key, flow) in kernel.flows() {
            let live = proc_of(key.tgid);
            if !self.flows.contains_key(&key) {
                match live {
                    // Its flow event was lost: adopt it.
                    Some(owner) => self.on_udp_flow(key, owner, false, label, counters),
                    // Not (or no longer) an agent's and never counted.
                    None => {
                        kernel.remove_flow(&key);
                        continue;
                    }
                }
            }
            let Some(state) = self.flows.get_mut(&key) else {
                continue;
            };
            let sent = flow.tx_bytes.saturating_sub(state.last.tx_bytes);
            let received = flow.rx_bytes.saturating_sub(state.last.rx_bytes);
            if sent > 0 || received > 0 {
                counters.bytes(state.proc.tool, Proto::Udp, &state.dest, sent, received);
            }
            state.last = flow;
            if live.is_none() {
                kernel.remove_flow(&key);
                ended.push(state.report(&key, self.clock.now()));
                self.flows.remove(&key);
            }
        }
        ended
    }
}

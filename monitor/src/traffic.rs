//! Per-tool traffic totals from the kernel's per-connection counters.
//!
//! The kernel keeps cumulative counters per connection and per UDP flow.
//! This module remembers what it last read of each and turns the growth into
//! increments, so the exported counters never go backwards: a connection's
//! last bytes are added when its close event arrives, and an open
//! connection's growth at every scrape.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use monitor_common::{AF_INET6, Conn, UdpFlow, UdpKey, origin};

use crate::{agents::ToolId, tree::Proc};

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
    Outbound,
    Inbound,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Where increments go (the Prometheus metrics, or a fake in tests).
pub trait Counters {
    fn bytes(&mut self, tool: ToolId, proto: Proto, sent: u64, received: u64);
    fn connection(&mut self, tool: ToolId, proto: Proto, direction: Direction);
}

/// Read access to the kernel's counter maps.
pub trait KernelCounters {
    fn conn(&self, sock: u64) -> Option<Conn>;
    fn remove_conn(&mut self, sock: u64);
    fn flows(&self) -> Vec<(UdpKey, UdpFlow)>;
    fn remove_flow(&mut self, key: &UdpKey);
}

/// A watched TCP connection.
#[derive(Debug, Clone)]
pub struct OpenConn {
    pub tool: ToolId,
    pub pid: u32,
    pub proc: Proc,
    pub direction: Direction,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub start_ns: u64,
    sent: u64,
    received: u64,
}

/// A TCP connection that ended, for the connection log.
#[derive(Debug, Clone)]
pub struct ClosedConn {
    pub conn: OpenConn,
    pub sent: u64,
    pub received: u64,
    pub end_ns: u64,
}

struct FlowState {
    tool: ToolId,
    last: UdpFlow,
}

#[derive(Default)]
pub struct Traffic {
    conns: HashMap<u64, OpenConn>,
    flows: HashMap<UdpKey, FlowState>,
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
    pub fn open_conns(&self) -> usize {
        self.conns.len()
    }

    /// A tracked process opened (or first used) a TCP connection.
    /// `listening` tells whether the local port is a listening one in the
    /// process's network namespace, which makes a first-seen socket inbound.
    pub fn on_open(
        &mut self,
        sock: u64,
        conn: &Conn,
        proc: &Proc,
        listening: impl FnOnce() -> bool,
        counters: &mut dyn Counters,
    ) {
        let direction = if conn.origin == origin::FIRST_USE && listening() {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        counters.connection(proc.tool, Proto::Tcp, direction);
        // Bytes counted before the open event (first-use sockets) are added now.
        counters.bytes(proc.tool, Proto::Tcp, conn.tx_bytes, conn.rx_bytes);
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
                sent: conn.tx_bytes,
                received: conn.rx_bytes,
            },
        );
    }

    /// The kernel saw the connection close; `conn` has the final counts.
    pub fn on_close(
        &mut self,
        sock: u64,
        conn: &Conn,
        end_ns: u64,
        counters: &mut dyn Counters,
    ) -> Option<ClosedConn> {
        let mut open = self.conns.remove(&sock)?;
        add_growth(&mut open, conn, counters);
        Some(ClosedConn {
            sent: open.sent,
            received: open.received,
            end_ns,
            conn: open,
        })
    }

    /// Forgets a connection without counting more (its process turned out
    /// not to be an agent).
    pub fn forget(&mut self, sock: u64) {
        self.conns.remove(&sock);
    }

    /// A tracked process exchanged its first datagram with a new peer.
    pub fn on_udp_flow(
        &mut self,
        key: UdpKey,
        tool: ToolId,
        inbound: bool,
        counters: &mut dyn Counters,
    ) {
        let direction = if inbound {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        counters.connection(tool, Proto::Udp, direction);
        self.flows.entry(key).or_insert(FlowState {
            tool,
            last: UdpFlow::default(),
        });
    }

    /// Reads every open connection and UDP flow and adds their growth.
    /// `tool_of` resolves a UDP flow's process to its tool (None: not an
    /// agent, or gone); flows of processes that are gone are read one last
    /// time and removed.
    pub fn refresh(
        &mut self,
        kernel: &mut dyn KernelCounters,
        tool_of: impl Fn(u32) -> Option<ToolId>,
        counters: &mut dyn Counters,
    ) {
        for (sock, open) in &mut self.conns {
            // Missing: closed in the kernel, its close event is on its way.
            if let Some(conn) = kernel.conn(*sock) {
                add_growth(open, &conn, counters);
            }
        }
        for (key, flow) in kernel.flows() {
            let live_tool = tool_of(key.tgid);
            let state = match (self.flows.get_mut(&key), live_tool) {
                (Some(state), _) => state,
                // Its flow event was lost: adopt it.
                (None, Some(tool)) => self.flows.entry(key).or_insert(FlowState {
                    tool,
                    last: UdpFlow::default(),
                }),
                // Not (or no longer) an agent's and never counted.
                (None, None) => {
                    kernel.remove_flow(&key);
                    continue;
                }
            };
            let sent = flow.tx_bytes.saturating_sub(state.last.tx_bytes);
            let received = flow.rx_bytes.saturating_sub(state.last.rx_bytes);
            if sent > 0 || received > 0 {
                counters.bytes(state.tool, Proto::Udp, sent, received);
            }
            state.last = flow;
            if live_tool.is_none() {
                kernel.remove_flow(&key);
                self.flows.remove(&key);
            }
        }
    }
}

fn add_growth(open: &mut OpenConn, conn: &Conn, counters: &mut dyn Counters) {
    let sent = conn.tx_bytes.saturating_sub(open.sent);
    let received = conn.rx_bytes.saturating_sub(open.received);
    if sent > 0 || received > 0 {
        counters.bytes(open.tool, Proto::Tcp, sent, received);
    }
    open.sent = open.sent.max(conn.tx_bytes);
    open.received = open.received.max(conn.rx_bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Totals {
        bytes: HashMap<(ToolId, Proto), (u64, u64)>,
        conns: HashMap<(ToolId, Proto, Direction), u64>,
    }

    impl Counters for Totals {
        fn bytes(&mut self, tool: ToolId, proto: Proto, sent: u64, received: u64) {
            let e = self.bytes.entry((tool, proto)).or_default();
            e.0 += sent;
            e.1 += received;
        }
        fn connection(&mut self, tool: ToolId, proto: Proto, direction: Direction) {
            *self.conns.entry((tool, proto, direction)).or_default() += 1;
        }
    }

    #[derive(Default)]
    struct FakeKernel {
        conns: HashMap<u64, Conn>,
        flows: HashMap<UdpKey, UdpFlow>,
    }

    impl KernelCounters for FakeKernel {
        fn conn(&self, sock: u64) -> Option<Conn> {
            self.conns.get(&sock).copied()
        }
        fn remove_conn(&mut self, sock: u64) {
            self.conns.remove(&sock);
        }
        fn flows(&self) -> Vec<(UdpKey, UdpFlow)> {
            self.flows.iter().map(|(k, v)| (*k, *v)).collect()
        }
        fn remove_flow(&mut self, key: &UdpKey) {
            self.flows.remove(key);
        }
    }

    fn proc(tool: ToolId) -> Proc {
        Proc {
            tool,
            root: 10,
            ppid: 1,
            exe: "/x".into(),
            argv0: "x".into(),
        }
    }

    fn conn(tx: u64, rx: u64, origin: u8) -> Conn {
        let mut raddr = [0u8; 16];
        raddr[..4].copy_from_slice(&[203, 0, 113, 10]);
        Conn {
            tgid: 10,
            tx_bytes: tx,
            rx_bytes: rx,
            raddr,
            rport: 443,
            family: monitor_common::AF_INET,
            origin,
            ..Conn::default()
        }
    }

    #[test]
    fn open_connection_grows_at_refresh_and_close_adds_the_rest_once() {
        let (mut t, mut k, mut c) = (Traffic::default(), FakeKernel::default(), Totals::default());
        t.on_open(1, &conn(0, 0, origin::CONNECT), &proc(2), || false, &mut c);
        k.conns.insert(1, conn(100, 10, origin::CONNECT));
        t.refresh(&mut k, |_| Some(2), &mut c);
        assert_eq!(c.bytes[&(2, Proto::Tcp)], (100, 10));
        k.conns.insert(1, conn(250, 40, origin::CONNECT));
        t.refresh(&mut k, |_| Some(2), &mut c);
        t.refresh(&mut k, |_| Some(2), &mut c);
        assert_eq!(c.bytes[&(2, Proto::Tcp)], (250, 40));
        // Closed in the kernel before the event is read: nothing goes back.
        k.conns.clear();
        t.refresh(&mut k, |_| Some(2), &mut c);
        let closed = t
            .on_close(1, &conn(300, 41, origin::CONNECT), 5, &mut c)
            .unwrap();
        assert_eq!((closed.sent, closed.received), (300, 41));
        assert_eq!(c.bytes[&(2, Proto::Tcp)], (300, 41));
        assert_eq!(closed.conn.remote, "203.0.113.10:443".parse().unwrap());
        assert!(
            t.on_close(1, &conn(300, 41, origin::CONNECT), 5, &mut c)
                .is_none()
        );
        assert_eq!(c.conns[&(2, Proto::Tcp, Direction::Outbound)], 1);
    }

    #[test]
    fn first_use_socket_counts_its_first_bytes_and_finds_its_direction() {
        let (mut t, mut c) = (Traffic::default(), Totals::default());
        t.on_open(
            1,
            &conn(0, 77, origin::FIRST_USE),
            &proc(3),
            || true,
            &mut c,
        );
        t.on_open(
            2,
            &conn(5, 0, origin::FIRST_USE),
            &proc(3),
            || false,
            &mut c,
        );
        assert_eq!(c.bytes[&(3, Proto::Tcp)], (5, 77));
        assert_eq!(c.conns[&(3, Proto::Tcp, Direction::Inbound)], 1);
        assert_eq!(c.conns[&(3, Proto::Tcp, Direction::Outbound)], 1);
    }

    #[test]
    fn udp_flows_of_gone_processes_are_read_once_more_then_dropped() {
        let (mut t, mut k, mut c) = (Traffic::default(), FakeKernel::default(), Totals::default());
        let key = UdpKey {
            tgid: 10,
            rport: 53,
            family: monitor_common::AF_INET,
            raddr: [0; 16],
        };
        t.on_udp_flow(key, 4, false, &mut c);
        let flow = |tx, rx| UdpFlow {
            tool: 4,
            tx_bytes: tx,
            tx_datagrams: 1,
            rx_bytes: rx,
            rx_datagrams: 1,
            ..UdpFlow::default()
        };
        k.flows.insert(key, flow(64, 128));
        t.refresh(&mut k, |_| Some(4), &mut c);
        k.flows.insert(key, flow(96, 256));
        t.refresh(&mut k, |_| None, &mut c);
        assert_eq!(c.bytes[&(4, Proto::Udp)], (96, 256));
        assert!(k.flows.is_empty());
        // A flow no agent owns is removed without being counted.
        k.flows.insert(key, flow(1, 1));
        t.refresh(&mut k, |_| None, &mut c);
        assert!(k.flows.is_empty());
        assert_eq!(c.bytes[&(4, Proto::Udp)], (96, 256));
    }

    #[test]
    fn v4_mapped_addresses_become_ipv4() {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&[203, 0, 113, 10]);
        assert_eq!(ip(AF_INET6, &a), "203.0.113.10".parse::<IpAddr>().unwrap());
    }
}

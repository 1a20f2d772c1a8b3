//! Fakes of the kernel's counter maps and of the metrics, for tests here
//! and of the modules that read traffic (the connection log).

use super::*;

pub type Key = (ToolId, Proto, String);

#[derive(Default)]
pub struct Totals {
    pub bytes: HashMap<Key, (u64, u64)>,
    pub conns: HashMap<(ToolId, Proto, Direction, String), u64>,
}

impl Counters for Totals {
    fn bytes(&mut self, tool: ToolId, proto: Proto, dest: &Dest, sent: u64, received: u64) {
        let e = self
            .bytes
            .entry((tool, proto, dest.name.clone()))
            .or_default();
        e.0 += sent;
        e.1 += received;
    }
    fn connection(&mut self, tool: ToolId, proto: Proto, direction: Direction, dest: &Dest) {
        *self
            .conns
            .entry((tool, proto, direction, dest.name.clone()))
            .or_default() += 1;
    }
    fn tls_bytes(&mut self, _: ToolId, _: &Dest, _: TlsLib, _: u64, _: u64) {}
    fn http_request(&mut self, _: ToolId, _: &Dest, _: &'static str, _: &'static str) {}
    fn request_size(&mut self, _: ToolId, _: &'static str, _: u64, _: u64) {}
}

#[derive(Default)]
pub struct FakeKernel {
    pub conns: HashMap<u64, Conn>,
    pub flows: HashMap<UdpKey, UdpFlow>,
}

/// A connection of process 10 to 203.0.113.10:443.
pub fn conn(tx: u64, rx: u64, origin: u8) -> Conn {
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
        start_ns: 1_000,
        ..Conn::default()
    }
}

impl KernelCounters for FakeKernel {
    fn conn(&self, sock: u64) -> Option<Conn> {
        self.conns.get(&sock).copied()
    }
    fn flows(&self) -> Vec<(UdpKey, UdpFlow)> {
        self.flows.iter().map(|(k, v)| (*k, *v)).collect()
    }
    fn remove_flow(&mut self, key: &UdpKey) {
        self.flows.remove(key);
    }
}

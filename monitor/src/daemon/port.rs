//! What the event router needs of the kernel side. `kernel::Kernel`
//! implements it with aya; the router's tests use a fake.

use monitor_common::{Conn, UdpKey};

use crate::{
    agents::ToolId,
    kernel::{Features, adopt::Adopted, adopt::Summary, enforce::Enforcement, evictions::LruCount},
    traffic::KernelCounters,
    tree::TrackedMap,
    uprobes::Attacher,
};

/// A kernel map's name, its entries now and its capacity.
pub type MapFill = (&'static str, usize, u32);

pub trait KernelPort {
    /// What a TLS probe attachment is, to detach it later.
    type Link;
    fn features(&self) -> Features;
    fn programs_attached(&self) -> usize;
    /// The kernel's table of tracked processes.
    fn tracked(&mut self) -> &mut dyn TrackedMap;
    /// The per-connection and per-flow counters.
    fn counters(&mut self) -> &mut dyn KernelCounters;
    /// One of the kernel's self-monitoring counters, summed over CPUs.
    fn counter(&self, index: u32) -> u64;
    /// Tells the kernel the tool of a connection opened while its process
    /// was pending, so the label survives a later exec of the owner.
    fn resolve(&mut self, sock: u64, tool: ToolId);
    /// Forgets that label once the connection closed.
    fn unresolve(&mut self, sock: u64);
    /// Every connection the kernel watches.
    fn conns(&self) -> Vec<(u64, Conn)>;
    /// The bounded maps' entries and capacities, by map name.
    fn fill(&self) -> Vec<MapFill> {
        Vec::new()
    }
    /// The LRU maps' figures, to count their evictions.
    fn lru_counts(&self) -> Vec<LruCount> {
        Vec::new()
    }
    /// Stops watching a connection (no close event follows).
    fn forget_conn(&mut self, sock: u64);
    /// Stops watching a UDP flow.
    fn forget_flow(&mut self, key: &UdpKey);
    /// Gives the unowned sockets of process `pid` the owner (`pid`, `tool`).
    fn adopt(&mut self, pid: u32, tool: ToolId, now_ns: u64) -> (Vec<Adopted>, Summary);
    /// Attaches and detaches TLS probes.
    fn probes(&mut self) -> &mut dyn Attacher<Link = Self::Link>;
    /// Probes detached but not closed yet (see `Kernel::detach_tls`).
    fn detached_len(&self) -> usize;
    fn close_detached(&mut self);
    /// Closes every detached probe and waits until they are closed.
    fn finish_detaching(&mut self);
    /// Whether the maps are those of an earlier run (agentmon restarted).
    fn resumed(&self) -> bool {
        false
    }
    /// A clean stop: takes the pinned hooks off (see `kernel/pins.rs`).
    fn release_hooks(&mut self) {}
    /// Policy enforcement, where the kernel side exists.
    fn enforcement(&mut self) -> Option<&mut dyn Enforcement> {
        None
    }
}

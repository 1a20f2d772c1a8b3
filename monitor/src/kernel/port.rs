//! The kernel as the daemon's event router sees it (`daemon::KernelPort`):
//! the aya maps and programs behind the router's traits.

use std::{num::NonZeroU32, path::Path};

use aya::{
    maps::{HashMap as BpfHashMap, MapData},
    programs::uprobe::UProbeLinkId,
};
use monitor_common::{Conn, Tracked, UdpFlow, UdpKey, lru};
use tracing::warn;

use super::{Features, Kernel, ProbeAt, adopt, evictions::LruCount};
use crate::{
    agents::ToolId,
    daemon::{KernelPort, MapFill},
    traffic::KernelCounters,
    tree::TrackedMap,
    uprobes::{Attacher, ProbeError, TlsLib},
};

impl TrackedMap for BpfHashMap<MapData, u32, Tracked> {
    fn set(&mut self, tgid: u32, value: Tracked) {
        if let Err(e) = self.insert(tgid, value, 0) {
            warn!(pid = tgid, error = %e, "cannot track process (TRACKED map full?)");
        }
    }
    fn remove(&mut self, tgid: u32) {
        // Already gone is fine: the kernel removes exited processes itself.
        let _ = BpfHashMap::remove(self, &tgid);
    }
    fn tgids(&self) -> Vec<u32> {
        self.keys().filter_map(Result::ok).collect()
    }
    fn get(&self, tgid: u32) -> Option<Tracked> {
        BpfHashMap::get(self, &tgid, 0).ok()
    }
}

impl KernelCounters for Kernel {
    fn conn(&self, sock: u64) -> Option<Conn> {
        self.conns.get(&sock, 0).ok()
    }
    fn flows(&self) -> Vec<(UdpKey, UdpFlow)> {
        self.udp_flows.iter().filter_map(Result::ok).collect()
    }
    fn remove_flow(&mut self, key: &UdpKey) {
        let _ = self.udp_flows.remove(key);
    }
}

impl Attacher for Kernel {
    type Link = UProbeLinkId;
    fn attach(
        &mut self,
        program: &'static str,
        target: &Path,
        at: &ProbeAt,
        lib: TlsLib,
        pid: Option<NonZeroU32>,
    ) -> Result<UProbeLinkId, ProbeError> {
        self.attach_tls(program, target, at, lib, pid)
            .map_err(|e| ProbeError::Attach {
                program,
                at: at.clone(),
                source: Box::new(e),
            })
    }
    fn detach(&mut self, program: &str, link: UProbeLinkId) {
        self.detach_tls(program, link);
    }
}

impl KernelPort for Kernel {
    type Link = UProbeLinkId;
    fn resumed(&self) -> bool {
        Kernel::resumed(self)
    }
    fn release_hooks(&mut self) {
        Kernel::release_hooks(self);
    }
    fn enforcement(&mut self) -> Option<&mut dyn crate::kernel::enforce::Enforcement> {
        Some(self)
    }
    fn features(&self) -> Features {
        self.features
    }
    fn programs_attached(&self) -> usize {
        self.programs_attached
    }
    fn tracked(&mut self) -> &mut dyn TrackedMap {
        &mut self.tracked
    }
    fn counters(&mut self) -> &mut dyn KernelCounters {
        self
    }
    fn counter(&self, index: u32) -> u64 {
        Kernel::counter(self, index)
    }
    fn resolve(&mut self, sock: u64, tool: ToolId) {
        let new = self.resolved.get(&sock, 0).is_err();
        if self.resolved.insert(sock, tool, 0).is_ok() && new {
            self.lru.added(lru::RESOLVED);
        }
    }
    fn unresolve(&mut self, sock: u64) {
        if self.resolved.remove(&sock).is_ok() {
            self.lru.removed(lru::RESOLVED, 1);
        }
    }
    fn conns(&self) -> Vec<(u64, Conn)> {
        self.conns.iter().filter_map(Result::ok).collect()
    }
    fn fill(&self) -> Vec<MapFill> {
        let s = &self.sizes;
        vec![
            ("tracked", self.tracked.keys().count(), s.tracked),
            ("conns", self.conns.keys().count(), s.conns),
            ("udp_flows", self.udp_flows.keys().count(), s.udp_flows),
        ]
    }
    fn lru_counts(&self) -> Vec<LruCount> {
        self.lru.counts(
            |index| Kernel::counter(self, index),
            || {
                let (resolved, capacity) = super::evictions::fill(&self.resolved);
                let mut user = vec![(lru::RESOLVED, resolved, capacity)];
                if let Ok(enforcer) = &self.enforcer {
                    let (entries, capacity) = enforcer.hosts_fill();
                    user.push((lru::POLICY_HOSTS, entries, capacity));
                }
                user
            },
        )
    }
    fn forget_conn(&mut self, sock: u64) {
        let _ = self.conns.remove(&sock);
    }
    fn forget_flow(&mut self, key: &UdpKey) {
        let _ = self.udp_flows.remove(key);
    }
    fn adopt(
        &mut self,
        pid: u32,
        tool: ToolId,
        now_ns: u64,
    ) -> (Vec<adopt::Adopted>, adopt::Summary) {
        adopt::adopt(self, pid, tool, now_ns)
    }
    fn probes(&mut self) -> &mut dyn Attacher<Link = UProbeLinkId> {
        self
    }
    fn detached_len(&self) -> usize {
        Kernel::detached_len(self)
    }
    fn close_detached(&mut self) {
        Kernel::close_detached(self);
    }
    fn finish_detaching(&mut self) {
        Kernel::finish_detaching(self);
    }
}

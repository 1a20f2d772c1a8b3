//! What the LRU maps dropped to make room. A full LRU map evicts its least
//! recently used entry and no helper says so; but every key added to it
//! is, at any moment, there, removed or evicted. The kernel counts the keys
//! it adds and removes (`monitor_common::lru`), user space the ones it does
//! and the keys there now, so that
//! `evicted = added - removed - there`.
//!
//! Reading order makes an error an undercount only: `added` is read before
//! the walk (a key added during the walk is at most counted as there) and
//! `removed` after it. The walk restarts where a key vanishes under it, so
//! it may count a key twice, never miss one that stays. The figure is
//! exact whenever the map is quiet during the walk, and the exported
//! counter only ever takes a larger figure.

use std::collections::HashMap as StdHashMap;

use aya::{
    Ebpf, Pod,
    maps::{HashMap, IterableMap, MapData},
};
use monitor_common::{TlsCall, TlsHead, counter, lru};

use super::{LoadError, take_map};

/// One LRU map's figures at a housekeeping tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LruCount {
    /// The metric label (`monitor_common::lru::NAMES`).
    pub map: &'static str,
    pub added: u64,
    pub entries: u64,
    pub removed: u64,
    pub capacity: u32,
}

/// The keys a hash map holds (a walk), and how many it can hold.
pub fn fill<K: Pod, V: Pod>(map: &HashMap<MapData, K, V>) -> (u64, u32) {
    let entries = map.keys().filter(Result::is_ok).count() as u64;
    let capacity = IterableMap::map(map)
        .info()
        .map_or(0, |info| info.max_entries());
    (entries, capacity)
}

/// A map whose keys can be counted, whatever their type.
trait Keys: Send + Sync {
    fn fill(&self) -> (u64, u32);
}

impl<K: Pod + Send + Sync, V: Pod + Send + Sync> Keys for HashMap<MapData, K, V> {
    fn fill(&self) -> (u64, u32) {
        fill(self)
    }
}

/// The LRU maps only the kernel adds to, and what user space did to the
/// others (`RESOLVED` and `POLICY_HOSTS` are user space's to fill).
pub struct LruMaps {
    kernel: Vec<(u32, Box<dyn Keys>)>,
    /// Keys user space added and removed, by `lru::*` index.
    added: [u64; lru::LEN as usize],
    removed: [u64; lru::LEN as usize],
}

impl LruMaps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        let mut kernel: Vec<(u32, Box<dyn Keys>)> = Vec::new();
        let tls_calls: HashMap<MapData, u64, TlsCall> = take_map(ebpf, "TLS_CALLS")?;
        kernel.push((lru::TLS_CALLS, Box::new(tls_calls)));
        // monitor-ebpf's `Session`: tgid, padding, session address.
        let ssl_socks: HashMap<MapData, [u8; 16], u64> = take_map(ebpf, "SSL_SOCKS")?;
        kernel.push((lru::SSL_SOCKS, Box::new(ssl_socks)));
        let pending: HashMap<MapData, u64, TlsCall> = take_map(ebpf, "TLS_PENDING")?;
        kernel.push((lru::TLS_PENDING, Box::new(pending)));
        // monitor-ebpf's `GoCall`: tgid, padding, goroutine address.
        let go_calls: HashMap<MapData, [u8; 16], TlsCall> = take_map(ebpf, "GO_CALLS")?;
        kernel.push((lru::GO_CALLS, Box::new(go_calls)));
        let heads: HashMap<MapData, u64, TlsHead> = take_map(ebpf, "TLS_HEADS")?;
        kernel.push((lru::TLS_HEADS, Box::new(heads)));
        // monitor-ebpf's `RxSock`: tgid, padding, socket cookie.
        let rx_socks: HashMap<MapData, u64, [u8; 16]> = take_map(ebpf, "RX_SOCKS")?;
        kernel.push((lru::RX_SOCKS, Box::new(rx_socks)));
        Ok(Self {
            kernel,
            added: [0; lru::LEN as usize],
            removed: [0; lru::LEN as usize],
        })
    }

    /// User space added a key to map `which`.
    pub fn added(&mut self, which: u32) {
        self.added[which as usize] += 1;
    }

    /// User space removed `n` keys from map `which`.
    pub fn removed(&mut self, which: u32, n: u64) {
        self.removed[which as usize] += n;
    }

    /// Every LRU map's figures; `counter` reads the kernel's counters, and
    /// `user` counts the keys of the maps user space fills (name, entries,
    /// capacity), which it calls between reading the two counters.
    pub fn counts(
        &self,
        counter: impl Fn(u32) -> u64,
        user: impl FnOnce() -> Vec<(u32, u64, u32)>,
    ) -> Vec<LruCount> {
        let added: Vec<u64> = (0..lru::LEN)
            .map(|i| counter(counter::LRU_CREATED + i) + self.added[i as usize])
            .collect();
        let mut walked: Vec<(u32, u64, u32)> = self
            .kernel
            .iter()
            .map(|(i, map)| {
                let (entries, capacity) = map.fill();
                (*i, entries, capacity)
            })
            .collect();
        walked.extend(user());
        walked
            .into_iter()
            .map(|(i, entries, capacity)| LruCount {
                map: lru::NAMES[i as usize].0,
                added: added[i as usize],
                entries,
                removed: counter(counter::LRU_DELETED + i) + self.removed[i as usize],
                capacity,
            })
            .collect()
    }
}

/// Evictions since this agentmon started, per map, from successive counts.
#[derive(Debug, Default)]
pub struct Evictions {
    /// Where counting starts: a restarted agentmon finds the kernel's
    /// counters and entries of its predecessor, but not its own.
    base: StdHashMap<&'static str, i128>,
    shown: StdHashMap<&'static str, u64>,
    resumed: bool,
}

impl Evictions {
    pub fn new(resumed: bool) -> Self {
        Self {
            resumed,
            ..Self::default()
        }
    }

    /// The evictions of `count`'s map so far: never less than before.
    pub fn update(&mut self, count: &LruCount) -> u64 {
        let raw = i128::from(count.added) - i128::from(count.removed) - i128::from(count.entries);
        let resumed = self.resumed;
        let base = *self
            .base
            .entry(count.map)
            .or_insert(if resumed { raw } else { 0 });
        let now = u64::try_from(raw - base).unwrap_or(0);
        let shown = self.shown.entry(count.map).or_default();
        *shown = (*shown).max(now);
        *shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(added: u64, entries: u64, removed: u64) -> LruCount {
        LruCount {
            map: "tls_heads",
            added,
            entries,
            removed,
            capacity: 1024,
        }
    }

    #[test]
    fn what_was_added_and_is_neither_there_nor_removed_was_evicted() {
        let mut e = Evictions::new(false);
        assert_eq!(e.update(&count(0, 0, 0)), 0);
        assert_eq!(e.update(&count(1_000, 1_000, 0)), 0);
        assert_eq!(e.update(&count(1_200, 1_024, 0)), 176);
        assert_eq!(e.update(&count(1_300, 1_000, 124)), 176);
        assert_eq!(e.update(&count(1_400, 1_024, 124)), 252);
    }

    #[test]
    fn an_undercount_from_a_busy_walk_never_lowers_the_counter() {
        let mut e = Evictions::new(false);
        assert_eq!(e.update(&count(2_000, 1_024, 0)), 976);
        // Keys added during the walk were counted as there, not as added.
        assert_eq!(e.update(&count(2_000, 1_100, 0)), 976);
        assert_eq!(e.update(&count(2_100, 1_024, 0)), 1_076);
    }

    #[test]
    fn a_restart_counts_from_what_it_finds() {
        // The predecessor's kernel counters and entries are there; the
        // keys user space had added are not in this run's own counts.
        let mut e = Evictions::new(true);
        assert_eq!(e.update(&count(5_000, 1_024, 3_000)), 0);
        assert_eq!(e.update(&count(5_100, 1_024, 3_000)), 100);
        // Other maps start from their own first count.
        let mut other = count(10, 200, 0);
        other.map = "policy_hosts";
        assert_eq!(e.update(&other), 0);
        other.entries = 150;
        assert_eq!(e.update(&other), 50);
    }
}

//! Which name each process tree resolved for an address.
//!
//! Keyed by (process-tree root, address): a name another tree resolved for
//! the same address says nothing about what this tree meant (CDN addresses
//! serve many names), so there is no fallback across trees.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::dns::Binding;
use super::hostname::Hostname;

/// Shortest time a binding is kept, whatever its TTL. Clients connect right
/// after the answer arrives, and stub resolvers and CDNs often hand out TTLs
/// of 0 or a few seconds; a connection made a little after expiry still went
/// to the name the process asked for.
pub const MIN_KEEP: Duration = Duration::from_secs(60);
/// Longest time a binding is kept, whatever its TTL, so a day-long TTL does
/// not pin a stale name.
pub const MAX_KEEP: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
struct Entry {
    name: Hostname,
    expires: Instant,
}

/// Name -> address bindings per process tree, at most `capacity` of them,
/// least recently used evicted first.
#[derive(Debug)]
pub struct Bindings {
    cache: LruCache<(u32, IpAddr), Entry>,
}

impl Bindings {
    /// A capacity of 0 is taken as 1.
    pub fn new(capacity: usize) -> Bindings {
        Bindings {
            cache: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Records that the tree rooted at `root` was told `binding.name` is at
    /// `binding.addr`. A later answer for the same address replaces it: the
    /// most recent name wins. Kept for the TTL clamped to
    /// [`MIN_KEEP`]..=[`MAX_KEEP`].
    pub fn insert(&mut self, root: u32, binding: &Binding, now: Instant) {
        let keep = Duration::from_secs(binding.ttl.into()).clamp(MIN_KEEP, MAX_KEEP);
        self.cache.put(
            (root, binding.addr),
            Entry {
                name: binding.name.clone(),
                expires: now + keep,
            },
        );
    }

    /// The name the tree rooted at `root` most recently resolved to `addr`,
    /// if that binding has not expired.
    pub fn lookup(&mut self, root: u32, addr: IpAddr, now: Instant) -> Option<&Hostname> {
        let key = (root, addr);
        if self.cache.peek(&key)?.expires <= now {
            self.cache.pop(&key);
            return None;
        }
        self.cache.get(&key).map(|entry| &entry.name)
    }

    /// Drops every binding of a tree, for when its root exits.
    pub fn remove_tree(&mut self, root: u32) {
        let keys: Vec<_> = self
            .cache
            .iter()
            .filter(|((r, _), _)| *r == root)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            self.cache.pop(&key);
        }
    }

    /// Drops expired bindings; lookups ignore them anyway, this frees memory.
    pub fn purge_expired(&mut self, now: Instant) {
        let keys: Vec<_> = self
            .cache
            .iter()
            .filter(|(_, entry)| entry.expires <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            self.cache.pop(&key);
        }
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

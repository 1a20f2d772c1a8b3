//! Connection slots per client address: one address (a local process
//! flooding the port, say) holds at most [`PER_ADDRESS`] of the
//! exporter's connections, so it cannot crowd out the fleet's Prometheus,
//! which scrapes from an address of its own.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

/// Connections one client address may hold at once: more than any
/// scraper needs (Prometheus keeps one per target), a quarter of
/// [`super::MAX_CONNECTIONS`].
pub const PER_ADDRESS: usize = 16;

/// Open connections per client address.
#[derive(Clone, Default)]
pub struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection's share of its address; given back when dropped.
pub struct Slot {
    open: PerAddress,
    ip: IpAddr,
}

impl PerAddress {
    /// A slot for a connection from `ip`, unless it holds `max` already.
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_max_slots_and_others_are_not_affected() {
        let open = PerAddress::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "192.0.2.9".parse().unwrap());
        let held: Vec<Slot> = (0..3).map(|_| open.take(a, 3).unwrap()).collect();
        assert!(open.take(a, 3).is_none());
        let other = open.take(b, 3).unwrap();
        assert_eq!(open.0.lock().unwrap().len(), 2);
        drop(held);
        // An address with nothing open leaves the map: it never outgrows
        // the connections open.
        assert_eq!(open.0.lock().unwrap().len(), 1);
        assert!(open.take(a, 3).is_some());
        drop(other);
    }
}

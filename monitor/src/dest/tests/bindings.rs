use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::dest::bindings::{Bindings, MAX_KEEP, MIN_KEEP};
use crate::dest::{Binding, Hostname};

fn binding(name: &str, addr: &str, ttl: u32) -> Binding {
    Binding {
        name: Hostname::parse_str(name).unwrap(),
        addr: addr.parse().unwrap(),
        ttl,
    }
}

fn ip(addr: &str) -> IpAddr {
    addr.parse().unwrap()
}

fn name(b: &mut Bindings, root: u32, addr: &str, now: Instant) -> Option<String> {
    b.lookup(root, ip(addr), now).map(|h| h.as_str().to_owned())
}

#[test]
fn lookup_within_the_same_tree_only() {
    let now = Instant::now();
    let mut b = Bindings::new(16);
    b.insert(100, &binding("api.model.test", "203.0.113.10", 300), now);
    assert_eq!(
        name(&mut b, 100, "203.0.113.10", now).as_deref(),
        Some("api.model.test")
    );
    assert_eq!(name(&mut b, 200, "203.0.113.10", now), None);
    assert_eq!(name(&mut b, 0, "203.0.113.10", now), None);
    assert_eq!(name(&mut b, 100, "203.0.113.11", now), None);
}

#[test]
fn most_recent_answer_wins() {
    let now = Instant::now();
    let mut b = Bindings::new(16);
    b.insert(1, &binding("a.cdn.test", "2001:db8::1", 300), now);
    b.insert(
        1,
        &binding("b.cdn.test", "2001:db8::1", 300),
        now + Duration::from_secs(1),
    );
    assert_eq!(
        name(&mut b, 1, "2001:db8::1", now).as_deref(),
        Some("b.cdn.test")
    );
    assert_eq!(b.len(), 1);
}

#[test]
fn ttl_is_clamped_and_expiry_honoured() {
    let now = Instant::now();
    let mut b = Bindings::new(16);
    b.insert(1, &binding("zero.test", "203.0.113.1", 0), now);
    b.insert(1, &binding("mid.test", "203.0.113.2", 600), now);
    b.insert(1, &binding("day.test", "203.0.113.3", 86_400), now);
    let just_before = |d: Duration| now + d - Duration::from_millis(1);

    assert!(name(&mut b, 1, "203.0.113.1", just_before(MIN_KEEP)).is_some());
    assert!(name(&mut b, 1, "203.0.113.1", now + MIN_KEEP).is_none());
    assert!(
        name(
            &mut b,
            1,
            "203.0.113.2",
            just_before(Duration::from_secs(600))
        )
        .is_some()
    );
    assert!(name(&mut b, 1, "203.0.113.2", now + Duration::from_secs(600)).is_none());
    assert!(name(&mut b, 1, "203.0.113.3", just_before(MAX_KEEP)).is_some());
    assert!(name(&mut b, 1, "203.0.113.3", now + MAX_KEEP).is_none());
    assert!(b.is_empty(), "expired entries are dropped on lookup");
}

#[test]
fn capacity_evicts_least_recently_used() {
    let now = Instant::now();
    let mut b = Bindings::new(2);
    b.insert(1, &binding("a.test", "203.0.113.1", 60), now);
    b.insert(1, &binding("b.test", "203.0.113.2", 60), now);
    // Using a.test makes b.test the least recently used.
    assert!(name(&mut b, 1, "203.0.113.1", now).is_some());
    b.insert(2, &binding("c.test", "203.0.113.3", 60), now);
    assert_eq!(b.len(), 2);
    assert!(name(&mut b, 1, "203.0.113.2", now).is_none());
    assert!(name(&mut b, 1, "203.0.113.1", now).is_some());
    assert!(name(&mut b, 2, "203.0.113.3", now).is_some());

    let mut tiny = Bindings::new(0);
    tiny.insert(1, &binding("a.test", "203.0.113.1", 60), now);
    tiny.insert(1, &binding("b.test", "203.0.113.2", 60), now);
    assert_eq!(tiny.len(), 1);
}

#[test]
fn trees_and_expired_entries_can_be_dropped() {
    let now = Instant::now();
    let mut b = Bindings::new(16);
    b.insert(1, &binding("a.test", "203.0.113.1", 60), now);
    b.insert(1, &binding("b.test", "203.0.113.2", 3000), now);
    b.insert(2, &binding("a.test", "203.0.113.1", 60), now);
    b.remove_tree(2);
    assert_eq!(b.len(), 2);
    b.purge_expired(now + Duration::from_secs(61));
    assert_eq!(b.len(), 1);
    assert!(name(&mut b, 1, "203.0.113.2", now).is_some());
}

use crate::dest::cap::{Admitted, DEFAULT_DEST_CAP, DEFAULT_NETWORK_CAP, DestCap, NetworkCap};

fn admit<'a>(cap: &mut DestCap, tool: u32, dest: &'a str) -> (&'a str, bool) {
    let Admitted { label, overflow } = cap.admit(tool, dest);
    (label, overflow)
}

#[test]
fn admits_up_to_the_cap_then_other() {
    let mut cap = DestCap::new(2);
    assert_eq!(admit(&mut cap, 1, "a.test"), ("a.test", false));
    assert_eq!(admit(&mut cap, 1, "b.test"), ("b.test", false));
    assert_eq!(admit(&mut cap, 1, "c.test"), ("other", true));
    // Already admitted names keep their label past the cap.
    assert_eq!(admit(&mut cap, 1, "a.test"), ("a.test", false));
    assert_eq!(admit(&mut cap, 1, "c.test"), ("other", true));
    assert_eq!(cap.admitted(1), 2);
}

#[test]
fn ip_and_other_never_count() {
    let mut cap = DestCap::new(1);
    for _ in 0..3 {
        assert_eq!(admit(&mut cap, 1, "ip"), ("ip", false));
        assert_eq!(admit(&mut cap, 1, "other"), ("other", false));
    }
    assert_eq!(cap.admitted(1), 0);
    assert_eq!(admit(&mut cap, 1, "a.test"), ("a.test", false));
}

#[test]
fn tools_have_separate_caps() {
    let mut cap = DestCap::new(1);
    assert_eq!(admit(&mut cap, 1, "a.test"), ("a.test", false));
    assert_eq!(admit(&mut cap, 2, "b.test"), ("b.test", false));
    assert_eq!(admit(&mut cap, 2, "a.test"), ("other", true));
    cap.forget(2);
    assert_eq!(admit(&mut cap, 2, "a.test"), ("a.test", false));
}

#[test]
fn zero_cap_and_default() {
    let mut cap = DestCap::new(0);
    assert_eq!(admit(&mut cap, 1, "a.test"), ("other", true));
    let mut cap = DestCap::default();
    let names: Vec<String> = (0..DEFAULT_DEST_CAP + 5)
        .map(|i| format!("n{i}.test"))
        .collect();
    let overflowed = names.iter().filter(|n| cap.admit(7, n).overflow).count();
    assert_eq!((overflowed, cap.admitted(7)), (5, DEFAULT_DEST_CAP));
}

#[test]
fn network_cap_admits_combinations_up_to_the_cap() {
    let mut cap = NetworkCap::new(2);
    assert!(cap.admit(1, "ip", "US", "AS64500"));
    assert!(cap.admit(1, "ip", "DE", "AS64501"));
    // A third network without a name: past the cap.
    assert!(!cap.admit(1, "ip", "JP", "AS64502"));
    // Known combinations stay; the same network under another dest is new.
    assert!(cap.admit(1, "ip", "US", "AS64500"));
    assert!(!cap.admit(1, "other", "US", "AS64500"));
    assert_eq!(cap.admitted(1), 2);
    // Another tool has its own.
    assert!(cap.admit(2, "ip", "JP", "AS64502"));
    assert_eq!(NetworkCap::default().admitted(1), 0);
    let mut cap = NetworkCap::default();
    let over = (0..DEFAULT_NETWORK_CAP + 3)
        .filter(|i| !cap.admit(1, "ip", "US", &format!("AS{i}")))
        .count();
    assert_eq!(over, 3);
}

/// A connection's `dest` as the cap sees it: one of a few tools, and a
/// name from a small pool (so that names repeat), or `ip`/`other`.
fn seen() -> impl proptest::strategy::Strategy<Value = (u32, String)> {
    use proptest::prelude::*;
    let name = prop_oneof![
        8 => (0..40u32).prop_map(|n| format!("n{n}.test")),
        1 => Just("ip".to_owned()),
        1 => Just("other".to_owned()),
    ];
    (0..3u32, name)
}

proptest::proptest! {
    /// Per tool, the first `cap` distinct names keep their label every
    /// time, every later name is `other` and counted, `ip` and `other`
    /// always pass uncounted, and no tool's names touch another's.
    #[test]
    fn the_first_names_of_each_tool_are_admitted_and_the_rest_counted(
        max in 0..12usize,
        conns in proptest::collection::vec(seen(), 0..300),
    ) {
        let mut cap = DestCap::new(max);
        let mut firsts: std::collections::HashMap<u32, Vec<&str>> = Default::default();
        for (tool, dest) in &conns {
            let (label, overflow) = admit(&mut cap, *tool, dest);
            let firsts = firsts.entry(*tool).or_default();
            let special = dest == "ip" || dest == "other";
            if !special && !firsts.contains(&dest.as_str()) && firsts.len() < max {
                firsts.push(dest);
            }
            let admitted = special || firsts.contains(&dest.as_str());
            proptest::prop_assert_eq!(label, if admitted { dest.as_str() } else { "other" });
            proptest::prop_assert_eq!(overflow, !admitted);
        }
        for (tool, firsts) in &firsts {
            proptest::prop_assert_eq!(cap.admitted(*tool), firsts.len());
        }
    }
}

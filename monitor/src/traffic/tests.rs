//! Aggregation with fake kernel counters: growth, labels, close, UDP flows.

use super::{fakes::*, *};

fn proc(tool: ToolId) -> Proc {
    Proc {
        tool,
        root: 10,
        ppid: 1,
        exe: "/x".into(),
        argv0: "x".into(),
        uid: Some(1000),
    }
}

/// Labels a connection by its SNI, else `ip`.
fn by_sni(_subject: &Subject<'_>, names: &mut Names) -> Dest {
    Dest {
        name: names.sni.clone().unwrap_or_else(|| "ip".into()),
        country: "US".into(),
        asn: "AS64500".into(),
        purpose: "other",
    }
}

fn bytes(t: &Totals, dest: &str) -> (u64, u64) {
    t.bytes
        .get(&(2, Proto::Tcp, dest.into()))
        .copied()
        .unwrap_or_default()
}

#[test]
fn bytes_wait_for_the_name_then_grow_at_refresh_and_close_adds_the_rest_once() {
    let (mut t, mut k, mut c) = (Traffic::default(), FakeKernel::default(), Totals::default());
    let p = proc(2);
    t.on_open(1, &conn(0, 0, origin::CONNECT), &p, || false);
    k.conns.insert(1, conn(100, 10, origin::CONNECT));
    // Young and unnamed: not counted yet, under any label.
    t.refresh(&mut k, 2_000, |_| Some(&p), &mut by_sni, &mut c);
    assert!(c.bytes.is_empty() && c.conns.is_empty());
    // Its first bytes name it: everything so far goes under that name.
    t.named(
        1,
        |n| n.sni = Some("api.model.test".into()),
        &mut by_sni,
        &mut c,
    );
    t.refresh(&mut k, 3_000, |_| Some(&p), &mut by_sni, &mut c);
    assert_eq!(bytes(&c, "api.model.test"), (100, 10));
    k.conns.insert(1, conn(250, 40, origin::CONNECT));
    t.refresh(&mut k, 4_000, |_| Some(&p), &mut by_sni, &mut c);
    t.refresh(&mut k, 5_000, |_| Some(&p), &mut by_sni, &mut c);
    assert_eq!(bytes(&c, "api.model.test"), (250, 40));
    // Closed in the kernel before the event is read: nothing goes back.
    k.conns.clear();
    t.refresh(&mut k, 6_000, |_| Some(&p), &mut by_sni, &mut c);
    let closed = t
        .on_close(1, &conn(300, 41, origin::CONNECT), 5, &mut by_sni, &mut c)
        .unwrap();
    assert_eq!((closed.sent, closed.received), (300, 41));
    assert_eq!(closed.dest.name, "api.model.test");
    assert_eq!(bytes(&c, "api.model.test"), (300, 41));
    assert_eq!(closed.conn.remote, "203.0.113.10:443".parse().unwrap());
    assert!(
        t.on_close(1, &conn(300, 41, origin::CONNECT), 5, &mut by_sni, &mut c)
            .is_none()
    );
    assert_eq!(
        c.conns[&(2, Proto::Tcp, Direction::Egress, "api.model.test".into())],
        1
    );
    assert_eq!(c.bytes.len(), 1, "no bytes under any other label");
}

#[test]
fn an_unnamed_connection_is_labelled_after_the_settle_time() {
    let (mut t, mut k, mut c) = (Traffic::default(), FakeKernel::default(), Totals::default());
    let p = proc(2);
    t.on_open(1, &conn(0, 0, origin::CONNECT), &p, || false);
    k.conns.insert(1, conn(7, 0, origin::CONNECT));
    t.refresh(&mut k, 1_000 + SETTLE_NS, |_| Some(&p), &mut by_sni, &mut c);
    assert!(c.bytes.is_empty());
    t.refresh(&mut k, 1_001 + SETTLE_NS, |_| Some(&p), &mut by_sni, &mut c);
    assert_eq!(bytes(&c, "ip"), (7, 0));
    // A late name changes nothing: labels are decided once.
    t.named(1, |n| n.sni = Some("late.test".into()), &mut by_sni, &mut c);
    assert!(!c.bytes.contains_key(&(2, Proto::Tcp, "late.test".into())));
}

#[test]
fn a_late_better_name_is_judged_and_logged_but_keeps_the_labels() {
    let (mut t, mut k, mut c) = (Traffic::default(), FakeKernel::default(), Totals::default());
    let p = proc(2);
    t.on_open(1, &conn(0, 0, origin::CONNECT), &p, || false);
    k.conns.insert(1, conn(7, 0, origin::CONNECT));
    t.refresh(&mut k, 1_001 + SETTLE_NS, |_| Some(&p), &mut by_sni, &mut c);
    assert!(t.is_labelled(1));
    let mut judged = Vec::new();
    let late = |n: &mut Names| n.sni = Some("late.test".into());
    t.named_late(1, late, |s, n, d| {
        judged.push((s.sock, n.host.clone(), d.name.clone(), s.bytes));
    });
    assert_eq!(
        judged,
        [(Some(1), Some("late.test".into()), "ip".into(), (7, 0))]
    );
    // The same name again is nothing new.
    t.named_late(1, late, |_, _, _| panic!("judged twice"));
    assert_eq!(t.conns[&1].names.sni.as_deref(), Some("late.test"));
    assert_eq!(t.conns[&1].dest.as_ref().unwrap().name, "ip");
}

#[test]
fn first_use_socket_counts_its_first_bytes_and_finds_its_direction() {
    let (mut t, mut c) = (Traffic::default(), Totals::default());
    t.on_open(1, &conn(0, 77, origin::FIRST_USE), &proc(2), || true);
    t.on_open(2, &conn(5, 0, origin::FIRST_USE), &proc(2), || false);
    t.named(1, |_| {}, &mut by_sni, &mut c);
    t.named(2, |_| {}, &mut by_sni, &mut c);
    assert_eq!(bytes(&c, "ip"), (5, 77));
    assert_eq!(
        c.conns[&(2, Proto::Tcp, Direction::Ingress, "ip".into())],
        1
    );
    assert_eq!(c.conns[&(2, Proto::Tcp, Direction::Egress, "ip".into())], 1);
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
    let p = proc(4);
    t.on_udp_flow(key, &p, false, &mut by_sni, &mut c);
    let flow = |tx, rx| UdpFlow {
        tool: 4,
        tx_bytes: tx,
        tx_datagrams: 1,
        rx_bytes: rx,
        rx_datagrams: 1,
        ..UdpFlow::default()
    };
    let udp = |c: &Totals| c.bytes[&(4, Proto::Udp, "ip".into())];
    k.flows.insert(key, flow(64, 128));
    t.refresh(&mut k, 0, |_| Some(&p), &mut by_sni, &mut c);
    k.flows.insert(key, flow(96, 256));
    let ended = t.refresh(&mut k, 0, |_| None, &mut by_sni, &mut c);
    assert_eq!(udp(&c), (96, 256));
    assert!(k.flows.is_empty());
    // It ends with its totals, for the log.
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (
            ended[0].pid,
            ended[0].totals.tx_bytes,
            ended[0].totals.rx_bytes
        ),
        (10, 96, 256)
    );
    assert_eq!(ended[0].remote, "0.0.0.0:53".parse().unwrap());
    // A flow no agent owns is removed without being counted.
    k.flows.insert(key, flow(1, 1));
    let ended = t.refresh(&mut k, 0, |_| None, &mut by_sni, &mut c);
    assert!(k.flows.is_empty() && ended.is_empty());
    assert_eq!(udp(&c), (96, 256));
}

#[test]
fn v4_mapped_addresses_become_ipv4() {
    let mut a = [0u8; 16];
    a[10] = 0xff;
    a[11] = 0xff;
    a[12..].copy_from_slice(&[203, 0, 113, 10]);
    assert_eq!(ip(AF_INET6, &a), "203.0.113.10".parse::<IpAddr>().unwrap());
}

#[test]
fn a_probe_that_tied_after_data_went_out_leaves_the_sizes_to_the_records() {
    use monitor_common::{Records, record_state as state, tls_lib};
    let p = proc(2);
    let followed = Records {
        tx_state: state::FOLLOWED | state::FINISHED,
        rx_state: state::FOLLOWED | state::TLS13,
        ..Records::default()
    };
    let probed = |extra: u8| Conn {
        tls_tx: 300,
        tls_rx: 200,
        tls_lib: tls_lib::OPENSSL,
        records: Records {
            tx_state: followed.tx_state | state::PROBED | extra,
            tx_records: 2,
            tx_plain: 800,
            rx_plain: 700,
            ..followed
        },
        ..conn(900, 800, origin::CONNECT)
    };
    for (extra, lib, plaintext) in [
        // Tied at the second request: the probe's figures miss the first.
        (state::PROBED_LATE, TlsLib::Record, (800, 700)),
        // Tied at the first: the probe's figures are the exact ones.
        (0, TlsLib::OpenSsl, (300, 200)),
    ] {
        let (mut t, mut c) = (Traffic::default(), Totals::default());
        // Handshake done, no data yet: who sees it is undecided.
        let opened = Conn {
            records: followed,
            ..conn(0, 0, origin::CONNECT)
        };
        t.on_open(1, &opened, &p, || false);
        let closed = t
            .on_close(1, &probed(extra), 5, &mut by_sni, &mut c)
            .unwrap();
        assert_eq!(closed.conn.tls_lib, Some(lib));
        assert_eq!(closed.conn.plaintext(), plaintext);
    }
}

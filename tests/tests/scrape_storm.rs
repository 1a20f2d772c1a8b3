//! A scrape storm: 200 clients from one address hold and re-open
//! connections to /metrics with half a request each, while an agent sends
//! traffic. The fleet's Prometheus (another address) is answered every
//! time, and the counters stay exact.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use agentmon_tests::{
    Agentmon, Metrics, NetLab, PeerCounts, REMOTE_TCP_V4, agent_copy, http_get, http_get_from,
    require_root, run_bounded,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const CLIENTS: usize = 200;
/// `monitor/src/web/slots.rs`: connections one address may hold.
const PER_ADDRESS: usize = 16;
const REPLY: u64 = 777;
const SEND: u64 = 20_000;
/// The scraper's own address: any of 127.0.0.0/8 is local.
const SCRAPER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// One stalling client: opens a connection, sends half a request, waits
/// for the server to close it, and again, until `stop`. `held` counts its
/// connections the server kept open past a second.
fn stall(addr: SocketAddr, stop: Arc<AtomicBool>, held: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(addr) else {
            thread::sleep(Duration::from_millis(100));
            continue;
        };
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: agentm");
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let opened = Instant::now();
        let mut counted = false;
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) if stop.load(Ordering::Relaxed) => break,
                // Still open after the read timeout: the server holds it.
                Err(_) => {
                    if !counted && opened.elapsed() >= Duration::from_secs(1) {
                        held.fetch_add(1, Ordering::Relaxed);
                        counted = true;
                    }
                }
            }
        }
        if counted {
            held.fetch_sub(1, Ordering::Relaxed);
        }
        // Closed at once (refused): try again a little later.
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn scrapes_from_another_address_are_answered_through_a_storm_and_counts_stay_exact() {
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let _servers = lab.spawn_servers(Path::new(NETPEER), REPLY as usize);
    let claude = lab.dir().join("home/.local/share/claude/versions/9.9.9");
    agent_copy(Path::new(NETPEER), &claude);
    let am = Agentmon::start();
    let addr = am.addr();

    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, held) = (stop.clone(), held.clone());
            thread::spawn(move || stall(addr, stop, held))
        })
        .collect();
    thread::sleep(Duration::from_secs(3));
    // The storm's address holds exactly its share; the rest are closed.
    assert_eq!(held.load(Ordering::Relaxed), PER_ADDRESS);
    // From the storm's own address, nothing more gets in.
    assert!(http_get(addr, "/metrics", Duration::from_secs(2)).is_err());

    let scrape = || http_get_from(SCRAPER, addr, "/metrics", Duration::from_secs(5));
    let (mut scrapes, mut sent) = (0, 0);
    for _ in 0..3 {
        let args = [
            "tcp",
            "--to",
            &REMOTE_TCP_V4.to_string(),
            "--send",
            &SEND.to_string(),
            "--expect",
            &REPLY.to_string(),
        ];
        let out = run_bounded(&mut lab.client_cmd(&claude, args), Duration::from_secs(60));
        sent += PeerCounts::from_output(&out).sent;
        for _ in 0..4 {
            let r = scrape().unwrap_or_else(|e| panic!("scrape {scrapes} failed: {e}"));
            assert_eq!(r.status, 200);
            assert!(r.body.contains("agentmon_build_info"));
            scrapes += 1;
            thread::sleep(Duration::from_millis(250));
        }
    }
    assert_eq!(sent, 3 * SEND);
    // Still in the storm: the scraper reads the exact counts.
    let tcp = [("tool", "claude-code"), ("proto", "tcp")];
    let wanted = [
        ("agentmon_egress_bytes_total", (3 * SEND) as f64),
        ("agentmon_ingress_bytes_total", (3 * REPLY) as f64),
        ("agentmon_connections_total", 3.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = Metrics::parse(&scrape().unwrap().body).unwrap();
        let have: Vec<Option<f64>> = wanted.iter().map(|(n, _)| m.value(n, &tcp)).collect();
        if have.iter().zip(&wanted).all(|(h, w)| *h == Some(w.1)) {
            break;
        }
        assert!(Instant::now() < deadline, "want {wanted:?}, have {have:?}");
        thread::sleep(Duration::from_millis(200));
    }

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let log = am.log_text();
    let warned = log
        .lines()
        .filter(|l| l.contains("connections open from one address"))
        .count();
    assert_eq!(warned, 1, "{log}");
    assert_eq!(am.get("/healthz").unwrap().status, 200);
}

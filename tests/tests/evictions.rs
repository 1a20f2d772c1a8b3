//! The LRU maps under more than they hold: aider (Python, OpenSSL) keeps
//! 1,200 threads alive, each with two request heads written in memory that
//! no packet carries, against `TLS_HEADS`' 1,024 entries. What the map
//! dropped is counted exactly in `agentmon_kernel_map_evictions_total{map}`,
//! a map with room drops nothing, and the threads' exit empties both maps
//! and counts every never-sent byte (both writes) as untied.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    process::{ChildStdin, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use agentmon_tests::{
    Agentmon, ChildGuard, Internet, Metrics, NetLab, REMOTE_UDP_V4, TestCa, require_root,
};

const THREADS: u64 = 1_200;
/// Writes per thread: the second adds to the first's pending count.
const WRITES: u64 = 2;
const HEADS_CAPACITY: f64 = 1_024.0;
const SETTLE: Duration = Duration::from_secs(20);

fn value(m: &Metrics, name: &str, map: &str) -> f64 {
    m.value(name, &[("map", map)])
        .unwrap_or_else(|| panic!("no {name}{{map={map}}}:\n{}", m.text()))
}

/// The next line the script prints, within `SETTLE`.
fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(SETTLE)
        .expect("py_heads.py printed nothing in time")
}

#[test]
fn an_lru_map_past_its_size_counts_what_it_evicted() {
    if !require_root() {
        return;
    }
    let lab = NetLab::new();
    let ca = TestCa::new(lab.dir(), "heads");
    let aider = lab.dir().join("venv/bin/aider");
    fs::create_dir_all(aider.parent().unwrap()).unwrap();
    fs::copy(Internet::script("py_heads.py"), &aider).unwrap();
    let am = Agentmon::start();

    let udp = REMOTE_UDP_V4.to_string();
    let threads = THREADS.to_string();
    let writes = WRITES.to_string();
    let mut cmd = lab.client_cmd("python3", [aider.as_os_str()]);
    cmd.args(["--threads", &threads, "--writes", &writes, "--udp", &udp])
        .arg("--cert")
        .arg(&ca.files.cert)
        .arg("--key")
        .arg(&ca.files.key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("python3");
    let mut stdin: Option<ChildStdin> = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let _guard = ChildGuard::from_child(child, "py_heads.py");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(next_line(&lines), "ready");
    let probed = [
        ("tool", "aider"),
        ("library", "openssl"),
        ("mode", "plaintext"),
    ];
    am.expect("agentmon_tls_coverage", &probed, 1.0);
    writeln!(stdin.as_mut().unwrap(), "go").unwrap();
    let wrote = next_line(&lines);
    let head_len: f64 = match wrote.split_whitespace().collect::<Vec<_>>()[..] {
        ["wrote", n, len] if n == threads => len.parse().unwrap(),
        _ => panic!("py_heads.py: {wrote}"),
    };

    // Every thread's write waits for a packet: 1,200 in TLS_PENDING, which
    // holds 8,192, and what TLS_HEADS could not hold was evicted.
    let m = am.expect(
        "agentmon_kernel_map_entries",
        &[("map", "tls_pending")],
        THREADS as f64,
    );
    let heads = value(&m, "agentmon_kernel_map_entries", "tls_heads");
    let evicted = value(&m, "agentmon_kernel_map_evictions_total", "tls_heads");
    println!("tls_heads: {heads} entries, {evicted} evicted");
    assert_eq!(
        value(&m, "agentmon_kernel_map_capacity", "tls_heads"),
        HEADS_CAPACITY
    );
    assert!(heads <= HEADS_CAPACITY, "{heads}");
    assert_eq!(heads + evicted, THREADS as f64, "{}", m.text());
    assert_eq!(
        value(&m, "agentmon_kernel_map_evictions_total", "tls_pending"),
        0.0
    );
    assert_eq!(value(&m, "agentmon_kernel_map_entries", "tls_calls"), 0.0);
    assert_eq!(m.value("agentmon_tls_untied_bytes_total", &[]), Some(0.0));

    // The threads exit: each takes its entries along, and its writes, which
    // never left the machine, are counted as untied.
    drop(stdin.take());
    let untied = (THREADS * WRITES) as f64 * head_len;
    let m = am.expect("agentmon_tls_untied_bytes_total", &[], untied);
    for map in ["tls_pending", "tls_heads", "tls_calls"] {
        assert_eq!(value(&m, "agentmon_kernel_map_entries", map), 0.0, "{map}");
    }
    // Removed, not evicted: the count stands.
    assert_eq!(
        value(&m, "agentmon_kernel_map_evictions_total", "tls_heads"),
        evicted
    );
}

//! TLS plaintext sizes where no probe fits, derived from record framing:
//! agentmon runs with its TLS probes off (`--without uprobes`, as on a
//! kernel without them, or for a stack no probe knows), and curl, python
//! and node clients of an agent's shell talk TLS 1.3 to the test internet,
//! and python TLS 1.2 with AEAD and CBC suites.
//! Expected sizes come from the web server's own plaintext counts.

use std::{fs, path::Path};

use agentmon_tests::{ChildGuard, Internet, ServerConn, require_root, wait_until, world};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUN: std::time::Duration = std::time::Duration::from_secs(60);
/// What the test server's session tickets may add to a connection's
/// derived ingress: OpenSSL sends two after the handshake, and their
/// records look like data.
const TICKETS_MAX: u64 = 2 * 300;

fn plaintext<'a>(direction: &'a str, library: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("tool", "claude-code"),
        ("dest", "api.model.test"),
        ("direction", direction),
        ("library", library),
    ]
}

/// The close record of the server's connection `c`, checked to have its
/// plaintext from the records with egress exact.
fn derived_close<'a>(lines: &'a [serde_json::Value], c: &ServerConn) -> &'a serde_json::Value {
    let line = lines
        .iter()
        .find(|l| l["event"] == "close" && l["egress_bytes"].as_u64() == Some(c.raw_in))
        .unwrap_or_else(|| panic!("no close record for {c:?} in {lines:?}"));
    assert_eq!(line["tls_library"], "record", "{line}");
    assert_eq!(line["egress_plaintext_bytes"].as_u64(), Some(c.plain_in));
    line
}

#[test]
fn tls13_plaintext_no_probe_sees_is_derived_from_the_records() {
    if !require_root() {
        return;
    }
    let mut w = world(NETPEER, "");
    let am = w.agentmon_without("uprobes");
    let claude = w.as_claude(Path::new(NETPEER));
    let body = w.lab.dir().join("body");
    fs::write(&body, vec![b'q'; 4444]).unwrap();
    // curl ends with a close_notify; python sends 200 kB (records of 16 kB
    // across many packets) after two keep-alive requests; node is node.
    let script = format!(
        "set -e
curl -sk --ipv4 -H 'Expect:' --data-binary @{body} -o /dev/null https://api.model.test/v1/messages
python3 {py} --name api.model.test --tls --port 443 --then /a:100 --then /b:30000 --path /v1/messages --body 200000
node {node} api.model.test 443 /v1/messages 2222",
        body = body.display(),
        py = Internet::script("py_client.py").display(),
        node = Internet::script("node_client.js").display(),
    );
    w.agent_shell(&claude, &script);
    let conns = w.server_conns("203.0.113.20:443", 3);
    let sent: u64 = conns.iter().map(|c| c.plain_in).sum();
    let received: u64 = conns.iter().map(|c| c.plain_out).sum();
    let m = am.expect(
        "agentmon_tls_plaintext_bytes_total",
        &plaintext("egress", "record"),
        sent as f64,
    );
    let derived = m
        .value(
            "agentmon_tls_plaintext_bytes_total",
            &plaintext("ingress", "record"),
        )
        .unwrap_or_default() as u64;
    assert!(
        derived > received && derived - received <= 3 * TICKETS_MAX,
        "ingress derived {derived}, server sent {received}"
    );
    assert_eq!(
        m.value(
            "agentmon_tls_connections_unseen_total",
            &[("tool", "claude-code")]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "agentmon_tls_framing_lost_total",
            &[("tool", "claude-code")]
        ),
        Some(0.0)
    );
    // Each connection's record: exact egress; ingress past the response by
    // the tickets only.
    let lines = w.tcp_log_lines();
    for c in &conns {
        let line = derived_close(&lines, c);
        let ingress = line["ingress_plaintext_bytes"].as_u64().unwrap();
        eprintln!(
            "{}: plaintext {} / {}, derived {} / {} (ingress + {})",
            line["exe"],
            c.plain_in,
            c.plain_out,
            c.plain_in,
            ingress,
            ingress - c.plain_out.min(ingress)
        );
        assert!(
            ingress > c.plain_out && ingress - c.plain_out <= TICKETS_MAX,
            "{line}: server sent {}",
            c.plain_out
        );
    }
}

#[test]
fn tls12_aead_is_derived_exactly_and_cbc_counted_as_unseen() {
    if !require_root() {
        return;
    }
    let mut w = world(NETPEER, "");
    let am = w.agentmon_without("uprobes");
    // The default suite (ECDHE with AES256-GCM) then ChaCha20-Poly1305: 24
    // and 16 bytes a record. Two keep-alive requests, then a 70 kB one.
    w.aider_tls(700, &["--tls12", "--then", "/a:300", "--then", "/b:70000"]);
    let chacha = ["--tls12", "--ciphers", "CHACHA20"];
    w.aider_tls(900, &chacha);
    let conns = w.server_conns("203.0.113.20:443", 2);
    let lines = w.tcp_log_lines();
    for c in &conns {
        let line = derived_close(&lines, c);
        assert_eq!(line["ingress_plaintext_bytes"].as_u64(), Some(c.plain_out));
    }
    let labels = |direction| {
        [
            ("tool", "aider"),
            ("dest", "api.model.test"),
            ("direction", direction),
            ("library", "record"),
        ]
    };
    let sent = conns.iter().map(|c| c.plain_in).sum::<u64>() as f64;
    let received = conns.iter().map(|c| c.plain_out).sum::<u64>() as f64;
    am.expect(
        "agentmon_tls_plaintext_bytes_total",
        &labels("egress"),
        sent,
    );
    am.expect(
        "agentmon_tls_plaintext_bytes_total",
        &labels("ingress"),
        received,
    );

    // A CBC suite pads its records: nothing derived, the connections count
    // as unseen.
    let cbc = ["--tls12", "--ciphers", "ECDHE+AES128+SHA256"];
    for _ in 0..2 {
        w.aider_tls(700, &cbc);
    }
    let conns = w.server_conns("203.0.113.20:443", 4);
    let kernel = [
        ("tool", "aider"),
        ("proto", "tcp"),
        ("dest", "api.model.test"),
    ];
    let raw: u64 = conns.iter().map(|c| c.raw_in).sum();
    am.expect("agentmon_egress_bytes_total", &kernel, raw as f64);
    let m = am.expect(
        "agentmon_tls_connections_unseen_total",
        &[("tool", "aider")],
        2.0,
    );
    assert_eq!(
        m.value("agentmon_tls_plaintext_bytes_total", &labels("egress")),
        Some(sent)
    );
    // Why, once for the program however many of its connections go unseen.
    let log = am.log_text();
    let why: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("closed with no plaintext seen"))
        .collect();
    assert_eq!(why.len(), 1, "{log}");
    assert!(
        why[0].contains("WARN")
            && why[0].contains("tool=\"aider\"")
            && why[0].contains("agentmon runs without uprobes here"),
        "{}",
        why[0]
    );
}

#[test]
fn framing_lost_to_more_records_in_one_packet_than_followed_is_counted() {
    if !require_root() {
        return;
    }
    let mut w = world(NETPEER, "");
    let am = w.agentmon_without("uprobes");
    // 1-byte writes held back by TCP_CORK leave in packets of 8948 bytes
    // (jumbo frames), each holding about 390 records of 23 bytes.
    w.lab.set_mtu(9000);
    w.aider_tls(3000, &["--corked-chunk", "1"]);
    let conns = w.server_conns("203.0.113.20:443", 1);
    let m = am.expect("agentmon_tls_framing_lost_total", &[("tool", "aider")], 1.0);
    let egress = [
        ("tool", "aider"),
        ("dest", "api.model.test"),
        ("direction", "egress"),
        ("library", "record"),
    ];
    let derived = m
        .value("agentmon_tls_plaintext_bytes_total", &egress)
        .unwrap_or_default();
    assert!(
        derived < conns[0].plain_in as f64,
        "derived {derived} of {}",
        conns[0].plain_in
    );
}

#[test]
fn a_library_probed_after_data_went_out_leaves_the_sizes_to_the_records() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // agentmon is stopped while aider starts, connects and makes its first
    // request: no probe is in place for it yet.
    w.am.pause();
    let go = w.lab.dir().join("go");
    let waiting = w.lab.dir().join("go.waiting");
    let go_arg = go.display().to_string();
    let mut cmd = w.aider_cmd(&[
        "--name",
        "api.model.test",
        "--tls",
        "--port",
        "443",
        "--then",
        "/v1/messages:3000",
        "--pause-file",
        &go_arg,
        "--body",
        "5000",
    ]);
    let run = ChildGuard::spawn(&mut cmd);
    let paused = wait_until(RUN, || waiting.exists());
    w.am.resume();
    assert!(paused, "aider did not make its first request");
    // Its libssl gets probed now, and the probe ties the connection at the
    // second request: too late for the first.
    let coverage = [
        ("tool", "aider"),
        ("library", "openssl"),
        ("mode", "plaintext"),
    ];
    w.expect("agentmon_tls_coverage", &coverage, 1.0);
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    let conns = w.server_conns("203.0.113.20:443", 1);
    let egress = [
        ("tool", "aider"),
        ("dest", "api.model.test"),
        ("direction", "egress"),
        ("library", "record"),
    ];
    let m = w.expect(
        "agentmon_tls_plaintext_bytes_total",
        &egress,
        conns[0].plain_in as f64,
    );
    let libraries = m.label_values("agentmon_tls_plaintext_bytes_total", "library");
    assert_eq!(libraries, ["record".to_owned()].into(), "{libraries:?}");
    // The probe did see the second request: only that one is known.
    let posts = [
        ("tool", "aider"),
        ("dest", "api.model.test"),
        ("method", "POST"),
        ("purpose", "model-api"),
    ];
    w.expect("agentmon_http_requests_total", &posts, 1.0);
}

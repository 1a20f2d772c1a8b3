//! Hostile and broken input reaching a tracked agent (issue 16): DNS answers
//! no DNS library writes (a compression-pointer loop, 1,000 answers, a label
//! holding a dot, a name past 255 bytes, a NUL), a 64 kB TLS ClientHello in
//! small segments, and HTTP/1 Host and HTTP/2 `:authority` values with
//! newlines, quotes, braces and control bytes. After each: the whole
//! exposition passes `promtool check metrics`, every connection-log line is
//! JSON with the documented keys, the agent's bytes are exact, agentmon is
//! alive within its memory bound, and no hostile byte is in a label value.
//! (`destinations.rs` covers a CNAME chain through bad names and a question
//! carrying them; these are the other shapes.)

use std::{
    collections::BTreeSet,
    fs,
    process::{Command, Output},
    time::Duration,
};

use agentmon_tests::{
    ChildGuard, Metrics, PeerCounts, World, labels, require_root, run_bounded, status_kib,
    wait_until, world,
};
use serde_json::Value;

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);
/// What the lab's netpeer sink (203.0.113.10:7000) answers each connection.
const SINK_REPLY: u64 = 321;

/// agentmon's resident memory must stay under this. Measured at the end
/// of each test here: 21.3 to 21.8 MiB (each test prints its figure). It
/// holds the ring buffer's pages, the GeoIP databases, the catalogs and
/// per-connection state, none of which a few dozen connections grow by
/// more than kilobytes; three times the measured figure leaves room for
/// allocator noise, while keeping hostile input (1,000-record answers,
/// 64 kB hellos, 64 KiB HPACK tables) from being buffered per packet
/// unnoticed.
const MAX_RSS_KIB: u64 = 64 * 1024;

/// Every key of a connection-log record (README, "Connection log").
const LOG_KEYS: [&str; 38] = [
    "v",
    "event",
    "id",
    "time",
    "start",
    "end",
    "tool",
    "pid",
    "ppid",
    "exe",
    "argv0",
    "root_pid",
    "uid",
    "user",
    "proto",
    "direction",
    "remote_addr",
    "remote_port",
    "local_addr",
    "local_port",
    "egress_bytes",
    "ingress_bytes",
    "egress_datagrams",
    "ingress_datagrams",
    "host",
    "sni",
    "alpn",
    "http_host",
    "http_method",
    "dns_name",
    "dest",
    "dest_country",
    "dest_asn",
    "dest_asn_org",
    "purpose",
    "tls_library",
    "egress_plaintext_bytes",
    "ingress_plaintext_bytes",
];
/// Keys left out when empty or zero.
const LOG_OPTIONAL_KEYS: [&str; 2] = ["requests", "requests_dropped"];

/// Bytes that must never reach a label value or a name in the log.
fn hostile_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b"\"{}\\".contains(&b)
}

#[test]
fn dns_answers_no_library_writes_bind_nothing_and_later_names_still_work() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // Each run asks one crafted name (see dns_server.py), then connects to
    // the sink at 203.0.113.10, the address every crafted answer gives.
    let runs = [
        ("--query", "loop"),
        ("--query", "many"),
        ("--query-tcp", "many"),
        ("--query", "dotlabel"),
        ("--query", "long"),
        ("--query", "ctl"),
    ];
    let (mut sink_sent, mut udp, mut tcp) = (0, (0, 0), (0, 0));
    for (i, (query, shape)) in runs.into_iter().enumerate() {
        let body = (100 + i).to_string();
        let name = format!("{shape}.crafted.test");
        let out = aider_run(&w, &[query, &name, "--ip", "203.0.113.10"], &body);
        let counts = PeerCounts::from_output(&out);
        assert_eq!(counts.received, SINK_REPLY, "{shape}");
        sink_sent += counts.sent;
        add(&mut udp, dns_bytes(&out, "udp"));
        add(&mut tcp, dns_bytes(&out, "tcp"));
    }
    // 1,000 answers of 16 bytes each: past 16 kB over both transports.
    assert!(udp.1 > 16_000 && tcp.1 > 16_000, "{udp:?} {tcp:?}");
    eprintln!(
        "sink bytes sent {sink_sent}; DNS over UDP {udp:?}, over TCP {tcp:?} (sent, received)"
    );
    // Then an ordinary answer for the same address names the next
    // connection: the bindings survived.
    let out = aider_run(
        &w,
        &["--query", "sink.model.test", "--ip", "203.0.113.10"],
        "1234",
    );
    assert_eq!(PeerCounts::from_output(&out).sent, 1234);
    add(&mut udp, dns_bytes(&out, "udp"));

    let named = labels("aider", "model.test", "US", "AS64500", "other");
    w.expect("agentmon_egress_bytes_total", &named, 1234.0);
    w.expect("agentmon_ingress_bytes_total", &named, SINK_REPLY as f64);
    // Unnamed: the six sink connections and the one DNS-over-TCP query.
    let ip = labels("aider", "ip", "US", "AS64500", "other");
    w.expect(
        "agentmon_egress_bytes_total",
        &ip,
        (sink_sent + tcp.0) as f64,
    );
    w.expect(
        "agentmon_ingress_bytes_total",
        &ip,
        (6 * SINK_REPLY + tcp.1) as f64,
    );
    w.expect("agentmon_connections_total", &ip, 7.0);
    let dns = [("tool", "aider"), ("proto", "udp"), ("dest", "ip")];
    w.expect("agentmon_egress_bytes_total", &dns, udp.0 as f64);
    w.expect("agentmon_ingress_bytes_total", &dns, udp.1 as f64);
    // Only the ordinary answer's one A record was taken: a loop or an
    // overlong name fails the whole message, and a 16 kB message is past
    // the 4 KiB the kernel copies, so it cannot hold the 1,000 records it
    // claims and is skipped whole.
    w.expect("agentmon_dns_answers_total", &[("tool", "aider")], 1.0);

    assert!(wait_until(SETTLE, || w.tcp_log_lines().len() == 8));
    let lines = w.tcp_log_lines();
    let sink: Vec<&Value> = lines.iter().filter(|l| l["remote_port"] == 7000).collect();
    assert_eq!(sink.len(), 7, "{lines:?}");
    for (i, line) in sink.iter().enumerate() {
        let (sent, dest, dns_name) = match i {
            6 => (1234, "model.test", Value::from("sink.model.test")),
            _ => (100 + i as u64, "ip", Value::Null),
        };
        assert_eq!(line["egress_bytes"], sent, "{line}");
        assert_eq!(line["ingress_bytes"], SINK_REPLY, "{line}");
        assert_eq!(line["dest"], dest, "{line}");
        assert_eq!(line["dns_name"], dns_name, "{line}");
    }
    check_all(&w);
}

#[test]
fn a_64_kb_client_hello_in_small_segments_is_named_only_if_its_sni_comes_first() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // A 64,000-byte unknown extension makes a ClientHello of 64,197 bytes in
    // four full records and a short one, written 256 bytes at a time with
    // TCP_NODELAY: the first segment is the first 256 bytes. The kernel
    // copies only a connection's first segment, so the SNI names it when
    // its extension comes first and the connection is unnamed (`dest="ip"`:
    // it went to a bare address, no DNS) when it comes after the padding.
    let hello = |extra: &[&str]| {
        let mut args = vec!["--ip", "203.0.113.20", "--sni", "api.model.test"];
        args.extend([
            "--big-hello",
            "64000",
            "--write-size",
            "256",
            "--port",
            "443",
        ]);
        args.extend(extra);
        w.aider(&args)
    };
    let first = hello(&[]);
    let conns = w.server_conns("203.0.113.20:443", 1);
    assert_eq!(first.sent, 64_197);
    assert_eq!(
        (conns[0].raw_in, conns[0].raw_out),
        (first.sent, first.received)
    );
    let last = hello(&["--sni-last"]);
    let conns = w.server_conns("203.0.113.20:443", 2);
    assert_eq!(last.sent, 64_197);
    assert_eq!(
        (conns[1].raw_in, conns[1].raw_out),
        (last.sent, last.received)
    );
    eprintln!("hello first: {first:?}; hello last: {last:?}");
    // OpenSSL took the whole hello and answered it (ServerHello and the
    // encrypted flight), so the server read every byte.
    assert!(first.received > 0 && last.received > 0);

    let sni = labels("aider", "api.model.test", "US", "AS64500", "model-api");
    w.expect("agentmon_egress_bytes_total", &sni, first.sent as f64);
    w.expect("agentmon_ingress_bytes_total", &sni, first.received as f64);
    let ip = labels("aider", "ip", "US", "AS64500", "other");
    w.expect("agentmon_egress_bytes_total", &ip, last.sent as f64);
    w.expect("agentmon_ingress_bytes_total", &ip, last.received as f64);
    let tcp = [("tool", "aider"), ("proto", "tcp")];
    w.expect("agentmon_connections_total", &tcp, 2.0);

    assert!(wait_until(SETTLE, || w.tcp_log_lines().len() == 2));
    // One connection after the other: the log has them in that order.
    let lines = w.tcp_log_lines();
    let expected = [
        (&first, "api.model.test", Value::from("api.model.test")),
        (&last, "ip", Value::Null),
    ];
    for (line, (counts, dest, sni)) in lines.iter().zip(expected) {
        assert_eq!(line["egress_bytes"], counts.sent, "{line}");
        assert_eq!(line["ingress_bytes"], counts.received, "{line}");
        assert_eq!(line["dest"], dest, "{line}");
        assert_eq!(line["sni"], sni, "{line}");
    }
    check_all(&w);
}

#[test]
fn http1_host_with_newlines_quotes_braces_and_control_bytes_names_nothing() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // (Host value, the request's method as the log shows it.) httparse
    // reads a head whose Host is merely not a host name; a newline that
    // starts a line no header can start with, or a control byte, makes
    // the head unreadable: then not even the method is known.
    let hosts: [(&[u8], Value); 4] = [
        (b"api.model.test\"} 1 {x=\"y\"}", "POST".into()),
        (b"evil\n\"}{", Value::Null),
        (b"api.model.test\x00\x1b[31m", Value::Null),
        // Two Host lines: the first decides, and it is not a name.
        (b"evil\"}\r\nHost: api.model.test", "POST".into()),
    ];
    for (host, _) in &hosts {
        let hex = hex(host);
        let args = ["--ip", "203.0.113.20", "--port", "80", "--host-hex", &hex];
        w.aider(&[&args[..], &["--body", "10"]].concat());
    }
    let hostile = w.server_conns("203.0.113.20:80", hosts.len());
    let normal = w.aider(&["--name", "api.model.test", "--port", "80", "--body", "10"]);
    let conns = w.server_conns("203.0.113.20:80", hosts.len() + 1);
    let last = conns.last().unwrap();
    assert_eq!((last.raw_in, last.raw_out), (normal.sent, normal.received));

    let ip = labels("aider", "ip", "US", "AS64500", "other");
    let (sent, received) = agentmon_tests::sum(&hostile);
    w.expect("agentmon_egress_bytes_total", &ip, sent);
    w.expect("agentmon_ingress_bytes_total", &ip, received);
    w.expect("agentmon_connections_total", &ip, hosts.len() as f64);
    let named = labels("aider", "api.model.test", "US", "AS64500", "model-api");
    w.expect("agentmon_egress_bytes_total", &named, normal.sent as f64);
    w.expect(
        "agentmon_ingress_bytes_total",
        &named,
        normal.received as f64,
    );

    assert!(wait_until(SETTLE, || w.tcp_log_lines().len() == hosts.len() + 1));
    // One connection after the other: the log has them in that order.
    let lines = w.tcp_log_lines();
    for ((_, method), (line, conn)) in hosts.iter().zip(lines.iter().zip(&hostile)) {
        assert_eq!(line["egress_bytes"], conn.raw_in, "{line}");
        assert_eq!(line["ingress_bytes"], conn.raw_out, "{line}");
        assert_eq!(line["http_host"], Value::Null, "{line}");
        assert_eq!(line["http_method"], *method, "{line}");
        assert_eq!(line["dest"], "ip", "{line}");
    }
    check_all(&w);
}

#[test]
fn http2_authority_with_newlines_quotes_and_braces_is_not_a_name() {
    if !require_root() {
        return;
    }
    // Were the `:authority` cut at its newline, the path would make this
    // request telemetry.
    let w = world(
        NETPEER,
        "[[dest.path]]\nhost = \"telemetry.vendor.test\"\npath = \"/v1/messages\"\npurpose = \"telemetry\"\n",
    );
    let authority = hex(b"telemetry.vendor.test\r\n\"}{\x00");
    let go = w.lab.dir().join("go");
    let mut aider = w.aider_cmd(&["--ip", "203.0.113.20", "--sni", "api.model.test"]);
    aider.args(["--tls", "--port", "443", "--h2-authority-hex", &authority]);
    aider.arg("--wait-file").arg(&go);
    let run = ChildGuard::spawn(&mut aider);
    // A long-lived agent: its libssl is probed before it writes.
    w.wait_probed("aider", "openssl");
    fs::write(&go, b"").unwrap();
    let counts = PeerCounts::from_output(&run.wait_output(RUN));
    let conns = w.server_conns("203.0.113.20:443", 1);
    // The web server speaks HTTP/1: it took the preface's blank line for
    // the end of a request and answered; it counted every byte either way.
    assert_eq!(
        (conns[0].plain_in, conns[0].plain_out),
        (counts.sent, counts.received)
    );

    let request = [
        ("tool", "aider"),
        ("dest", "api.model.test"),
        ("method", "POST"),
        ("purpose", "model-api"),
    ];
    let m = w.expect("agentmon_http_requests_total", &request, 1.0);
    assert_eq!(
        m.label_values("agentmon_http_requests_total", "purpose"),
        BTreeSet::from(["model-api".to_owned()])
    );
    let l = labels("aider", "api.model.test", "US", "AS64500", "model-api");
    w.expect("agentmon_egress_bytes_total", &l, conns[0].raw_in as f64);
    w.expect("agentmon_ingress_bytes_total", &l, conns[0].raw_out as f64);
    let plain = |direction| {
        [
            ("tool", "aider"),
            ("dest", "api.model.test"),
            ("direction", direction),
            ("library", "openssl"),
        ]
    };
    w.expect(
        "agentmon_tls_plaintext_bytes_total",
        &plain("egress"),
        counts.sent as f64,
    );
    w.expect(
        "agentmon_tls_plaintext_bytes_total",
        &plain("ingress"),
        counts.received as f64,
    );

    assert!(wait_until(SETTLE, || w.tcp_log_lines().len() == 1));
    let line = &w.tcp_log_lines()[0];
    assert_eq!(line["egress_bytes"], conns[0].raw_in, "{line}");
    assert_eq!(line["ingress_bytes"], conns[0].raw_out, "{line}");
    let requests = line["requests"].as_array().expect("requests in the log");
    assert_eq!(requests.len(), 1, "{line}");
    assert_eq!(requests[0]["method"], "POST", "{line}");
    assert_eq!(requests[0]["purpose"], "model-api", "{line}");
    check_all(&w);
}

/// Runs py_client.py as aider with `args`, sending `body` raw bytes to port
/// 7000 (the sink); panics unless it succeeds.
fn aider_run(w: &World, args: &[&str], body: &str) -> Output {
    let mut all = args.to_vec();
    all.extend(["--raw", "--port", "7000", "--body", body]);
    let out = run_bounded(&mut w.aider_cmd(&all), RUN);
    assert!(out.status.success(), "{out:?}");
    out
}

/// The `dns_<proto>=SENT:RECEIVED` figures py_client.py printed.
fn dns_bytes(out: &Output, proto: &str) -> (u64, u64) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = format!("dns_{proto}=");
    let field = stdout
        .split_whitespace()
        .find_map(|f| f.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in {stdout}"));
    let (sent, received) = field.split_once(':').unwrap();
    (sent.parse().unwrap(), received.parse().unwrap())
}

fn add(total: &mut (u64, u64), more: (u64, u64)) {
    total.0 += more.0;
    total.1 += more.1;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The checks every test ends with: agentmon alive and within
/// [`MAX_RSS_KIB`], no panic in its log, the exposition accepted by
/// promtool with no hostile byte in a label value, and every log line JSON
/// with exactly the documented keys and no hostile byte in a value.
fn check_all(w: &World) -> Metrics {
    let pid = w.am.pid().expect("agentmon is running");
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("agentmon (pid {pid}) is gone: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    assert!(!field("State:").starts_with('Z'), "agentmon exited");
    let rss = status_kib(pid, "VmRSS");
    eprintln!("agentmon VmRSS: {rss} kB");
    assert!(rss < MAX_RSS_KIB, "agentmon's RSS is {rss} kB");
    assert!(!w.am.log_text().contains("panicked"), "{}", w.am.log_text());

    let m = w.am.scrape();
    promtool_check_metrics(w, m.text());
    for name in m.names() {
        for (labels, _) in m.series(name) {
            for (label, value) in &labels {
                assert!(
                    !value.bytes().any(hostile_byte),
                    "{name}{{{label}={value:?}}}"
                );
            }
        }
    }

    let text = fs::read_to_string(&w.log).expect("the connection log");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a cut line: {text}"
    );
    let documented: BTreeSet<&str> = LOG_KEYS.into_iter().collect();
    for line in text.lines() {
        let record: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        let keys: BTreeSet<&str> = record
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"))
            .keys()
            .map(String::as_str)
            .collect();
        let missing: Vec<_> = documented.difference(&keys).collect();
        assert!(missing.is_empty(), "{missing:?} missing in {line}");
        let extra: Vec<_> = keys
            .difference(&documented)
            .filter(|k| !LOG_OPTIONAL_KEYS.contains(k))
            .collect();
        assert!(extra.is_empty(), "undocumented {extra:?} in {line}");
        assert_eq!(record["v"], 3, "{line}");
        for (key, value) in record.as_object().unwrap() {
            if let Some(s) = value.as_str() {
                assert!(!s.bytes().any(hostile_byte), "{key}: {s:?} in {line}");
            }
        }
    }
    m
}

/// `promtool check metrics` on `text`, Prometheus's own parser and linter;
/// panics with its findings unless it accepts the exposition.
fn promtool_check_metrics(w: &World, text: &str) {
    let file = w.lab.dir().join("exposition.txt");
    fs::write(&file, text).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec promtool check metrics < \"$0\""])
        .arg(&file);
    let out = run_bounded(&mut cmd, RUN);
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}; `cargo xtask setup test` installs it):\n{}{}\nthe exposition:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

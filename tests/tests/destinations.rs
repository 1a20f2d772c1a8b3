//! Destinations end to end: names from DNS answers, TLS SNI and HTTP Host,
//! GeoIP country and ASN from a database the test writes, purposes from the
//! catalog, bounded `dest` labels, hostile DNS answers and GeoIP reloads.
//! Clients: curl (glibc getaddrinfo, OpenSSL), a static musl binary, node
//! (c-ares, its own resolver), python (glibc and a raw DNS query).

use std::{fs, path::Path, process::Command, time::Duration};

use agentmon_tests::{
    Internet, PeerCounts, default_records, labels, make_geoip, require_root, run_bounded, sum,
    wait_until, world, world_with,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);

#[test]
fn curl_over_tls_is_named_by_sni_and_dns_with_country_asn_and_purpose() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let curl = w.as_claude(Path::new("/usr/bin/curl"));
    let body = w.lab.dir().join("body");
    fs::write(&body, vec![b'q'; 40_000]).unwrap();
    let out = run_bounded(
        w.lab
            .client_cmd(&curl, ["-4", "-sk", "--data-binary"])
            .arg(format!("@{}", body.display()))
            .arg("https://api.model.test/v1/messages"),
        RUN,
    );
    assert!(out.status.success(), "{out:?}");
    let conns = w.server_conns("203.0.113.20:443", 1);
    assert_eq!(conns[0].sni.as_deref(), Some("api.model.test"));
    let (sent, received) = sum(&conns);
    let l = labels(
        "claude-code",
        "api.model.test",
        "US",
        "AS64500",
        "model-api",
    );
    w.expect("agentmon_egress_bytes_total", &l, sent);
    w.expect("agentmon_ingress_bytes_total", &l, received);
    let m = w.expect(
        "agentmon_connections_total",
        &[
            ("tool", "claude-code"),
            ("proto", "tcp"),
            ("dest", "api.model.test"),
        ],
        1.0,
    );
    // curl asked for A (and maybe AAAA): its answers were read.
    assert!(
        m.value("agentmon_dns_answers_total", &[("tool", "claude-code")])
            .unwrap_or(0.0)
            >= 1.0,
        "{}",
        m.text()
    );
    // The DNS traffic itself: UDP to the resolver, which has no name.
    let dns = [
        ("tool", "claude-code"),
        ("proto", "udp"),
        ("dest", "ip"),
        ("dest_country", "US"),
        ("dest_asn", "AS64500"),
    ];
    assert!(
        m.value("agentmon_egress_bytes_total", &dns).unwrap_or(0.0) > 0.0,
        "{}",
        m.text()
    );
    assert!(wait_until(SETTLE, || !w.tcp_log_lines().is_empty()));
    let line = &w.tcp_log_lines()[0];
    assert_eq!(line["host"], "api.model.test");
    assert_eq!(line["sni"], "api.model.test");
    assert_eq!(line["dns_name"], "api.model.test");
    assert_eq!(line["dest"], "api.model.test");
    assert_eq!(line["dest_country"], "US");
    assert_eq!(line["dest_asn"], "AS64500");
    assert_eq!(line["dest_asn_org"], "Example-Net-US");
    assert_eq!(line["purpose"], "model-api");
    assert_eq!(line["egress_bytes"].as_f64(), Some(sent));
    assert_eq!(line["ingress_bytes"].as_f64(), Some(received));
}

#[test]
fn static_musl_client_over_http_is_named_by_host_and_dns() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let bin = w.lab.dir().join("musl_http");
    let out = run_bounded(
        Command::new("musl-gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(Internet::script("musl_http.c")),
        RUN,
    );
    assert!(
        out.status.success(),
        "musl-gcc (cargo xtask setup test installs musl-tools): {out:?}"
    );
    let client = w.as_claude(&bin);
    let counts = PeerCounts::from_output(&run_bounded(
        &mut w
            .lab
            .client_cmd(&client, ["api.model.test", "80", "/v1/messages", "12345"]),
        RUN,
    ));
    let l = labels(
        "claude-code",
        "api.model.test",
        "US",
        "AS64500",
        "model-api",
    );
    w.expect("agentmon_egress_bytes_total", &l, counts.sent as f64);
    w.expect("agentmon_ingress_bytes_total", &l, counts.received as f64);
    assert!(wait_until(SETTLE, || !w.tcp_log_lines().is_empty()));
    let line = &w.tcp_log_lines()[0];
    assert_eq!(line["http_host"], "api.model.test");
    assert_eq!(line["http_method"], "POST");
    assert_eq!(line["dns_name"], "api.model.test");
    assert_eq!(line["sni"], serde_json::Value::Null);
}

#[test]
fn node_with_its_own_resolver_through_a_cname_is_telemetry() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let script = w.as_gemini("node_client.js");
    let out = run_bounded(
        &mut w.lab.client_cmd(
            "node",
            [
                script.to_str().unwrap(),
                "telemetry.vendor.test",
                "443",
                "/log",
                "3000",
            ],
        ),
        RUN,
    );
    assert!(out.status.success(), "{out:?}");
    let conns = w.server_conns("203.0.113.30:443", 1);
    let (sent, received) = sum(&conns);
    let l = labels(
        "gemini-cli",
        "telemetry.vendor.test",
        "US",
        "AS64500",
        "telemetry",
    );
    w.expect("agentmon_egress_bytes_total", &l, sent);
    w.expect("agentmon_ingress_bytes_total", &l, received);
    assert!(wait_until(SETTLE, || !w.tcp_log_lines().is_empty()));
    // c-ares asked for the name; the answer came through a CNAME.
    assert_eq!(w.tcp_log_lines()[0]["dns_name"], "telemetry.vendor.test");
}

#[test]
fn python_names_by_sni_on_a_bare_ip_by_dns_alone_and_geolocates_elsewhere() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // Another country and network; not in the catalog: its registrable domain.
    w.aider(&[
        "--name",
        "far.elsewhere.test",
        "--tls",
        "--port",
        "443",
        "--body",
        "777",
    ]);
    let conns = w.server_conns("198.51.100.40:443", 1);
    let (sent, received) = sum(&conns);
    let far = labels("aider", "elsewhere.test", "DE", "AS64501", "other");
    w.expect("agentmon_egress_bytes_total", &far, sent);
    w.expect("agentmon_ingress_bytes_total", &far, received);
    // SNI on a connection made to a bare address: no DNS at all.
    w.aider(&[
        "--ip",
        "203.0.113.20",
        "--sni",
        "api.model.test",
        "--tls",
        "--port",
        "443",
        "--body",
        "99",
    ]);
    let conns = w.server_conns("203.0.113.20:443", 1);
    let (sent, _) = sum(&conns);
    let sni = labels("aider", "api.model.test", "US", "AS64500", "model-api");
    w.expect("agentmon_egress_bytes_total", &sni, sent);
    // Raw bytes, no HTTP: only the raw DNS answer names it.
    let counts = w.aider(&[
        "--name",
        "sink.model.test",
        "--resolver",
        "raw",
        "--raw",
        "--port",
        "7000",
        "--body",
        "1234",
    ]);
    assert_eq!(counts.sent, 1234);
    let dns = labels("aider", "model.test", "US", "AS64500", "other");
    w.expect("agentmon_egress_bytes_total", &dns, 1234.0);
    w.expect("agentmon_ingress_bytes_total", &dns, 321.0);
    // The same with the answer read from DNS over TCP.
    w.aider(&[
        "--name",
        "sink.model.test",
        "--resolver",
        "raw-tcp",
        "--raw",
        "--port",
        "7000",
        "--body",
        "4321",
    ]);
    w.expect("agentmon_egress_bytes_total", &dns, 5555.0);
    let dns53 = [
        ("tool", "aider"),
        ("proto", "tcp"),
        ("dest", "ip"),
        ("dest_country", "US"),
    ];
    let m = w.expect("agentmon_connections_total", &dns53, 1.0);
    assert!(
        m.value("agentmon_egress_bytes_total", &dns53)
            .is_some_and(|v| v > 0.0)
    );
    // Over IPv6, the same name is in another (test) country.
    w.aider(&[
        "--name",
        "api.model.test",
        "--tls",
        "--port",
        "443",
        "--body",
        "5",
        "--ipv6",
    ]);
    let conns = w.server_conns("[2001:db8::20]:443", 1);
    let (sent, _) = sum(&conns);
    let v6 = labels("aider", "api.model.test", "JP", "AS64502", "model-api");
    w.expect("agentmon_egress_bytes_total", &v6, sent);
}

#[test]
fn dest_labels_past_the_cap_go_to_other_and_are_counted() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "[dest]\nmax_per_tool = 3\n");
    for n in ["one", "two", "three", "four", "five"] {
        w.aider(&[
            "--name",
            &format!("api.{n}.test"),
            "--port",
            "80",
            "--body",
            "100",
        ]);
    }
    let m = w.expect("agentmon_dest_overflow_total", &[("tool", "aider")], 2.0);
    let dests: Vec<String> = m
        .series("agentmon_connections_total")
        .into_iter()
        .filter(|(l, _)| l["proto"] == "tcp")
        .map(|(l, _)| l["dest"].clone())
        .collect();
    assert_eq!(dests.len(), 4, "{dests:?}");
    for d in ["one.test", "two.test", "three.test", "other"] {
        assert!(dests.contains(&d.to_owned()), "{d} in {dests:?}");
    }
    let other = [("tool", "aider"), ("proto", "tcp"), ("dest", "other")];
    assert_eq!(m.value("agentmon_connections_total", &other), Some(2.0));
}

#[test]
fn networks_past_the_cap_go_to_other_and_are_counted() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "[dest]\nmax_networks_per_tool = 2\n");
    // Bare addresses in three networks: the Host header is an address, so
    // no name; the third network is past the cap.
    let mut sent = Vec::new();
    for ip in ["203.0.113.20", "198.51.100.40", "2001:db8::20"] {
        sent.push(w.aider(&["--ip", ip, "--port", "80", "--body", "100"]).sent as f64);
    }
    let unnamed = |country, asn| {
        [
            ("tool", "aider"),
            ("proto", "tcp"),
            ("dest", "ip"),
            ("dest_country", country),
            ("dest_asn", asn),
        ]
    };
    w.expect(
        "agentmon_egress_bytes_total",
        &unnamed("US", "AS64500"),
        sent[0],
    );
    w.expect(
        "agentmon_egress_bytes_total",
        &unnamed("DE", "AS64501"),
        sent[1],
    );
    let m = w.expect(
        "agentmon_egress_bytes_total",
        &unnamed("other", "other"),
        sent[2],
    );
    assert_eq!(
        m.value("agentmon_dest_network_overflow_total", &[("tool", "aider")]),
        Some(1.0)
    );
    // JP never became a label.
    let countries: Vec<String> = m
        .series("agentmon_connections_total")
        .into_iter()
        .map(|(l, _)| l["dest_country"].clone())
        .collect();
    assert!(!countries.contains(&"JP".to_owned()), "{countries:?}");
}

#[test]
fn hostile_dns_answers_never_reach_labels_or_break_the_exposition() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // A CNAME chain through quotes, braces, newlines, control bytes and an
    // overlong name; and a question whose label carries the same.
    w.aider(&[
        "--name",
        "x.hostile.test",
        "--resolver",
        "raw",
        "--raw",
        "--port",
        "80",
        "--body",
        "10",
    ]);
    let evil = hex(b"evil\"} 1\n# TYPE agentmon_x counter\x00\x1b");
    w.aider(&[
        "--qname-bytes",
        &evil,
        "--raw",
        "--port",
        "80",
        "--body",
        "20",
    ]);
    let tcp = [("tool", "aider"), ("proto", "tcp"), ("dest", "ip")];
    let m = w.expect("agentmon_egress_bytes_total", &tcp, 30.0);
    // The strict parser read the whole exposition; every dest is a hostname.
    for (labels, _) in m.series("agentmon_egress_bytes_total") {
        let dest = &labels["dest"];
        assert!(
            dest.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
            "{dest:?}"
        );
    }
    for bad in ["evil", "TYPE agentmon_x", "\\\"", "ctrl"] {
        assert!(!m.text().contains(bad), "{bad:?} in\n{}", m.text());
    }
    assert!(
        m.value("agentmon_dns_answers_total", &[("tool", "aider")])
            .is_none_or(|v| v == 0.0)
    );
    assert!(wait_until(SETTLE, || w.tcp_log_lines().len() == 2));
    for line in w.tcp_log_lines() {
        assert_eq!(line["dns_name"], serde_json::Value::Null);
        assert_eq!(line["dest"], "ip");
    }
}

#[test]
fn geoip_database_is_reloaded_and_a_corrupt_one_is_refused() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let send = || {
        w.aider(&[
            "--ip",
            "203.0.113.10",
            "--raw",
            "--port",
            "7000",
            "--body",
            "50",
        ])
    };
    fn by<'a>(country: &'a str, asn: &'a str) -> [(&'a str, &'a str); 5] {
        [
            ("tool", "aider"),
            ("proto", "tcp"),
            ("dest", "ip"),
            ("dest_country", country),
            ("dest_asn", asn),
        ]
    }
    send();
    w.expect("agentmon_egress_bytes_total", &by("US", "AS64500"), 50.0);
    // A new release of the database: written aside, then moved in place.
    let next = w.lab.dir().join("geoip-next");
    make_geoip(&next, &["203.0.113.0/24=FR:64510:Exemple-FR"]);
    for file in ["country.mmdb", "asn.mmdb"] {
        fs::rename(next.join(file), w.geoip.join(file)).unwrap();
    }
    assert!(
        wait_until(SETTLE, || {
            send();
            w.am.scrape()
                .value("agentmon_egress_bytes_total", &by("FR", "AS64510"))
                .is_some()
        }),
        "the new database was not picked up:\n{}",
        w.am.log_text()
    );
    // A truncated file is refused in one log line; the last good one stays.
    let good = fs::read(w.geoip.join("country.mmdb")).unwrap();
    let bad = w.lab.dir().join("country.mmdb.part");
    fs::write(&bad, &good[..good.len() / 3]).unwrap();
    fs::rename(&bad, w.geoip.join("country.mmdb")).unwrap();
    let warnings = || {
        w.am.log_text()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("country.mmdb"))
            .count()
    };
    assert!(
        wait_until(SETTLE, || warnings() > 0),
        "no log line about the corrupt file:\n{}",
        w.am.log_text()
    );
    let before =
        w.am.scrape()
            .value("agentmon_egress_bytes_total", &by("FR", "AS64510"))
            .unwrap();
    send();
    w.expect(
        "agentmon_egress_bytes_total",
        &by("FR", "AS64510"),
        before + 50.0,
    );
    // Reported once, not at every poll (the interval is 1 s).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(warnings(), 1, "{}", w.am.log_text());

    // Deleted while running, then garbage in its place: one line each, and
    // the last good database stays in use.
    let country = w.geoip.join("country.mmdb");
    fs::remove_file(&country).unwrap();
    assert!(
        wait_until(SETTLE, || warnings() == 2),
        "{}",
        w.am.log_text()
    );
    let garbage: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fs::write(&bad, &garbage).unwrap();
    fs::rename(&bad, &country).unwrap();
    assert!(
        wait_until(SETTLE, || warnings() == 3),
        "{}",
        w.am.log_text()
    );
    send();
    w.expect(
        "agentmon_egress_bytes_total",
        &by("FR", "AS64510"),
        before + 100.0,
    );
    // A good one again is taken.
    make_geoip(&next, &["203.0.113.0/24=DE:64511:Beispiel-DE"]);
    fs::rename(next.join("country.mmdb"), &country).unwrap();
    assert!(
        wait_until(SETTLE, || {
            send();
            w.am.scrape()
                .value("agentmon_egress_bytes_total", &by("DE", "AS64510"))
                .is_some()
        }),
        "the good database was not picked up:\n{}",
        w.am.log_text()
    );
    assert_eq!(warnings(), 3, "{}", w.am.log_text());
}

#[test]
fn default_cap_bounds_one_tools_series() {
    if !require_root() {
        return;
    }
    // 70 names with distinct registrable domains, past the default cap of 64.
    let mut records = default_records();
    records.extend((0..70).map(|n| format!("api.n{n}.test=A:203.0.113.20")));
    let w = world_with(NETPEER, "", &records);
    for n in 0..70 {
        w.aider(&[
            "--name",
            &format!("api.n{n}.test"),
            "--port",
            "80",
            "--body",
            "10",
        ]);
    }
    let m = w.expect("agentmon_dest_overflow_total", &[("tool", "aider")], 6.0);
    let tcp: Vec<_> = m
        .series("agentmon_egress_bytes_total")
        .into_iter()
        .filter(|(l, _)| l["proto"] == "tcp")
        .collect();
    assert_eq!(tcp.len(), 65, "64 names and `other`");
    let other = [("tool", "aider"), ("proto", "tcp"), ("dest", "other")];
    let per_conn = m
        .value(
            "agentmon_egress_bytes_total",
            &[("tool", "aider"), ("proto", "tcp"), ("dest", "n10.test")],
        )
        .unwrap();
    assert_eq!(
        m.value("agentmon_egress_bytes_total", &other),
        Some(6.0 * per_conn)
    );
    let series = m
        .text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    eprintln!("series at the default cap, one tool past it: {series}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! The egress policy end to end, with the real kernel programs: agents'
//! connections judged when they are named (a violation counted, logged
//! with the process chain), Claude Code's sandbox allowlist imported,
//! enforcement refusing connects and datagrams of the agent's tree only
//! (EPERM, the server sees nothing: a denied country, expanded from the
//! test GeoIP database, a denied IPv6 network and a denied name the tree
//! resolved) and failing open when agentmon stops,
//! and a reload with a broken file keeping the policy in force.

use std::{fs, path::Path, process::Output, time::Duration};

use agentmon_tests::{World, require_root, run_bounded, wait_until, world};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);

/// The test internet's resolver, which every agent reaches for its names.
const RESOLVER: &str = r#"{ cidr = "203.0.113.53/32", port = 53, name = "resolver" }"#;

fn violations(w: &World) -> Vec<serde_json::Value> {
    agentmon_tests::json_lines(&w.lab.dir().join("violations.jsonl"))
}

/// Runs `script` with /bin/sh as a child of the agent `agent`.
fn in_agent(w: &World, agent: &Path, script: &str) -> Output {
    let args = ["exec-child", "--", "/bin/sh", "-c", script];
    run_bounded(&mut w.lab.client_cmd(agent, args), RUN)
}

fn curl(host: &str) -> String {
    format!("curl -4 -sk -o /dev/null https://{host}/v1/x")
}

fn policy_header(w: &World) -> String {
    format!(
        "[policy]\nviolations_log = \"{}\"\n",
        w.lab.dir().join("violations.jsonl").display()
    )
}

fn reload(w: &World, extra: &str) {
    let before = w.am.log_text().matches("config reloaded").count();
    w.rewrite_config(extra);
    w.am.hangup();
    assert!(
        wait_until(SETTLE, || w
            .am
            .log_text()
            .matches("config reloaded")
            .count()
            > before),
        "{}",
        w.am.log_text()
    );
}

#[test]
fn destinations_outside_an_imported_sandbox_allowlist_are_violations_with_their_chain() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let settings = w.lab.dir().join("claude-settings.json");
    fs::write(
        &settings,
        r#"{"sandbox": {"enabled": true, "network": {"allowedDomains": ["api.model.test"]}}}"#,
    )
    .unwrap();
    let extra = format!(
        r#"{header}
[[policy.tool]]
name = "claude-code"
default = "alert"
allow = [ {{ from = "claude-code-sandbox", path = "{settings}" }}, {RESOLVER} ]
deny = [ {{ host = "telemetry.vendor.test", name = "no-telemetry" }} ]
"#,
        header = policy_header(&w),
        settings = settings.display()
    );
    reload(&w, &extra);
    assert!(
        w.am.log_text()
            .contains("imported Claude Code's sandbox allowlist"),
        "{}",
        w.am.log_text()
    );

    let agent = w.as_claude(Path::new(NETPEER));
    let script = [
        curl("api.model.test"),
        curl("telemetry.vendor.test"),
        curl("far.elsewhere.test"),
    ]
    .join(" && ");
    let out = in_agent(&w, &agent, &script);
    assert!(out.status.success(), "{out:?}");

    let v = "agentmon_policy_violations_total";
    let denied = [
        ("tool", "claude-code"),
        ("dest", "telemetry.vendor.test"),
        ("rule", "no-telemetry"),
    ];
    w.expect(v, &denied, 1.0);
    let outside = [
        ("tool", "claude-code"),
        ("dest", "elsewhere.test"),
        ("rule", "claude-code:default"),
    ];
    let m = w.expect(v, &outside, 1.0);
    // The allowed host, and the resolver, are no violations.
    assert_eq!(
        m.value(v, &[("tool", "claude-code")]),
        Some(2.0),
        "{}",
        m.text()
    );
    assert_eq!(
        m.value(v, &[("dest", "api.model.test")]),
        None,
        "{}",
        m.text()
    );

    assert!(
        wait_until(SETTLE, || violations(&w).len() == 2),
        "{:?}",
        violations(&w)
    );
    let lines = violations(&w);
    let line = lines.iter().find(|l| l["rule"] == "no-telemetry").unwrap();
    println!("violation: {line}");
    assert_eq!(line["v"], 1);
    assert_eq!(line["tool"], "claude-code");
    assert_eq!(line["action"], "deny");
    assert_eq!(line["blocked"], false);
    assert_eq!(line["proto"], "tcp");
    assert_eq!(line["host"], "telemetry.vendor.test");
    assert_eq!(line["remote_addr"], "203.0.113.30");
    assert_eq!(line["remote_port"], 443);
    assert_eq!(line["dest_country"], "US");
    assert_eq!(line["dest_asn"], "AS64500");
    assert_eq!(line["purpose"], "telemetry");
    // Judged at its first bytes: the ClientHello had been sent.
    assert!(line["egress_bytes"].as_u64().unwrap() > 0, "{line}");
    assert!(line["id"].as_str().unwrap().starts_with("tcp:"), "{line}");
    // The chain from the agent down to curl, which connected.
    let chain = line["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 3, "{line}");
    assert_eq!(chain[0]["exe"], agent.display().to_string());
    assert_eq!(chain[1]["exe"], "/usr/bin/dash");
    assert!(
        chain[2]["exe"].as_str().unwrap().ends_with("/curl"),
        "{line}"
    );
    assert_eq!(chain[2]["pid"], line["pid"]);
    let outside = lines
        .iter()
        .find(|l| l["rule"] == "claude-code:default")
        .unwrap();
    assert_eq!(outside["action"], "alert");
    assert_eq!(outside["host"], "far.elsewhere.test");
    assert_eq!(outside["dest_country"], "DE");
    assert!(
        w.am.log_text()
            .contains("egress policy violation: claude-code reached telemetry.vendor.test")
    );

    // The agent's promise changes: its settings now allow far.elsewhere.test.
    // agentmon reads the file again by itself and judges by it.
    let imported = || {
        w.am.log_text()
            .matches("imported Claude Code's sandbox allowlist")
            .count()
    };
    let before = imported();
    fs::write(
        &settings,
        r#"{"sandbox": {"enabled": true, "network": {"allowedDomains": ["api.model.test", "far.elsewhere.test"]}}}"#,
    )
    .unwrap();
    assert!(
        wait_until(SETTLE, || imported() > before),
        "{}",
        w.am.log_text()
    );
    assert!(
        w.am.log_text()
            .contains("a file the egress policy imports an allowlist from changed"),
        "{}",
        w.am.log_text()
    );
    let out = in_agent(&w, &agent, &curl("far.elsewhere.test"));
    assert!(out.status.success(), "{out:?}");
    // Connections are labelled within a second of their first bytes: the
    // new one is in the log by then, and no violation was added.
    assert!(
        wait_until(SETTLE, || w.tcp_log_lines().len() >= 4),
        "{:?}",
        w.tcp_log_lines()
    );
    let m = w.am.scrape();
    assert_eq!(
        m.value(v, &[("tool", "claude-code")]),
        Some(2.0),
        "{}",
        m.text()
    );
}

/// What the agent's tree (or anyone) can reach under enforcement, in one
/// python run: errno names or `ok`.
const PROBE: &str = r#"
import errno, socket, sys, time
def tcp(addr, family=socket.AF_INET):
    s = socket.socket(family)
    s.settimeout(5)
    try:
        s.connect(addr)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        s.recv(100)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
def udp(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", addr)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
print("far_tcp", tcp(("198.51.100.40", 80)))
print("far_udp", udp(("198.51.100.40", 9)))
print("v6_tcp", tcp(("2001:db8::20", 80), socket.AF_INET6))
# A name the tree resolved earlier, then reached by its address.
ip = socket.gethostbyname("telemetry.vendor.test")
time.sleep(1)
print("telemetry_tcp", tcp((ip, 80)))
print("model_tcp", tcp(("203.0.113.20", 80)))
"#;

fn probe(out: &Output) -> Vec<(String, String)> {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn enforcement_refuses_the_agents_tree_only_and_fails_open() {
    if !require_root() {
        return;
    }
    let mut w = world(NETPEER, "");
    let extra = format!(
        r#"{header}
[[policy.tool]]
name = "claude-code"
enforce = true
deny = [
  {{ country = "DE", name = "no-far" }},
  {{ cidr = "2001:db8::/32", name = "no-v6" }},
  {{ host = "telemetry.vendor.test", name = "no-telemetry" }},
]
"#,
        header = policy_header(&w)
    );
    // Started without enforcement, agentmon dropped CAP_NET_ADMIN: a
    // reload cannot attach the hooks, says so, and the gauge says 0.
    reload(&w, &extra);
    w.expect("agentmon_policy_enforced", &[("tool", "claude-code")], 0.0);
    let log = w.am.log_text();
    assert!(
        log.contains("enforcement is off, violations are only reported: agentmon dropped CAP_NET_ADMIN after start, when no tool was enforced; restart it to enforce"),
        "{log}"
    );
    // Started with it, agentmon keeps CAP_NET_ADMIN (so later reloads can
    // attach and detach the hooks).
    w.restart_agentmon();
    w.expect("agentmon_policy_enforced", &[("tool", "claude-code")], 1.0);
    let status = fs::read_to_string(format!("/proc/{}/status", w.am.pid().unwrap())).unwrap();
    let eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    // CAP_NET_ADMIN is bit 12.
    let bits = u64::from_str_radix(eff["CapEff:".len()..].trim(), 16).unwrap();
    assert_eq!(bits >> 12 & 1, 1, "{eff}");
    let script = w.lab.dir().join("probe.py");
    fs::write(&script, PROBE).unwrap();
    let agent = w.as_claude(Path::new(NETPEER));

    let refused = probe(&in_agent(
        &w,
        &agent,
        &format!("python3 {}", script.display()),
    ));
    println!("agent: {refused:?}");
    assert_eq!(
        refused,
        pairs(&[
            ("far_tcp", "EPERM"),
            ("far_udp", "EPERM"),
            ("v6_tcp", "EPERM"),
            ("telemetry_tcp", "EPERM"),
            ("model_tcp", "ok"),
        ])
    );
    // The same addresses from a process that is no agent's.
    let mut plain = w.lab.client_cmd("python3", [script.as_os_str()]);
    let free = probe(&run_bounded(&mut plain, RUN));
    let all_ok = pairs(&[
        ("far_tcp", "ok"),
        ("far_udp", "ok"),
        ("v6_tcp", "ok"),
        ("telemetry_tcp", "ok"),
        ("model_tcp", "ok"),
    ]);
    assert_eq!(free, all_ok);
    // The servers saw only the non-agent's connections.
    let seen = |local: &str| {
        w.net
            .server_conns()
            .iter()
            .filter(|c| c.local == local)
            .count()
    };
    assert!(wait_until(SETTLE, || seen("198.51.100.40:80") == 1
        && seen("203.0.113.30:80") == 1));
    assert_eq!(seen("203.0.113.20:80"), 2);
    assert_eq!(seen("[2001:db8::20]:80"), 1, "{:?}", w.net.server_conns());

    let v = "agentmon_policy_violations_total";
    w.expect(
        v,
        &[("tool", "claude-code"), ("rule", "no-far"), ("dest", "ip")],
        2.0,
    );
    w.expect(
        v,
        &[
            ("tool", "claude-code"),
            ("rule", "no-telemetry"),
            ("dest", "telemetry.vendor.test"),
        ],
        1.0,
    );
    w.expect(
        v,
        &[("tool", "claude-code"), ("rule", "no-v6"), ("dest", "ip")],
        1.0,
    );
    assert!(
        wait_until(SETTLE, || violations(&w).len() == 4),
        "{:?}",
        violations(&w)
    );
    let lines = violations(&w);
    println!("blocked: {}", lines[0]);
    for line in &lines {
        assert_eq!(line["blocked"], true, "{line}");
        assert_eq!(line["action"], "deny", "{line}");
        assert_eq!(line["egress_bytes"], 0, "{line}");
        let chain = line["chain"].as_array().unwrap();
        assert_eq!(chain[0]["exe"], agent.display().to_string(), "{line}");
        assert!(
            chain.last().unwrap()["exe"]
                .as_str()
                .unwrap()
                .contains("python3"),
            "{line}"
        );
    }
    let udp = lines.iter().find(|l| l["proto"] == "udp").unwrap();
    assert_eq!(
        (udp["remote_addr"].as_str(), udp["remote_port"].as_u64()),
        (Some("198.51.100.40"), Some(9))
    );
    let named = lines.iter().find(|l| l["rule"] == "no-telemetry").unwrap();
    assert_eq!(named["dns_name"], "telemetry.vendor.test");
    assert_eq!(named["remote_addr"], "203.0.113.30");
    // The agent's tree is gone: the denial of the address its name had is
    // taken out at housekeeping, not left to age out of the LRU map.
    let hosts = [("map", "policy_hosts")];
    let m = w.expect("agentmon_kernel_map_entries", &hosts, 0.0);
    assert_eq!(
        m.value("agentmon_kernel_map_capacity", &hosts),
        Some(16_384.0)
    );
    assert_eq!(
        m.value("agentmon_kernel_map_evictions_total", &hosts),
        Some(0.0)
    );

    // Fail open: with agentmon gone, nothing is refused.
    w.am.stop();
    let after = probe(&in_agent(
        &w,
        &agent,
        &format!("python3 {}", script.display()),
    ));
    assert_eq!(after, all_ok);
}

#[test]
fn a_broken_reload_keeps_the_policy_and_a_good_one_keeps_the_counts() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let deny = |host: &str, name: &str| {
        format!(
            "{}\n[[policy.tool]]\nname = \"claude-code\"\ndeny = [ {{ host = \"{host}\", name = \"{name}\" }} ]\n",
            policy_header(&w)
        )
    };
    reload(&w, &deny("telemetry.vendor.test", "no-telemetry"));
    let agent = w.as_claude(Path::new(NETPEER));
    let v = "agentmon_policy_violations_total";
    let telemetry = [("tool", "claude-code"), ("rule", "no-telemetry")];
    assert!(
        in_agent(&w, &agent, &curl("telemetry.vendor.test"))
            .status
            .success()
    );
    w.expect(v, &telemetry, 1.0);

    // A broken file: the error is logged, the policy stays.
    w.rewrite_config(&format!(
        "{}\n[[policy.tool]]\nname = \"claude-cod\"\n",
        deny("telemetry.vendor.test", "no-telemetry")
    ));
    w.am.hangup();
    assert!(
        wait_until(SETTLE, || w
            .am
            .log_text()
            .contains("config not reloaded, keeping the running one")),
        "{}",
        w.am.log_text()
    );
    let log = w.am.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("config not reloaded"))
        .unwrap();
    assert!(
        line.contains("agentmon.toml:") && line.contains("unknown tool \"claude-cod\""),
        "{line}"
    );
    assert!(
        in_agent(&w, &agent, &curl("telemetry.vendor.test"))
            .status
            .success()
    );
    w.expect(v, &telemetry, 2.0);

    // A good one: the new rules judge, the old counts stay.
    reload(&w, &deny("far.elsewhere.test", "no-far"));
    assert!(
        in_agent(
            &w,
            &agent,
            &[curl("telemetry.vendor.test"), curl("far.elsewhere.test")].join(" && ")
        )
        .status
        .success()
    );
    w.expect(v, &[("tool", "claude-code"), ("rule", "no-far")], 1.0);
    let m = w.expect(v, &telemetry, 2.0);
    assert_eq!(
        m.value(v, &[("tool", "claude-code")]),
        Some(3.0),
        "{}",
        m.text()
    );
}

//! TLS visibility end to end: uprobes on the TLS libraries of agent
//! processes give plaintext sizes per connection and the HTTP requests in
//! them, tied to the same connection (tool, destination) as the kernel's
//! counters. Expected sizes come from the web server's own plaintext counts.
//!
//! The clients start, then wait until agentmon has attached its probes to
//! the library they mapped, as a long-lived agent does: probes attach within
//! milliseconds of the mapping, not before a process's very first call.

use std::{fs, io::Write, path::Path, process::Stdio, time::Duration};

use agentmon_tests::{
    ChildGuard, Internet, ServerConn, World, agent_copy, default_records, require_root,
    run_bounded, sum, wait_until, world, world_with,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUN: Duration = Duration::from_secs(60);
/// A config rule: this path on the model host is telemetry.
const TELEMETRY_PATH: &str = "[[dest.path]]\nhost = \"api.model.test\"\npath = \"/api/event_logging\"\npurpose = \"telemetry\"\n";

/// The plaintext the web server read and wrote, over all its connections.
fn served(w: &World) -> (u64, u64) {
    let conns = w.net.server_conns();
    (
        conns.iter().map(|c| c.plain_in).sum(),
        conns.iter().map(|c| c.plain_out).sum(),
    )
}

/// agentmon's plaintext counters for (tool, dest, library) reach exactly
/// `(egress, ingress)`; returns the last scrape.
fn expect_plaintext(
    w: &World,
    tool: &'static str,
    dest: &'static str,
    lib: &'static str,
    (egress, ingress): (u64, u64),
) -> agentmon_tests::Metrics {
    let [out, inn] = plaintext(tool, dest, lib);
    w.expect("agentmon_tls_plaintext_bytes_total", &out, egress as f64);
    w.expect("agentmon_tls_plaintext_bytes_total", &inn, ingress as f64)
}

/// The plaintext of `conn` counted for (tool, dest, library), and one POST
/// request of `purpose` on it; returns the last scrape.
fn expect_one_post(
    w: &World,
    (tool, dest, lib): (&'static str, &'static str, &'static str),
    purpose: &str,
    plain: (u64, u64),
) -> agentmon_tests::Metrics {
    expect_plaintext(w, tool, dest, lib, plain);
    let request = [
        ("tool", tool),
        ("dest", dest),
        ("method", "POST"),
        ("purpose", purpose),
    ];
    w.expect("agentmon_http_requests_total", &request, 1.0)
}

fn plaintext(
    tool: &'static str,
    dest: &'static str,
    lib: &'static str,
) -> [[(&'static str, &'static str); 4]; 2] {
    [
        [
            ("tool", tool),
            ("dest", dest),
            ("direction", "egress"),
            ("library", lib),
        ],
        [
            ("tool", tool),
            ("dest", dest),
            ("direction", "ingress"),
            ("library", lib),
        ],
    ]
}

/// Runs py_client.py as aider over TLS to api.model.test with `args` once
/// its libssl is probed, as a long-lived agent would be; returns the web
/// server's one connection.
fn aider_once_probed(w: &World, args: &[&str]) -> Vec<ServerConn> {
    let go = w.lab.dir().join("go");
    let mut aider = w.aider_cmd(&["--name", "api.model.test", "--tls", "--port", "443"]);
    aider.args(args).arg("--wait-file").arg(&go);
    let run = ChildGuard::spawn(&mut aider);
    w.wait_probed("aider", "openssl");
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    w.server_conns("203.0.113.20:443", 1)
}

/// node_client.js as gemini-cli: POSTs `body` bytes to telemetry.vendor.test
/// over HTTPS once the file `go` exists.
fn node_client_as_gemini(w: &World, body: &str, go: &Path) -> ChildGuard {
    let script = w.as_gemini("node_client.js");
    let args = [
        script.as_os_str(),
        "telemetry.vendor.test".as_ref(),
        "443".as_ref(),
        "/log".as_ref(),
        body.as_ref(),
        go.as_os_str(),
    ];
    ChildGuard::spawn(&mut w.lab.client_cmd("node", args))
}

/// The connection log's line for `tool`'s one probed connection (node
/// tries IPv6 first; that connection is never probed), once written.
fn log_line(w: &World, tool: &str) -> serde_json::Value {
    let find = || {
        w.log_lines()
            .into_iter()
            .find(|l| l["tool"] == tool && !l["tls_library"].is_null())
    };
    assert!(
        wait_until(Duration::from_secs(15), || find().is_some()),
        "no log line for {tool}: {:?}",
        w.log_lines()
    );
    find().unwrap()
}

#[test]
fn curl_through_libssl_gives_plaintext_sizes_and_the_request() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let curl = w.as_claude(Path::new("/usr/bin/curl"));
    let body = w.lab.dir().join("body");
    fs::write(&body, vec![b'q'; 40_000]).unwrap();
    let config = format!(
        "url = \"https://api.model.test/v1/messages\"\nipv4\ninsecure\nsilent\nheader = \"Expect:\"\ndata-binary = \"@{}\"\n",
        body.display()
    );
    w.curl_probed(&curl, &config);
    let conns = w.server_conns("203.0.113.20:443", 1);
    let m = expect_one_post(
        &w,
        ("claude-code", "api.model.test", "openssl"),
        "model-api",
        (conns[0].plain_in, conns[0].plain_out),
    );
    // Kernel bytes (ciphertext) on the same connection and labels.
    let (sent, _) = sum(&conns);
    let kernel = [
        ("tool", "claude-code"),
        ("proto", "tcp"),
        ("dest", "api.model.test"),
    ];
    assert_eq!(m.value("agentmon_egress_bytes_total", &kernel), Some(sent));
    // Every call was tied to its connection through its own socket syscall.
    assert_eq!(m.value("agentmon_tls_untied_bytes_total", &[]), Some(0.0));
    // Curl is gone: its session's tie went with its connection, and the
    // TLS maps hold nothing and dropped nothing.
    let m =
        w.am.expect("agentmon_kernel_map_entries", &[("map", "ssl_socks")], 0.0);
    for map in ["tls_calls", "tls_pending", "tls_heads", "resolved"] {
        let map = [("map", map)];
        assert_eq!(m.value("agentmon_kernel_map_entries", &map), Some(0.0));
        assert_eq!(
            m.value("agentmon_kernel_map_evictions_total", &map),
            Some(0.0)
        );
    }
}

#[test]
fn python_ssl_through_the_ex_calls_is_seen_and_a_non_agent_is_not() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let conns = aider_once_probed(&w, &["--path", "/v1/messages", "--body", "4321"]);
    let m = expect_plaintext(
        &w,
        "aider",
        "api.model.test",
        "openssl",
        (conns[0].plain_in, conns[0].plain_out),
    );
    // The log line has the plaintext and the request, but no path: paths
    // are logged only when the config opts in.
    let line = log_line(&w, "aider");
    assert_eq!(line["tls_library"], "openssl");
    assert_eq!(line["egress_plaintext_bytes"], conns[0].plain_in);
    assert_eq!(line["ingress_plaintext_bytes"], conns[0].plain_out);
    let request = serde_json::json!({
        "method": "POST",
        "purpose": "model-api",
        "egress_bytes": conns[0].plain_in,
        "ingress_bytes": conns[0].plain_out,
    });
    assert_eq!(line["requests"], serde_json::json!([request]), "{line}");
    // The same library, called by a process that is not an agent.
    let client = Internet::script("py_client.py");
    let out = run_bounded(
        &mut w.lab.client_cmd(
            "python3",
            [
                client.to_str().unwrap(),
                "--name",
                "api.model.test",
                "--tls",
                "--port",
                "443",
                "--body",
                "999",
            ],
        ),
        RUN,
    );
    assert!(out.status.success(), "{out:?}");
    w.server_conns("203.0.113.20:443", 2);
    std::thread::sleep(Duration::from_millis(500));
    let after = w.am.scrape();
    assert_eq!(
        m.series("agentmon_tls_plaintext_bytes_total"),
        after.series("agentmon_tls_plaintext_bytes_total"),
        "a non-agent's TLS must not be recorded"
    );
}

#[test]
fn node_with_openssl_inside_its_executable_is_probed() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let go = w.lab.dir().join("go");
    let run = node_client_as_gemini(&w, "3000", &go);
    w.wait_probed("gemini-cli", "openssl-static");
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    let conns = w.server_conns("203.0.113.30:443", 1);
    expect_one_post(
        &w,
        ("gemini-cli", "telemetry.vendor.test", "openssl-static"),
        "telemetry",
        (conns[0].plain_in, conns[0].plain_out),
    );
}

/// Qwen Code from npm (node running its package file) reporting usage
/// statistics to its vendor's analytics host: the tool is recognised, the
/// host is telemetry, and the plaintext is exact. The test DNS answers the
/// real host name with a test address; nothing else is contacted.
/// An npm agent's node script (node_client.js at `script` under the lab)
/// POSTs to `host`, answered at 203.0.113.30 (the `n`-th connection there):
/// probed in node, exact, and its request labelled `purpose` under `dest`.
fn npm_agent_post(
    w: &World,
    script: &str,
    (tool, host, dest): (&'static str, &str, &'static str),
    purpose: &str,
    n: usize,
) {
    let script = w.lab.dir().join(script);
    agent_copy(&Internet::script("node_client.js"), &script);
    let go = w.lab.dir().join(format!("go-{tool}"));
    let args = [
        script.as_os_str(),
        host.as_ref(),
        "443".as_ref(),
        "/".as_ref(),
        "1234".as_ref(),
        go.as_os_str(),
    ];
    let run = ChildGuard::spawn(&mut w.lab.client_cmd("node", args));
    w.wait_probed(tool, "openssl-static");
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    let conn = w.server_conns("203.0.113.30:443", n + 1).remove(n);
    assert_eq!(conn.sni.as_deref(), Some(host));
    expect_one_post(
        w,
        (tool, dest, "openssl-static"),
        purpose,
        (conn.plain_in, conn.plain_out),
    );
}

#[test]
fn npm_agents_are_probed_and_their_endpoints_labelled() {
    if !require_root() {
        return;
    }
    // Qwen Code's usage statistics, Amp's relay, an Auggie tenant shard.
    const QWEN_RUM: &str = "gb4w8c3ygj-default-sea.rum.aliyuncs.com";
    const AUGGIE_SHARD: &str = "d16.api.augmentcode.com";
    let mut records = default_records();
    for host in [QWEN_RUM, "ampcode.com", AUGGIE_SHARD] {
        records.push(format!("{host}=A:203.0.113.30"));
    }
    let w = world_with(NETPEER, "", &records);
    npm_agent_post(
        &w,
        "lib/node_modules/@qwen-code/qwen-code/cli.js",
        ("qwen-code", QWEN_RUM, "rum.aliyuncs.com"),
        "telemetry",
        0,
    );
    npm_agent_post(
        &w,
        "lib/node_modules/@sourcegraph/amp/dist/main.js",
        ("amp", "ampcode.com", "ampcode.com"),
        "model-api",
        1,
    );
    npm_agent_post(
        &w,
        "lib/node_modules/@augmentcode/auggie/dist/index.js",
        ("auggie", AUGGIE_SHARD, "api.augmentcode.com"),
        "model-api",
        2,
    );
}

#[test]
fn bun_single_file_executable_is_probed_by_pattern() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // Compiled like Claude Code's native binary, installed where it lives.
    let exe = w.lab.dir().join("bun_client");
    let bun = "/var/lib/agentmon/tools/bun/bin/bun";
    let out = run_bounded(
        std::process::Command::new(bun)
            .args(["build", "--compile", "--outfile"])
            .arg(&exe)
            .arg(Internet::script("bun_client.ts")),
        RUN,
    );
    assert!(
        out.status.success(),
        "bun build (cargo xtask setup test installs bun): {out:?}"
    );
    let claude = w.as_claude(&exe);
    let go = w.lab.dir().join("go");
    let run = ChildGuard::spawn(&mut w.lab.client_cmd(
        &claude,
        [
            "api.model.test",
            "443",
            "/v1/messages",
            "2500",
            "fetch",
            go.to_str().unwrap(),
        ],
    ));
    w.wait_probed("claude-code", "boringssl");
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    // Bun races IPv4 and IPv6 (the name has both): sum what the server saw.
    let answered = || w.net.server_conns().iter().any(|c| c.plain_in > 0);
    assert!(wait_until(Duration::from_secs(15), answered));
    let (plain_in, plain_out) = served(&w);
    expect_one_post(
        &w,
        ("claude-code", "api.model.test", "boringssl"),
        "model-api",
        (plain_in, plain_out),
    );
}

#[test]
fn gnutls_cli_is_probed_through_libgnutls() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let cli = w.as_claude(Path::new("/usr/bin/gnutls-cli"));
    // gnutls-cli connects, then sends what it reads from stdin.
    let mut cmd = w
        .lab
        .client_cmd(&cli, ["--insecure", "-p", "443", "api.model.test"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let run = ChildGuard::from_child(child, "gnutls-cli");
    w.wait_probed("claude-code", "gnutls");
    let body = "g".repeat(1500);
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: api.model.test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stdin.write_all(request.as_bytes()).unwrap();
    // The reply arrives, then the server closes its side.
    let answered = || w.net.server_conns().iter().any(|c| c.plain_in > 0);
    assert!(
        wait_until(Duration::from_secs(15), answered),
        "{:?}",
        w.net.server_conns()
    );
    drop(stdin);
    let _ = run.wait_output(RUN);
    let (plain_in, plain_out) = served(&w);
    assert_eq!(plain_in, request.len() as u64);
    expect_one_post(
        &w,
        ("claude-code", "api.model.test", "gnutls"),
        "model-api",
        (plain_in, plain_out),
    );
}

#[test]
fn agent_running_before_agentmon_gets_its_tls_probed() {
    if !require_root() {
        return;
    }
    let mut w = world(NETPEER, "");
    let go = w.lab.dir().join("go");
    let run = node_client_as_gemini(&w, "777", &go);
    std::thread::sleep(Duration::from_millis(300));
    // The agent now runs before this agentmon: found by its start-up scan.
    w.restart_agentmon();
    w.wait_probed("gemini-cli", "openssl-static");
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    let conns = w.server_conns("203.0.113.30:443", 1);
    expect_plaintext(
        &w,
        "gemini-cli",
        "telemetry.vendor.test",
        "openssl-static",
        (conns[0].plain_in, conns[0].plain_out),
    );
}

#[test]
fn http2_requests_are_read_with_their_paths_classified() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, TELEMETRY_PATH);
    let _server = w.h2_server();
    let script = w.as_gemini("h2_client.js");
    let go = w.lab.dir().join("go");
    let paths = ["/v1/messages", "/api/event_logging/batch", "/v1/messages"];
    let mut args = vec![
        script.to_str().unwrap(),
        "api.model.test",
        "8443",
        go.to_str().unwrap(),
    ];
    args.extend(paths);
    let run = ChildGuard::spawn(&mut w.lab.client_cmd("node", args));
    w.wait_probed("gemini-cli", "openssl-static");
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    let model = [
        ("tool", "gemini-cli"),
        ("dest", "api.model.test"),
        ("method", "POST"),
        ("purpose", "model-api"),
    ];
    let telemetry = [
        ("tool", "gemini-cli"),
        ("dest", "api.model.test"),
        ("method", "POST"),
        ("purpose", "telemetry"),
    ];
    w.expect("agentmon_http_requests_total", &model, 2.0);
    w.expect("agentmon_http_requests_total", &telemetry, 1.0);
    // One request at a time: each is sized on its own. Its writes hold a
    // HEADERS frame and a 300-byte body in a DATA frame (9-byte header);
    // the sizes add up to at most the connection's plaintext (the preface
    // and SETTINGS before the first request are in none).
    let line = log_line(&w, "gemini-cli");
    let requests = line["requests"].as_array().expect("requests in the log");
    let purposes: Vec<_> = requests.iter().map(|r| r["purpose"].clone()).collect();
    assert_eq!(purposes, ["model-api", "telemetry", "model-api"], "{line}");
    let total = |key: &str| {
        requests
            .iter()
            .map(|r| r[key].as_u64().unwrap())
            .sum::<u64>()
    };
    for r in requests {
        assert!(r["egress_bytes"].as_u64().unwrap() >= 309, "{r}");
        assert!(r["ingress_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r.get("path").is_none(), "{r}");
    }
    assert!(
        total("egress_bytes") <= line["egress_plaintext_bytes"].as_u64().unwrap(),
        "{line}"
    );
    assert!(
        total("ingress_bytes") <= line["ingress_plaintext_bytes"].as_u64().unwrap(),
        "{line}"
    );
}

#[test]
fn keep_alive_requests_are_sized_one_by_one_and_paths_logged_on_opt_in() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, &format!("[log]\npaths = true\n{TELEMETRY_PATH}"));
    let conns = aider_once_probed(
        &w,
        &[
            "--then",
            "/v1/messages?beta=true&key=secret:5000",
            "--then",
            "/api/event_logging/batch:300",
            "--path",
            "/v1/messages#frag",
            "--body",
            "20000",
        ],
    );
    let served = &conns[0].requests;
    assert_eq!(served.len(), 3, "{:?}", conns[0]);
    let line = log_line(&w, "aider");
    let record = |i: usize, purpose: &str, path: &str| {
        serde_json::json!({
            "method": "POST",
            "purpose": purpose,
            "path": path,
            "egress_bytes": served[i].0,
            "ingress_bytes": served[i].1,
        })
    };
    let want = serde_json::json!([
        record(0, "model-api", "/v1/messages"),
        record(1, "telemetry", "/api/event_logging/batch"),
        record(2, "model-api", "/v1/messages"),
    ]);
    assert_eq!(line["requests"], want, "{line}");
    assert!(
        !line.to_string().contains("secret"),
        "query strings never reach the log: {line}"
    );
    // The size histogram: one observation per request and direction.
    let hist = |purpose, direction| {
        [
            ("tool", "aider"),
            ("purpose", purpose),
            ("direction", direction),
        ]
    };
    let model_out = hist("model-api", "egress");
    w.expect("agentmon_http_request_bytes_count", &model_out, 2.0);
    let m = w.expect(
        "agentmon_http_request_bytes_sum",
        &model_out,
        (served[0].0 + served[2].0) as f64,
    );
    let telemetry_in = hist("telemetry", "ingress");
    assert_eq!(
        m.value("agentmon_http_request_bytes_sum", &telemetry_in),
        Some(served[1].1 as f64)
    );
    // A 300-byte body plus its head is under 1 KiB; 20000 is not.
    let le = |bound: &'static str| {
        [
            ("tool", "aider"),
            ("purpose", "model-api"),
            ("direction", "egress"),
            ("le", bound),
        ]
    };
    assert_eq!(
        m.value("agentmon_http_request_bytes_bucket", &le("16384")),
        Some(1.0)
    );
    assert_eq!(
        m.value("agentmon_http_request_bytes_bucket", &le("65536")),
        Some(2.0)
    );
}

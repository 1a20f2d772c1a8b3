//! A real agent's requests, from its published package (installed by `cargo
//! xtask setup test`, see agent_layouts.rs), against the test internet.
//!
//! Copilot CLI 1.0.102 unpacks a native add-on (`runtime.node`, 145 MB, a
//! stripped OpenSSL linked in) under `~/.cache/copilot` and loads it about
//! two seconds after its start; the GitHub API requests it makes with a
//! token go through that add-on's OpenSSL. Its first connection starts
//! about 0.4 s after the add-on is loaded. agentmon has never seen the
//! add-on (a fresh state folder): it must find it, search it (0.1 s on the
//! `tls-search` thread) and attach its probes before that first request.

use std::{collections::BTreeMap, path::Path, time::Duration};

use agentmon_tests::{World, in_ci, require_root, run_bounded, wait_until, world};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
/// Where `cargo xtask setup test` installs Copilot CLI's platform package.
const COPILOT: &str =
    "/var/lib/agentmon/tools/agents/home/project/node_modules/@github/copilot-linux-x64/copilot";

/// Whether Copilot CLI is installed; under CI its absence is a failure.
fn installed() -> bool {
    if Path::new(COPILOT).is_file() {
        return true;
    }
    let message = format!("no {COPILOT}: run `cargo xtask setup test`");
    assert!(!in_ci(), "{message}; CI must run this test, not skip it");
    eprintln!("skipping: {message}");
    false
}

#[test]
fn copilot_cli_requests_through_its_addon_are_probed_from_the_first() {
    if !require_root() || !installed() {
        return;
    }
    let w = world(NETPEER, "");
    let home = w.lab.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // The test internet's certificate is self-signed for api.model.test.
    let cert = w.lab.dir().join("cert.pem");
    let api = "https://api.model.test";
    let mut cmd = w.lab.client_cmd(
        COPILOT,
        [
            "-p",
            "say hi",
            "--allow-all-tools",
            "--disable-client-telemetry",
        ],
    );
    cmd.current_dir(&home)
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "dumb")
        .env("SSL_CERT_FILE", &cert)
        .env("NODE_EXTRA_CA_CERTS", &cert)
        .env(
            "COPILOT_GITHUB_TOKEN",
            "gho_0123456789abcdefghijABCDEFGHIJ012345",
        )
        .env("GH_HOST", "api.model.test")
        .env("COPILOT_API_URL", api)
        .env("COPILOT_DEBUG_GITHUB_API_URL", api);
    // It fails (the server's answers are no API's), after its retries.
    let out = run_bounded(&mut cmd, Duration::from_secs(120));
    let server = w.net.server_conns();
    assert!(
        server.len() >= 5,
        "Copilot CLI made {} connections; its output: {}{}",
        server.len(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every connection's close record is written.
    wait_until(Duration::from_secs(15), || {
        copilot_conns(&w).len() >= server.len()
    });
    let conns = copilot_conns(&w);
    let libraries: BTreeMap<String, usize> = conns.iter().fold(BTreeMap::new(), |mut count, c| {
        *count.entry(c.0.clone()).or_default() += 1;
        count
    });
    assert_eq!(
        libraries,
        BTreeMap::from([("openssl-static".to_string(), server.len())]),
        "every connection probed through the add-on's OpenSSL, none sized from records; agentmon's log:\n{}",
        w.am.log_text()
    );
    let mut seen: Vec<(u64, u64)> = conns.iter().map(|c| (c.1, c.2)).collect();
    let mut decrypted: Vec<(u64, u64)> = server.iter().map(|s| (s.plain_in, s.plain_out)).collect();
    seen.sort_unstable();
    decrypted.sort_unstable();
    assert_eq!(
        seen, decrypted,
        "each connection's plaintext (out, in) equals what the server decrypted and sent"
    );
    let requests: usize = server.iter().map(|s| s.requests.len()).sum();
    let counted =
        w.am.scrape()
            .series("agentmon_http_requests_total")
            .iter()
            .filter(|(labels, _)| labels.get("tool").is_some_and(|t| t == "copilot"))
            .map(|(_, value)| value)
            .sum::<f64>();
    assert_eq!(counted, requests as f64, "request heads read");
}

/// Copilot CLI's TLS connections in the connection log: (library,
/// plaintext out, plaintext in).
fn copilot_conns(w: &World) -> Vec<(String, u64, u64)> {
    w.tcp_log_lines()
        .iter()
        .filter(|l| l["tool"] == "copilot" && l["event"] == "close" && l["remote_port"] == 443)
        .map(|l| {
            (
                l["tls_library"].as_str().unwrap_or("none").to_string(),
                l["egress_plaintext_bytes"].as_u64().unwrap_or(0),
                l["ingress_plaintext_bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

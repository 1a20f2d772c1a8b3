//! TLS stacks no probe fits, with every probe on: a stripped rustls client
//! where Codex's npm package keeps its native binary, and a static,
//! stripped Go crypto/tls client where Windsurf keeps its language server
//! and where `go install` puts Crush.
//! Their TLS 1.3 plaintext sizes come from record framing: egress equal to
//! what the web server decrypted, ingress past it by the session tickets.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{
    Internet, ServerConn, World, agent_copy, require_root, run_bounded, wait_until, world,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUSTLS_CLIENT: &str = env!("CARGO_BIN_EXE_rustls_client");
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);
/// What OpenSSL's two session tickets add to a connection's ingress.
const TICKETS_MAX: u64 = 2 * 300;
/// The web server's IPv4 address, for the client that takes no name.
const SERVER: &str = "203.0.113.20:443";

/// Runs `cmd` and returns the web server's record of its one connection
/// (over IPv4 or IPv6, as its resolver chose).
fn one_connection(w: &World, mut cmd: Command, before: usize) -> ServerConn {
    let out = run_bounded(&mut cmd, RUN);
    assert!(out.status.success(), "{out:?}");
    let arrived = wait_until(SETTLE, || w.net.server_conns().len() > before);
    assert!(arrived, "web server saw {:?}", w.net.server_conns());
    w.net.server_conns().remove(before)
}

/// Checks the derived plaintext of `tool` against the server's counts.
fn derived(w: &World, tool: &str, conn: &ServerConn) {
    let labels = |direction| {
        [
            ("tool", tool),
            ("dest", "api.model.test"),
            ("direction", direction),
            ("library", "record"),
        ]
    };
    let m = w.expect(
        "agentmon_tls_plaintext_bytes_total",
        &labels("egress"),
        conn.plain_in as f64,
    );
    let ingress = m
        .value("agentmon_tls_plaintext_bytes_total", &labels("ingress"))
        .unwrap_or_default() as u64;
    assert!(
        ingress > conn.plain_out && ingress - conn.plain_out <= TICKETS_MAX,
        "{tool}: ingress derived {ingress}, server sent {}",
        conn.plain_out
    );
    assert_eq!(
        m.value("agentmon_tls_connections_unseen_total", &[("tool", tool)]),
        Some(0.0)
    );
}

/// `strip`s a copy of `program` at `path`: agents ship without symbols.
fn stripped_copy(program: &Path, path: &Path) {
    agent_copy(program, path);
    let out = run_bounded(Command::new("strip").arg(path), RUN);
    assert!(out.status.success(), "strip: {out:?}");
}

/// go_client.go built static and stripped (`-s -w`), as Go agents ship.
fn go_client(w: &World) -> PathBuf {
    let out_path = w.lab.dir().join("go_client");
    let mut build = Command::new("go");
    build
        .args(["build", "-ldflags=-s -w", "-o"])
        .arg(&out_path)
        .arg(Internet::script("go_client.go"))
        .env("CGO_ENABLED", "0")
        // Shared by runs: std's crypto/tls builds once per machine.
        .env(
            "GOCACHE",
            std::env::temp_dir().join("agentmon-tests-gocache"),
        )
        .env("HOME", w.lab.dir());
    let out = run_bounded(&mut build, Duration::from_secs(300));
    assert!(out.status.success(), "go build: {out:?}");
    out_path
}

#[test]
fn rustls_and_go_clients_get_their_plaintext_sizes_from_the_records() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let codex = w
        .lab
        .dir()
        .join("lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex-x86_64-unknown-linux-musl");
    stripped_copy(Path::new(RUSTLS_CLIENT), &codex);
    let args = [SERVER, "api.model.test", "/v1/responses", "23456"];
    let conn = one_connection(&w, w.lab.client_cmd(&codex, args), 0);
    derived(&w, "codex", &conn);

    let windsurf = w
        .lab
        .dir()
        .join(".windsurf/extensions/codeium/bin/language_server_linux_x64");
    let go = go_client(&w);
    agent_copy(&go, &windsurf);
    let args = [
        "api.model.test",
        "443",
        "/exa.language_server_pb/GetChat",
        "7777",
    ];
    let conn = one_connection(&w, w.lab.client_cmd(&windsurf, args), 1);
    derived(&w, "windsurf", &conn);
    // Crush where `go install` puts it.
    let crush = w.lab.dir().join("home/go/bin/crush");
    agent_copy(&go, &crush);
    let args = ["api.model.test", "443", "/v1/messages", "5555"];
    let conn = one_connection(&w, w.lab.client_cmd(&crush, args), 2);
    derived(&w, "crush", &conn);

    // The connection log says where each figure came from.
    let lines = w.tcp_log_lines();
    for tool in ["codex", "windsurf", "crush"] {
        let line = lines
            .iter()
            .find(|l| l["tool"] == tool && l["event"] == "close")
            .unwrap_or_else(|| panic!("no close record of {tool}: {lines:?}"));
        assert_eq!(line["tls_library"], "record", "{line}");
    }
}

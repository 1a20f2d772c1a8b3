//! TLS stacks beyond the C libraries, with every probe on:
//! - a stripped rustls client where Codex's npm package keeps its native
//!   binary, on ring: no probe fits, so its TLS 1.3 plaintext sizes come
//!   from record framing: egress equal to what the web server decrypted,
//!   ingress past it by the session tickets;
//! - the same client built as Codex is, static for musl on aws-lc: aws-lc's
//!   record functions are found in it and probed, exact both ways, with
//!   its request read;
//! - a static, stripped Go crypto/tls client where Windsurf keeps its
//!   language server and where `go install` puts Crush: probed through the
//!   names in its `.gopclntab`, exact both ways, with its HTTP/1 and HTTP/2
//!   requests read.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{
    Agentmon, ChildGuard, Internet, Metrics, ServerConn, World, agent_copy, require_root,
    run_bounded, wait_until, world,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUSTLS_CLIENT: &str = env!("CARGO_BIN_EXE_rustls_client");
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);
/// What OpenSSL's two session tickets add to a connection's ingress.
const TICKETS_MAX: u64 = 2 * 300;
/// The web server's IPv4 address, for the client that takes no name.
const SERVER: &str = "203.0.113.20:443";
/// The static musl rustls client on aws-lc in AGENTMON_AWSLC_SAMPLES.
const STATIC: &str = "rustls_awslc_client.stripped";

/// Runs `cmd` and returns the web server's record of its one connection
/// (over IPv4 or IPv6, as its resolver chose).
fn one_connection(w: &World, mut cmd: Command, before: usize) -> ServerConn {
    let out = run_bounded(&mut cmd, RUN);
    assert!(out.status.success(), "{out:?}");
    conns_seen(w, before + 1).remove(before)
}

/// Checks the derived plaintext of `tool` against the server's counts; the
/// metrics it read last.
fn derived(am: &Agentmon, tool: &str, conn: &ServerConn) -> Metrics {
    let labels = |direction| {
        [
            ("tool", tool),
            ("dest", "api.model.test"),
            ("direction", direction),
            ("library", "record"),
        ]
    };
    let m = am.expect(
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
    m
}

/// `strip`s a copy of `program` at `path`: agents ship without symbols.
fn stripped_copy(program: &Path, path: &Path) {
    agent_copy(program, path);
    let out = run_bounded(Command::new("strip").arg(path), RUN);
    assert!(out.status.success(), "strip: {out:?}");
}

/// go_client.go built static and stripped, in the lab's folder.
fn go_client(w: &World) -> PathBuf {
    Internet::go_client(&w.lab.dir().join("go_client"))
}

#[test]
fn rustls_client_gets_its_plaintext_sizes_from_the_records() {
    if !require_root() {
        return;
    }
    rustls_at_codex_path(|codex| stripped_copy(Path::new(RUSTLS_CLIENT), codex));
}

/// The same client as Codex's release is built: static for musl, on aws-lc
/// (rustls's default provider), stripped (`cargo xtask test` builds it).
/// aws-lc's record functions are found in it and probed: exact both ways,
/// its request read.
#[test]
fn static_rustls_on_aws_lc_is_probed_exactly_through_its_record_functions() {
    let Some((w, m)) = probed_at_codex_path(STATIC, "rustls") else {
        return;
    };
    assert_eq!(
        m.value("agentmon_tls_untied_bytes_total", &[]),
        Some(0.0),
        "every record was tied to its connection"
    );
    let line = probed_close(&w, "codex", "rustls");
    assert_eq!(line["tls_library"], "rustls", "{line}");
}

/// The openssl crate's vendored OpenSSL 3 (3.6: `ssl_write_internal`
/// with the `flags` argument of 3.3+), static for musl and stripped, at
/// Codex's npm path: found by the names OpenSSL records, probed, exact
/// both ways, its request read.
#[test]
fn vendored_openssl_of_the_openssl_crate_is_probed_exactly() {
    probed_at_codex_path("openssl_vendored_client.stripped", "openssl-static");
}

/// Runs `sample` at Codex's npm path for one POST once its `lib` is
/// probed: exact both ways, its request read. The world, and the metrics
/// read last; `None` where the test cannot run.
fn probed_at_codex_path(sample: &str, lib: &'static str) -> Option<(World, Metrics)> {
    let (w, codex) = sample_world(sample, "", codex_npm_path)?;
    let go = go_file(&w);
    let args = [SERVER, "api.model.test", "/v1/responses", "23456"];
    let mut cmd = w.lab.client_cmd(&codex, args);
    cmd.arg(&go);
    once_probed(&w, cmd, "codex", lib, &go);
    let m = expect_probed(&w, "codex", lib);
    Some((w, m))
}

/// Where Codex 0.171 installs its app-server daemon, under HOME.
const DAEMON: &str = "home/.codex/packages/app-server-daemon/releases";

/// Codex 0.171's app-server daemon install: Codex copies itself to a
/// staging directory, runs the copy and renames the directory, while
/// agentmon is busy (searching Codex's own 315 MB); the daemon then runs
/// from the new name. The staged process and the one run from the new
/// name are both probed, exact both ways.
#[test]
fn a_program_renamed_after_its_exec_is_probed() {
    let staging = |w: &World| w.lab.dir().join(DAEMON).join(".staging.jLUbB3");
    let Some((w, staged)) = sample_world(STATIC, "", |w| staging(w).join("bin/codex")) else {
        return;
    };
    let release = w
        .lab
        .dir()
        .join(DAEMON)
        .join("0.171.0-x86_64-unknown-linux-musl");
    let go = go_file(&w);
    changed_while_busy(&w, &staged, &go, || {
        std::fs::rename(staging(&w), &release).unwrap()
    });

    let mut cmd = w.lab.client_cmd(release.join("bin/codex"), CLIENT_ARGS);
    let out = run_bounded(cmd.arg(&go), RUN);
    assert!(out.status.success(), "{out:?}");
    expect_probed_posts(&w, 2);
}

/// An agent's program deleted while it runs (an upgrade in place replaced
/// it), while agentmon is busy: the process is probed through its own
/// mapping of the deleted file, exact both ways.
#[test]
fn a_program_deleted_after_its_exec_is_probed() {
    let Some((w, codex)) = sample_world(STATIC, "", codex_npm_path) else {
        return;
    };
    let go = go_file(&w);
    changed_while_busy(&w, &codex, &go, || std::fs::remove_file(&codex).unwrap());
    expect_probed_posts(&w, 1);
}

/// The state folder keeps the probe points agentmon found: the next run
/// probes a program from its exec without searching it again (Codex's
/// 315 MB take 0.2 s here, its first request leaves 0.4 s after its
/// exec), so the first request of a client that does not wait is read.
#[test]
fn a_restarted_agentmon_probes_a_program_it_searched_before_from_its_exec() {
    let Some((mut w, codex)) = sample_world(STATIC, "", codex_npm_path) else {
        return;
    };
    // As Codex's release binary: no build id, so known by its fingerprint.
    let mut objcopy = Command::new("objcopy");
    objcopy
        .arg("--remove-section=.note.gnu.build-id")
        .arg(&codex);
    let out = run_bounded(&mut objcopy, RUN);
    assert!(out.status.success(), "objcopy: {out:?}");
    let state = w.lab.dir().join("state");
    w.agentmon_with_state(&state);
    let go = go_file(&w);
    let mut cmd = w.lab.client_cmd(&codex, CLIENT_ARGS);
    cmd.arg(&go);
    once_probed(&w, cmd, "codex", "rustls", &go);
    let kept = std::fs::read_to_string(state.join("tls-plans.json")).unwrap();
    assert!(kept.contains(r#""key":"fp:"#), "{kept}");

    w.agentmon_with_state(&state);
    let mut cmd = w.lab.client_cmd(&codex, CLIENT_ARGS);
    let out = run_bounded(&mut cmd, RUN);
    assert!(out.status.success(), "{out:?}");
    let log = w.am.log_text();
    let kept = "TLS probe points known from another copy of this build or an earlier run";
    assert!(log.contains(kept), "{log}");
    // Counters continue from the first run's: both requests, exact.
    expect_probed_posts(&w, 2);
}

/// The static client's arguments: one POST to the web server.
const CLIENT_ARGS: [&str; 4] = [SERVER, "api.model.test", "/v1/responses", "23456"];

/// Runs `client` (waiting for `go`) with agentmon paused, `change`s its
/// file once it runs, resumes agentmon, and lets it go once probed.
fn changed_while_busy(w: &World, client: &Path, go: &Path, change: impl FnOnce()) {
    w.am.pause();
    let mut cmd = w.lab.client_cmd(client, CLIENT_ARGS);
    let run = ChildGuard::spawn(cmd.arg(go));
    // The namespace wrapper has exec'd the client.
    let exe = format!("/proc/{}/exe", run.id());
    let ran = wait_until(SETTLE, || {
        std::fs::read_link(&exe).is_ok_and(|p| p == client)
    });
    change();
    w.am.resume();
    assert!(ran, "{} did not start", client.display());
    w.wait_probed("codex", "rustls");
    std::fs::write(go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
}

/// The server's `n` connections are codex's, probed in rustls: exact
/// both ways, each one's request read, every record tied.
fn expect_probed_posts(w: &World, n: usize) {
    let conns = conns_seen(w, n);
    let sent = conns.iter().map(|c| c.plain_in).sum::<u64>() as f64;
    let received = conns.iter().map(|c| c.plain_out).sum::<u64>() as f64;
    let egress = plaintext("codex", "rustls", "egress");
    w.expect("agentmon_tls_plaintext_bytes_total", &egress, sent);
    let ingress = plaintext("codex", "rustls", "ingress");
    w.expect("agentmon_tls_plaintext_bytes_total", &ingress, received);
    let request = [
        ("tool", "codex"),
        ("dest", "api.model.test"),
        ("method", "POST"),
    ];
    let m = w.expect("agentmon_http_requests_total", &request, n as f64);
    assert_eq!(m.value("agentmon_tls_untied_bytes_total", &[]), Some(0.0));
}

/// Copilot CLI's shape: rustls on aws-lc in a stripped native add-on,
/// aws-lc compiled by clang (which shares one error call among a
/// function's errors and inlines `EVP_AEAD_CTX_open_gather`), loaded at
/// run time from where Copilot CLI unpacks its `runtime.node` by the
/// program at Copilot CLI's npm path.
#[test]
fn rustls_on_clang_built_aws_lc_in_an_addon_loaded_at_run_time_is_probed() {
    let Some((w, addon)) = sample_world("rustls_awslc_addon.node.stripped", "", |w| {
        w.lab
            .dir()
            .join("home/.cache/copilot/pkg/linux-x64/1.0.102/prebuilds/linux-x64/runtime.node")
    }) else {
        return;
    };
    let loader = w
        .lab
        .dir()
        .join("lib/node_modules/@github/copilot-linux-x64/copilot");
    cc("addon_loader.c", &[], &loader);
    let go = go_file(&w);
    let args = [SERVER, "api.model.test", "/v1/responses", "23456"];
    let mut cmd = w.lab.client_cmd(&loader, [&addon]);
    cmd.args(args).arg(&go);
    once_probed(&w, cmd, "copilot", "rustls", &go);
    let m = expect_probed(&w, "copilot", "rustls");
    assert_eq!(m.value("agentmon_tls_untied_bytes_total", &[]), Some(0.0));
}

/// The static aws-lc client run three times from an agent's shell, nothing
/// waiting for agentmon, as a helper an agent runs: each process's probes
/// attach from its exec event on, before its first record.
#[test]
fn static_rustls_on_aws_lc_gets_its_first_request_counted() {
    let Some((w, helper)) =
        sample_world(STATIC, "", |w| w.lab.dir().join("home/bin/rustls-helper"))
    else {
        return;
    };
    let args = format!("{SERVER} api.model.test /v1/responses 3333");
    three_runs_from_a_shell(&w, &helper, &args, "rustls");
}

/// Runs `client` with `args` three times from Claude Code's shell, nothing
/// waiting for agentmon: each process's probes of `lib` attach from its
/// exec event on, before its first write, so every connection's plaintext
/// is exact both ways, none derived from records.
fn three_runs_from_a_shell(w: &World, client: &Path, args: &str, lib: &'static str) {
    let claude = w.as_claude(Path::new(NETPEER));
    let one = format!("{} {args}", client.display());
    w.agent_shell(&claude, &format!("set -e\n{one}\n{one}\n{one}"));
    let conns = conns_seen(w, 3);
    let sent = conns.iter().map(|c| c.plain_in).sum::<u64>() as f64;
    let received = conns.iter().map(|c| c.plain_out).sum::<u64>() as f64;
    let egress = plaintext("claude-code", lib, "egress");
    w.expect("agentmon_tls_plaintext_bytes_total", &egress, sent);
    let ingress = plaintext("claude-code", lib, "ingress");
    let m = w.expect("agentmon_tls_plaintext_bytes_total", &ingress, received);
    let libraries = m.label_values("agentmon_tls_plaintext_bytes_total", "library");
    assert!(!libraries.contains("record"), "{libraries:?}");
}

/// Without the receive tracepoint (the hidden `--without rx-tie`) the
/// records rustls on aws-lc receives could not be tied to their socket, so
/// it is not probed: its sizes come from the records, as for rustls on
/// ring, and nothing is counted untied.
#[test]
fn without_rx_tie_static_rustls_is_sized_from_its_records() {
    let Some((mut w, codex)) = sample_world(STATIC, "", codex_npm_path) else {
        return;
    };
    let am = w.agentmon_without("rx-tie");
    let args = [SERVER, "api.model.test", "/v1/responses", "23456"];
    let conn = one_connection(&w, w.lab.client_cmd(&codex, args), 0);
    let m = derived(&am, "codex", &conn);
    assert_eq!(m.value("agentmon_tls_untied_bytes_total", &[]), Some(0.0));
    assert_eq!(
        m.value("agentmon_uprobes_attached", &[("library", "rustls")]),
        Some(0.0)
    );
}

/// A world with `sample`, a client `cargo xtask test` builds into
/// AGENTMON_AWSLC_SAMPLES, copied to `place`; `None` for a test that
/// cannot run (no root, or outside CI without the samples).
fn sample_world(
    sample: &str,
    config: &str,
    place: impl FnOnce(&World) -> PathBuf,
) -> Option<(World, PathBuf)> {
    if !require_root() {
        return None;
    }
    let samples = std::env::var_os("AGENTMON_AWSLC_SAMPLES");
    assert!(
        samples.is_some() || std::env::var_os("CI").is_none(),
        "AGENTMON_AWSLC_SAMPLES is not set: `cargo xtask test` builds the client and sets it"
    );
    let build = Path::new(&samples?).join(sample);
    let w = world(NETPEER, config);
    let client = place(&w);
    agent_copy(&build, &client);
    Some((w, client))
}

/// Where Codex's npm package keeps its native binary.
fn codex_npm_path(w: &World) -> PathBuf {
    w.lab
        .dir()
        .join("lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex-x86_64-unknown-linux-musl")
}

/// Runs a rustls client put at Codex's npm path by `install`: its TLS 1.3
/// sizes come from the records, and the log says why once.
fn rustls_at_codex_path(install: impl FnOnce(&Path)) {
    let w = world(NETPEER, "");
    let codex = codex_npm_path(&w);
    install(&codex);
    let args = [SERVER, "api.model.test", "/v1/responses", "23456"];
    let conn = one_connection(&w, w.lab.client_cmd(&codex, args), 0);
    derived(&w.am, "codex", &conn);
    // The connection log says where the figures came from.
    let lines = w.tcp_log_lines();
    let line = lines
        .iter()
        .find(|l| l["tool"] == "codex" && l["event"] == "close")
        .unwrap_or_else(|| panic!("no close record of codex: {lines:?}"));
    assert_eq!(line["tls_library"], "record", "{line}");
    // And the log says once why, naming the library no probe fits.
    let log = w.am.log_text();
    let why: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("derived from its TLS records"))
        .collect();
    assert_eq!(why.len(), 1, "{log}");
    assert!(
        why[0].contains("tool=\"codex\"") && why[0].contains("it links rustls"),
        "{}",
        why[0]
    );
}

/// The web server's connections, once `n` exist (over IPv4 or IPv6, as
/// the client's resolver chose).
fn conns_seen(w: &World, n: usize) -> Vec<ServerConn> {
    let arrived = wait_until(SETTLE, || w.net.server_conns().len() >= n);
    assert!(arrived, "web server saw {:?}", w.net.server_conns());
    w.net.server_conns()
}

/// Runs the Go client as `agent` with `args` once agentmon has probed its
/// crypto/tls, as a long-lived agent would be.
fn go_once_probed(w: &World, agent: &Path, tool: &str, args: &[&str]) {
    let go = go_file(w);
    let mut cmd = w.lab.client_cmd(agent, ["-wait".as_ref(), go.as_os_str()]);
    cmd.args(args);
    once_probed(w, cmd, tool, "go", &go);
}

/// The file whose creation lets a waiting client go (none yet).
fn go_file(w: &World) -> PathBuf {
    let go = w.lab.dir().join("go");
    let _ = std::fs::remove_file(&go);
    go
}

/// Runs `cmd`, a client that waits for the file `go`, once agentmon has
/// probed its `lib` for `tool`.
fn once_probed(w: &World, mut cmd: Command, tool: &str, lib: &str, go: &Path) {
    let run = ChildGuard::spawn(&mut cmd);
    w.wait_probed(tool, lib);
    std::fs::write(go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
}

/// The close record of `tool`'s connection the probes of `lib` saw, once
/// written (an attempt over IPv6 to a server on IPv4 only has none).
fn probed_close(w: &World, tool: &str, lib: &str) -> serde_json::Value {
    let find = || {
        w.tcp_log_lines()
            .into_iter()
            .find(|l| l["tool"] == tool && l["event"] == "close" && l["tls_library"] == lib)
    };
    assert!(
        wait_until(SETTLE, || find().is_some()),
        "no probed close record of {tool}: {:?}",
        w.log_lines()
    );
    find().unwrap()
}

fn plaintext(
    tool: &'static str,
    lib: &'static str,
    direction: &'static str,
) -> [(&'static str, &'static str); 4] {
    [
        ("tool", tool),
        ("dest", "api.model.test"),
        ("direction", direction),
        ("library", lib),
    ]
}

/// The test internet's C program `source` built with `flags` at `path`,
/// with OpenSSL linked in from Debian's libssl.a and libcrypto.a (OpenSSL
/// 3), and stripped.
fn cc(source: &str, flags: &[&str], path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut build = Command::new("gcc");
    build.args(["-O2", "-o"]).arg(path).args(flags);
    build.arg(Internet::script(source));
    build.args(["-l:libssl.a", "-l:libcrypto.a"]);
    let out = run_bounded(&mut build, RUN);
    assert!(out.status.success(), "gcc: {out:?}");
    let out = run_bounded(Command::new("strip").arg(path), RUN);
    assert!(out.status.success(), "strip: {out:?}");
}

/// The server's one connection is `tool`'s, probed in `lib`: exact both
/// ways, and its one request read. The metrics it read last.
fn expect_probed(w: &World, tool: &'static str, lib: &'static str) -> Metrics {
    let conn = &conns_seen(w, 1)[0];
    let egress = plaintext(tool, lib, "egress");
    w.expect(
        "agentmon_tls_plaintext_bytes_total",
        &egress,
        conn.plain_in as f64,
    );
    let ingress = plaintext(tool, lib, "ingress");
    w.expect(
        "agentmon_tls_plaintext_bytes_total",
        &ingress,
        conn.plain_out as f64,
    );
    let request = [
        ("tool", tool),
        ("dest", "api.model.test"),
        ("method", "POST"),
    ];
    w.expect("agentmon_http_requests_total", &request, 1.0)
}

/// ssl_static_client.c's arguments: one POST to the web server, once `go`
/// exists.
fn static_client_args(go: &Path) -> Vec<std::ffi::OsString> {
    let args = [
        "203.0.113.20",
        "443",
        "api.model.test",
        "/v1/responses",
        "23456",
    ];
    let mut out: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    out.push(go.into());
    out
}

#[test]
fn stripped_static_openssl_is_probed_through_the_names_it_records() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // Where Codex's release binary goes (`~/.local/bin/codex`).
    let codex = w.lab.dir().join("home/.local/bin/codex");
    cc("ssl_static_client.c", &["-static"], &codex);
    let go = go_file(&w);
    let cmd = w.lab.client_cmd(&codex, static_client_args(&go));
    once_probed(&w, cmd, "codex", "openssl-static", &go);
    expect_probed(&w, "codex", "openssl-static");
}

#[test]
fn stripped_openssl_in_an_addon_loaded_at_run_time_is_probed() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    // A native add-on with OpenSSL linked in and hidden (only its entry
    // exported), stripped, loaded by a program at Codex's path as node
    // loads Copilot CLI's runtime.node.
    let addon = w.lab.dir().join("home/.local/lib/codex/runtime.node");
    let flags = [
        "-shared",
        "-fPIC",
        "-Dmain=addon_main",
        "-Wl,--exclude-libs,ALL",
    ];
    cc("ssl_static_client.c", &flags, &addon);
    let loader = w.lab.dir().join("home/.local/bin/codex");
    cc("addon_loader.c", &[], &loader);
    let go = go_file(&w);
    let mut args = vec![addon.into_os_string()];
    args.extend(static_client_args(&go));
    let cmd = w.lab.client_cmd(&loader, args);
    once_probed(&w, cmd, "codex", "openssl-static", &go);
    expect_probed(&w, "codex", "openssl-static");
}

#[test]
fn go_crypto_tls_is_probed_exactly_through_its_function_table() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "[log]\npaths = true\n");
    let go = go_client(&w);
    // Windsurf's language server: one request on a hand-written tls.Dial.
    let windsurf = w
        .lab
        .dir()
        .join(".windsurf/extensions/codeium/bin/language_server_linux_x64");
    agent_copy(&go, &windsurf);
    let path = "/exa.language_server_pb/GetChat:7777";
    go_once_probed(&w, &windsurf, "windsurf", &["api.model.test", "443", path]);
    expect_probed(&w, "windsurf", "go");

    // Crush where `go install` puts it: net/http, two requests kept alive
    // on one connection, each sized on its own.
    let crush = w.lab.dir().join("home/go/bin/crush");
    agent_copy(&go, &crush);
    let posts = [
        "api.model.test",
        "443",
        "/v1/messages:20000",
        "/v1/messages:300",
    ];
    go_once_probed(&w, &crush, "crush", &[&["-http"][..], &posts[..]].concat());
    let conns = conns_seen(&w, 2);
    let served = &conns[1].requests;
    assert_eq!(served.len(), 2, "{:?}", conns[1]);
    let line = probed_close(&w, "crush", "go");
    assert_eq!(line["egress_plaintext_bytes"], conns[1].plain_in, "{line}");
    assert_eq!(
        line["ingress_plaintext_bytes"], conns[1].plain_out,
        "{line}"
    );
    let record = |(egress, ingress): (u64, u64)| {
        serde_json::json!({
            "method": "POST",
            "purpose": "model-api",
            "path": "/v1/messages",
            "egress_bytes": egress,
            "ingress_bytes": ingress,
        })
    };
    let want = serde_json::json!([record(served[0]), record(served[1])]);
    assert_eq!(line["requests"], want, "{line}");
}

#[test]
fn go_helpers_of_an_agents_shell_get_their_first_request_counted() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, "");
    let go = go_client(&w);
    three_runs_from_a_shell(&w, &go, "api.model.test 443 /v1/messages:3333", "go");
}

/// A path of api.model.test that is telemetry.
const TELEMETRY: &str = "[[dest.path]]\nhost = \"api.model.test\"\npath = \"/api/event_logging\"\npurpose = \"telemetry\"\n";
/// Three HTTP/2 POSTs, the second one telemetry.
const H2_POSTS: [&str; 3] = [
    "/v1/messages:300",
    "/api/event_logging/batch:300",
    "/v1/messages:300",
];

#[test]
fn go_http2_requests_are_read_with_their_paths_classified() {
    if !require_root() {
        return;
    }
    let w = world(NETPEER, TELEMETRY);
    let _server = w.h2_server();
    let crush = w.lab.dir().join("home/go/bin/crush");
    agent_copy(&go_client(&w), &crush);
    let mut args = vec!["-h2", "api.model.test", "8443"];
    args.extend(H2_POSTS);
    go_once_probed(&w, &crush, "crush", &args);
    expect_h2_posts(&w, "crush", "go");
}

/// Codex's model requests go over HTTP/2: the static rustls client's are
/// read from the records aws-lc seals, each with its path classified.
#[test]
fn static_rustls_http2_requests_are_read_with_their_paths_classified() {
    let Some((w, codex)) = sample_world(STATIC, TELEMETRY, codex_npm_path) else {
        return;
    };
    let _server = w.h2_server();
    let go = go_file(&w);
    let mut cmd = w
        .lab
        .client_cmd(&codex, ["h2", "203.0.113.20:8443", "api.model.test"]);
    cmd.arg(&go).args(H2_POSTS);
    once_probed(&w, cmd, "codex", "rustls", &go);
    expect_h2_posts(&w, "codex", "rustls");
}

/// `tool`'s [`H2_POSTS`], probed in `lib`, read as requests and classified.
fn expect_h2_posts(w: &World, tool: &'static str, lib: &str) {
    let requests = |purpose| {
        [
            ("tool", tool),
            ("dest", "api.model.test"),
            ("method", "POST"),
            ("purpose", purpose),
        ]
    };
    w.expect("agentmon_http_requests_total", &requests("model-api"), 2.0);
    w.expect("agentmon_http_requests_total", &requests("telemetry"), 1.0);
    let line = probed_close(w, tool, lib);
    let purposes: Vec<_> = line["requests"]
        .as_array()
        .expect("requests in the log")
        .iter()
        .map(|r| r["purpose"].clone())
        .collect();
    assert_eq!(purposes, ["model-api", "telemetry", "model-api"], "{line}");
}

//! Real agents' requests, from their published packages (installed by
//! `cargo xtask setup test`, see agent_layouts.rs), against the test
//! internet, under an agentmon that has never seen them (a fresh state
//! folder). The test internet's HTTPS server answers every request with
//! the same 2 KiB, which no agent takes for an answer: each retries a few
//! times and gives up, and every request it made is compared with what the
//! server decrypted.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{
    ChildGuard, Internet, ServerConn, TestCa, World, agent_env, default_records, installed_agent,
    require_root, wait_until, world_with,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
/// Under `AGENTS_HOME`: Copilot CLI's platform package, in the test project.
const COPILOT: &str = "project/node_modules/@github/copilot-linux-x64/copilot";
/// Claude Code's native build where its installer puts it.
const CLAUDE: &str = ".local/share/claude/versions/2.1.332";
/// Qwen Code's and Gemini CLI's bins under nvm's global prefix.
const QWEN: &str = ".nvm/versions/node/v22.23.3/bin/qwen";
const GEMINI: &str = ".nvm/versions/node/v22.23.3/bin/gemini";
/// Codex's native build in its platform package, in the test project.
const CODEX: &str =
    "project/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex";

/// A world for the agent installed at `path` with the DNS `records`, and
/// the agent; None (the test skipped) without root or the agent.
fn agent_world(path: &str, records: &[String]) -> Option<(World, PathBuf)> {
    if !require_root() {
        return None;
    }
    let agent = installed_agent(path)?;
    Some((world_with(NETPEER, "", records), agent))
}

/// `agent args` in the client namespace, with a home of its own that trusts
/// the test internet's self-signed certificate (for api.model.test). The
/// agent's folder comes first on PATH: npm's bins run the `node` beside
/// them.
fn agent_cmd(w: &World, agent: &Path, args: &[&str]) -> Command {
    let home = w.lab.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cert = w.lab.dir().join("cert.pem");
    let bin = agent.parent().unwrap_or(Path::new("/"));
    let mut cmd = w.lab.client_cmd(agent, args);
    cmd.current_dir(&home);
    agent_env(&mut cmd, &home, format!("{}:/usr/bin:/bin", bin.display()));
    cmd.env("SSL_CERT_FILE", &cert)
        .env("NODE_EXTRA_CA_CERTS", &cert);
    cmd
}

/// Runs `cmd` to its end; returns its pid and the connections the server
/// finished meanwhile (`conns` reads them all; those after `before`).
fn run(
    cmd: &mut Command,
    conns: impl Fn() -> Vec<ServerConn>,
    before: usize,
) -> (u32, Vec<ServerConn>) {
    let child = ChildGuard::spawn(cmd);
    let pid = child.id();
    let out = child.wait_output(Duration::from_secs(120));
    let server = conns().split_off(before);
    assert!(
        server.iter().any(|s| s.plain_in > 0),
        "the agent sent no request; its output: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, server)
}

/// One TLS connection of `pid` as agentmon logged it at its close.
#[derive(Debug)]
struct Conn {
    library: String,
    out: u64,
    inbound: u64,
}

/// The connections to port 443 that carried plaintext of the agent whose
/// root process is `pid` (it and its children), once agentmon
/// has logged as many as the server saw.
fn conns_of(w: &World, pid: u32, server: &[ServerConn]) -> Vec<Conn> {
    let want = server.iter().filter(|s| s.plain_in > 0).count();
    let read = || -> Vec<Conn> {
        w.tcp_log_lines()
            .iter()
            .filter(|l| l["root_pid"] == pid && l["event"] == "close" && l["remote_port"] == 443)
            .filter_map(|l| {
                Some(Conn {
                    library: l["tls_library"].as_str()?.to_string(),
                    out: l["egress_plaintext_bytes"].as_u64()?,
                    inbound: l["ingress_plaintext_bytes"].as_u64().unwrap_or(0),
                })
            })
            .collect()
    };
    wait_until(Duration::from_secs(15), || read().len() >= want);
    let conns = read();
    let decrypted: Vec<(u64, u64)> = server.iter().map(|s| (s.plain_in, s.plain_out)).collect();
    eprintln!("pid {pid}: agentmon {conns:?}; the server decrypted and sent {decrypted:?}");
    conns
}

/// How many connections each library covered.
fn libraries(conns: &[Conn]) -> BTreeMap<&str, usize> {
    conns.iter().fold(BTreeMap::new(), |mut count, c| {
        *count.entry(c.library.as_str()).or_default() += 1;
        count
    })
}

/// Each connection's plaintext (out, in) equals what the server decrypted
/// and sent.
#[track_caller]
fn assert_exact(conns: &[Conn], server: &[ServerConn]) {
    let mut seen: Vec<(u64, u64)> = conns.iter().map(|c| (c.out, c.inbound)).collect();
    let mut decrypted: Vec<(u64, u64)> = server
        .iter()
        .filter(|s| s.plain_in > 0)
        .map(|s| (s.plain_in, s.plain_out))
        .collect();
    seen.sort_unstable();
    decrypted.sort_unstable();
    assert_eq!(seen, decrypted, "plaintext (out, in) of each connection");
}

/// The requests whose heads agentmon read for `tool`, and those the server
/// answered.
fn heads(w: &World, tool: &str) -> f64 {
    w.am.scrape()
        .series("agentmon_http_requests_total")
        .iter()
        .filter(|(labels, _)| labels.get("tool").is_some_and(|t| t == tool))
        .map(|(_, value)| value)
        .sum()
}

fn requests(server: &[ServerConn]) -> f64 {
    server.iter().map(|s| s.requests.len() as f64).sum()
}

/// Runs an agent twice (`cmd` makes its command; `conns` reads the
/// server's connections). Its first run, on a build agentmon has not met,
/// may start its request before the search for its probe points ends:
/// its egress must be exact, probed or sized from records. The second run,
/// probed from its exec, is probed through `library` on every connection,
/// exact both ways, with its heads read.
fn two_runs(
    w: &World,
    tool: &str,
    library: &str,
    cmd: impl Fn() -> Command,
    conns: impl Fn() -> Vec<ServerConn> + Copy,
) {
    let (pid, first) = run(&mut cmd(), conns, 0);
    let seen = conns_of(w, pid, &first);
    let out: u64 = seen.iter().map(|c| c.out).sum();
    let sent: u64 = first.iter().map(|s| s.plain_in).sum();
    assert_eq!(out, sent, "first run's egress plaintext: {seen:?}");
    let heads_after_first = heads(w, tool);

    let (pid, second) = run(&mut cmd(), conns, first.len());
    let seen = conns_of(w, pid, &second);
    let with_data = second.iter().filter(|s| s.plain_in > 0).count();
    assert_eq!(
        libraries(&seen),
        BTreeMap::from([(library, with_data)]),
        "agentmon's log:\n{}",
        w.am.log_text()
    );
    assert_exact(&seen, &second);
    assert_eq!(
        heads(w, tool) - heads_after_first,
        requests(&second),
        "request heads read"
    );
}

/// Copilot CLI 1.0.102 unpacks a native add-on (`runtime.node`, 145 MB, a
/// stripped OpenSSL linked in) under `~/.cache/copilot` and loads it about
/// two seconds after its start; the GitHub API requests it makes with a
/// token go through that add-on's OpenSSL, the first about 0.4 s after the
/// add-on is loaded. agentmon must find the add-on, search it (0.1 s on
/// the `tls-search` thread) and attach its probes before then.
#[test]
fn copilot_cli_requests_through_its_addon_are_probed_from_the_first() {
    let Some((w, copilot)) = agent_world(COPILOT, &default_records()) else {
        return;
    };
    let api = "https://api.model.test";
    let args = [
        "-p",
        "say hi",
        "--allow-all-tools",
        "--disable-client-telemetry",
    ];
    let mut cmd = agent_cmd(&w, &copilot, &args);
    cmd.env(
        "COPILOT_GITHUB_TOKEN",
        "gho_0123456789abcdefghijABCDEFGHIJ012345",
    )
    .env("GH_HOST", "api.model.test")
    .env("COPILOT_API_URL", api)
    .env("COPILOT_DEBUG_GITHUB_API_URL", api);
    let (pid, server) = run(&mut cmd, || w.net.server_conns(), 0);
    assert!(
        server.len() >= 5,
        "Copilot CLI made {} connections",
        server.len()
    );
    let conns = conns_of(&w, pid, &server);
    assert_eq!(
        libraries(&conns),
        BTreeMap::from([("openssl-static", server.len())]),
        "every connection probed through the add-on's OpenSSL, none sized from records; agentmon's log:\n{}",
        w.am.log_text()
    );
    assert_exact(&conns, &server);
    assert_eq!(
        heads(&w, "copilot"),
        requests(&server),
        "request heads read"
    );
}

/// Claude Code 2.1.332's native build (Bun, 400 MB) with an API key and
/// `ANTHROPIC_BASE_URL` on the test internet: BoringSSL found by pattern.
/// Its first run on a build agentmon has not met starts its request about
/// 0.1 s after the search ends on this VM: that run's egress must be exact
/// whether probed or sized from records; the second run, probed from its
/// exec, is exact both ways per connection, with its heads read.
#[test]
fn claude_code_native_requests_are_exact_through_its_boringssl() {
    let Some((w, claude)) = agent_world(CLAUDE, &default_records()) else {
        return;
    };
    let claude_cmd = || {
        let mut cmd = agent_cmd(&w, &claude, &["-p", "say hi"]);
        cmd.env("ANTHROPIC_BASE_URL", "https://api.model.test")
            .env("ANTHROPIC_API_KEY", "sk-ant-api03-test")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
        cmd
    };
    two_runs(&w, "claude-code", "boringssl", claude_cmd, || {
        w.net.server_conns()
    });
}

/// Codex 0.171's native build (static musl, rustls on aws-lc, 315 MB, no
/// symbols) with a custom model provider on the test internet: aws-lc's
/// record functions found by its error reports. As for Claude Code, the
/// first run's egress must be exact whether probed or sized from records,
/// and the second run is exact both ways per connection, its heads read.
#[test]
fn codex_requests_are_exact_through_rustls_on_aws_lc() {
    let mut records = default_records();
    records.push("codex.model.test=A:203.0.113.21".into());
    let Some((w, codex)) = agent_world(CODEX, &records) else {
        return;
    };
    // rustls takes a certificate a CA signed for the host's name.
    let ca = TestCa::new(w.lab.dir(), "agent-ca");
    let server = Internet::serve_tls(
        &w.lab,
        "203.0.113.21",
        &ca.server_for("codex.model.test", 7),
    );
    let home = w.lab.dir().join("home");
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(
        home.join(".codex/config.toml"),
        "model_provider = \"test\"\nmodel = \"gpt-5\"\n\
         [model_providers.test]\nname = \"test\"\n\
         base_url = \"https://codex.model.test/v1\"\nwire_api = \"responses\"\n\
         env_key = \"TEST_API_KEY\"\n",
    )
    .unwrap();
    let codex_cmd = || {
        let mut cmd = agent_cmd(&w, &codex, &["exec", "--skip-git-repo-check", "say hi"]);
        cmd.env("SSL_CERT_FILE", &ca.files.cert)
            .env("TEST_API_KEY", "test")
            .env("RUST_LOG", "off");
        cmd
    };
    two_runs(&w, "codex", "rustls", codex_cmd, || server.conns());
}

/// Qwen Code 0.24.4 from npm's global prefix under nvm (node from npm's
/// `node` package) with an OpenAI-compatible provider on the test
/// internet: OpenSSL in node, by its symbols.
#[test]
fn qwen_code_requests_are_exact_through_node() {
    let Some((w, qwen)) = agent_world(QWEN, &default_records()) else {
        return;
    };
    let qwen_cmd = || {
        let mut cmd = agent_cmd(&w, &qwen, &["-p", "say hi"]);
        cmd.env("OPENAI_BASE_URL", "https://api.model.test/v1")
            .env("OPENAI_API_KEY", "sk-test")
            .env("OPENAI_MODEL", "qwen3-coder-plus");
        cmd
    };
    two_runs(&w, "qwen-code", "openssl-static", qwen_cmd, || {
        w.net.server_conns()
    });
}

/// Gemini CLI 0.61.0 from npm's global prefix under nvm, with an API key
/// and `GOOGLE_GEMINI_BASE_URL` on the test internet: OpenSSL in node.
#[test]
fn gemini_cli_requests_are_exact_through_node() {
    let Some((w, gemini)) = agent_world(GEMINI, &default_records()) else {
        return;
    };
    // Without a chosen auth method it asks for one.
    let settings = w.lab.dir().join("home/.gemini");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(
        settings.join("settings.json"),
        r#"{"security": {"auth": {"selectedType": "gemini-api-key"}}}"#,
    )
    .unwrap();
    let gemini_cmd = || {
        let mut cmd = agent_cmd(&w, &gemini, &["-p", "say hi"]);
        cmd.env("GOOGLE_GEMINI_BASE_URL", "https://api.model.test")
            .env("GEMINI_API_KEY", "test-key")
            .env("GEMINI_CLI_TRUST_WORKSPACE", "true");
        cmd
    };
    two_runs(&w, "gemini-cli", "openssl-static", gemini_cmd, || {
        w.net.server_conns()
    });
}

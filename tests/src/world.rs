//! A whole test world for destination and TLS tests: a [`NetLab`], the
//! test [`Internet`], the netpeer sink, a GeoIP database the test writes,
//! and agentmon with a config naming the test hosts' purposes.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use crate::{
    Agentmon, ChildGuard, Internet, Metrics, NetLab, PeerCounts, ServerConn, ServerGuard,
    agent_copy, default_records, run_bounded, wait_until,
};

const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);

/// 203.0.113.0/24 is "US" in AS64500, 198.51.100.0/24 "DE" in AS64501,
/// 2001:db8::/32 "JP" in AS64502.
pub const NETS: [&str; 3] = [
    "203.0.113.0/24=US:64500:Example-Net-US",
    "198.51.100.0/24=DE:64501:Beispiel-Netz-DE",
    "2001:db8::/32=JP:64502:Rei-Net-JP",
];

/// Config entries naming the test internet's hosts' purposes.
pub const TEST_PURPOSES: &str = r#"
[[dest.entry]]
host = "api.model.test"
purpose = "model-api"

[[dest.entry]]
host = "telemetry.vendor.test"
purpose = "telemetry"
"#;

/// Writes `country.mmdb` and `asn.mmdb` for `nets` into `dir`, built at a
/// fixed time ($SOURCE_DATE_EPOCH, else 2023-11-14), so the same nets give
/// the same bytes.
pub fn make_geoip(dir: &Path, nets: &[&str]) {
    make_geoip_built(dir, nets, None);
}

/// [`make_geoip`], with the databases' build time `epoch` (seconds) when
/// given: a test of their age wants a recent one.
pub fn make_geoip_built(dir: &Path, nets: &[&str], epoch: Option<u64>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/make_test_mmdb.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg("--out").arg(dir);
    if let Some(epoch) = epoch {
        cmd.arg("--epoch").arg(epoch.to_string());
    }
    for net in nets {
        cmd.args(["--net", net]);
    }
    let out = run_bounded(&mut cmd, RUN);
    assert!(out.status.success(), "make_test_mmdb.py: {out:?}");
}

pub struct World {
    pub lab: NetLab,
    pub net: Internet,
    _sink: ServerGuard,
    pub am: Agentmon,
    pub log: PathBuf,
    pub geoip: PathBuf,
    config: PathBuf,
}

/// A lab, the test internet, a GeoIP database, and agentmon with a config
/// that names the test hosts' purposes. `extra` is appended to the config.
/// `netpeer` is the test binary's `CARGO_BIN_EXE_netpeer`.
pub fn world(netpeer: &str, extra: &str) -> World {
    world_with(netpeer, extra, &default_records())
}

pub fn world_with(netpeer: &str, extra: &str, records: &[String]) -> World {
    let lab = NetLab::new();
    let net = Internet::start(&lab, records);
    let sink = lab.spawn_servers(Path::new(netpeer), 321);
    let geoip = lab.dir().join("geoip");
    make_geoip(&geoip, &NETS);
    let config = lab.dir().join("agentmon.toml");
    fs::write(&config, config_text(&geoip, extra)).unwrap();
    let log = lab.dir().join("connections.jsonl");
    let am = start_agentmon(&config, &log);
    World {
        lab,
        net,
        _sink: sink,
        am,
        log,
        geoip,
        config,
    }
}

/// The world's config: its GeoIP files, the test hosts' purposes, `extra`.
fn config_text(geoip: &Path, extra: &str) -> String {
    format!(
        r#"[geoip]
country = "{g}/country.mmdb"
asn = "{g}/asn.mmdb"
reload_seconds = 1
{TEST_PURPOSES}{extra}
"#,
        g = geoip.display()
    )
}

fn start_agentmon(config: &Path, log: &Path) -> Agentmon {
    Agentmon::builder()
        .config(config)
        .arg("--connection-log")
        .arg(log)
        .start()
}

impl World {
    /// The world's agentmon stopped, and another started on its config and
    /// log with `feature` off (the hidden `--without`), which it reports as
    /// unavailable.
    pub fn agentmon_without(&mut self, feature: &str) -> Agentmon {
        self.am.stop();
        let am = Agentmon::builder()
            .config(&self.config)
            .args(["--without", feature, "--connection-log"])
            .arg(&self.log)
            .start();
        let label = feature.replace('-', "_");
        am.expect(
            "agentmon_kernel_feature_available",
            &[("feature", &label)],
            0.0,
        );
        am
    }

    /// Writes the config again with `extra` instead of what the world was
    /// made with (agentmon reads it at its next SIGHUP).
    pub fn rewrite_config(&self, extra: &str) {
        fs::write(&self.config, config_text(&self.geoip, extra)).unwrap();
    }

    /// Stops agentmon and starts a new one: what runs now was there before it.
    pub fn restart_agentmon(&mut self) {
        self.am.stop();
        self.am = start_agentmon(&self.config, &self.log);
    }

    /// Stops agentmon and starts a new one on the world's config and log
    /// with the state folder `dir`, as the service keeps one.
    pub fn agentmon_with_state(&mut self, dir: &Path) {
        self.am.stop();
        self.am = Agentmon::builder()
            .config(&self.config)
            .state_dir(dir)
            .arg("--connection-log")
            .arg(&self.log)
            .start();
    }

    /// `program` copied to where Claude Code's native installer puts it.
    pub fn as_claude(&self, program: &Path) -> PathBuf {
        let path = self
            .lab
            .dir()
            .join("home/.local/share/claude/versions/9.9.9");
        agent_copy(program, &path);
        path
    }

    /// The test internet's node script `name` copied to where Gemini CLI's
    /// npm package keeps its bundle; run with `node`, it is gemini-cli.
    pub fn as_gemini(&self, name: &str) -> PathBuf {
        let path = self
            .lab
            .dir()
            .join("lib/node_modules/@google/gemini-cli/bundle/gemini.js");
        agent_copy(&Internet::script(name), &path);
        path
    }

    /// The command that runs py_client.py as aider (`python3 .../bin/aider ...`).
    pub fn aider_cmd(&self, args: &[&str]) -> Command {
        let aider = self.lab.dir().join("venv/bin/aider");
        if !aider.exists() {
            fs::create_dir_all(aider.parent().unwrap()).unwrap();
            fs::copy(Internet::script("py_client.py"), &aider).unwrap();
        }
        let mut cmd = self.lab.client_cmd("python3", [aider.as_os_str()]);
        cmd.args(args);
        cmd
    }

    /// aider's HTTPS request with a `body`-byte body to api.model.test, with
    /// py_client.py's `extra` options; panics unless it succeeds.
    pub fn aider_tls(&self, body: u64, extra: &[&str]) {
        let body = body.to_string();
        let mut args = vec!["--name", "api.model.test", "--tls", "--port", "443"];
        args.extend(["--body", &body]);
        args.extend(extra);
        let out = run_bounded(&mut self.aider_cmd(&args), RUN);
        assert!(out.status.success(), "{out:?}");
    }

    /// Runs `script` with /bin/sh as a child of `agent` (a copy of netpeer)
    /// in the client namespace; panics unless it succeeds.
    pub fn agent_shell(&self, agent: &Path, script: &str) {
        let args = ["exec-child", "--", "/bin/sh", "-c", script];
        let out = run_bounded(&mut self.lab.client_cmd(agent, args), RUN);
        assert!(out.status.success(), "{out:?}");
    }

    /// py_client.py run as aider (`python3 .../bin/aider ...`).
    pub fn aider(&self, args: &[&str]) -> PeerCounts {
        PeerCounts::from_output(&run_bounded(&mut self.aider_cmd(args), RUN))
    }

    /// The web server's record of the connections to `local`, once `n` exist.
    pub fn server_conns(&self, local: &str, n: usize) -> Vec<ServerConn> {
        let matching = || -> Vec<ServerConn> {
            self.net
                .server_conns()
                .into_iter()
                .filter(|c| c.local == local)
                .collect()
        };
        assert!(
            wait_until(SETTLE, || matching().len() >= n),
            "web server saw {:?}",
            self.net.server_conns()
        );
        matching()
    }

    pub fn expect(&self, name: &str, labels: &[(&str, &str)], want: f64) -> Metrics {
        self.am.expect(name, labels, want)
    }

    /// Waits until probes for `lib` are attached, and `tool` shows as seen
    /// in plaintext through it.
    pub fn wait_probed(&self, tool: &str, lib: &str) {
        let attached = self.am.wait_for_value(
            "agentmon_uprobes_attached",
            &[("library", lib)],
            Duration::from_secs(15),
            |v| v > 0.0,
        );
        assert!(
            attached.is_ok(),
            "no {lib} probes attached:\n{}",
            self.am.log_text()
        );
        let coverage = [("tool", tool), ("library", lib), ("mode", "plaintext")];
        self.expect("agentmon_tls_coverage", &coverage, 1.0);
    }

    /// Runs `curl` (an agent's copy) once with `config` (a curl config
    /// file's text) given only after its libssl is probed: curl reads its
    /// config from stdin, so it starts, maps libssl and waits until then.
    pub fn curl_probed(&self, curl: &Path, config: &str) -> Output {
        let mut child = self
            .lab
            .client_cmd(curl, ["-K", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", curl.display()));
        let mut stdin = child.stdin.take().expect("piped");
        let run = ChildGuard::from_child(child, "curl");
        self.wait_probed("claude-code", "openssl");
        stdin.write_all(config.as_bytes()).unwrap();
        drop(stdin);
        let out = run.wait_output(Duration::from_secs(60));
        assert!(out.status.success(), "{out:?}");
        out
    }

    /// h2_server.js (node's HTTP/2 over TLS) on 203.0.113.20:8443, for as
    /// long as the guard lives.
    pub fn h2_server(&self) -> ServerGuard {
        let ready = self.lab.dir().join("h2.ready");
        let script = Internet::script("h2_server.js");
        let mut server = self.lab.remote_cmd("node", [script.as_os_str()]);
        server
            .arg(self.lab.dir().join("cert.pem"))
            .arg(self.lab.dir().join("key.pem"));
        server.args(["203.0.113.20", "8443"]).arg(&ready);
        let log = self.lab.dir().join("h2.log");
        self.lab.spawn_remote("h2_server.js", server, &ready, &log)
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        crate::json_lines(&self.log)
    }

    /// The log's records of TCP connections: the agents' DNS lookups over
    /// UDP have records of their own, after their process ends.
    pub fn tcp_log_lines(&self) -> Vec<serde_json::Value> {
        let mut lines = self.log_lines();
        lines.retain(|l| l["proto"] == "tcp");
        lines
    }
}

pub fn labels<'a>(
    tool: &'a str,
    dest: &'a str,
    country: &'a str,
    asn: &'a str,
    purpose: &'a str,
) -> [(&'a str, &'a str); 6] {
    [
        ("tool", tool),
        ("proto", "tcp"),
        ("dest", dest),
        ("dest_country", country),
        ("dest_asn", asn),
        ("purpose", purpose),
    ]
}

pub fn sum(conns: &[ServerConn]) -> (f64, f64) {
    let (i, o) = conns
        .iter()
        .fold((0, 0), |(i, o), c| (i + c.raw_in, o + c.raw_out));
    (i as f64, o as f64)
}

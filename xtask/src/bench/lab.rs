//! The bench's network: the tests' two-namespace lab (documentation
//! addresses only), with the servers every scenario talks to running in the
//! "remote" namespace for the whole run, and the clients copied to the paths
//! that make agentmon track them.
use std::cell::OnceCell;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use agentmon_tests::{
    ChildGuard, Internet, NetLab, REMOTE_V4, ServerGuard, agent_copy, run_bounded, wait_until,
};
use anyhow::{Context as _, Result, bail};

/// The executables and scripts the bench runs.
#[derive(Debug, Clone)]
pub struct Bins {
    pub agentmon: PathBuf,
    pub loadgen: PathBuf,
    /// tests/bench: the TLS server and clients.
    pub scripts: PathBuf,
    /// The static rustls client on aws-lc (`clients.rs`), built for the
    /// full bench's TLS row.
    pub rustls: Option<PathBuf>,
}

impl Bins {
    /// `agentmon` and, beside it, `loadgen` (one cargo target folder).
    pub fn beside(agentmon: &Path) -> Self {
        let dir = agentmon.parent().unwrap_or(Path::new("."));
        Self {
            agentmon: agentmon.to_path_buf(),
            loadgen: dir.join("loadgen"),
            scripts: Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bench"),
            rustls: None,
        }
    }

    pub fn script(&self, name: &str) -> PathBuf {
        self.scripts.join(name)
    }
}

/// Reads to EOF (the msgs and hold clients, the named connections).
pub const SINK_PORT: u16 = 9000;
/// Closes after the churn client's 64 bytes, so the server closes first.
pub const CHURN_PORT: u16 = 9001;
pub const IPERF_PORT: u16 = 5201;
pub const TLS_PORT: u16 = 8443;
/// Bytes of each churn connection's payload and each TLS request.
pub const CHURN_SEND: u64 = 64;
pub const TLS_REQUEST: u64 = 512;
pub const TLS_REPLY_BODY: u64 = 1024;

pub fn remote(port: u16) -> String {
    format!("{REMOTE_V4}:{port}")
}

/// Built-in tools, each with a path (under the lab) and an argument that
/// make a copy of loadgen one of that tool's processes; see
/// monitor/src/agents/catalog.toml.
pub const TOOLS: &[(&str, &str, &str)] = &[
    ("claude-code", ".local/share/claude/versions/9.9.9", ""),
    ("codex", "bin/codex", ""),
    (
        "gemini-cli",
        "gemini/node",
        "/node_modules/@google/gemini-cli/",
    ),
    ("copilot", "bin/copilot-language-server", ""),
    ("cursor", "bin/cursor", ""),
    ("aider", "aider/python3", "/venv/bin/aider"),
    ("opencode", "bin/opencode", ""),
    ("goose", "bin/goose", ""),
    ("amazon-q", "bin/q", ""),
    ("continue", "continue/node", "/node_modules/@continuedev/"),
    ("cline", "node_modules/cline/bin/cline", ""),
    ("windsurf", "bin/windsurf", ""),
];

pub struct BenchLab {
    pub lab: NetLab,
    pub bins: Bins,
    /// loadgen as Claude Code's native binary: a tracked process.
    pub claude: PathBuf,
    /// iperf3 at the same kind of path.
    pub claude_iperf: PathBuf,
    pub iperf: PathBuf,
    /// tls_client.py as aider's console script (`python3 .../bin/aider`).
    pub aider: PathBuf,
    /// tls_client.js as Gemini CLI's bundle (`node .../gemini.js`).
    pub gemini: PathBuf,
    /// The paced background agents of the non-agent scenario (as aider, and
    /// as Gemini CLI on node).
    pub py_agent: PathBuf,
    pub node_agent: PathBuf,
    /// tls_client.js compiled by Bun, at Claude Code's native path: built
    /// on first use (a second, and 100 MB), see [`BenchLab::bun_claude`].
    bun_claude: OnceCell<PathBuf>,
    /// tls_client.go built static and stripped where `go install` puts
    /// Crush: built on first use, see [`BenchLab::go_crush`].
    go_crush: OnceCell<PathBuf>,
    /// tls_client.c linked statically against OpenSSL and stripped, where
    /// Codex's release binary goes: built on first use.
    openssl_codex: OnceCell<PathBuf>,
    _servers: Vec<ServerGuard>,
}

impl BenchLab {
    pub fn new(bins: Bins) -> Result<Self> {
        let iperf = crate::cmd::which("iperf3")
            .context("iperf3 is missing; `cargo xtask setup bench` installs it")?;
        let lab = NetLab::new();
        let dir = lab.dir().to_path_buf();
        // Churn makes tens of thousands of connections a second from one address.
        sysctl(&lab, "net.ipv4.ip_local_port_range=1024 65535")?;
        let claude = dir.join("loadgen/.local/share/claude/versions/9.9.9");
        agent_copy(&bins.loadgen, &claude);
        let claude_iperf = dir.join("iperf/.local/share/claude/versions/9.9.9");
        agent_copy(&iperf, &claude_iperf);
        let aider = dir.join("venv/bin/aider");
        agent_copy(&bins.script("tls_client.py"), &aider);
        let gemini = dir.join("lib/node_modules/@google/gemini-cli/bundle/gemini.js");
        agent_copy(&bins.script("tls_client.js"), &gemini);
        let py_agent = dir.join("agent/venv/bin/aider");
        agent_copy(&Internet::script("tls_agent.py"), &py_agent);
        let node_agent = dir.join("agent/lib/node_modules/@google/gemini-cli/bundle/gemini.js");
        agent_copy(&Internet::script("tls_agent.js"), &node_agent);
        let mut this = Self {
            lab,
            bins,
            claude,
            claude_iperf,
            iperf,
            aider,
            gemini,
            py_agent,
            node_agent,
            bun_claude: OnceCell::new(),
            go_crush: OnceCell::new(),
            openssl_codex: OnceCell::new(),
            _servers: Vec::new(),
        };
        this.start_servers()?;
        Ok(this)
    }

    pub fn dir(&self) -> &Path {
        self.lab.dir()
    }

    fn start_servers(&mut self) -> Result<()> {
        let loadgen = self.bins.loadgen.clone();
        for (name, port, close_after) in [
            ("sink", SINK_PORT, 0),
            ("churn-sink", CHURN_PORT, CHURN_SEND),
        ] {
            let ready = self.dir().join(format!("{name}.ready"));
            let cmd = self.lab.remote_cmd(
                &loadgen,
                [
                    "sink".to_owned(),
                    "--listen".into(),
                    remote(port),
                    "--close-after".into(),
                    close_after.to_string(),
                    "--ready-file".into(),
                    ready.display().to_string(),
                ],
            );
            let log = self.dir().join(format!("{name}.log"));
            self._servers
                .push(self.lab.spawn_remote(name, cmd, &ready, &log));
        }

        let pidfile = self.dir().join("iperf3.pid");
        let mut args: Vec<OsString> = [
            "-s",
            "-B",
            &REMOTE_V4.to_string(),
            "-p",
            &IPERF_PORT.to_string(),
            "--pidfile",
        ]
        .map(OsString::from)
        .to_vec();
        args.push(pidfile.clone().into());
        let cmd = self.lab.remote_cmd(&self.iperf, args);
        let log = self.dir().join("iperf3.log");
        self._servers
            .push(self.lab.spawn_remote("iperf3 -s", cmd, &pidfile, &log));

        // The TLS server runs from a copy of node: probes attach per file, so
        // when a tracked node client gets node probed, the server is not.
        let node = crate::cmd::which("node")
            .context("node is missing; `cargo xtask setup bench` installs it")?;
        let server_node = self.dir().join("srv/node-bench-server");
        agent_copy(&node, &server_node);
        let (cert, key) = agentmon_tests::self_signed_cert(self.dir(), "api.bench.test")
            .map_err(anyhow::Error::msg)
            .context("`cargo xtask setup bench` installs openssl")?;
        let ready = self.dir().join("tls.ready");
        let mut args: Vec<OsString> = vec![self.bins.script("tls_server.js").into()];
        args.extend([REMOTE_V4.to_string(), TLS_PORT.to_string()].map(OsString::from));
        args.extend([&cert, &key, &ready].map(|p| p.as_os_str().to_owned()));
        args.extend([TLS_REQUEST, TLS_REPLY_BODY].map(|n| OsString::from(n.to_string())));
        let cmd = self.lab.remote_cmd(&server_node, args);
        let log = self.dir().join("tls.log");
        self._servers
            .push(self.lab.spawn_remote("tls_server.js", cmd, &ready, &log));
        for port in [SINK_PORT, CHURN_PORT, IPERF_PORT, TLS_PORT] {
            if !wait_until(Duration::from_secs(10), || self.listening(port)) {
                bail!(
                    "nothing listens on {} in the remote namespace",
                    remote(port)
                );
            }
        }
        Ok(())
    }

    /// The Bun single-file executable at Claude Code's path, compiled from
    /// tls_client.js (so it runs the node row's client) the first time.
    pub fn bun_claude(&self) -> Result<&Path> {
        let exe = self.dir().join("bun/.local/share/claude/versions/9.9.9");
        let mut build = Command::new(Path::new(crate::setup::BUN_DIR).join("bin/bun"));
        build.args(["build", "--compile", "--outfile"]);
        build.arg(&exe).arg(self.bins.script("tls_client.js"));
        build_once(&self.bun_claude, exe, vec![build], "installs bun")
    }

    /// tls_client.go built static and stripped (as Go agents ship) at
    /// Crush's `go install` path, the first time.
    pub fn go_crush(&self) -> Result<&Path> {
        let exe = self.dir().join("go/home/go/bin/crush");
        let mut build = Command::new("go");
        build.args(["build", "-ldflags=-s -w", "-o"]);
        build.arg(&exe).arg(self.bins.script("tls_client.go"));
        build.env("CGO_ENABLED", "0").env("HOME", self.dir());
        build.env(
            "GOCACHE",
            std::env::temp_dir().join("agentmon-tests-gocache"),
        );
        build_once(&self.go_crush, exe, vec![build], "installs golang-go")
    }

    /// tls_client.c linked statically against Debian's libssl.a (OpenSSL
    /// 3) and stripped, at Codex's release binary path, the first time.
    pub fn openssl_codex(&self) -> Result<&Path> {
        let exe = self.dir().join("codex/.local/bin/codex");
        let mut build = Command::new("gcc");
        build.args(["-static", "-O2", "-o"]).arg(&exe);
        build.arg(self.bins.script("tls_client.c"));
        build.args(["-lssl", "-lcrypto"]);
        let mut strip = Command::new("strip");
        strip.arg(&exe);
        build_once(
            &self.openssl_codex,
            exe,
            vec![build, strip],
            "installs libssl-dev",
        )
    }

    /// The stripped static rustls client on aws-lc at Codex's npm path.
    pub fn rustls_codex(&self) -> Result<PathBuf> {
        let Some(built) = &self.bins.rustls else {
            bail!("the static rustls client was not built (the full bench builds it)");
        };
        let exe = self.dir().join("codex/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex-x86_64-unknown-linux-musl");
        agent_copy(built, &exe);
        Ok(exe)
    }

    fn listening(&self, port: u16) -> bool {
        let out = Command::new("ip")
            .args(["netns", "exec", self.lab.remote_ns(), "ss", "-Hltn"])
            .output();
        out.is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.contains(&format!(":{port} ")))
        })
    }

    /// `program args...` in the client namespace.
    pub fn client<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.lab.client_cmd(program, args)
    }

    /// loadgen copied to `tool`'s path (see [`TOOLS`]), and the extra
    /// argument that completes the match.
    pub fn tool_copy(&self, tool: &str) -> Result<(PathBuf, Vec<String>)> {
        let &(_, path, tag) = TOOLS
            .iter()
            .find(|(name, _, _)| *name == tool)
            .with_context(|| format!("no tool {tool} in the bench's list"))?;
        let copy = self.dir().join("tools").join(tool).join(path);
        if !copy.exists() {
            agent_copy(&self.bins.loadgen, &copy);
        }
        let args = if tag.is_empty() {
            Vec::new()
        } else {
            vec!["--tag".to_owned(), format!("{}{tag}", self.dir().display())]
        };
        Ok((copy, args))
    }
}

fn sysctl(lab: &NetLab, setting: &str) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", lab.client_ns(), "sysctl", "-qw", setting])
        .output()
        .context("run sysctl")?;
    if !out.status.success() {
        bail!(
            "sysctl -w {setting}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `key=value` figures from the last line of a client's stdout that has them.
pub fn figures(out: &Output, what: &str) -> Result<Vec<(String, f64)>> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
        .lines()
        .rev()
        .find_map(|line| {
            line.split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_owned(), v.parse().ok()?))
                })
                .collect::<Option<Vec<_>>>()
                .filter(|v| !v.is_empty())
        })
        .with_context(|| format!("no key=value line in the output of {what}:\n{stdout}"))
}

/// The figure `key` of a client's result line.
pub fn get(figs: &[(String, f64)], key: &str) -> Result<f64> {
    figs.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .with_context(|| format!("no {key}= in {figs:?}"))
}

/// Runs a client to completion (killed past `secs` + a minute) and returns
/// its figures.
pub fn run_client(cmd: &mut Command, secs: f64, what: &str) -> Result<Vec<(String, f64)>> {
    let out = run_bounded(cmd, Duration::from_secs_f64(secs + 60.0));
    figures(&out, what)
}

/// A client started now and awaited later.
pub fn spawn(cmd: &mut Command) -> ChildGuard {
    ChildGuard::spawn(cmd)
}

/// The client program `exe`, made by running `steps` the first time it is
/// asked for and kept in `cell`; `hint` says what `cargo xtask setup bench`
/// does for the tools the steps need.
fn build_once<'a>(
    cell: &'a OnceCell<PathBuf>,
    exe: PathBuf,
    steps: Vec<Command>,
    hint: &str,
) -> Result<&'a Path> {
    if let Some(exe) = cell.get() {
        return Ok(exe);
    }
    if let Some(dir) = exe.parent() {
        fs::create_dir_all(dir)?;
    }
    for mut step in steps {
        let out = run_bounded(&mut step, Duration::from_secs(300));
        if !out.status.success() {
            bail!(
                "{} failed (`cargo xtask setup bench` {hint}): {}{}",
                step.get_program().to_string_lossy(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if !exe.exists() {
        bail!("{} was not built", exe.display());
    }
    Ok(cell.get_or_init(|| exe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::ExitStatus;

    #[test]
    fn figures_come_from_the_last_key_value_line() {
        let out = Output {
            status: ExitStatus::from_raw(0),
            stdout: b"noise here\nsends=10 bytes=640 secs=1.5\n".to_vec(),
            stderr: Vec::new(),
        };
        let f = figures(&out, "x").unwrap();
        assert_eq!(get(&f, "bytes").unwrap(), 640.0);
        assert_eq!(get(&f, "secs").unwrap(), 1.5);
        assert!(get(&f, "conns").is_err());
    }
}

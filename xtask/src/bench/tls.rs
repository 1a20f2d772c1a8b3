//! Scenario 4: TLS requests per second (HTTP/1.1 keep-alive, 512-byte
//! requests, 1 KiB replies) through libssl (Python's ssl module), node's
//! static OpenSSL and a Bun single-file executable's BoringSSL (as Claude
//! Code's native binary is built), Go's crypto/tls (as Crush is built) and
//! OpenSSL 3 linked statically and stripped (as Codex's release binary
//! carries it) and, in the full bench, rustls on aws-lc in a static musl
//! executable (Codex's model requests), by tracked clients, with agentmon's
//! uprobes attached versus no agentmon. And the cost for an untracked libssl
//! client while an agent keeps the probes on the same library file attached.
use std::fs;
use std::path::Path;
use std::time::Duration;

use agentmon_tests::REMOTE_V4;
use anyhow::{Result, bail};

use super::lab::{TLS_PORT, TLS_REPLY_BODY, TLS_REQUEST, figures, get, spawn};
use super::monitor::{Monitor, value, wait_value};
use super::runner::{Ctx, Options, Variant};
use super::stats::{Arm, Recorder, Unit};

pub const REQUESTS: &str = "requests";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    PythonTracked,
    PythonUntracked,
    NodeTracked,
    BunTracked,
    GoTracked,
    OpensslStrippedTracked,
    RustlsTracked,
}

pub struct Tls {
    pub client: Client,
}

impl Client {
    pub fn name(self) -> &'static str {
        match self {
            Client::PythonTracked => "python/libssl, tracked (aider)",
            Client::PythonUntracked => {
                "python/libssl, untracked, while an aider process keeps libssl probed"
            }
            Client::NodeTracked => "node/static OpenSSL, tracked (gemini-cli)",
            Client::BunTracked => "Bun executable/BoringSSL, tracked (claude-code)",
            Client::GoTracked => "Go executable/crypto/tls, tracked (crush)",
            Client::OpensslStrippedTracked => {
                "stripped static executable/OpenSSL 3, tracked (codex)"
            }
            Client::RustlsTracked => {
                "stripped static musl executable/rustls on aws-lc, tracked (codex)"
            }
        }
    }

    fn library(self) -> &'static str {
        match self {
            Client::NodeTracked | Client::OpensslStrippedTracked => "openssl-static",
            Client::BunTracked => "boringssl",
            Client::GoTracked => "go",
            Client::RustlsTracked => "rustls",
            Client::PythonTracked | Client::PythonUntracked => "openssl",
        }
    }

    fn tool(self) -> Option<&'static str> {
        match self {
            Client::PythonTracked => Some("aider"),
            Client::NodeTracked => Some("gemini-cli"),
            Client::BunTracked => Some("claude-code"),
            Client::GoTracked => Some("crush"),
            Client::OpensslStrippedTracked | Client::RustlsTracked => Some("codex"),
            Client::PythonUntracked => None,
        }
    }
}

impl Variant for Tls {
    fn name(&self) -> String {
        self.client.name().to_owned()
    }

    fn arms(&self, opts: &Options) -> Vec<Arm> {
        opts.arms(false)
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let lab = ctx.lab;
        let secs = ctx.opts.secs(5.0);
        let (go, stop) = (ctx.file("tls-go"), ctx.file("tls-stop"));
        let lib = self.client.library();
        // Other tracked processes on the machine (an agent the user runs
        // meanwhile) may hold probes on the same library: the run waits
        // for its own. A client started before its probes would have its
        // one keep-alive connection derived from records throughout.
        let attached_before = mon.agentmon().map_or(0.0, |am| {
            value(
                &am.scrape(),
                "agentmon_uprobes_attached",
                &[("library", lib)],
            )
        });
        // An aider process that only keeps libssl mapped, so the probes on it stay.
        let holder = (self.client == Client::PythonUntracked).then(|| {
            let args = [
                lab.aider.display().to_string(),
                "--hold-file".into(),
                stop.display().to_string(),
            ];
            spawn(&mut lab.client("python3", args))
        });
        let mut cmd = match self.client {
            Client::PythonTracked => lab.client("python3", py_args(&lab.aider, secs, &go)),
            Client::PythonUntracked => lab.client(
                "python3",
                py_args(&lab.bins.script("tls_client.py"), secs, &go),
            ),
            Client::NodeTracked => {
                let mut args = vec![lab.gemini.display().to_string()];
                args.extend(node_args(secs, &go));
                lab.client("node", args)
            }
            // tls_client.js compiled in: the same client as node's row.
            Client::BunTracked => lab.client(lab.bun_claude()?, node_args(secs, &go)),
            // tls_client.go and tls_client.c take tls_client.js's arguments.
            Client::GoTracked => lab.client(lab.go_crush()?, node_args(secs, &go)),
            Client::OpensslStrippedTracked => {
                lab.client(lab.openssl_codex()?, node_args(secs, &go))
            }
            // rustls_client's bench mode takes tls_client.js's arguments.
            Client::RustlsTracked => {
                let mut args = vec!["bench".to_owned()];
                args.extend(node_args(secs, &go));
                lab.client(lab.rustls_codex()?, args)
            }
        };
        let client = spawn(&mut cmd);
        if let Some(am) = mon.agentmon() {
            // Probes attach when agentmon sees the library mapped (at most a
            // housekeeping tick after the client imported it).
            let (attached, _) = wait_value(
                am,
                "agentmon_uprobes_attached",
                &[("library", lib)],
                attached_before + 1.0,
                Duration::from_secs(20),
            );
            let mine = attached - attached_before;
            if mine < 1.0 {
                bail!("no {lib} probes attached within 20 s:\n{}", am.log_text());
            }
            rec.add("probes attached", Unit::Count, mine);
        }
        mon.begin();
        fs::write(&go, b"")?;
        let out = client.wait_output(Duration::from_secs_f64(secs + 60.0));
        mon.finish(rec, secs);
        let figs = figures(&out, self.client.name())?;
        let written = get(&figs, "bytes")?;
        rec.add(
            REQUESTS,
            Unit::PerSec,
            get(&figs, "requests")? / get(&figs, "secs")?,
        );
        if let (Some(am), Some(tool)) = (mon.agentmon(), self.client.tool()) {
            let egress = [("tool", tool), ("direction", "egress"), ("library", lib)];
            let (seen, _) = wait_value(
                am,
                "agentmon_tls_plaintext_bytes_total",
                &egress,
                written,
                Duration::from_secs(15),
            );
            rec.add("plaintext counted − written", Unit::Bytes, seen - written);
        }
        if let Some(holder) = holder {
            fs::write(&stop, b"")?;
            holder.wait_output(Duration::from_secs(30));
        }
        Ok(())
    }
}

/// tls_client.py's arguments: `secs` seconds of requests once `go` exists.
pub fn py_args(script: &Path, secs: f64, go: &Path) -> Vec<String> {
    let mut a = vec![script.display().to_string()];
    a.extend([
        "--ip".into(),
        REMOTE_V4.to_string(),
        "--port".into(),
        TLS_PORT.to_string(),
    ]);
    a.extend([
        "--secs".into(),
        secs.to_string(),
        "--request-bytes".into(),
        TLS_REQUEST.to_string(),
    ]);
    a.extend([
        "--reply-body".into(),
        TLS_REPLY_BODY.to_string(),
        "--wait-file".into(),
        go.display().to_string(),
    ]);
    a
}

/// tls_client.js's arguments after the script's path, likewise (the Go and
/// C clients take the same).
pub fn node_args(secs: f64, go: &Path) -> Vec<String> {
    vec![
        REMOTE_V4.to_string(),
        TLS_PORT.to_string(),
        secs.to_string(),
        TLS_REQUEST.to_string(),
        TLS_REPLY_BODY.to_string(),
        go.display().to_string(),
    ]
}

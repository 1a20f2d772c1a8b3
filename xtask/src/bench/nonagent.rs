//! Scenario 6: what agentmon costs the processes it does not track, while an
//! agent is at work. A hook that runs per syscall or per socket call runs
//! for every process on the machine, and a uprobe attached to a library
//! file for every process is paid by every program that maps it; so each
//! untracked workload here runs while a tracked agent (see [`Agent`]) keeps
//! a TLS connection busy through the same library or runtime, in every arm,
//! and the with/without ratio is what everyone else pays. The profiling run
//! shows, per kernel program, whether the workload reaches it at all.
//!
//! The workloads: one cheap syscall (or pair) in a tight loop (loadgen's
//! micro modes), 64-byte TCP sends on loopback, bulk TCP (iperf3), and TLS
//! requests through libssl (python) and node.
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use agentmon_tests::{ChildGuard, REMOTE_V4, wait_until};
use anyhow::{Result, bail};

use super::lab::{
    CHURN_PORT, SINK_PORT, TLS_PORT, TLS_REPLY_BODY, TLS_REQUEST, get, remote, run_client, spawn,
};
use super::monitor::{Monitor, wait_value};
use super::runner::{Ctx, Options, Variant};
use super::stats::{Arm, Recorder, Unit};
use super::{bulk, msgs, tls};

pub const OPS: &str = "operations";
pub const AGENT_RATE: &str = "agent's TLS requests";
pub const AGENT_PLAINTEXT: &str = "agent's plaintext counted − written";

/// The agent's requests per second: enough for a live tracked socket and
/// probe hits all through the run, too few to take CPU from the workload.
pub const AGENT_RATE_PER_SEC: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Getppid,
    DevNull,
    Pipe,
    Unix,
    Loopback,
    Bulk,
    PythonTls,
    NodeTls,
    Connect,
}

/// The policy the connect workload runs under: every tool enforced, so the
/// connect and sendmsg hooks are attached, against a network nothing here
/// reaches.
const ENFORCED: &str =
    "[[policy.tool]]\nname = \"*\"\nenforce = true\ndeny = [ { cidr = \"192.0.2.0/24\" } ]\n";

/// Connections per second.
pub const CONNS: &str = "connections";

pub struct Nonagent {
    pub workload: Workload,
}

impl Workload {
    pub const ALL: [Workload; 9] = [
        Workload::Getppid,
        Workload::DevNull,
        Workload::Pipe,
        Workload::Unix,
        Workload::Loopback,
        Workload::Bulk,
        Workload::PythonTls,
        Workload::NodeTls,
        Workload::Connect,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Getppid => "getppid(), a syscall agentmon does not hook",
            Workload::DevNull => "64-byte write(2) to /dev/null",
            Workload::Pipe => "pipe: 64-byte write + read",
            Workload::Unix => "AF_UNIX socketpair: 64-byte send + recv",
            Workload::Loopback => "loopback TCP: 64-byte sends (TCP_NODELAY)",
            Workload::Bulk => "bulk TCP (iperf3)",
            Workload::PythonTls => "TLS through libssl (python), which the agent maps too",
            Workload::NodeTls => "TLS through node, which the agent (gemini-cli) runs too",
            Workload::Connect => {
                "TCP connections (connect, 64 B, close) with an enforced egress policy's connect hooks attached"
            }
        }
    }

    /// The figure the workload is measured by.
    pub fn figure(self) -> &'static str {
        match self {
            Workload::Loopback => msgs::SENDS,
            Workload::Bulk => "throughput",
            Workload::PythonTls | Workload::NodeTls => tls::REQUESTS,
            Workload::Connect => CONNS,
            _ => OPS,
        }
    }
}

impl Variant for Nonagent {
    fn name(&self) -> String {
        self.workload.name().to_owned()
    }

    fn arms(&self, opts: &Options) -> Vec<Arm> {
        opts.arms(false)
    }

    fn config(&self) -> Option<&'static str> {
        (self.workload == Workload::Connect).then_some(ENFORCED)
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let lab = ctx.lab;
        let on_node = self.workload == Workload::NodeTls;
        let agent = Agent::start(ctx, mon, rec, on_node)?;
        let secs = match self.workload {
            Workload::Bulk => ctx.opts.secs(10.0).round().max(1.0),
            _ => ctx.opts.secs(5.0),
        };
        let value = match self.workload {
            Workload::Getppid => micro(ctx, mon, rec, "getppid", secs)?,
            Workload::DevNull => micro(ctx, mon, rec, "devnull", secs)?,
            Workload::Pipe => micro(ctx, mon, rec, "pipe", secs)?,
            Workload::Unix => micro(ctx, mon, rec, "unix", secs)?,
            Workload::Loopback => loopback(ctx, mon, rec, secs)?,
            Workload::Bulk => timed(mon, rec, secs, || bulk::iperf(ctx, &lab.iperf, secs))?.0 / 1e9,
            Workload::PythonTls => tls_client(ctx, mon, rec, false, secs)?,
            Workload::NodeTls => tls_client(ctx, mon, rec, true, secs)?,
            Workload::Connect => connects(ctx, mon, rec, secs)?,
        };
        let unit = match self.workload {
            Workload::Bulk => Unit::Gbps,
            _ => Unit::PerSec,
        };
        rec.add(self.workload.figure(), unit, value);
        agent.stop(mon, rec)
    }
}

/// `f`, the workload, between [`Monitor::begin`] and [`Monitor::finish`].
fn timed<T>(mon: &mut Monitor, rec: &mut Recorder, secs: f64, f: impl FnOnce() -> T) -> T {
    mon.begin();
    let out = f();
    mon.finish(rec, secs);
    out
}

/// loadgen's micro mode `op`: operations per second.
fn micro(ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder, op: &str, secs: f64) -> Result<f64> {
    let mut cmd = ctx
        .lab
        .client(&ctx.lab.bins.loadgen, [op, "--secs", &secs.to_string()]);
    let figs = timed(mon, rec, secs, || run_client(&mut cmd, secs, op))?;
    Ok(get(&figs, "ops")? / get(&figs, "secs")?)
}

/// 64-byte sends to a sink on loopback: sends per second.
fn loopback(ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder, secs: f64) -> Result<f64> {
    let to = format!("127.0.0.1:{SINK_PORT}");
    let _sink = loopback_sink(ctx, &to)?;
    let mut cmd = ctx
        .lab
        .client(&ctx.lab.bins.loadgen, msgs::msgs_args(&to, secs));
    let figs = timed(mon, rec, secs, || {
        run_client(&mut cmd, secs, "loadgen msgs on loopback")
    })?;
    Ok(get(&figs, "sends")? / get(&figs, "secs")?)
}

/// Short connections to the remote churn sink, untracked, while the
/// policy's connect hooks are attached (checked in the agentmon arm):
/// connections per second.
fn connects(ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder, secs: f64) -> Result<f64> {
    if let Some(am) = mon.agentmon() {
        let on = [("tool", "aider")];
        let enforced = am.wait_for_value(
            "agentmon_policy_enforced",
            &on,
            Duration::from_secs(10),
            |v| v == 1.0,
        );
        if enforced.is_err() {
            bail!(
                "the policy's connect hooks are not attached:\n{}",
                am.log_text()
            );
        }
    }
    let to = remote(CHURN_PORT);
    let args = [
        "churn",
        "--to",
        &to,
        "--secs",
        &secs.to_string(),
        "--send",
        "64",
        "--threads",
        "2",
    ];
    let mut cmd = ctx.lab.client(&ctx.lab.bins.loadgen, args);
    let figs = timed(mon, rec, secs, || {
        run_client(&mut cmd, secs, "loadgen churn, untracked")
    })?;
    rec.add("failed connections", Unit::Count, get(&figs, "errors")?);
    Ok(get(&figs, "conns")? / get(&figs, "secs")?)
}

/// The TLS scenario's python or node client, untracked: requests per second.
fn tls_client(
    ctx: &Ctx,
    mon: &mut Monitor,
    rec: &mut Recorder,
    on_node: bool,
    secs: f64,
) -> Result<f64> {
    let lab = ctx.lab;
    // The probes are attached already (the agent's): no waiting.
    let go = ctx.file("nonagent-go");
    fs::write(&go, b"")?;
    let mut cmd = if on_node {
        let mut args = vec![lab.bins.script("tls_client.js").display().to_string()];
        args.extend(tls::node_args(secs, &go));
        lab.client("node", args)
    } else {
        let script = lab.bins.script("tls_client.py");
        lab.client("python3", tls::py_args(&script, secs, &go))
    };
    let figs = timed(mon, rec, secs, || {
        run_client(&mut cmd, secs, "an untracked TLS client")
    })?;
    Ok(get(&figs, "requests")? / get(&figs, "secs")?)
}

/// A `loadgen sink` on `to` (a loopback address) in the client namespace,
/// untracked, until the guard drops.
fn loopback_sink(ctx: &Ctx, to: &str) -> Result<ChildGuard> {
    let ready = ctx.file("loopback-sink.ready");
    let args = [
        "sink",
        "--listen",
        to,
        "--ready-file",
        &ready.display().to_string(),
    ];
    let mut sink = spawn(&mut ctx.lab.client(&ctx.lab.bins.loadgen, args));
    let up = wait_until(Duration::from_secs(10), || {
        ready.exists() || matches!(sink.child_mut().try_wait(), Ok(Some(_)))
    });
    if !up || !ready.exists() {
        bail!("loadgen sink on {to} did not start");
    }
    Ok(sink)
}

/// The tracked agent that works through a whole measurement: tls_agent.py
/// as aider (libssl), or tls_agent.js as Gemini CLI (node's OpenSSL), a few
/// keep-alive TLS requests a second to the bench's TLS server.
struct Agent {
    child: ChildGuard,
    stop: PathBuf,
    on_node: bool,
}

impl Agent {
    /// Starts it, lets it connect once agentmon (if running) has attached
    /// its probes, and waits for its first reply.
    fn start(ctx: &Ctx, mon: &Monitor, rec: &mut Recorder, on_node: bool) -> Result<Self> {
        let lab = ctx.lab;
        let go = ctx.file("agent.go");
        let (ready, stop) = (ctx.file("agent.ready"), ctx.file("agent.stop"));
        let (ip, port) = (REMOTE_V4.to_string(), TLS_PORT.to_string());
        let (rate, size) = (AGENT_RATE_PER_SEC.to_string(), TLS_REQUEST.to_string());
        let body = TLS_REPLY_BODY.to_string();
        let mut cmd = if on_node {
            let script = lab.node_agent.display().to_string();
            let files = [&go, &ready, &stop].map(|f| f.display().to_string());
            lab.client(
                "node",
                [script, ip, port, rate, size, body].iter().chain(&files),
            )
        } else {
            let mut args = vec![lab.py_agent.display().to_string()];
            for (flag, value) in [
                ("--ip", ip),
                ("--port", port),
                ("--rate", rate),
                ("--request-bytes", size),
                ("--reply-body", body),
                ("--wait-file", go.display().to_string()),
                ("--ready-file", ready.display().to_string()),
                ("--stop-file", stop.display().to_string()),
            ] {
                args.extend([flag.to_owned(), value]);
            }
            lab.client("python3", args)
        };
        let mut child = spawn(&mut cmd);
        let agent_lib = library(on_node);
        if let Some(am) = mon.agentmon() {
            let (attached, _) = wait_value(
                am,
                "agentmon_uprobes_attached",
                &[("library", agent_lib)],
                1.0,
                Duration::from_secs(20),
            );
            if attached < 1.0 {
                bail!(
                    "no {agent_lib} probes attached within 20 s:\n{}",
                    am.log_text()
                );
            }
            rec.add("probes attached", Unit::Count, attached);
        }
        fs::write(&go, b"")?;
        wait_until(Duration::from_secs(30), || {
            ready.exists() || matches!(child.child_mut().try_wait(), Ok(Some(_)))
        });
        if !ready.exists() {
            let out = child.wait_output(Duration::from_secs(5));
            bail!(
                "the agent did not get its first reply within 30 s: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self {
            child,
            stop,
            on_node,
        })
    }

    fn tool(&self) -> &'static str {
        if self.on_node { "gemini-cli" } else { "aider" }
    }

    fn library(&self) -> &'static str {
        library(self.on_node)
    }

    /// Stops it and records its request rate (it kept up in every arm) and,
    /// with agentmon, how its plaintext was counted (it was tracked and
    /// probed all along).
    fn stop(self, mon: &Monitor, rec: &mut Recorder) -> Result<()> {
        fs::write(&self.stop, b"")?;
        let (tool, lib) = (self.tool(), self.library());
        let out = self.child.wait_output(Duration::from_secs(30));
        let figs = super::lab::figures(&out, "the background agent")?;
        let requests = get(&figs, "requests")?;
        rec.add(AGENT_RATE, Unit::PerSec, requests / get(&figs, "secs")?);
        if let Some(am) = mon.agentmon() {
            let written = requests * TLS_REQUEST as f64;
            let egress = [("tool", tool), ("direction", "egress"), ("library", lib)];
            let (seen, _) = wait_value(
                am,
                "agentmon_tls_plaintext_bytes_total",
                &egress,
                written,
                Duration::from_secs(15),
            );
            rec.add(AGENT_PLAINTEXT, Unit::Bytes, seen - written);
        }
        Ok(())
    }
}

/// The TLS library label of the agent's probes.
fn library(on_node: bool) -> &'static str {
    if on_node { "openssl-static" } else { "openssl" }
}

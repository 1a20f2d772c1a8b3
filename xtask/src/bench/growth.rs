//! Scenario 5: growth. 64-byte sends while 1, 100 or 10,000 tracked
//! connections (or 1,000 tracked processes with one each) are held open,
//! agentmon's memory and /metrics scrape time with them; and the scrape at
//! the default `dest` cap with every built-in tool active.
use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use agentmon_tests::{Agentmon, wait_until};
use anyhow::{Context as _, Result, bail};

use super::lab::{SINK_PORT, TOOLS, get, remote, run_client, spawn};
use super::monitor::{Monitor, status_kib, value, wait_settled, wait_value};
use super::msgs::{SENDS, msgs_args};
use super::runner::{Ctx, Options, Variant};
use super::stats::{Arm, Recorder, Unit};

pub const SCRAPE: &str = "scrape time";
pub const DESTS: &str = "dest values per tool (max)";
/// Payload bytes each held connection sends.
const HELD_SEND: u64 = 100;
/// Hosts each tool talks to in the label-cap variant: past the cap of 64.
const HOSTS: u64 = 70;

pub struct Held {
    pub conns: u64,
    pub procs: u64,
}

impl Held {
    pub fn name_for(conns: u64, procs: u64) -> String {
        if procs > 1 {
            format!("{procs} tracked processes, {conns} connection each")
        } else {
            format!(
                "{conns} open tracked connection{}",
                if conns == 1 { "" } else { "s" }
            )
        }
    }
}

impl Variant for Held {
    fn name(&self) -> String {
        Self::name_for(self.conns, self.procs)
    }

    fn arms(&self, opts: &Options) -> Vec<Arm> {
        opts.arms(false)
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let lab = ctx.lab;
        let secs = ctx.opts.secs(3.0);
        let (ready, stop) = (ctx.file("hold-ready"), ctx.file("hold-stop"));
        let args = [
            "hold".to_owned(),
            "--to".into(),
            remote(SINK_PORT),
            "--conns".into(),
            self.conns.to_string(),
            "--procs".into(),
            self.procs.to_string(),
            "--send".into(),
            HELD_SEND.to_string(),
            "--ready-file".into(),
            ready.display().to_string(),
            "--stop-file".into(),
            stop.display().to_string(),
        ];
        let mut holder = spawn(&mut lab.client(&lab.claude, args));
        if !wait_until(Duration::from_secs(120), || {
            ready.exists() || matches!(holder.child_mut().try_wait(), Ok(Some(_)))
        }) || !ready.exists()
        {
            fs::write(&stop, b"")?;
            bail!(
                "loadgen hold did not get ready: {:?}",
                holder.wait_output(Duration::from_secs(10))
            );
        }
        let held = (self.conns * self.procs) as f64;
        let tcp = [("tool", "claude-code"), ("proto", "tcp")];
        if let Some(am) = mon.agentmon() {
            let out = [
                ("tool", "claude-code"),
                ("proto", "tcp"),
                ("direction", "egress"),
            ];
            let (counted, _) = wait_settled(
                am,
                "agentmon_connections_total",
                &out,
                held,
                Duration::from_secs(30),
            );
            rec.add(
                "held connections counted / held",
                Unit::Fraction,
                counted / held,
            );
            let m = am.scrape();
            let procs = value(&m, "agentmon_agent_processes", &[("tool", "claude-code")]);
            rec.add("tracked processes", Unit::Count, procs);
            let lost = value(&m, "agentmon_events_lost_total", &[]);
            rec.add("lost events while opening", Unit::Count, lost);
            let full = value(&m, "agentmon_kernel_map_full_total", &[]);
            rec.add("kernel map full", Unit::Count, full);
        }
        mon.begin();
        let figs = run_client(
            &mut lab.client(&lab.claude, msgs_args(&remote(SINK_PORT), secs)),
            secs,
            "loadgen msgs",
        )?;
        mon.finish(rec, secs);
        rec.add(
            SENDS,
            Unit::PerSec,
            get(&figs, "sends")? / get(&figs, "secs")?,
        );
        if let Some(am) = mon.agentmon() {
            // Open connections' bytes are read from the kernel at scrape time.
            let sent = held * HELD_SEND as f64 + get(&figs, "bytes")?;
            let (counted, _) = wait_value(
                am,
                "agentmon_egress_bytes_total",
                &tcp,
                sent,
                Duration::from_secs(15),
            );
            rec.add("egress counted − sent", Unit::Bytes, counted - sent);
            if let Some(pid) = am.pid() {
                rec.add(
                    "agentmon RSS",
                    Unit::MiB,
                    status_kib(pid, "VmRSS")? / 1024.0,
                );
            }
            scrapes(am, rec, 10)?;
        }
        fs::write(&stop, b"")?;
        holder.wait_output(Duration::from_secs(60));
        Ok(())
    }
}

/// `n` timed scrapes of /metrics, and its size.
fn scrapes(am: &Agentmon, rec: &mut Recorder, n: usize) -> Result<()> {
    let mut body = String::new();
    for _ in 0..n {
        let start = Instant::now();
        let r = am.get("/metrics").context("GET /metrics")?;
        rec.add(SCRAPE, Unit::Ms, start.elapsed().as_secs_f64() * 1000.0);
        body = r.body;
    }
    rec.add("scrape size", Unit::KiB, body.len() as f64 / 1024.0);
    let series = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    rec.add("series in the scrape", Unit::Count, series as f64);
    Ok(())
}

/// Every built-in tool talks to 70 named hosts (the `Host` header names
/// each connection), past the default cap of 64 `dest` values per tool;
/// then /metrics is scraped.
pub struct LabelCap;

pub const LABEL_CAP: &str = "all 12 tools at the dest cap (70 hosts each)";

impl Variant for LabelCap {
    fn name(&self) -> String {
        LABEL_CAP.to_owned()
    }

    fn arms(&self, _: &Options) -> Vec<Arm> {
        vec![Arm::Agentmon]
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let lab = ctx.lab;
        mon.begin();
        let start = Instant::now();
        for &(tool, _, _) in TOOLS {
            let (copy, extra) = lab.tool_copy(tool)?;
            let mut args = [
                "names",
                "--to",
                &remote(SINK_PORT),
                "--hosts",
                &HOSTS.to_string(),
            ]
            .map(String::from)
            .to_vec();
            args.extend(extra);
            run_client(&mut lab.client(&copy, args), 10.0, tool)?;
        }
        mon.finish(rec, start.elapsed().as_secs_f64());
        let am = mon
            .agentmon()
            .context("the label-cap variant runs with agentmon only")?;
        for &(tool, _, _) in TOOLS {
            let out = [("tool", tool), ("proto", "tcp"), ("direction", "egress")];
            let (n, _) = wait_value(
                am,
                "agentmon_connections_total",
                &out,
                HOSTS as f64,
                Duration::from_secs(30),
            );
            if n < HOSTS as f64 {
                bail!(
                    "{tool}: {n} of {HOSTS} connections counted:\n{}",
                    am.scrape().text()
                );
            }
        }
        let m = am.scrape();
        let dests = TOOLS
            .iter()
            .map(|&(tool, _, _)| {
                m.series("agentmon_egress_bytes_total")
                    .into_iter()
                    .filter(|(l, _)| l.get("tool").is_some_and(|t| t == tool))
                    .filter_map(|(l, _)| l.get("dest").cloned())
                    .collect::<BTreeSet<_>>()
                    .len()
            })
            .max()
            .unwrap_or(0);
        rec.add(DESTS, Unit::Count, dests as f64);
        rec.add(
            "dest overflow (all tools)",
            Unit::Count,
            value(&m, "agentmon_dest_overflow_total", &[]),
        );
        if let Some(pid) = am.pid() {
            rec.add(
                "agentmon RSS",
                Unit::MiB,
                status_kib(pid, "VmRSS")? / 1024.0,
            );
        }
        scrapes(am, rec, 20)
    }
}

//! Scenario 1: bulk TCP throughput, iperf3 for 10 s over the veth pair, by an
//! untracked iperf3 and by a copy at Claude Code's native path (tracked).
use agentmon_tests::{REMOTE_V4, run_bounded};
use anyhow::{Context as _, Result, bail};
use std::path::Path;
use std::time::Duration;

use super::lab::IPERF_PORT;
use super::monitor::{Monitor, wait_value};
use super::runner::{Ctx, Options, Variant};
use super::stats::{Arm, Recorder, Unit};

pub const UNTRACKED: &str = "untracked iperf3";
pub const TRACKED: &str = "tracked iperf3 (claude-code)";

pub struct Bulk {
    pub tracked: bool,
}

impl Variant for Bulk {
    fn name(&self) -> String {
        if self.tracked { TRACKED } else { UNTRACKED }.to_owned()
    }

    fn arms(&self, opts: &Options) -> Vec<Arm> {
        opts.arms(!self.tracked)
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let lab = ctx.lab;
        let secs = ctx.opts.secs(10.0).round().max(1.0);
        let program = if self.tracked {
            &lab.claude_iperf
        } else {
            &lab.iperf
        };
        mon.begin();
        let (bps, sent) = iperf(ctx, program, secs)?;
        mon.finish(rec, secs);
        rec.add("throughput", Unit::Gbps, bps / 1e9);
        if self.tracked
            && let Some(am) = mon.agentmon()
        {
            let tcp = [("tool", "claude-code"), ("proto", "tcp")];
            let (counted, _) = wait_value(
                am,
                "agentmon_egress_bytes_total",
                &tcp,
                sent,
                Duration::from_secs(15),
            );
            rec.add(
                "egress counted / iperf3 bytes",
                Unit::Fraction,
                counted / sent.max(1.0),
            );
        }
        if let Some(text) = mon.stop_bpftrace() {
            text?;
        }
        Ok(())
    }
}

/// `program` (iperf3 or a copy) as client for `secs` whole seconds: bits per
/// second received, and the test stream's bytes sent (the control
/// connection adds a few hundred more).
pub fn iperf(ctx: &Ctx, program: &Path, secs: f64) -> Result<(f64, f64)> {
    let args = [
        "-c".to_owned(),
        REMOTE_V4.to_string(),
        "-p".into(),
        IPERF_PORT.to_string(),
        "-t".into(),
        secs.to_string(),
        "-J".into(),
    ];
    let out = run_bounded(
        &mut ctx.lab.client(program, args),
        Duration::from_secs_f64(secs + 60.0),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 -J printed no JSON: {out:?}"))?;
    if let Some(err) = json["error"].as_str() {
        bail!("iperf3: {err}");
    }
    let end = &json["end"];
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second in iperf3's JSON")?;
    Ok((bps, end["sum_sent"]["bytes"].as_f64().unwrap_or(0.0)))
}

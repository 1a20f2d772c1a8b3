//! Scenario 2: small messages, 64-byte sends on one connection (TCP_NODELAY:
//! one segment each, like an agent's small RPCs and stream events), as fast
//! as they go, by an untracked and by a tracked loadgen.
use anyhow::{Context as _, Result};
use std::time::Duration;

use super::lab::{SINK_PORT, figures, get, remote, spawn};
use super::monitor::{Monitor, bpftrace_map, wait_value};
use super::runner::{Ctx, Options, Variant};
use super::stats::{Arm, Recorder, Unit};

pub const UNTRACKED: &str = "untracked loadgen";
pub const TRACKED: &str = "tracked loadgen (claude-code)";
pub const SENDS: &str = "64-byte sends";

pub struct Msgs {
    pub tracked: bool,
}

impl Variant for Msgs {
    fn name(&self) -> String {
        if self.tracked { TRACKED } else { UNTRACKED }.to_owned()
    }

    fn arms(&self, opts: &Options) -> Vec<Arm> {
        opts.arms(true)
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let lab = ctx.lab;
        let secs = ctx.opts.secs(5.0);
        let program = if self.tracked {
            &lab.claude
        } else {
            &lab.bins.loadgen
        };
        mon.begin();
        let client = spawn(&mut lab.client(program, msgs_args(&remote(SINK_PORT), secs)));
        let pid = client.id();
        let out = client.wait_output(Duration::from_secs_f64(secs + 60.0));
        mon.finish(rec, secs);
        let figs = figures(&out, "loadgen msgs")?;
        let (sends, bytes) = (get(&figs, "sends")?, get(&figs, "bytes")?);
        rec.add(SENDS, Unit::PerSec, sends / get(&figs, "secs")?);
        if self.tracked
            && let Some(am) = mon.agentmon()
        {
            let tcp = [("tool", "claude-code"), ("proto", "tcp")];
            let (counted, _) = wait_value(
                am,
                "agentmon_egress_bytes_total",
                &tcp,
                bytes,
                Duration::from_secs(15),
            );
            rec.add("egress counted − sent", Unit::Bytes, counted - bytes);
        }
        if let Some(text) = mon.stop_bpftrace() {
            let text = text?;
            let tx = bpftrace_map(&text, "tx", pid)
                .with_context(|| format!("bpftrace printed no @tx[{pid}]:\n{text}"))?;
            rec.add("bpftrace counted − sent", Unit::Bytes, tx - bytes);
        }
        Ok(())
    }
}

/// `msgs` arguments for `secs` seconds of 64-byte sends to the sink at `to`.
pub fn msgs_args(to: &str, secs: f64) -> Vec<String> {
    [
        "msgs",
        "--to",
        to,
        "--size",
        "64",
        "--secs",
        &secs.to_string(),
    ]
    .map(String::from)
    .to_vec()
}

//! Scenario 3: connection churn by a tracked process: short TCP connections
//! (connect, 64 bytes, the server closes, close) from 4 threads, as fast as
//! they go, and at fixed rates. With agentmon: lost events, connections counted, its CPU
//! (including the catch-up after the run) and peak RSS.
use anyhow::Result;
use std::time::{Duration, Instant};

use super::lab::{CHURN_PORT, CHURN_SEND, get, remote, run_client};
use super::monitor::{Monitor, value, wait_settled};
use super::runner::{Ctx, Options, Variant};
use super::stats::{Arm, Recorder, Unit};

pub const RATE: &str = "connections";
pub const LOST: &str = "lost events";
pub const COUNTED: &str = "connections counted / made";
pub const CATCH_UP: &str = "agentmon done, after the run's end";

pub struct Churn {
    /// Connections per second; None: as many as it can.
    pub rate: Option<u64>,
}

impl Churn {
    pub fn name_for(rate: Option<u64>) -> String {
        match rate {
            None => "as fast as it can".to_owned(),
            Some(r) => format!("fixed {r}/s"),
        }
    }
}

impl Variant for Churn {
    fn name(&self) -> String {
        Self::name_for(self.rate)
    }

    fn arms(&self, opts: &Options) -> Vec<Arm> {
        opts.arms(false)
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let secs = ctx.opts.secs(5.0);
        let mut args = [
            "churn",
            "--to",
            &remote(CHURN_PORT),
            "--secs",
            &secs.to_string(),
        ]
        .map(String::from)
        .to_vec();
        args.extend([
            "--send".into(),
            CHURN_SEND.to_string(),
            "--threads".into(),
            "4".into(),
        ]);
        if let Some(rate) = self.rate {
            args.extend(["--rate".into(), rate.to_string()]);
        }
        mon.begin();
        let figs = run_client(
            &mut ctx.lab.client(&ctx.lab.claude, args),
            secs,
            "loadgen churn",
        )?;
        let ended = Instant::now();
        let (conns, bytes) = (get(&figs, "conns")?, get(&figs, "bytes")?);
        rec.add(RATE, Unit::PerSec, conns / get(&figs, "secs")?);
        rec.add("failed connections", Unit::Count, get(&figs, "errors")?);
        let Some(am) = mon.agentmon() else {
            return Ok(());
        };
        let out = [
            ("tool", "claude-code"),
            ("proto", "tcp"),
            ("direction", "egress"),
        ];
        let before = ended.elapsed().as_secs_f64();
        let (counted, moved) = wait_settled(
            am,
            "agentmon_connections_total",
            &out,
            conns,
            Duration::from_secs(30),
        );
        // Until the count reached the total, or last moved (events lost).
        let catch_up = before + moved;
        let m = am.scrape();
        let lost = value(&m, "agentmon_events_lost_total", &[]);
        let full = value(&m, "agentmon_kernel_map_full_total", &[]);
        let egress = value(
            &m,
            "agentmon_egress_bytes_total",
            &[("tool", "claude-code"), ("proto", "tcp")],
        );
        mon.finish(rec, secs);
        rec.add(LOST, Unit::Count, lost);
        rec.add("kernel map full", Unit::Count, full);
        rec.add(COUNTED, Unit::Fraction, counted / conns.max(1.0));
        rec.add("egress counted − sent", Unit::Bytes, egress - bytes);
        rec.add(CATCH_UP, Unit::Secs, catch_up);
        Ok(())
    }
}

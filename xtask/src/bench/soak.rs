//! Scenario 7, the soak (`--only soak`; not in the default run, an hour by
//! default): a steady mixed load with agentmon, in cycles of short
//! connections, small messages, TLS requests through probed libssl, a
//! process fan-out and untracked traffic. agentmon's RSS and open file
//! descriptors are sampled about once a minute; at the end its counters
//! must equal what the clients sent, and the kernel's tables must be as
//! empty as before.
use std::fs;
use std::time::{Duration, Instant};

use agentmon_tests::{Agentmon, wait_until};
use anyhow::{Result, bail};

use super::lab::{BenchLab, CHURN_PORT, SINK_PORT, figures, get, remote, run_client, spawn};
use super::monitor::{Monitor, status_kib, value, wait_value};
use super::msgs::msgs_args;
use super::runner::{Ctx, Options, Variant};
use super::stats::{Arm, Recorder, Unit};
use super::tls::py_args;

pub const COUNTED: &str = "egress counted − sent (claude-code)";
pub const CONNS: &str = "connections counted − made (claude-code)";
pub const PLAINTEXT: &str = "TLS plaintext counted − written (aider)";
pub const RSS_GROWTH: &str = "RSS, last sample − first";
pub const FDS_GROWTH: &str = "open fds, last sample − first";
pub const DRAINED: &str = "kernel tables drained after the load";
/// Processes the fan-out of each cycle starts, one connection each.
pub const FANOUT: u64 = 20;
/// What each of them sends.
const FANOUT_SEND: u64 = 100;

pub struct Soak {
    pub secs: f64,
}

impl Soak {
    pub fn name_for(secs: f64) -> String {
        if secs >= 120.0 {
            format!("mixed load for {:.0} min", secs / 60.0)
        } else {
            format!("mixed load for {secs:.0} s")
        }
    }
}

/// What the clients did, the ground truth the counters are held to.
#[derive(Default)]
struct Truth {
    egress: f64,
    conns: f64,
    plaintext: f64,
}

/// One sample of agentmon itself.
struct Sample {
    secs: f64,
    rss_mib: f64,
    fds: usize,
    conns_map: f64,
    tracked_map: f64,
}

impl Variant for Soak {
    fn name(&self) -> String {
        Self::name_for(self.secs)
    }

    fn arms(&self, _: &Options) -> Vec<Arm> {
        vec![Arm::Agentmon]
    }

    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()> {
        let (Some(am), Some(pid)) = (mon.agentmon(), mon.pid()) else {
            bail!("the soak runs with agentmon only");
        };
        let mut series = vec![sample(am, pid, 0.0)?];
        let every = (self.secs / 60.0).max(2.0);
        let phase = ctx.opts.secs(2.0);
        let mut truth = Truth::default();
        mon.begin();
        let am = mon.agentmon().expect("checked above");
        let start = Instant::now();
        let mut cycles = 0u64;
        while start.elapsed().as_secs_f64() < self.secs {
            cycle(ctx, am, phase, &mut truth)?;
            cycles += 1;
            let now = start.elapsed().as_secs_f64();
            if now >= series.len() as f64 * every {
                series.push(sample(am, pid, now)?);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        mon.finish(rec, secs);
        let am = mon.agentmon().expect("checked above");
        let out = [("tool", "claude-code"), ("proto", "tcp")];
        let wait = Duration::from_secs(60);
        let (egress, _) = wait_value(am, "agentmon_egress_bytes_total", &out, truth.egress, wait);
        let conns_out = [out[0], out[1], ("direction", "egress")];
        let (conns, _) = wait_value(
            am,
            "agentmon_connections_total",
            &conns_out,
            truth.conns,
            wait,
        );
        let aider = [("tool", "aider"), ("direction", "egress")];
        let plain = "agentmon_tls_plaintext_bytes_total";
        let (plaintext, _) = wait_value(am, plain, &aider, truth.plaintext, wait);
        // After the load, the kernel's tables drain back to what they held
        // at the start (nothing of the load's).
        let drained = wait_until(wait, || {
            let m = am.scrape();
            let entries = |map| value(&m, "agentmon_kernel_map_entries", &[("map", map)]);
            entries("conns") == series[0].conns_map && entries("tracked") == series[0].tracked_map
        });
        let last = sample(am, pid, secs)?;
        let m = am.scrape();
        rec.add("cycles", Unit::Count, cycles as f64);
        rec.add(COUNTED, Unit::Bytes, egress - truth.egress);
        rec.add(CONNS, Unit::Count, conns - truth.conns);
        rec.add(PLAINTEXT, Unit::Bytes, plaintext - truth.plaintext);
        let lost = value(&m, "agentmon_events_lost_total", &[]);
        rec.add("lost events", Unit::Count, lost);
        let full = value(&m, "agentmon_kernel_map_full_total", &[]);
        rec.add("kernel map full", Unit::Count, full);
        rec.add(DRAINED, Unit::Fraction, f64::from(u8::from(drained)));
        let first = &series[0];
        rec.add("RSS, first sample", Unit::MiB, first.rss_mib);
        rec.add("RSS, last sample", Unit::MiB, last.rss_mib);
        let max = series.iter().map(|s| s.rss_mib).fold(0.0, f64::max);
        rec.add("RSS, largest sample", Unit::MiB, max);
        rec.add(RSS_GROWTH, Unit::MiB, last.rss_mib - first.rss_mib);
        rec.add("open fds, first sample", Unit::Count, first.fds as f64);
        rec.add(FDS_GROWTH, Unit::Count, last.fds as f64 - first.fds as f64);
        series.push(last);
        let text: Vec<String> = series
            .iter()
            .map(|s| format!("{:.0} s: {:.1} MiB, {} fds", s.secs, s.rss_mib, s.fds))
            .collect();
        println!("soak series: {}", text.join("; "));
        ctx.note(format!(
            "soak series (time: agentmon RSS, open fds): {}",
            text.join("; ")
        ));
        Ok(())
    }
}

/// One round of every kind of load; adds what the clients sent to `truth`.
fn cycle(ctx: &Ctx, am: &Agentmon, phase: f64, truth: &mut Truth) -> Result<()> {
    let lab = ctx.lab;
    // Short connections, 64 bytes each, at a steady rate.
    let (to, secs) = (remote(CHURN_PORT), phase.to_string());
    let churn = [
        "churn",
        "--to",
        &to,
        "--secs",
        &secs,
        "--send",
        "64",
        "--threads",
        "2",
        "--rate",
        "300",
    ];
    let figs = run_client(&mut lab.client(&lab.claude, churn), phase, "loadgen churn")?;
    truth.conns += get(&figs, "conns")?;
    truth.egress += get(&figs, "bytes")?;
    // Small messages on one connection.
    let msgs = msgs_args(&remote(SINK_PORT), phase);
    let figs = run_client(&mut lab.client(&lab.claude, msgs), phase, "loadgen msgs")?;
    truth.conns += 1.0;
    truth.egress += get(&figs, "bytes")?;
    // The same from an untracked process: counted for nobody.
    let msgs = msgs_args(&remote(SINK_PORT), phase / 2.0);
    run_client(
        &mut lab.client(&lab.bins.loadgen, msgs),
        phase,
        "untracked loadgen msgs",
    )?;
    tls(ctx, am, phase, truth)?;
    fanout(ctx, lab, truth)
}

/// TLS requests from a new aider process through probed libssl.
fn tls(ctx: &Ctx, am: &Agentmon, phase: f64, truth: &mut Truth) -> Result<()> {
    let lab = ctx.lab;
    let go = ctx.file("soak-go");
    let client = spawn(&mut lab.client("python3", py_args(&lab.aider, phase, &go)));
    let (attached, _) = wait_value(
        am,
        "agentmon_uprobes_attached",
        &[("library", "openssl")],
        1.0,
        Duration::from_secs(20),
    );
    if attached < 1.0 {
        bail!("no libssl probes attached within 20 s:\n{}", am.log_text());
    }
    fs::write(&go, b"")?;
    let out = client.wait_output(Duration::from_secs_f64(phase + 60.0));
    truth.plaintext += get(&figures(&out, "python TLS client")?, "bytes")?;
    Ok(())
}

/// An agent that starts processes: `FANOUT` of them, a connection each.
fn fanout(ctx: &Ctx, lab: &BenchLab, truth: &mut Truth) -> Result<()> {
    let (ready, stop) = (ctx.file("soak-ready"), ctx.file("soak-stop"));
    let args = [
        "hold".to_owned(),
        "--to".into(),
        remote(SINK_PORT),
        "--conns".into(),
        "1".into(),
        "--procs".into(),
        FANOUT.to_string(),
        "--send".into(),
        FANOUT_SEND.to_string(),
        "--ready-file".into(),
        ready.display().to_string(),
        "--stop-file".into(),
        stop.display().to_string(),
    ];
    let holder = spawn(&mut lab.client(&lab.claude, args));
    let got_ready = wait_until(Duration::from_secs(60), || ready.exists());
    fs::write(&stop, b"")?;
    let out = holder.wait_output(Duration::from_secs(60));
    if !got_ready || !out.status.success() {
        bail!("loadgen hold failed: {out:?}");
    }
    truth.conns += FANOUT as f64;
    truth.egress += (FANOUT * FANOUT_SEND) as f64;
    Ok(())
}

fn sample(am: &Agentmon, pid: u32, secs: f64) -> Result<Sample> {
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    let m = am.scrape();
    Ok(Sample {
        secs,
        rss_mib: status_kib(pid, "VmRSS")? / 1024.0,
        fds,
        conns_map: value(&m, "agentmon_kernel_map_entries", &[("map", "conns")]),
        tracked_map: value(&m, "agentmon_kernel_map_entries", &[("map", "tracked")]),
    })
}

//! The A/B loop: every variant runs without and with agentmon (and with the
//! bpftrace reference where it has that arm), alternating, `reps` times, a
//! fresh daemon for every with-agentmon run; then, unless turned off, once
//! more with agentmon and the profilers, for the cost breakdown.
use std::cell::RefCell;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::lab::BenchLab;
use super::monitor::Monitor;
use super::stats::{Arm, Recorder, Results, Table};

/// Between two measurements: the previous daemon's programs are gone and
/// the sockets of the last run have closed.
const PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Options {
    pub smoke: bool,
    pub reps: u32,
    /// Run the profiling pass (bpf_stats, per-thread CPU, perf).
    pub profile: bool,
    /// Whether bpftrace runs here; without it the reference arm is left out.
    pub bpftrace: bool,
    /// How long the soak runs (a few seconds in smoke mode).
    pub soak_secs: f64,
}

impl Options {
    /// Workload seconds: `full`, or one second in smoke mode.
    pub fn secs(&self, full: f64) -> f64 {
        if self.smoke { 1.0 } else { full }
    }

    /// Without and with agentmon, and the bpftrace reference if `reference`
    /// and bpftrace runs here.
    pub fn arms(&self, reference: bool) -> Vec<Arm> {
        let mut arms = vec![Arm::Without, Arm::Agentmon];
        if reference && self.bpftrace {
            arms.push(Arm::Bpftrace);
        }
        arms
    }
}

/// What every measurement gets.
pub struct Ctx<'a> {
    pub lab: &'a BenchLab,
    pub opts: &'a Options,
    /// Files of the current run (bpftrace output, perf data).
    pub scratch: PathBuf,
    /// Lines for the report's notes (the soak's series).
    pub notes: RefCell<Vec<String>>,
}

impl Ctx<'_> {
    pub fn note(&self, line: String) {
        self.notes.borrow_mut().push(line);
    }

    /// A fresh path in the lab's folder (ready, stop and go files).
    pub fn file(&self, what: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        self.lab
            .dir()
            .join(format!("{what}-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }
}

/// One row group of a scenario's table: a workload, measured per arm.
pub trait Variant {
    fn name(&self) -> String;
    fn arms(&self, opts: &Options) -> Vec<Arm>;
    /// One measurement. It calls `mon.begin()` and `mon.finish(..)` around
    /// the workload, so agentmon's CPU is taken over the workload only.
    fn run(&self, ctx: &Ctx, mon: &mut Monitor, rec: &mut Recorder) -> Result<()>;
    /// agentmon's config for this variant (none: the built-in defaults).
    fn config(&self) -> Option<&'static str> {
        None
    }
}

pub fn run_scenario(
    ctx: &Ctx,
    mut table: Table,
    variants: Vec<Box<dyn Variant>>,
    results: &mut Results,
) -> Result<()> {
    let agentmon = &ctx.lab.bins.agentmon;
    for v in variants {
        let name = v.name();
        let arms = v.arms(ctx.opts);
        for rep in 1..=ctx.opts.reps {
            for &arm in &arms {
                let start = Instant::now();
                let mut mon = Monitor::start(arm, agentmon, &ctx.scratch, v.config())?;
                let mut rec = Recorder::new(&mut table, &name, arm);
                v.run(ctx, &mut mon, &mut rec)
                    .with_context(|| format!("{} / {name} / {}", table.key, arm.heading()))?;
                drop(mon);
                println!(
                    "bench: {} / {name} / {} ({rep}/{}) done in {}",
                    table.key,
                    arm.heading(),
                    ctx.opts.reps,
                    crate::secs(start)
                );
                thread::sleep(PAUSE);
            }
        }
        if ctx.opts.profile && arms.contains(&Arm::Agentmon) {
            let mut mon = Monitor::start_profiled(agentmon, &ctx.scratch, v.config())?;
            let mut discard = Table::new("profile", "");
            let mut rec = Recorder::new(&mut discard, &name, Arm::Agentmon);
            v.run(ctx, &mut mon, &mut rec)
                .with_context(|| format!("{} / {name} / profiling run", table.key))?;
            if let Some(mut profile) = mon.profile.take() {
                profile.variant = format!("{}: {name}", table.title);
                results.profiles.push(profile);
            }
            drop(mon);
            println!("bench: {} / {name} / profiling run done", table.key);
            thread::sleep(PAUSE);
        }
    }
    results.tables.push(table);
    results.notes.append(&mut ctx.notes.borrow_mut());
    Ok(())
}

//! `cargo xtask bench`: what agentmon costs the traffic and the machine.
//!
//! Every scenario runs without and with agentmon, alternating, in the same
//! run, over a veth pair between two namespaces with documentation addresses
//! (the tests' lab). Load: iperf3 for bulk transfers, `loadgen` (this
//! workspace's purpose-built clients) for small messages, churn, held
//! connections and syscall loops, Python, node and Bun TLS clients against a
//! node TLS server. The markdown it prints (and writes to
//! `target/bench/results.md`) is what BENCHMARKS.md quotes.
//!
//! Layout: `runner` (the A/B loop), `monitor` (the arms: nothing, agentmon,
//! bpftrace; agentmon's CPU and RSS), `lab` (servers and tracked copies),
//! `profile` (bpf_stats, threads, perf), `stats` (figures and tables),
//! `report` (the markdown), one file per scenario. The soak runs only when
//! asked for (`--only soak`), and briefly in smoke mode.
mod bulk;
mod churn;
mod growth;
mod lab;
mod monitor;
mod msgs;
mod nonagent;
mod profile;
mod report;
mod runner;
mod soak;
mod stats;
mod tls;

use std::fs;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};

use lab::{BenchLab, Bins};
use runner::{Ctx, Options, Variant, run_scenario};
use stats::{Arm, Results, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Bulk,
    Msgs,
    Churn,
    Tls,
    Growth,
    Nonagent,
    Soak,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Short run (about a second per measurement, one repetition, one
    /// variant per scenario), as `cargo xtask test` runs it.
    #[arg(long)]
    pub smoke: bool,
    /// Repetitions of every measurement [default: 5, or 1 with --smoke].
    #[arg(long)]
    pub reps: Option<u32>,
    /// Only these scenarios (repeat the flag for several).
    #[arg(long, value_enum)]
    pub only: Vec<Scenario>,
    /// Leave out the profiling runs (bpf_stats, perf).
    #[arg(long)]
    pub no_profile: bool,
    /// Minutes the soak runs (`--only soak`).
    #[arg(long, default_value_t = 60.0)]
    pub soak_mins: f64,
    /// Where to write the markdown [default: target/bench/results.md].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measure this agentmon binary instead of the one just built (for
    /// before/after tables); loadgen still comes from this checkout.
    #[arg(long, hide = true)]
    pub agentmon: Option<PathBuf>,
}

/// Builds (release), takes the machine lock that the root tests take, runs
/// the scenarios and prints and writes the markdown.
pub fn bench(args: &BenchArgs) -> Result<()> {
    let ws = crate::tasks::build(&[crate::setup::Purpose::Bench])?;
    if !crate::cmd::is_root() {
        bail!("the bench loads BPF programs and makes network namespaces: run it as root");
    }
    agentmon_tests::hold_machine_lock();
    let mut bins = Bins::beside(&ws.agentmon());
    if !args.smoke {
        let samples = crate::clients::rustls_awslc(&ws)?;
        bins.rustls = Some(samples.join("rustls_awslc_client.stripped"));
    }
    if let Some(other) = &args.agentmon {
        bins.agentmon =
            fs::canonicalize(other).with_context(|| format!("--agentmon {}", other.display()))?;
    }
    let command = std::env::args()
        .skip(1)
        .fold("cargo xtask".to_owned(), |s, a| s + " " + &a);
    let other = args.agentmon.as_ref().map(|_| bins.agentmon.as_path());
    let machine = report::Machine::probe(&command, other);
    let opts = Options {
        smoke: args.smoke,
        reps: args.reps.unwrap_or(if args.smoke { 1 } else { 5 }).max(1),
        profile: !args.no_profile && !args.smoke,
        bpftrace: false,
        soak_secs: if args.smoke {
            SMOKE_SOAK_SECS
        } else {
            args.soak_mins * 60.0
        },
    };
    let results = run_all(opts, &bins, &args.only)?;
    let md = report::markdown(&results, &machine);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| ws.target().join("bench/results.md"));
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    fs::write(&out, &md).with_context(|| format!("write {}", out.display()))?;
    println!("\n{md}\nbench: written to {}", out.display());
    Ok(())
}

/// Runs the chosen scenarios (all when `only` is empty).
pub fn run_all(mut opts: Options, bins: &Bins, only: &[Scenario]) -> Result<Results> {
    let mut results = Results::default();
    let lab = BenchLab::new(bins.clone())?;
    let scratch = lab.dir().join("scratch");
    fs::create_dir_all(&scratch)?;
    match probe_bpftrace(&scratch) {
        Ok(()) => opts.bpftrace = true,
        Err(e) => results.notes.push(format!(
            "the bpftrace reference does not run here, so it is left out: {e:#}"
        )),
    }
    if !opts.profile {
        results
            .notes
            .push("no profiling runs (--smoke or --no-profile)".to_owned());
    }
    let ctx = Ctx {
        lab: &lab,
        opts: &opts,
        scratch,
        notes: Default::default(),
    };
    for (scenario, table, variants) in scenarios(&opts) {
        let wanted = if only.is_empty() {
            scenario != Scenario::Soak || opts.smoke
        } else {
            only.contains(&scenario)
        };
        if wanted {
            run_scenario(&ctx, table, variants, &mut results)?;
        }
    }
    Ok(results)
}

/// Whether bpftrace loads and attaches its script on this kernel.
fn probe_bpftrace(scratch: &std::path::Path) -> Result<()> {
    let mut mon = monitor::Monitor::start(Arm::Bpftrace, std::path::Path::new(""), scratch, None)?;
    mon.stop_bpftrace().context("no bpftrace")??;
    Ok(())
}

/// The soak's length in smoke mode: one cycle or two.
const SMOKE_SOAK_SECS: f64 = 6.0;

type Scenarios = Vec<(Scenario, Table, Vec<Box<dyn Variant>>)>;

fn scenarios(opts: &Options) -> Scenarios {
    let full = !opts.smoke;
    let mut out: Scenarios = Vec::new();
    let mut bulk: Vec<Box<dyn Variant>> = Vec::new();
    if full {
        bulk.push(Box::new(bulk::Bulk { tracked: false }));
    }
    bulk.push(Box::new(bulk::Bulk { tracked: true }));
    let secs = opts.secs(10.0);
    out.push((
        Scenario::Bulk,
        Table::new(
            "bulk",
            format!("1. Bulk TCP throughput (iperf3, {secs:.0} s)"),
        ),
        bulk,
    ));

    let mut msgs: Vec<Box<dyn Variant>> = Vec::new();
    if full {
        msgs.push(Box::new(msgs::Msgs { tracked: false }));
    }
    msgs.push(Box::new(msgs::Msgs { tracked: true }));
    let secs = opts.secs(5.0);
    out.push((
        Scenario::Msgs,
        Table::new(
            "msgs",
            format!(
                "2. Small messages (64-byte sends on one connection, TCP_NODELAY, {secs:.0} s)"
            ),
        ),
        msgs,
    ));

    let rates: &[Option<u64>] = if full {
        &[None, Some(1_000), Some(10_000), Some(20_000), Some(50_000)]
    } else {
        &[Some(1_000)]
    };
    out.push((
        Scenario::Churn,
        Table::new(
            "churn",
            format!(
                "3. Connection churn by a tracked process (64 bytes per connection, {secs:.0} s)"
            ),
        ),
        rates
            .iter()
            .map(|&rate| Box::new(churn::Churn { rate }) as Box<dyn Variant>)
            .collect(),
    ));

    let clients: &[tls::Client] = if full {
        &[
            tls::Client::PythonTracked,
            tls::Client::PythonUntracked,
            tls::Client::NodeTracked,
            tls::Client::BunTracked,
            tls::Client::GoTracked,
            tls::Client::OpensslStrippedTracked,
            tls::Client::RustlsTracked,
        ]
    } else {
        &[
            tls::Client::PythonTracked,
            tls::Client::BunTracked,
            tls::Client::GoTracked,
        ]
    };
    out.push((
        Scenario::Tls,
        Table::new(
            "tls",
            format!("4. TLS requests (HTTP/1.1 keep-alive, 512 B up, 1 KiB down, {secs:.0} s)"),
        ),
        clients
            .iter()
            .map(|&client| Box::new(tls::Tls { client }) as Box<dyn Variant>)
            .collect(),
    ));

    let held: &[(u64, u64)] = if full {
        &[(1, 1), (100, 1), (10_000, 1), (1, 1_000)]
    } else {
        &[(100, 1)]
    };
    let mut growth: Vec<Box<dyn Variant>> = held
        .iter()
        .map(|&(conns, procs)| Box::new(growth::Held { conns, procs }) as Box<dyn Variant>)
        .collect();
    growth.push(Box::new(growth::LabelCap));
    let secs = opts.secs(3.0);
    out.push((
        Scenario::Growth,
        Table::new(
            "growth",
            format!(
                "5. Growth (64-byte sends for {secs:.0} s while connections are held; scrapes)"
            ),
        ),
        growth,
    ));

    let workloads: &[nonagent::Workload] = if full {
        &nonagent::Workload::ALL
    } else {
        &[nonagent::Workload::Unix, nonagent::Workload::Connect]
    };
    let secs = opts.secs(5.0);
    out.push((
        Scenario::Nonagent,
        Table::new(
            "nonagent",
            format!(
                "6. Non-agent processes while an agent is active (untracked workloads, \
                 {secs:.0} s, bulk {:.0} s; in every arm a tracked TLS client makes {} \
                 requests/s)",
                opts.secs(10.0),
                nonagent::AGENT_RATE_PER_SEC
            ),
        ),
        workloads
            .iter()
            .map(|&workload| Box::new(nonagent::Nonagent { workload }) as Box<dyn Variant>)
            .collect(),
    ));

    out.push((
        Scenario::Soak,
        Table::new(
            "soak",
            format!(
                "7. Soak ({}: short connections, small messages, TLS through libssl, \
                 {} processes with a connection each and untracked traffic, in cycles)",
                soak::Soak::name_for(opts.soak_secs),
                soak::FANOUT
            ),
        ),
        vec![Box::new(soak::Soak {
            secs: opts.soak_secs,
        })],
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How long the smoke run may take before the test calls it rotten.
    const SMOKE_LIMIT: Duration = Duration::from_secs(120);

    /// The bench in smoke mode, from `cargo xtask test`: every scenario
    /// runs and gives sane figures, so the bench cannot rot.
    #[test]
    fn smoke_bench_runs_every_scenario_with_sane_figures() {
        if !agentmon_tests::require_root() {
            return;
        }
        let bins = Bins::beside(&agentmon_tests::agentmon_bin());
        let opts = Options {
            smoke: true,
            reps: 1,
            profile: false,
            bpftrace: false,
            soak_secs: SMOKE_SOAK_SECS,
        };
        let start = std::time::Instant::now();
        let r = run_all(opts, &bins, &[]).unwrap();
        let md = report::markdown(&r, &report::Machine { lines: Vec::new() });
        println!("{md}");
        let elapsed = start.elapsed();
        assert!(elapsed < SMOKE_LIMIT, "smoke run took {elapsed:?}");
        let both = |variant: &str, figure: &str| {
            for arm in [Arm::Without, Arm::Agentmon] {
                let v = r.median(variant, figure, arm);
                assert!(
                    v.is_some_and(|v| v > 0.0),
                    "{variant} / {figure} / {arm:?}: {v:?}\n{md}"
                );
            }
        };
        let with = |variant: &str, figure: &str| {
            r.median(variant, figure, Arm::Agentmon)
                .unwrap_or_else(|| panic!("{variant} / {figure}: not measured\n{md}"))
        };
        both(bulk::TRACKED, "throughput");
        both(msgs::TRACKED, msgs::SENDS);
        assert_eq!(with(msgs::TRACKED, "egress counted − sent"), 0.0, "{md}");
        let churn = churn::Churn::name_for(Some(1_000));
        both(&churn, churn::RATE);
        let rate = with(&churn, churn::RATE);
        assert!(
            (500.0..=1_500.0).contains(&rate),
            "churn at 1,000/s made {rate}/s\n{md}"
        );
        assert_eq!(with(&churn, churn::LOST), 0.0, "{md}");
        assert_eq!(with(&churn, churn::COUNTED), 1.0, "{md}");
        assert_eq!(with(&churn, "egress counted − sent"), 0.0, "{md}");
        let py = tls::Client::PythonTracked.name();
        both(py, tls::REQUESTS);
        assert!(with(py, "probes attached") > 0.0, "{md}");
        assert_eq!(with(py, "plaintext counted − written"), 0.0, "{md}");
        let bun = tls::Client::BunTracked.name();
        both(bun, tls::REQUESTS);
        assert!(with(bun, "probes attached") > 0.0, "{md}");
        assert_eq!(with(bun, "plaintext counted − written"), 0.0, "{md}");
        let go = tls::Client::GoTracked.name();
        both(go, tls::REQUESTS);
        assert!(with(go, "probes attached") > 0.0, "{md}");
        assert_eq!(with(go, "plaintext counted − written"), 0.0, "{md}");
        let held = growth::Held::name_for(100, 1);
        both(&held, msgs::SENDS);
        assert_eq!(with(&held, "egress counted − sent"), 0.0, "{md}");
        assert!(with(&held, growth::SCRAPE) > 0.0, "{md}");
        // 64 distinct values per tool, and "other" for the rest.
        assert_eq!(with(growth::LABEL_CAP, growth::DESTS), 65.0, "{md}");
        let unix = nonagent::Workload::Unix;
        both(unix.name(), unix.figure());
        both(unix.name(), nonagent::AGENT_RATE);
        assert!(with(unix.name(), "probes attached") > 0.0, "{md}");
        assert_eq!(with(unix.name(), nonagent::AGENT_PLAINTEXT), 0.0, "{md}");
        let soak = soak::Soak::name_for(SMOKE_SOAK_SECS);
        assert!(with(&soak, "cycles") >= 1.0, "{md}");
        assert_eq!(with(&soak, soak::COUNTED), 0.0, "{md}");
        assert_eq!(with(&soak, soak::CONNS), 0.0, "{md}");
        assert_eq!(with(&soak, soak::PLAINTEXT), 0.0, "{md}");
        assert_eq!(with(&soak, soak::DRAINED), 1.0, "{md}");
        if r.notes.iter().all(|n| !n.contains("bpftrace")) {
            let v = r.median(msgs::TRACKED, "bpftrace counted − sent", Arm::Bpftrace);
            assert_eq!(v, Some(0.0), "{md}");
        }
    }
}

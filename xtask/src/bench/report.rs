//! The markdown a run prints and writes: the machine, the command, one table
//! per scenario, the targets met or not, and the cost profiles.
use std::fs;
use std::process::Command;

use super::stats::{Arm, Results};
use super::{bulk, churn, growth, msgs, tls};

/// What the figures were measured on.
pub struct Machine {
    pub lines: Vec<String>,
}

impl Machine {
    /// `other`: the agentmon binary given with `--agentmon`, if any.
    pub fn probe(command: &str, other: Option<&std::path::Path>) -> Self {
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("model name")?
                        .split_once(':')
                        .map(|(_, v)| v.trim().to_owned())
                })
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mem = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let kb: f64 = s
                    .lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()?;
                Some(format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            })
            .unwrap_or_default();
        let version = |cmd: &str, arg: &str| {
            Command::new(cmd)
                .arg(arg)
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "not installed".into())
        };
        let commit = Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            lines: vec![
                format!(
                    "- machine: {cores} cores ({cpu}), {mem}, Linux {}",
                    kernel.trim()
                ),
                format!("- load average before the run: {}", loadavg()),
                match other {
                    Some(bin) => format!(
                        "- agentmon: `{}` (--agentmon), not this checkout ({commit})",
                        bin.display()
                    ),
                    None => format!("- agentmon: commit {commit}, release build"),
                },
                format!(
                    "- tools: {}, {}, {}, node {}",
                    version("iperf3", "--version"),
                    version("bpftrace", "--version"),
                    version("perf", "--version"),
                    version("node", "--version")
                ),
                format!("- command: `{command}`"),
            ],
        }
    }
}

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn markdown(results: &Results, machine: &Machine) -> String {
    let mut out = String::from("## Run\n\n");
    for l in &machine.lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("- load average after the run: {}\n", loadavg()));
    for n in &results.notes {
        out.push_str(&format!("- note: {n}\n"));
    }
    out.push_str(
        "\nEach cell: median (min–max) over the repetitions; ratio: the median \
         with the monitor over the median without. agentmon's CPU and RSS are \
         its own process (`/proc/<pid>/stat`, `VmHWM`); kernel-side cost shows \
         in the traffic figures and in the profiles below.\n\n",
    );
    for t in &results.tables {
        out.push_str(&format!("### {}\n\n{}\n", t.title, t.markdown()));
    }
    out.push_str("### Targets\n\n| target | measured | met |\n|---|---|---|\n");
    for (target, measured, met) in targets(results) {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        out.push_str(&format!("| {target} | {measured} | {met} |\n"));
    }
    if !results.profiles.is_empty() {
        out.push_str(
            "\n### Where the cost goes (profiling runs)\n\nOne extra with-agentmon run per \
             variant, with `kernel.bpf_stats_enabled=1` (run_cnt and run_time_ns of \
             each of agentmon's programs, from /proc/<pid>/fdinfo), agentmon's CPU \
             per thread, and `perf record -p <agentmon>`. The uprobe programs' \
             run time excludes the trap into the kernel and back, which is the \
             larger part of a probed TLS call.\n\n",
        );
        for p in &results.profiles {
            out.push_str(&p.markdown());
        }
    }
    out
}

type Target = (String, String, Option<bool>);

/// The targets, checked against the medians.
fn targets(r: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let mut ratio = |target: &str, variant: &str, figure: &str, at_least: f64| {
        let a = r.summary(variant, figure, Arm::Without);
        let b = r.summary(variant, figure, Arm::Agentmon);
        let (measured, met) = match (a, b) {
            (Some(a), Some(b)) if a.median > 0.0 => {
                // Overlapping ranges: the difference is within run-to-run noise.
                let overlap = if b.max >= a.min && a.max >= b.min {
                    ", min–max ranges overlap"
                } else {
                    ""
                };
                let ratio = b.median / a.median;
                (
                    format!("{variant}: ratio {ratio:.3}{overlap}"),
                    Some(ratio >= at_least),
                )
            }
            _ => (format!("{variant}: –"), None),
        };
        out.push((target.to_owned(), measured, met));
    };
    ratio(
        "untracked traffic within 1%: bulk",
        bulk::UNTRACKED,
        "throughput",
        0.99,
    );
    ratio(
        "untracked traffic within 1%: 64-byte sends",
        msgs::UNTRACKED,
        msgs::SENDS,
        0.99,
    );
    ratio("tracked bulk within 2%", bulk::TRACKED, "throughput", 0.98);
    ratio(
        "tracked 64-byte sends within 5%",
        msgs::TRACKED,
        msgs::SENDS,
        0.95,
    );
    for c in [
        tls::Client::PythonTracked,
        tls::Client::NodeTracked,
        tls::Client::BunTracked,
        tls::Client::PythonUntracked,
    ] {
        ratio(
            "TLS requests with uprobes within 5%",
            c.name(),
            tls::REQUESTS,
            0.95,
        );
    }
    for rate in [Some(20_000), None] {
        let variant = churn::Churn::name_for(rate);
        let b = |figure: &str| r.median(&variant, figure, Arm::Agentmon);
        let figures = (
            b(churn::RATE),
            b(churn::LOST),
            b("agentmon CPU per workload second"),
            b("agentmon peak RSS"),
        );
        let (measured, met) = match figures {
            (Some(rate), Some(lost), Some(cpu), Some(rss)) => (
                format!("{variant}: {rate:.0}/s, {lost:.0} lost, {cpu:.3} cores, {rss:.1} MiB"),
                Some(rate >= 19_800.0 && lost == 0.0 && cpu < 0.5 && rss < 64.0),
            ),
            _ => (format!("{variant}: –"), None),
        };
        out.push((
            "churn: ≥ 20,000 connections/s, 0 lost events, agentmon < 0.5 core and < 64 MB RSS"
                .to_owned(),
            measured,
            met,
        ));
    }
    let scrapes: Vec<(String, f64)> = r
        .tables
        .iter()
        .flat_map(|t| &t.rows)
        .filter(|row| row.figure == growth::SCRAPE)
        .filter_map(|row| {
            let s = super::stats::Summary::of(row.samples.get(&Arm::Agentmon)?);
            Some((row.variant.clone(), s.median))
        })
        .collect();
    let worst = scrapes.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    out.push((
        "scrape under 20 ms".to_owned(),
        worst.map_or("–".to_owned(), |(v, ms)| {
            format!("slowest median {ms:.2} ms ({v})")
        }),
        worst.map(|(_, ms)| *ms < 20.0),
    ));
    out
}

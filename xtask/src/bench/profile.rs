//! Where agentmon's cost goes, from one extra with-agentmon run per variant
//! (not counted in the tables, because the stats themselves cost a little):
//! - the kernel's BPF run-time stats (`kernel.bpf_stats_enabled`): run_cnt
//!   and run_time_ns of each program agentmon holds, from
//!   /proc/<pid>/fdinfo/<fd>, named with `bpftool prog show id N`;
//! - agentmon's CPU per thread (/proc/<pid>/task/*/stat);
//! - a perf profile of agentmon (`perf record -p`), when perf is there.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentmon_tests::wait_until;
use anyhow::{Context as _, Result};

use super::monitor::stat_cpu_secs;

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns `kernel.bpf_stats_enabled` on, and back to what it was on drop.
pub struct BpfStats {
    old: String,
}

impl BpfStats {
    pub fn enable() -> Result<Self> {
        let old = fs::read_to_string(BPF_STATS)
            .with_context(|| format!("read {BPF_STATS}"))?
            .trim()
            .to_owned();
        fs::write(BPF_STATS, "1").with_context(|| format!("write 1 to {BPF_STATS}"))?;
        Ok(Self { old })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, &self.old);
    }
}

/// One program's share of a workload.
#[derive(Debug, Clone)]
pub struct ProgStat {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub variant: String,
    /// Wall seconds of the workload.
    pub secs: f64,
    /// Busiest first.
    pub programs: Vec<ProgStat>,
    /// agentmon's threads (by name, summed) and their CPU seconds.
    pub threads: Vec<(String, f64)>,
    /// perf's top symbols in agentmon, or why there is no perf profile.
    pub perf: std::result::Result<Vec<String>, String>,
}

impl Profile {
    pub fn markdown(&self) -> String {
        let mut out = format!("#### {}\n\n", self.variant);
        let total: u64 = self.programs.iter().map(|p| p.run_time_ns).sum();
        out.push_str(&format!(
            "Kernel programs, {:.2} s of workload: {:.3} CPU s in all ({:.3} cores).\n\n",
            self.secs,
            total as f64 / 1e9,
            total as f64 / 1e9 / self.secs.max(1e-3)
        ));
        out.push_str("| program | runs | ns/run | CPU s | cores |\n|---|---|---|---|---|\n");
        for p in self.programs.iter().filter(|p| p.run_cnt > 0).take(10) {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.3} | {:.4} |\n",
                p.name,
                p.run_cnt,
                p.run_time_ns as f64 / p.run_cnt as f64,
                p.run_time_ns as f64 / 1e9,
                p.run_time_ns as f64 / 1e9 / self.secs.max(1e-3)
            ));
        }
        let threads: Vec<String> = self
            .threads
            .iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(name, s)| format!("`{name}` {s:.2} s"))
            .collect();
        out.push_str(&format!(
            "\nagentmon threads (CPU s): {}\n\n",
            if threads.is_empty() {
                "none measurable (< 10 ms)".to_owned()
            } else {
                threads.join(", ")
            }
        ));
        match &self.perf {
            Ok(lines) if !lines.is_empty() => {
                out.push_str("perf, agentmon's top symbols:\n\n```\n");
                for l in lines {
                    out.push_str(l);
                    out.push('\n');
                }
                out.push_str("```\n\n");
            }
            Ok(_) => out.push_str("perf: no samples in agentmon.\n\n"),
            Err(why) => out.push_str(&format!("perf: {why}\n\n")),
        }
        out
    }
}

/// Snapshots at the start of a workload; [`Profiler::end`] turns them into
/// a [`Profile`].
pub struct Profiler {
    pid: u32,
    start: Instant,
    progs: BTreeMap<u32, (u64, u64)>,
    threads: BTreeMap<u32, (String, f64)>,
    perf: std::result::Result<(Child, PathBuf), String>,
}

impl Profiler {
    pub fn begin(pid: u32, scratch: &Path) -> Self {
        let data = scratch.join("perf.data");
        let perf = Command::new("perf")
            .args([
                "record",
                "-q",
                "-g",
                "-F",
                "999",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|c| (c, data))
            .map_err(|e| format!("not run ({e}); `cargo xtask setup bench` installs linux-perf"));
        // perf needs a moment to attach to the process's threads.
        std::thread::sleep(Duration::from_millis(200));
        Self {
            pid,
            start: Instant::now(),
            progs: prog_stats(pid),
            threads: thread_cpu(pid),
            perf,
        }
    }

    pub fn end(self, variant: &str) -> Profile {
        let secs = self.start.elapsed().as_secs_f64();
        let mut programs: Vec<ProgStat> = prog_stats(self.pid)
            .into_iter()
            .map(|(id, (cnt, ns))| {
                let (cnt0, ns0) = self.progs.get(&id).copied().unwrap_or_default();
                ProgStat {
                    name: prog_name(id),
                    run_cnt: cnt.saturating_sub(cnt0),
                    run_time_ns: ns.saturating_sub(ns0),
                }
            })
            .collect();
        programs.sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
        let mut threads: BTreeMap<String, f64> = BTreeMap::new();
        for (tid, (name, cpu)) in thread_cpu(self.pid) {
            let before = self.threads.get(&tid).map_or(0.0, |(_, c)| *c);
            *threads.entry(name).or_default() += cpu - before;
        }
        let mut threads: Vec<(String, f64)> = threads.into_iter().collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        Profile {
            variant: variant.to_owned(),
            secs,
            programs,
            threads,
            perf: self
                .perf
                .and_then(|(child, data)| perf_report(child, &data)),
        }
    }
}

/// prog_id -> (run_cnt, run_time_ns) of every BPF program `pid` holds an fd of.
fn prog_stats(pid: u32) -> BTreeMap<u32, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |name: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        };
        if let (Some(id), Some(cnt), Some(ns)) =
            (field("prog_id"), field("run_cnt"), field("run_time_ns"))
        {
            out.insert(id as u32, (cnt, ns));
        }
    }
    out
}

/// "name (type)" of a program, from bpftool; "prog ID" without it.
fn prog_name(id: u32) -> String {
    let out = Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string(), "--json"])
        .stdin(Stdio::null())
        .output();
    out.ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| {
            let name = v["name"].as_str()?;
            Some(format!("{name} ({})", v["type"].as_str().unwrap_or("?")))
        })
        .unwrap_or_else(|| format!("prog {id}"))
}

/// tid -> (thread name, CPU seconds).
fn thread_cpu(pid: u32) -> BTreeMap<u32, (String, f64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if let Some(cpu) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| stat_cpu_secs(&s))
        {
            out.insert(tid, (comm.trim().to_owned(), cpu));
        }
    }
    out
}

/// Stops `perf record` (SIGINT) and returns its report's top lines.
fn perf_report(mut child: Child, data: &Path) -> std::result::Result<Vec<String>, String> {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the child is ours.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
    let exited = wait_until(Duration::from_secs(30), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        return Err("perf record did not stop".into());
    }
    let report = |args: &[&str]| -> std::result::Result<String, String> {
        let out = Command::new("perf")
            .args(["report", "--stdio", "-g", "none", "-i"])
            .arg(data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let own = report(&[
        "--no-children",
        "--sort",
        "dso,sym",
        "--percent-limit",
        "1.5",
    ])?;
    // "# Samples: 2K of event 'cpu-clock:pppH'"
    let samples = own
        .lines()
        .find_map(|l| l.strip_prefix("# Samples: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("0");
    let rows = |text: &str, keep: &dyn Fn(&str) -> bool, n: usize| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains('%') && keep(l))
            .take(n)
            .map(|l| l.trim_end().to_owned())
            .collect()
    };
    let mut lines = vec![format!("{samples} samples at 999 Hz; own time (self):")];
    lines.extend(rows(&own, &|_| true, 15));
    // Kernel stacks are whole (user-space ones are not: no frame pointers),
    // so inclusive kernel time tells which syscalls the daemon's time is in.
    let inclusive = report(&["--children", "--sort", "sym", "--percent-limit", "4"])?;
    lines.push("kernel functions, inclusive (children + self):".to_owned());
    lines.extend(rows(
        &inclusive,
        &|l: &str| l.contains("[k]") && !l.contains("[k] 0x"),
        14,
    ));
    Ok(lines)
}

//! The monitor side of one measurement: nothing, a fresh `agentmon run`, or
//! the bpftrace reference script; and what agentmon itself used meanwhile
//! (CPU seconds from /proc/<pid>/stat, peak RSS from VmHWM).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use agentmon_tests::{Agentmon, Metrics, wait_until};
use anyhow::{Context as _, Result, bail};

use super::profile::{BpfStats, Profile, Profiler};
use super::stats::{Arm, Recorder, Unit};

/// Per-process byte accounting on the tracepoints agentmon counts bytes on,
/// and nothing else: the cheapest monitor of this kind one can write.
pub const BPFTRACE_SCRIPT: &str = "tracepoint:sock:sock_send_length /args->ret > 0/ { @tx[pid] = sum(args->ret); } \
tracepoint:sock:sock_recv_length /args->ret > 0/ { @rx[pid] = sum(args->ret); }";

/// How long a new agentmon gets to finish its start-up (the /proc scan,
/// GeoIP loading) before a measurement starts.
const SETTLE: Duration = Duration::from_millis(300);

/// What one measurement runs beside its workload. Dropping it stops it.
pub struct Monitor {
    agentmon: Option<Agentmon>,
    bpftrace: Option<Bpftrace>,
    began: Option<(Instant, f64)>,
    /// Set for the profiling run: where its Profiler goes, and the profile.
    profiling: Option<(PathBuf, Option<Profiler>)>,
    pub profile: Option<Profile>,
    // Last: the stats are switched off after agentmon stopped.
    _stats: Option<BpfStats>,
}

impl Monitor {
    /// `config`: the text of agentmon's config file, if it needs one.
    pub fn start(
        arm: Arm,
        agentmon_bin: &Path,
        scratch: &Path,
        config: Option<&str>,
    ) -> Result<Self> {
        let mut monitor = Monitor {
            agentmon: None,
            bpftrace: None,
            began: None,
            profiling: None,
            profile: None,
            _stats: None,
        };
        match arm {
            Arm::Without => {}
            Arm::Agentmon => {
                let mut builder = Agentmon::builder().bin(agentmon_bin);
                if let Some(text) = config {
                    fs::create_dir_all(scratch)?;
                    let path = scratch.join("agentmon.toml");
                    fs::write(&path, text)?;
                    builder = builder.config(path);
                }
                // The guard panics, with the daemon's log, if it does not start.
                monitor.agentmon = Some(builder.start());
                thread::sleep(SETTLE);
            }
            Arm::Bpftrace => monitor.bpftrace = Some(Bpftrace::start(scratch)?),
        }
        Ok(monitor)
    }

    /// agentmon with the kernel's BPF run-time stats on and, around the
    /// workload, a [`Profiler`].
    pub fn start_profiled(
        agentmon_bin: &Path,
        scratch: &Path,
        config: Option<&str>,
    ) -> Result<Self> {
        let stats = BpfStats::enable()?;
        let mut monitor = Self::start(Arm::Agentmon, agentmon_bin, scratch, config)?;
        monitor._stats = Some(stats);
        monitor.profiling = Some((scratch.to_path_buf(), None));
        Ok(monitor)
    }

    pub fn agentmon(&self) -> Option<&Agentmon> {
        self.agentmon.as_ref()
    }

    pub fn pid(&self) -> Option<u32> {
        self.agentmon.as_ref().and_then(Agentmon::pid)
    }

    /// Marks the start of the workload, for agentmon's CPU figures.
    pub fn begin(&mut self) {
        if let (Some(pid), Some((scratch, profiler))) = (self.pid(), self.profiling.as_mut()) {
            *profiler = Some(Profiler::begin(pid, scratch));
        }
        self.began = self
            .pid()
            .and_then(|pid| cpu_secs(pid).ok())
            .map(|cpu| (Instant::now(), cpu));
    }

    /// Records agentmon's CPU since [`Monitor::begin`] (in seconds, and in
    /// cores over `workload_secs`) and its peak RSS. Nothing without agentmon.
    pub fn finish(&mut self, rec: &mut Recorder, workload_secs: f64) {
        let (Some(pid), Some((_, cpu0))) = (self.pid(), self.began) else {
            return;
        };
        if let Some(profiler) = self.profiling.as_mut().and_then(|(_, p)| p.take()) {
            self.profile = Some(profiler.end(""));
        }
        if let Ok(cpu) = cpu_secs(pid) {
            rec.add("agentmon CPU", Unit::CpuSecs, cpu - cpu0);
            rec.add(
                "agentmon CPU per workload second",
                Unit::Cores,
                (cpu - cpu0) / workload_secs.max(1e-3),
            );
        }
        if let Ok(kib) = status_kib(pid, "VmHWM") {
            rec.add("agentmon peak RSS", Unit::MiB, kib / 1024.0);
        }
    }

    /// Stops bpftrace and returns what it printed (its maps), if it ran.
    pub fn stop_bpftrace(&mut self) -> Option<Result<String>> {
        self.bpftrace.take().map(Bpftrace::stop)
    }
}

/// utime + stime of a process, in seconds.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    stat_cpu_secs(&stat).with_context(|| format!("parse /proc/{pid}/stat"))
}

/// utime + stime from a /proc/<pid>/stat (or task/<tid>/stat) line.
pub fn stat_cpu_secs(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line; the rest starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A `Name:   N kB` line of /proc/<pid>/status, in KiB.
pub fn status_kib(pid: u32, name: &str) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {name} in /proc/{pid}/status"))
}

/// The sum of the series `name{labels}` in a scrape; 0 when none exists.
pub fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.value(name, labels).unwrap_or(0.0)
}

/// Scrapes until `name{labels}` reaches `want` (or `timeout` passes) and
/// returns the last value and how long it took to get there.
pub fn wait_value(
    am: &Agentmon,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
    timeout: Duration,
) -> (f64, f64) {
    let start = Instant::now();
    let mut last = 0.0;
    wait_until(timeout, || {
        last = value(&am.scrape(), name, labels);
        last >= want
    });
    (last, start.elapsed().as_secs_f64())
}

/// Like [`wait_value`], but also gives up once the value has not moved for
/// [`STALL`]: events that were lost never arrive. Returns the last value and
/// when it last moved (or reached `want`), in seconds from the call.
pub fn wait_settled(
    am: &Agentmon,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
    timeout: Duration,
) -> (f64, f64) {
    let start = Instant::now();
    let (mut last, mut moved) = (f64::NAN, start);
    wait_until(timeout, || {
        let now = value(&am.scrape(), name, labels);
        if now != last {
            (last, moved) = (now, Instant::now());
        }
        now >= want || moved.elapsed() >= STALL
    });
    (last, moved.duration_since(start).as_secs_f64())
}

/// How long a count may stand still before [`wait_settled`] takes it as final.
const STALL: Duration = Duration::from_secs(3);

/// The bpftrace reference, its output going to a file.
struct Bpftrace {
    child: Child,
    out: PathBuf,
}

impl Bpftrace {
    fn start(scratch: &Path) -> Result<Self> {
        let out = scratch.join("bpftrace.out");
        let file = fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
        let err = file.try_clone()?;
        let child = Command::new("bpftrace")
            .args(["-e", BPFTRACE_SCRIPT])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .context("start bpftrace (`cargo xtask setup bench` installs it)")?;
        let mut bt = Bpftrace { child, out };
        // bpftrace prints this line once its programs are loaded, just before
        // attaching them; a moment later they are attached.
        let attaching = wait_until(Duration::from_secs(60), || {
            bt.text().contains("Attaching") || matches!(bt.child.try_wait(), Ok(Some(_)))
        });
        if !attaching || !matches!(bt.child.try_wait(), Ok(None)) {
            bail!("bpftrace did not start; it printed:\n{}", bt.text());
        }
        thread::sleep(Duration::from_secs(1));
        Ok(bt)
    }

    fn text(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// SIGINT: bpftrace prints its maps and exits. Sent again every second:
    /// a SIGINT that comes at the wrong moment has been seen to go unheeded.
    fn stop(mut self) -> Result<String> {
        let mut exited = false;
        for _ in 0..30 {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill has no memory-safety preconditions; the child is
                // ours and not reaped yet.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
            exited = wait_until(Duration::from_secs(1), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            });
            if exited {
                break;
            }
        }
        if !exited {
            let pid = self.child.id();
            let state = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
            let _ = self.child.kill();
            let _ = self.child.wait();
            bail!(
                "bpftrace did not exit on SIGINT (wchan {wchan}, status:\n{state}):\n{}",
                self.text()
            );
        }
        Ok(self.text())
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `@tx[PID]: N` from bpftrace's printed maps.
pub fn bpftrace_map(output: &str, map: &str, pid: u32) -> Option<f64> {
    let key = format!("@{map}[{pid}]:");
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_from_stat_with_odd_comm() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(stat_cpu_secs(stat), Some(300.0 / clock_ticks()));
    }

    #[test]
    fn bpftrace_maps_are_read_per_pid() {
        let out = "Attaching 2 probes...\n\n\n@rx[17]: 5\n@tx[4242]: 64000\n@tx[17]: 12\n";
        assert_eq!(bpftrace_map(out, "tx", 4242), Some(64000.0));
        assert_eq!(bpftrace_map(out, "rx", 4242), None);
    }
}

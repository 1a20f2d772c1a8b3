//! Loading and attaching the kernel programs, and the maps they share with
//! the daemon.

pub mod tracefs;

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSockAddr, ProgramError, TracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
};
use monitor_common::{Conn, Tracked, UdpFlow, UdpKey, counter};
use tracing::{info, warn};

use self::tracefs::TracefsError;

/// The object built by monitor/build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// Tracepoint programs: (program, category, tracepoint).
const TRACEPOINT_PROGRAMS: [(&str, &str, &str); 15] = [
    ("task_newtask", "task", "task_newtask"),
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("sock_send_length", "sock", "sock_send_length"),
    ("sock_recv_length", "sock", "sock_recv_length"),
    ("tcp_destroy_sock", "tcp", "tcp_destroy_sock"),
    ("sys_enter_write", "syscalls", "sys_enter_write"),
    ("sys_enter_sendto", "syscalls", "sys_enter_sendto"),
    ("sys_enter_read", "syscalls", "sys_enter_read"),
    ("sys_enter_recvfrom", "syscalls", "sys_enter_recvfrom"),
    ("sys_enter_writev", "syscalls", "sys_enter_writev"),
    ("sys_enter_readv", "syscalls", "sys_enter_readv"),
    ("sys_enter_sendmsg", "syscalls", "sys_enter_sendmsg"),
    ("sys_enter_recvmsg", "syscalls", "sys_enter_recvmsg"),
];

/// TLS library probes: loaded at start, attached to library files as
/// agents map them (see `crate::tls`).
pub const TLS_ENTRY_WRITE: &str = "tls_write";
pub const TLS_ENTRY_READ: &str = "tls_read";
pub const TLS_ENTRY_WRITE_EX: &str = "tls_write_ex";
pub const TLS_ENTRY_READ_EX: &str = "tls_read_ex";
pub const TLS_RETURN: &str = "tls_return";
const TLS_PROGRAMS: [&str; 5] = [
    TLS_ENTRY_WRITE,
    TLS_ENTRY_READ,
    TLS_ENTRY_WRITE_EX,
    TLS_ENTRY_READ_EX,
    TLS_RETURN,
];

/// Where in a file a uprobe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAt {
    Symbol(String),
    /// A file offset (for functions found by pattern in stripped binaries).
    Offset(u64),
}

/// cgroup sock_addr programs attached to the cgroup2 root.
const CGROUP_PROGRAMS: [&str; 4] = [
    "udp_sendmsg4",
    "udp_sendmsg6",
    "udp_recvmsg4",
    "udp_recvmsg6",
];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "agentmon must run as root to load its eBPF programs (it needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN): run it with sudo"
    )]
    NotRoot,
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error(
        "cgroup2 is not mounted: agentmon attaches its UDP hooks to the cgroup2 root; mount it with `mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified on hybrid systems)"
    )]
    NoCgroup2,
    #[error("cannot open the cgroup2 root {path}: {source}")]
    Cgroup2Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot load agentmon's eBPF object: {0}")]
    Object(String),
    #[error("the kernel refused program {program}: {reason}")]
    Program { program: String, reason: String },
    #[error("agentmon's eBPF object has no {0} (build mismatch: rebuild with `cargo xtask build`)")]
    Missing(String),
}

/// What must be true of the machine before anything is loaded.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub tracefs: PathBuf,
    pub cgroup2: PathBuf,
}

/// Checks privileges, tracefs (mounting it if needed), cgroup2 and BTF.
pub fn preflight() -> Result<Preflight, LoadError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LoadError::NotRoot);
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let tracefs = tracefs::find_or_mount(&mounts)?;
    let cgroup2 = find_cgroup2(&mounts).ok_or(LoadError::NoCgroup2)?;
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        // The tracepoint + cgroup backend reads no kernel types, so it runs
        // without BTF; say so once in case a later backend needs it.
        warn!(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux missing); the tracepoint backend does not need it"
        );
    }
    Ok(Preflight { tracefs, cgroup2 })
}

/// The first cgroup2 mount in /proc/self/mounts (hybrid systems mount it at
/// /sys/fs/cgroup/unified, unified ones at /sys/fs/cgroup).
pub fn find_cgroup2(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut cols = line.split_whitespace();
        let (_, dir, fstype) = (cols.next()?, cols.next()?, cols.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// The loaded programs and the maps the daemon reads and writes.
pub struct Kernel {
    /// Owns the programs and their links: dropping it detaches everything.
    ebpf: Ebpf,
    /// Whether the TLS probes loaded (uprobes available).
    pub tls_ready: bool,
    pub tracked: HashMap<MapData, u32, Tracked>,
    pub conns: HashMap<MapData, u64, Conn>,
    pub resolved: HashMap<MapData, u64, u32>,
    pub udp_flows: HashMap<MapData, UdpKey, UdpFlow>,
    pub counters: PerCpuArray<MapData, u64>,
    pub events: Option<RingBuf<MapData>>,
    pub programs_attached: usize,
}

impl Kernel {
    /// Loads and attaches every program.
    pub fn load(pre: &Preflight) -> Result<Self, LoadError> {
        let offsets = tracefs::offsets(&pre.tracefs)?;
        let mut ebpf = EbpfLoader::new()
            .override_global("OFFSETS", &offsets, true)
            .load(OBJECT)
            .map_err(|e| LoadError::Object(one_line(&e)))?;
        let mut attached = 0;
        for (name, category, tracepoint) in TRACEPOINT_PROGRAMS {
            let program: &mut TracePoint = program(&mut ebpf, name)?;
            program.load().map_err(|e| refused(name, &e))?;
            program
                .attach(category, tracepoint)
                .map_err(|e| refused(name, &e))?;
            attached += 1;
        }
        let root = File::open(&pre.cgroup2).map_err(|source| LoadError::Cgroup2Open {
            path: pre.cgroup2.clone(),
            source,
        })?;
        for name in CGROUP_PROGRAMS {
            let program: &mut CgroupSockAddr = program(&mut ebpf, name)?;
            program.load().map_err(|e| refused(name, &e))?;
            // aya attaches through a bpf_link (kernel >= 5.7); cgroup links
            // always coexist with other programs on the cgroup and the kernel
            // refuses any flag on them (EINVAL), so the mode must be Single.
            program
                .attach(&root, CgroupAttachMode::Single)
                .map_err(|e| refused(name, &e))?;
            attached += 1;
        }
        let tls_ready = match load_tls(&mut ebpf) {
            Ok(()) => true,
            Err(e) => {
                warn!("TLS probes unavailable, TLS is seen as metadata only: {e}");
                false
            }
        };
        info!(
            programs = attached,
            tracefs = %pre.tracefs.display(),
            cgroup2 = %pre.cgroup2.display(),
            "kernel programs attached (backend: tracepoints + cgroup sock_addr)"
        );
        Ok(Self {
            tracked: take_map(&mut ebpf, "TRACKED")?,
            conns: take_map(&mut ebpf, "CONNS")?,
            resolved: take_map(&mut ebpf, "RESOLVED")?,
            udp_flows: take_map(&mut ebpf, "UDP_FLOWS")?,
            counters: take_map(&mut ebpf, "COUNTERS")?,
            events: Some(take_map(&mut ebpf, "EVENTS")?),
            programs_attached: attached,
            tls_ready,
            ebpf,
        })
    }

    /// Sum over CPUs of one of the kernel's self-monitoring counters.
    pub fn counter(&self, index: u32) -> u64 {
        self.counters
            .get(&index, 0)
            .map(|values| values.iter().sum())
            .unwrap_or(0)
    }

    pub fn events_lost(&self) -> u64 {
        self.counter(counter::EVENTS_LOST)
    }

    /// Attaches TLS probe `program` at `at` in the file `target`; the
    /// library id goes to the program as the attach cookie.
    pub fn attach_tls(
        &mut self,
        program: &str,
        target: &Path,
        at: &ProbeAt,
        lib: u32,
    ) -> Result<UProbeLinkId, LoadError> {
        let probe: &mut UProbe = program_mut(&mut self.ebpf, program)?;
        let location = match at {
            ProbeAt::Symbol(name) => UProbeAttachLocation::Symbol(name),
            ProbeAt::Offset(offset) => UProbeAttachLocation::AbsoluteOffset(*offset),
        };
        let point = UProbeAttachPoint {
            location,
            cookie: Some(u64::from(lib)),
        };
        probe
            .attach(point, target, UProbeScope::AllProcesses)
            .map_err(|e| refused(program, &e))
    }

    pub fn detach_tls(&mut self, program: &str, link: UProbeLinkId) {
        if let Ok(probe) = program_mut::<UProbe>(&mut self.ebpf, program) {
            let _ = probe.detach(link);
        }
    }
}

fn load_tls(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    for name in TLS_PROGRAMS {
        let probe: &mut UProbe = program(ebpf, name)?;
        probe.load().map_err(|e| refused(name, &e))?;
    }
    Ok(())
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    program(ebpf, name)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, LoadError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| LoadError::Missing(format!("program {name}")))?;
    program
        .try_into()
        .map_err(|e: ProgramError| LoadError::Program {
            program: name.to_owned(),
            reason: one_line(&e),
        })
}

fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, LoadError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| LoadError::Missing(format!("map {name}")))?;
    T::try_from(map).map_err(|e| LoadError::Object(format!("map {name}: {}", one_line(&e))))
}

fn refused(name: &str, e: &ProgramError) -> LoadError {
    let mut reason = one_line(e);
    // The verifier log is long; its last line says why.
    if let ProgramError::LoadError { verifier_log, .. } = e
        && let Some(last) = verifier_log
            .to_string()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
    {
        reason = format!("{reason}; verifier: {}", last.trim());
    }
    LoadError::Program {
        program: name.to_owned(),
        reason,
    }
}

/// An error and its sources on one line.
fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_on_hybrid_and_unified_hosts() {
        let hybrid = "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            find_cgroup2(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(find_cgroup2(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            find_cgroup2("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"),
            None
        );
    }

    #[test]
    fn errors_are_one_line_and_name_the_fix() {
        for e in [LoadError::NotRoot, LoadError::NoCgroup2] {
            let msg = e.to_string();
            assert!(!msg.contains('\n'));
            assert!(
                msg.contains("sudo") || msg.contains("mount -t cgroup2"),
                "{msg}"
            );
        }
    }
}

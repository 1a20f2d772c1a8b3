//! Loading and attaching the kernel programs, and the maps they share with
//! the daemon.

pub mod tracefs;

pub mod adopt;
pub mod btf;
mod closer;
pub mod enforce;
pub mod evictions;
pub mod features;
pub mod pins;
mod port;
pub mod ring;
mod rx_tie;
pub mod sizes;
mod uprobe_check;

use std::{
    fs::{self, File},
    num::NonZeroU32,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf, SkStorage},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, ProgramError, SockOps,
        TracePoint, UProbe,
        links::{FdLink, LinkError},
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLink, UProbeLinkId, UProbeScope},
    },
};
use monitor_common::{Conn, SockOwner, TpOffsets, Tracked, UdpFlow, UdpKey, lru, setting};
use tracing::{info, warn};

use self::closer::LinkCloser;
pub use self::features::{Feature, Features};
use self::pins::{Pins, Shape};
pub use self::sizes::MapSizes;
use self::tracefs::TracefsError;
use crate::uprobes::TlsLib;

/// The object built by monitor/build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// Process lifecycle tracepoints: (program, category, tracepoint). They fire
/// per fork, exec and exit, never per I/O.
const TRACEPOINT_PROGRAMS: [(&str, &str, &str); 3] = [
    ("task_newtask", "task", "task_newtask"),
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

/// TLS library probes: loaded at start, attached to library files as
/// agents map them (see `crate::tls`).
pub const TLS_ENTRY_WRITE: &str = "tls_write";
pub const TLS_ENTRY_READ: &str = "tls_read";
pub const TLS_ENTRY_WRITE_EX: &str = "tls_write_ex";
pub const TLS_ENTRY_READ_EX: &str = "tls_read_ex";
pub const TLS_ENTRY_WRITE_EX2: &str = "tls_write_ex2";
pub const TLS_RETURN: &str = "tls_return";
/// Go's crypto/tls: entries, and the probes on its return instructions.
pub const GO_TLS_WRITE: &str = "go_tls_write";
pub const GO_TLS_READ: &str = "go_tls_read";
pub const GO_TLS_RETURN: &str = "go_tls_return";
/// aws-lc's record functions under rustls: seal's entry, open's entry and
/// return (monitor-ebpf's `aead.rs`).
pub const AEAD_SEAL: &str = "aead_seal";
pub const AEAD_OPEN: &str = "aead_open";
pub const AEAD_OPEN_RETURN: &str = "aead_open_return";
pub const TLS_PROGRAMS: [&str; 12] = [
    TLS_ENTRY_WRITE,
    TLS_ENTRY_WRITE_EX2,
    TLS_ENTRY_READ,
    TLS_ENTRY_WRITE_EX,
    TLS_ENTRY_READ_EX,
    TLS_RETURN,
    GO_TLS_WRITE,
    GO_TLS_READ,
    GO_TLS_RETURN,
    AEAD_SEAL,
    AEAD_OPEN,
    AEAD_OPEN_RETURN,
];

/// Where in a file a uprobe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAt {
    Symbol(String),
    /// A file offset (for functions found by pattern in stripped binaries).
    Offset(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// What is missing, why, and how to grant it (see `crate::caps`).
    #[error("{0}")]
    MissingCaps(String),
    #[error(transparent)]
    Tracefs(#[from] TracefsError),
    #[error(
        "cgroup2 is not mounted: agentmon attaches its socket and packet hooks to the cgroup2 root; mount it with `mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified on hybrid systems)"
    )]
    NoCgroup2,
    #[error("cannot open the cgroup2 root {path}: {source}")]
    Cgroup2Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the kernel refused program {program}: {reason}")]
    Program { program: String, reason: String },
    #[error(
        "the kernel refused {what}, which agentmon cannot run without ({reason}); agentmon needs Linux 5.15 or later with cgroup2, socket storage and the BPF ring buffer"
    )]
    Required { what: String, reason: String },
    #[error("agentmon's eBPF object has no {0} (build mismatch: rebuild with `cargo xtask build`)")]
    Missing(String),
}

/// What must be true of the machine before anything is loaded.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub tracefs: PathBuf,
    pub cgroup2: PathBuf,
}

/// Checks capabilities, tracefs (mounting it if needed), cgroup2 and BTF.
pub fn preflight() -> Result<Preflight, LoadError> {
    // Unreadable capabilities (no /proc?) count as none: the line says what.
    let missing = crate::caps::missing().unwrap_or_else(|_| crate::caps::needed(None));
    if !missing.is_empty() {
        let line = format!(
            "{}; {}",
            crate::caps::describe(&missing),
            crate::caps::fix(&missing)
        );
        return Err(LoadError::MissingCaps(line));
    }
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let tracefs = tracefs::find_or_mount(&mounts)?;
    let cgroup2 = find_cgroup2(&mounts).ok_or(LoadError::NoCgroup2)?;
    Ok(Preflight { tracefs, cgroup2 })
}

/// The first cgroup2 mount in /proc/self/mounts (hybrid systems mount it at
/// /sys/fs/cgroup/unified, unified ones at /sys/fs/cgroup).
pub fn find_cgroup2(mounts: &str) -> Option<PathBuf> {
    mount_points(mounts, "cgroup2").next()
}

/// The mount points of file systems of type `fstype` in `mounts` (the text
/// of /proc/self/mounts), in mount order.
pub fn mount_points<'a>(mounts: &'a str, fstype: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
    mounts.lines().filter_map(move |line| {
        let mut cols = line.split_whitespace();
        let (_, dir, kind) = (cols.next()?, cols.next()?, cols.next()?);
        (kind == fstype).then(|| PathBuf::from(dir))
    })
}

/// What this kernel accepts: loads and attaches every program as
/// [`Kernel::load`] does for `run`, then detaches them all (for `agentmon
/// doctor`). Its maps are its own: it must never share what a running
/// agentmon uses.
pub fn probe(pre: &Preflight) -> Result<(Features, usize), LoadError> {
    // No pins: a probe must not share a running agentmon's maps.
    let kernel = Kernel::load(pre, &[], None, &MapSizes::default())?;
    Ok((kernel.features, kernel.programs_attached))
}

/// The loaded programs and the maps the daemon reads and writes.
pub struct Kernel {
    /// Owns the programs and their links: dropping it detaches everything.
    ebpf: Ebpf,
    /// What this kernel gave us, and what had to be done without.
    features: Features,
    rx_tie: rx_tie::RxTie,
    tracked: HashMap<MapData, u32, Tracked>,
    conns: HashMap<MapData, u64, Conn>,
    resolved: HashMap<MapData, u64, u32>,
    udp_flows: HashMap<MapData, UdpKey, UdpFlow>,
    socks: SkStorage<MapData, SockOwner>,
    counters: PerCpuArray<MapData, u64>,
    events: Option<RingBuf<MapData>>,
    programs_attached: usize,
    detached: Vec<UProbeLink>,
    closer: LinkCloser,
    pins: Option<Pins>,
    /// Policy enforcement's hooks and maps; the error if they did not load.
    enforcer: Result<enforce::Enforcer, String>,
    sizes: MapSizes,
    /// The LRU maps, to count what they evict.
    lru: evictions::LruMaps,
}

impl Kernel {
    /// Loads and attaches every program this kernel allows; `disabled`
    /// features are left out as if the kernel lacked them (to test the
    /// fallbacks on one kernel). With `pin_dir`, the maps and the hooks'
    /// links are pinned there (see `pins.rs`) and a restart resumes them.
    pub fn load(
        pre: &Preflight,
        disabled: &[Feature],
        pin_dir: Option<&Path>,
        sizes: &MapSizes,
    ) -> Result<Self, LoadError> {
        let mut offsets = tracefs::offsets(&pre.tracefs)?;
        let exec_args = Feature::ExecArgs.wanted(disabled) && exec_args(&mut offsets);
        let shapes = map_shapes(sizes)?;
        let variant = format!("{disabled:?}");
        let pins = pin_dir.and_then(|dir| Pins::open(dir, OBJECT, &variant, &shapes));
        let mut loader = EbpfLoader::new();
        loader.override_global("OFFSETS", &offsets, true);
        for (name, _, size) in sizes.maps() {
            loader.map_max_entries(name, size);
        }
        if let Some(pins) = &pins {
            for (name, _) in &shapes {
                loader.map_pin_path(name.as_str(), pins.map(name));
            }
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| required("agentmon's eBPF object (its maps)", &e))?;
        let resumed = pins.as_ref().is_some_and(|p| p.resumed);
        let (attached, sock_ops, tls_tie) = match &pins {
            // The same build's programs are still attached, on these maps.
            Some(pins) if pins.resumed && pins.links_left() => {
                let has = |program: &str| pins.link(program).exists();
                let attached = fs::read_dir(pins.link("")).map_or(0, Iterator::count);
                (attached, has("sock_ops"), has("skb_egress"))
            }
            _ => {
                if let Some(pins) = &pins {
                    pins.start_links()
                        .map_err(|e| required("the pin directory", &e))?;
                }
                let hooks = attach_hooks(&mut ebpf, pre, disabled, pins.as_ref())?;
                if let Some(pins) = &pins {
                    pins.drop_other_links();
                }
                hooks
            }
        };
        let uprobes = Feature::Uprobes.wanted(disabled)
            && optional(
                Feature::Uprobes,
                load_tls(&mut ebpf)
                    .and_then(|()| uprobe_check::uprobes_allowed(&mut ebpf, TLS_PROGRAMS[0])),
            );
        let rx_tie = uprobes
            && Feature::RxTie.wanted(disabled)
            && optional(Feature::RxTie, rx_tie::load(&mut ebpf));
        let features = Features {
            sock_ops,
            tls_tie,
            uprobes,
            exec_args,
            rx_tie,
        };
        let enforcer =
            enforce::Enforcer::load(&mut ebpf, pre.cgroup2.clone()).map_err(|e| e.to_string());
        let mut settings: Array<MapData, u32> = take_map(&mut ebpf, "SETTINGS")?;
        settings
            .set(setting::TLS_TIE, u32::from(tls_tie), 0)
            .map_err(|e| required("map SETTINGS", &e))?;
        info!(
            programs = attached,
            tracefs = %pre.tracefs.display(),
            cgroup2 = %pre.cgroup2.display(),
            features = %features,
            resumed,
            "kernel programs attached (process tracepoints, socket storage, cgroup packet hooks)"
        );
        Ok(Self {
            tracked: take_map(&mut ebpf, "TRACKED")?,
            conns: take_map(&mut ebpf, "CONNS")?,
            resolved: take_map(&mut ebpf, "RESOLVED")?,
            udp_flows: take_map(&mut ebpf, "UDP_FLOWS")?,
            socks: take_map(&mut ebpf, "SOCKS")?,
            counters: take_map(&mut ebpf, "COUNTERS")?,
            events: Some(take_map(&mut ebpf, "EVENTS")?),
            programs_attached: attached,
            features,
            rx_tie: rx_tie::RxTie::default(),
            detached: Vec::new(),
            closer: LinkCloser::new(),
            pins,
            enforcer,
            sizes: *sizes,
            lru: evictions::LruMaps::take(&mut ebpf)?,
            ebpf,
        })
    }

    /// Whether the maps are those of an earlier run (agentmon restarted).
    pub fn resumed(&self) -> bool {
        self.pins.as_ref().is_some_and(|p| p.resumed)
    }

    /// A clean stop: the hooks come off (a stopped agentmon costs nothing);
    /// the maps stay for the next start.
    pub fn release_hooks(&mut self) {
        if let Some(pins) = &self.pins {
            pins.unpin_links();
        }
    }

    /// The ring buffer of kernel events, for its one reader.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Sum over CPUs of one of the kernel's self-monitoring counters.
    pub fn counter(&self, index: u32) -> u64 {
        self.counters
            .get(&index, 0)
            .map(|values| values.iter().sum())
            .unwrap_or(0)
    }

    /// Attaches TLS probe `program` at `at` in the file `target`, for one
    /// process or (None) for every process that maps the file; the library
    /// id goes to the program as the attach cookie.
    pub fn attach_tls(
        &mut self,
        program: &str,
        target: &Path,
        at: &ProbeAt,
        lib: TlsLib,
        pid: Option<NonZeroU32>,
    ) -> Result<UProbeLinkId, LoadError> {
        let location = match at {
            ProbeAt::Symbol(name) => UProbeAttachLocation::Symbol(name),
            ProbeAt::Offset(offset) => UProbeAttachLocation::AbsoluteOffset(*offset),
        };
        let point = UProbeAttachPoint {
            location,
            cookie: Some(u64::from(lib.wire())),
        };
        let scope = match pid {
            Some(pid) => UProbeScope::OneProcess(pid),
            None => UProbeScope::AllProcesses,
        };
        // aws-lc's opens are tied by the receive tracepoint: on while one
        // is probed.
        let needs_rx = program == AEAD_OPEN_RETURN;
        if needs_rx {
            self.rx_tie.hold(&mut self.ebpf)?;
        }
        let attached = program_mut::<UProbe>(&mut self.ebpf, program).and_then(|probe| {
            probe
                .attach(point, target, scope)
                .map_err(|e| refused(program, &e))
        });
        if needs_rx && attached.is_err() {
            self.rx_tie.release(&mut self.ebpf);
        }
        attached
    }

    /// Detaches a TLS probe, later. Unregistering a uprobe waits for the
    /// kernel's RCU grace periods, and so does registering one while others
    /// are unregistered: detaching at every short-lived agent's exit slowed
    /// the next agent's attach from about 10 ms to 70. The links are kept
    /// until [`Kernel::close_detached`] hands them, in one batch, to a
    /// thread of their own, so the event reader never waits for them.
    pub fn detach_tls(&mut self, program: &str, link: UProbeLinkId) {
        if program == AEAD_OPEN_RETURN {
            self.rx_tie.release(&mut self.ebpf);
        }
        if let Ok(probe) = program_mut::<UProbe>(&mut self.ebpf, program)
            && let Ok(owned) = probe.take_link(link)
        {
            self.detached.push(owned);
        }
    }

    /// Links set aside by [`Kernel::detach_tls`], not closed yet.
    pub fn detached_len(&self) -> usize {
        self.detached.len()
    }

    /// Closes the links [`Kernel::detach_tls`] set aside (housekeeping).
    pub fn close_detached(&mut self) {
        if !self.detached.is_empty() {
            self.closer.close(std::mem::take(&mut self.detached));
        }
    }

    /// Closes every link set aside and waits for the closing threads: at
    /// exit, so that dropping the programs has no uprobe left to wait for.
    pub fn finish_detaching(&mut self) {
        self.close_detached();
        self.closer.finish();
    }
}

impl enforce::Enforcement for Kernel {
    fn hooks(&mut self, on: bool) -> Result<(), String> {
        match &mut self.enforcer {
            Ok(enforcer) => enforcer.hooks(&mut self.ebpf, on),
            Err(e) if on => Err(format!(
                "the kernel refused the policy's connect hooks: {e}"
            )),
            Err(_) => Ok(()),
        }
    }

    fn set(
        &mut self,
        tools: &[crate::agents::ToolId],
        nets: &[(
            crate::agents::ToolId,
            ipnetwork::IpNetwork,
            monitor_common::PolicyDeny,
        )],
    ) -> Result<(), String> {
        match &mut self.enforcer {
            Ok(enforcer) => {
                let mut removed = 0;
                let set = enforcer.set(tools, nets, &mut removed);
                self.lru.removed(lru::POLICY_HOSTS, removed);
                set
            }
            Err(_) if tools.is_empty() => Ok(()),
            Err(e) => Err(format!("the kernel refused the policy's maps: {e}")),
        }
    }

    fn deny_host(&mut self, root: u32, ip: std::net::IpAddr, deny: monitor_common::PolicyDeny) {
        if let Ok(enforcer) = &mut self.enforcer
            && enforcer.deny_host(root, ip, deny)
        {
            self.lru.added(lru::POLICY_HOSTS);
        }
    }

    fn allow_host(&mut self, root: u32, ip: std::net::IpAddr) {
        if let Ok(enforcer) = &mut self.enforcer
            && enforcer.allow_host(root, ip)
        {
            self.lru.removed(lru::POLICY_HOSTS, 1);
        }
    }
}

/// Attaches the process tracepoints and the cgroup hooks, pinning each link
/// where `pins` says; returns (links, sock_ops, tls_tie).
fn attach_hooks(
    ebpf: &mut Ebpf,
    pre: &Preflight,
    disabled: &[Feature],
    pins: Option<&Pins>,
) -> Result<(usize, bool, bool), LoadError> {
    let mut attached = 0;
    for (name, category, tracepoint) in TRACEPOINT_PROGRAMS {
        let program: &mut TracePoint = program(ebpf, name)?;
        program.load().map_err(|e| refused(name, &e))?;
        let id = program
            .attach(category, tracepoint)
            .map_err(|e| refused(name, &e))?;
        if let Some(pins) = pins {
            pin(name, program.take_link(id), pins)?;
        }
        attached += 1;
    }
    let root = File::open(&pre.cgroup2).map_err(|source| LoadError::Cgroup2Open {
        path: pre.cgroup2.clone(),
        source,
    })?;
    // aya attaches through bpf_link (kernel >= 5.7); cgroup links always
    // coexist with other programs on the cgroup and the kernel refuses
    // any flag on them (EINVAL), so the mode must be Single.
    let sock_create: &mut CgroupSock = program(ebpf, "sock_create")?;
    sock_create.load().map_err(|e| refused("sock_create", &e))?;
    let id = sock_create
        .attach(&root, CgroupAttachMode::Single)
        .map_err(|e| refused("sock_create", &e))?;
    if let Some(pins) = pins {
        pin("sock_create", sock_create.take_link(id), pins)?;
    }
    attached += 1;
    let ingress: &mut CgroupSkb = program(ebpf, "skb_ingress")?;
    ingress.load().map_err(|e| refused("skb_ingress", &e))?;
    let id = ingress
        .attach(
            &root,
            CgroupSkbAttachType::Ingress,
            CgroupAttachMode::Single,
        )
        .map_err(|e| refused("skb_ingress", &e))?;
    if let Some(pins) = pins {
        pin("skb_ingress", ingress.take_link(id), pins)?;
    }
    attached += 1;
    let tls_tie = attach_egress(ebpf, &root, disabled, pins)?;
    attached += 1;
    let sock_ops = Feature::SockOps.wanted(disabled)
        && optional(Feature::SockOps, attach_sock_ops(ebpf, &root, pins));
    attached += usize::from(sock_ops);
    Ok((attached, sock_ops, tls_tie))
}

/// Pins a hook's link so that it outlives this process (see `pins.rs`).
fn pin<L>(program: &str, link: Result<L, ProgramError>, pins: &Pins) -> Result<(), LoadError>
where
    FdLink: TryFrom<L, Error = LinkError>,
{
    let link = link.map_err(|e| refused(program, &e))?;
    let fd = FdLink::try_from(link)
        .map_err(|e| required(&format!("a pinnable link for {program}"), &e))?;
    // The pin holds the link; our descriptor may close.
    fd.pin(pins.link(program))
        .map_err(|e| required(&format!("pinning the link of {program}"), &e))?;
    Ok(())
}

/// The egress program, with the TLS tie if the kernel allows the task
/// helper in packet programs (it does from 5.8 with CAP_PERFMON), else
/// without. Returns whether the tie is in.
fn attach_egress(
    ebpf: &mut Ebpf,
    root: &File,
    disabled: &[Feature],
    pins: Option<&Pins>,
) -> Result<bool, LoadError> {
    if Feature::TlsTie.wanted(disabled) {
        let tied: &mut CgroupSkb = program(ebpf, "skb_egress")?;
        let loaded = tied.load().map_err(|e| refused("skb_egress", &e));
        if optional(Feature::TlsTie, loaded) {
            let id = tied
                .attach(root, CgroupSkbAttachType::Egress, CgroupAttachMode::Single)
                .map_err(|e| refused("skb_egress", &e))?;
            if let Some(pins) = pins {
                pin("skb_egress", tied.take_link(id), pins)?;
            }
            return Ok(true);
        }
    }
    let untied: &mut CgroupSkb = program(ebpf, "skb_egress_untied")?;
    untied
        .load()
        .map_err(|e| refused("skb_egress_untied", &e))?;
    let id = untied
        .attach(root, CgroupSkbAttachType::Egress, CgroupAttachMode::Single)
        .map_err(|e| refused("skb_egress_untied", &e))?;
    if let Some(pins) = pins {
        pin("skb_egress_untied", untied.take_link(id), pins)?;
    }
    Ok(false)
}

fn attach_sock_ops(ebpf: &mut Ebpf, root: &File, pins: Option<&Pins>) -> Result<(), LoadError> {
    let sock_ops: &mut SockOps = program(ebpf, "sock_ops")?;
    sock_ops.load().map_err(|e| refused("sock_ops", &e))?;
    let id = sock_ops
        .attach(root, CgroupAttachMode::Single)
        .map_err(|e| refused("sock_ops", &e))?;
    if let Some(pins) = pins {
        pin("sock_ops", sock_ops.take_link(id), pins)?;
    }
    Ok(())
}

/// The shape of every named map in agentmon's object, to pin them and to
/// check maps an earlier run pinned.
/// The maps' shapes as loaded: the object's, with `sizes` applied.
fn map_shapes(sizes: &MapSizes) -> Result<Vec<(String, Shape)>, LoadError> {
    let object =
        aya_obj::Object::parse(OBJECT).map_err(|e| required("agentmon's eBPF object", &e))?;
    let mut shapes: Vec<(String, Shape)> = object
        .maps
        .iter()
        // `.rodata`, `.bss` and `.data` hold load-time globals; the policy's
        // maps are filled afresh at every start (`enforce.rs`).
        .filter(|(name, _)| !name.starts_with('.') && !name.starts_with("POLICY_"))
        .map(|(name, map)| {
            let sized = sizes.maps().into_iter().find(|m| m.0 == name.as_str());
            let shape = Shape {
                key_size: map.key_size(),
                value_size: map.value_size(),
                max_entries: sized.map_or(map.max_entries(), |m| m.2),
                flags: map.map_flags(),
            };
            (name.clone(), shape)
        })
        .collect();
    shapes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(shapes)
}

/// Whether an optional feature came up; if not, says once what is lost.
fn optional(feature: Feature, result: Result<(), LoadError>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            warn!("{}: {e}", feature.without());
            false
        }
    }
}

/// Fills in where the exec program finds the command line, from BTF.
fn exec_args(offsets: &mut TpOffsets) -> bool {
    match btf::arg_offsets(Path::new(btf::VMLINUX)) {
        Ok(found) => {
            offsets.task_mm = found.task_mm;
            offsets.mm_arg_start = found.mm_arg_start;
            offsets.mm_arg_end = found.mm_arg_end;
            offsets.mm_exe_file = found.mm_exe_file;
            offsets.file_inode = found.file_inode;
            offsets.inode_ino = found.inode_ino;
            true
        }
        Err(e) => {
            warn!("{}: {e}", Feature::ExecArgs.without());
            false
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
    T::try_from(map).map_err(|e| required(&format!("map {name}"), &e))
}

fn required(what: &str, e: &dyn std::error::Error) -> LoadError {
    LoadError::Required {
        what: what.to_owned(),
        reason: one_line(e),
    }
}

fn refused(name: &str, e: &ProgramError) -> LoadError {
    let reason = match e {
        // The verifier log is long: the line that says why is the last one
        // before its statistics.
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            let why = log
                .lines()
                .map(str::trim)
                .rev()
                .find(|l| {
                    !l.is_empty()
                        && !l.starts_with("processed ")
                        && !l.starts_with("verification time")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or("");
            if std::env::var_os("AGENTMON_VERIFIER_LOG").is_some() {
                eprintln!("{log}");
            }
            format!("{io_error}; verifier: {why}")
        }
        other => one_line(other),
    };
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
        let msg = LoadError::NoCgroup2.to_string();
        assert!(!msg.contains('\n'));
        assert!(msg.contains("mount -t cgroup2"), "{msg}");
    }
}

//! The machine: kernel version, BTF, tracefs, cgroup2, bpffs, capabilities,
//! then the kernel programs themselves and each optional feature.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::{Cause, Check};
use crate::{
    caps,
    kernel::{
        self, LoadError, Preflight,
        features::{self, Features},
        tracefs::{self, TracefsError},
    },
    release::{self, Version},
};

/// The oldest kernel agentmon supports (README, "Kernels").
const OLDEST: Version = Version::new(5, 15);
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
const BPFFS: &str = "/sys/fs/bpf";
/// Where agentmon pins the maps that keep counting across restarts.
const PINS: &str = "/sys/fs/bpf/agentmon";

pub(super) fn checks() -> Vec<Check> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let (caps, caps_ok) = capabilities();
    let (tracefs, tracefs_path) = tracefs(&mounts, caps_ok);
    let (cgroup2, cgroup2_path) = cgroup2(&mounts);
    let mut out = vec![
        kernel_version(),
        btf(),
        tracefs,
        cgroup2,
        bpffs(&mounts),
        caps,
    ];
    let ready = match (tracefs_path, cgroup2_path) {
        (Some(tracefs), Some(cgroup2)) if caps_ok => Ok(Preflight { tracefs, cgroup2 }),
        (_, _) if !caps_ok => Err("not tried without the capabilities above"),
        _ => Err("not tried: tracefs or cgroup2 above is not usable"),
    };
    out.extend(programs(ready));
    out
}

fn kernel_version() -> Check {
    let release = release::running();
    match Version::parse(&release) {
        Some(v) if v >= OLDEST => Check::ok("kernel", format!("Linux {release}")),
        Some(_) => Check::warn(
            "kernel",
            format!(
                "Linux {release}: older than {OLDEST}, which agentmon is not tested on; the programs check below says whether it loads"
            ),
            format!("use Linux {OLDEST} or later"),
        ),
        None => Check::warn(
            "kernel",
            format!("cannot tell the kernel version from release {release:?}"),
            format!("use Linux {OLDEST} or later"),
        ),
    }
}

fn btf() -> Check {
    match std::fs::metadata(VMLINUX_BTF) {
        Ok(m) => Check::ok(
            "btf",
            format!("{VMLINUX_BTF} ({:.1} MB)", m.len() as f64 / 1e6),
        ),
        // The programs read tracepoint offsets from tracefs and no kernel
        // type, so they load without it; BPF tools and the tests need it.
        Err(_) => Check::warn(
            "btf",
            format!(
                "{VMLINUX_BTF} is missing: agentmon runs without it, bpftool and agentmon's tests do not"
            ),
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (the default of current distributions)",
        ),
    }
}

/// Mounted (agentmon needs CAP_SYS_ADMIN to mount it itself), and the
/// tracepoints and fields the programs use are there.
fn tracefs(mounts: &str, caps_ok: bool) -> (Check, Option<PathBuf>) {
    const MOUNT: &str = "mount -t tracefs tracefs /sys/kernel/tracing (systemd mounts it at boot)";
    let Some(dir) = kernel::mount_points(mounts, "tracefs").next() else {
        return (
            Check::fail(
                "tracefs",
                Cause::Other,
                "tracefs is not mounted: agentmon mounts it only when it runs as root",
                MOUNT,
            ),
            None,
        );
    };
    match tracefs::offsets(&dir) {
        Ok(_) => (
            Check::ok(
                "tracefs",
                format!(
                    "{}: task:task_newtask, sched:sched_process_exec, sched:sched_process_exit and their fields",
                    dir.display()
                ),
            ),
            Some(dir),
        ),
        // Without CAP_DAC_READ_SEARCH (as a user) tracefs is not readable:
        // the capabilities row says so.
        Err(TracefsError::Read { source, .. })
            if !caps_ok && source.kind() == io::ErrorKind::PermissionDenied =>
        {
            (
                Check::skip(
                    "tracefs",
                    format!(
                        "{}: not readable without the capabilities below",
                        dir.display()
                    ),
                ),
                None,
            )
        }
        Err(e) => {
            let fix = match &e {
                TracefsError::Read { .. } => {
                    "make it readable by agentmon (CAP_DAC_READ_SEARCH)".to_owned()
                }
                TracefsError::NotMounted { .. } => MOUNT.to_owned(),
                _ => format!("use Linux {OLDEST} or later"),
            };
            (
                Check::fail("tracefs", Cause::Other, e.to_string(), fix),
                None,
            )
        }
    }
}

fn cgroup2(mounts: &str) -> (Check, Option<PathBuf>) {
    match kernel::find_cgroup2(mounts) {
        Some(dir) => (
            Check::ok("cgroup2", format!("mounted at {}", dir.display())),
            Some(dir),
        ),
        None => (
            Check::fail(
                "cgroup2",
                Cause::Other,
                "cgroup2 is not mounted: agentmon attaches its socket and packet hooks to its root",
                "mount -t cgroup2 none /sys/fs/cgroup (or /sys/fs/cgroup/unified on hybrid systems)",
            ),
            None,
        ),
    }
}

/// Pinned maps keep counting across restarts; without bpffs agentmon runs
/// and its counters start again from zero at each restart.
fn bpffs(mounts: &str) -> Check {
    let mounted = kernel::mount_points(mounts, "bpf").any(|dir| dir == Path::new(BPFFS));
    if !mounted {
        return Check::warn(
            "bpffs",
            format!(
                "{BPFFS} is not a bpf file system: counts restart from zero whenever agentmon restarts"
            ),
            format!("mount -t bpf bpf {BPFFS} (systemd mounts it at boot)"),
        );
    }
    let pins = match std::fs::metadata(PINS) {
        Ok(_) => format!("{PINS} holds the pinned maps"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            format!("{PINS} is made at the first start")
        }
        Err(e) => format!("{PINS}: {e}"),
    };
    Check::ok("bpffs", format!("mounted at {BPFFS}; {pins}"))
}

/// The check, and whether every capability is there.
fn capabilities() -> (Check, bool) {
    match caps::missing() {
        Ok(missing) if missing.is_empty() => {
            let needed = caps::needed(Version::running());
            (
                Check::ok(
                    "capabilities",
                    format!("effective set has {}", caps::names(&needed)),
                ),
                true,
            )
        }
        Ok(missing) => (
            Check::fail(
                "capabilities",
                Cause::Capabilities,
                caps::describe(&missing),
                caps::fix(&missing),
            ),
            false,
        ),
        Err(e) => (
            Check::fail(
                "capabilities",
                Cause::Capabilities,
                format!("cannot read this process's capabilities: {e}"),
                "run agentmon doctor on a Linux kernel with /proc mounted",
            ),
            false,
        ),
    }
}

/// The programs `run` loads, loaded and attached for a moment; then each
/// optional feature.
fn programs(ready: Result<Preflight, &str>) -> Vec<Check> {
    let probed = match ready {
        Ok(pre) => kernel::probe(&pre).map_err(|e| {
            let fix = load_fix(&e);
            Check::fail("programs", Cause::Other, e.to_string(), fix)
        }),
        Err(why) => Err(Check::skip("programs", why)),
    };
    let (first, features) = match probed {
        Ok((features, attached)) => (
            Check::ok(
                "programs",
                format!(
                    "{attached} programs loaded and attached: process tracepoints, sock_create, cgroup_skb, with socket storage and the ring buffer"
                ),
            ),
            Some(features),
        ),
        Err(check) => (check, None),
    };
    let mut out = vec![first];
    out.extend(features::ALL.into_iter().map(|f| feature(f, features)));
    out
}

fn feature(feature: features::Feature, got: Option<Features>) -> Check {
    let name = format!("feature:{}", feature.label());
    match got {
        None => Check::skip(name, "not tried: the programs were not loaded"),
        Some(got) if got.has(feature) => Check::ok(name, feature.needs()),
        Some(_) => Check::warn(
            name,
            feature.without(),
            format!(
                "agentmon runs without it; to have it, use a kernel with {}",
                feature.needs()
            ),
        ),
    }
}

fn load_fix(e: &LoadError) -> String {
    match e {
        LoadError::Tracefs(_) | LoadError::NoCgroup2 | LoadError::Cgroup2Open { .. } => {
            "see the tracefs and cgroup2 rows above".to_owned()
        }
        LoadError::Missing(_) => {
            "reinstall agentmon: this binary's kernel object is incomplete".to_owned()
        }
        // The kernel refused a program or map agentmon cannot run without.
        _ => format!(
            "use Linux {OLDEST} or later with cgroup2, socket storage and the BPF ring buffer; AGENTMON_VERIFIER_LOG=1 agentmon doctor prints the verifier's log"
        ),
    }
}

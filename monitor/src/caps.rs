//! The capabilities agentmon needs, and which of them this process lacks.
//! agentmon checks capabilities, not its uid: it runs as root, or as a
//! system user given exactly these (the systemd unit's
//! `AmbientCapabilities=`). `run` checks them before loading anything;
//! `doctor` reports them.

use caps::{CapSet, CapsHashSet, errors::CapsError};

pub use caps::Capability;
use caps::Capability::{
    CAP_BPF, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_NET_ADMIN, CAP_PERFMON, CAP_SETPCAP,
    CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_RESOURCE,
};

use crate::release::Version;

/// A capability and why agentmon needs it.
pub type Need = (Capability, &'static str);

/// What agentmon needs on every kernel, and why.
pub const REQUIRED: &[Need] = &[
    (CAP_BPF, "create the BPF maps and load the eBPF programs"),
    (
        CAP_PERFMON,
        "attach the process tracepoints (and the TLS uprobes on kernels without the 2025 fix that asks CAP_SYS_ADMIN for them), and read the current task in packet programs to tie TLS calls to sockets",
    ),
    (
        CAP_NET_ADMIN,
        "attach the socket and packet programs to the cgroup2 root",
    ),
    (
        CAP_SYS_PTRACE,
        "read the exe, environ and maps of other users' processes in /proc",
    ),
    (
        CAP_DAC_READ_SEARCH,
        "read the tracefs event formats, and the TLS libraries of other users' processes through /proc/<pid>/root",
    ),
];

/// Needed besides on kernels before [`MEMLOCK_FREE`], which charge BPF maps
/// to RLIMIT_MEMLOCK.
pub const MEMLOCK: Need = (
    CAP_SYS_RESOURCE,
    "raise RLIMIT_MEMLOCK, which this kernel charges the BPF maps to",
);

/// Since 5.11 BPF memory is charged to the memory cgroup, not to
/// RLIMIT_MEMLOCK (the memcg-based accounting series merged for 5.11).
pub const MEMLOCK_FREE: Version = Version::new(5, 11);

/// What agentmon still needs once its programs are loaded and attached:
/// everything else is dropped then ([`keep_only`]). Attaching the cgroup
/// hooks (CAP_NET_ADMIN), raising RLIMIT_MEMLOCK (CAP_SYS_RESOURCE) and,
/// as root, all the rest are done by then.
pub const WHILE_RUNNING: &[Need] = &[
    (
        CAP_BPF,
        "read the BPF maps: where unprivileged BPF is off (the default on Ubuntu, Debian, RHEL and Fedora) the bpf() call itself needs it",
    ),
    (
        CAP_PERFMON,
        "attach the TLS uprobes to agent processes that start later, on kernels without the 2025 fix that asks CAP_SYS_ADMIN for them",
    ),
    (
        CAP_SYS_PTRACE,
        "read the exe, environ and maps in /proc of agent processes that start later",
    ),
    (
        CAP_DAC_READ_SEARCH,
        "read the TLS libraries of agent processes that start later, through /proc/<pid>/root",
    ),
];

/// Kept besides when the config enforces a policy at start: a reload may
/// detach and attach the enforcement hooks again.
pub const ENFORCING: Need = (
    CAP_NET_ADMIN,
    "attach the enforcement hooks again when a reload changes which tools are enforced",
);

/// Optional at start and kept while TLS probes work: kernels with the 2025
/// fix "perf/core: Require CAP_SYS_ADMIN for uprobes" create uprobes only
/// for it (`kernel/uprobe_check.rs` finds out at start).
pub const UPROBES: Need = (
    CAP_SYS_ADMIN,
    "create the TLS uprobes, at start and for agent processes that start later (this kernel refuses CAP_PERFMON alone)",
);

/// What agentmon keeps after start: `enforcing` a policy or not, with
/// `uprobes` (the TLS probes work) or not.
pub fn while_running(enforcing: bool, uprobes: bool) -> Vec<Need> {
    let mut keep = WHILE_RUNNING.to_vec();
    if enforcing {
        keep.push(ENFORCING);
    }
    if uprobes {
        keep.push(UPROBES);
    }
    keep
}

/// The capabilities `effective` holds for `keep`: each one, or what the
/// kernel accepts in its place.
fn holding(effective: &CapsHashSet, keep: &[Need]) -> CapsHashSet {
    keep.iter()
        .filter_map(|(cap, _)| held_as(effective, *cap))
        .collect()
}

/// `cap` if `effective` has it, else what `effective` has in its place.
fn held_as(effective: &CapsHashSet, cap: Capability) -> Option<Capability> {
    if effective.contains(&cap) {
        return Some(cap);
    }
    STANDS_IN
        .iter()
        .find(|(need, other)| *need == cap && effective.contains(other))
        .map(|(_, other)| *other)
}

/// Drops every capability this thread holds but those for `keep`: from
/// the effective and permitted sets (so they cannot come back), the
/// inheritable and ambient ones (agentmon starts no programs), and, when
/// allowed (root), the bounding set. Capabilities belong to threads: call
/// it before any other thread starts. Returns what was kept.
pub fn keep_only(keep: &[Need]) -> Result<CapsHashSet, CapsError> {
    let effective = caps::read(None, CapSet::Effective)?;
    let kept = holding(&effective, keep);
    if effective.contains(&CAP_SETPCAP) {
        for cap in caps::runtime::thread_all_supported() {
            if !kept.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::set(None, CapSet::Effective, &kept)?;
    caps::set(None, CapSet::Permitted, &kept)?;
    Ok(kept)
}

/// Whether this thread holds `cap` (unreadable: assumed so, and the
/// kernel's refusal says why).
pub fn holds(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(true)
}

/// `CAP_BPF CAP_PERFMON`, sorted by number: a set as a log line names it.
pub fn set_names(set: &CapsHashSet) -> String {
    let mut caps: Vec<Capability> = set.iter().copied().collect();
    caps.sort_by_key(|c| c.index());
    join(caps.into_iter())
}

fn join(caps: impl Iterator<Item = Capability>) -> String {
    caps.map(|c| c.to_string()).collect::<Vec<_>>().join(" ")
}

/// The kernel accepts these in place of others: `bpf_capable()` and
/// `perfmon_capable()` accept CAP_SYS_ADMIN, and CAP_DAC_OVERRIDE bypasses
/// every read check CAP_DAC_READ_SEARCH does.
const STANDS_IN: &[(Capability, Capability)] = &[
    (CAP_BPF, CAP_SYS_ADMIN),
    (CAP_PERFMON, CAP_SYS_ADMIN),
    (CAP_DAC_READ_SEARCH, CAP_DAC_OVERRIDE),
];

/// What agentmon needs on `kernel` (`None`: unknown, assumed recent).
pub fn needed(kernel: Option<Version>) -> Vec<Need> {
    let mut needed = REQUIRED.to_vec();
    if kernel.is_some_and(|v| v < MEMLOCK_FREE) {
        needed.push(MEMLOCK);
    }
    needed
}

/// The needs that `effective` does not meet, directly or through a
/// capability the kernel accepts in its place.
pub fn missing_from(effective: &CapsHashSet, kernel: Option<Version>) -> Vec<Need> {
    needed(kernel)
        .into_iter()
        .filter(|(cap, _)| held_as(effective, *cap).is_none())
        .collect()
}

/// What this process lacks to run agentmon on the running kernel.
pub fn missing() -> Result<Vec<Need>, CapsError> {
    let effective = caps::read(None, CapSet::Effective)?;
    Ok(missing_from(&effective, Version::running()))
}

/// `CAP_BPF CAP_PERFMON`: names as systemd and capsh write them.
pub fn names(needs: &[Need]) -> String {
    join(needs.iter().map(|(cap, _)| *cap))
}

/// One line: what is missing and why.
pub fn describe(missing: &[Need]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|(cap, why)| format!("{cap} (to {why})"))
        .collect();
    format!("missing {}", each.join(", "))
}

/// How to give agentmon what it lacks.
pub fn fix(missing: &[Need]) -> String {
    format!(
        "give agentmon {}: run it as root (sudo), or as the systemd unit does, as user agentmon with AmbientCapabilities={}",
        names(missing),
        names(&needed(Version::running()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(caps: &[Capability]) -> CapsHashSet {
        caps.iter().copied().collect()
    }

    #[test]
    fn the_unit_set_is_enough_and_each_one_is_needed() {
        let unit: Vec<Capability> = REQUIRED.iter().map(|(c, _)| *c).collect();
        assert!(missing_from(&set(&unit), Some(Version::new(6, 1))).is_empty());
        for (i, (cap, _)) in REQUIRED.iter().enumerate() {
            let mut fewer = unit.clone();
            fewer.remove(i);
            let missing = missing_from(&set(&fewer), Some(Version::new(6, 1)));
            assert_eq!(missing.len(), 1);
            assert_eq!(missing[0].0, *cap);
        }
    }

    #[test]
    fn old_kernels_also_need_sys_resource() {
        let unit: Vec<Capability> = REQUIRED.iter().map(|(c, _)| *c).collect();
        let missing = missing_from(&set(&unit), Some(Version::new(5, 10)));
        assert_eq!(names(&missing), "CAP_SYS_RESOURCE");
        assert!(missing_from(&set(&unit), Some(MEMLOCK_FREE)).is_empty());
        assert!(missing_from(&set(&unit), None).is_empty());
    }

    #[test]
    fn root_and_the_capabilities_that_stand_in() {
        assert!(missing_from(&caps::all(), Some(Version::new(5, 4))).is_empty());
        let old_style = set(&[
            CAP_SYS_ADMIN,
            CAP_NET_ADMIN,
            CAP_SYS_PTRACE,
            CAP_DAC_OVERRIDE,
        ]);
        assert!(missing_from(&old_style, Some(Version::new(6, 1))).is_empty());
    }

    #[test]
    fn after_start_only_the_running_needs_stay_each_through_what_stands_in() {
        let unit: CapsHashSet = REQUIRED.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            set_names(&holding(&unit, &while_running(false, false))),
            "CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_PERFMON CAP_BPF"
        );
        assert_eq!(
            set_names(&holding(&unit, &while_running(true, false))),
            "CAP_DAC_READ_SEARCH CAP_NET_ADMIN CAP_SYS_PTRACE CAP_PERFMON CAP_BPF"
        );
        // Without CAP_SYS_ADMIN, nothing stands in for it.
        assert_eq!(holding(&unit, &while_running(false, true)).len(), 4);
        // Root keeps five, or four without TLS probes.
        assert_eq!(holding(&caps::all(), &while_running(false, true)).len(), 5);
        assert_eq!(holding(&caps::all(), &while_running(false, false)).len(), 4);
        let old_style = set(&[
            CAP_SYS_ADMIN,
            CAP_NET_ADMIN,
            CAP_SYS_PTRACE,
            CAP_DAC_OVERRIDE,
        ]);
        assert_eq!(
            set_names(&holding(&old_style, &while_running(false, false))),
            "CAP_DAC_OVERRIDE CAP_SYS_PTRACE CAP_SYS_ADMIN"
        );
    }

    #[test]
    fn messages_name_every_missing_capability_and_the_fix() {
        let missing = missing_from(&set(&[CAP_NET_ADMIN]), Some(Version::new(6, 1)));
        assert_eq!(
            names(&missing),
            "CAP_BPF CAP_PERFMON CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"
        );
        let line = describe(&missing);
        assert!(
            line.starts_with("missing CAP_BPF (to create the BPF maps"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let fix = fix(&missing);
        assert!(
            fix.contains("AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN"),
            "{fix}"
        );
    }
}

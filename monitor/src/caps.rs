//! The capabilities agentmon needs instead of uid 0, and why each.

use caps::{CapSet, Capability};

/// Every capability `agentmon run` needs, with the reason the README and the
/// error line give. Measured by taking each away in turn (see README,
/// "Least privilege").
pub const REQUIRED: &[(Capability, &str)] = &[
    (Capability::CAP_BPF, "to create maps and load programs"),
    (
        Capability::CAP_PERFMON,
        "to attach tracepoints and uprobes and read kernel memory in them",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "to attach the socket and packet hooks to the cgroup",
    ),
    (
        Capability::CAP_SYS_PTRACE,
        "to read other users' /proc/PID/exe, maps and environ, probe their TLS libraries and adopt their open sockets",
    ),
    (
        Capability::CAP_DAC_READ_SEARCH,
        "to read tracefs (mode 0700) and agents' library files",
    ),
];

/// The required capabilities this process lacks in its effective set.
pub fn missing() -> Vec<(Capability, &'static str)> {
    missing_from(|cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false))
}

fn missing_from(has: impl Fn(Capability) -> bool) -> Vec<(Capability, &'static str)> {
    REQUIRED
        .iter()
        .copied()
        .filter(|&(cap, _)| !has(cap))
        .collect()
}

/// One line naming what is missing, why, and the fix.
pub fn describe_missing(missing: &[(Capability, &str)]) -> String {
    let list: Vec<String> = missing
        .iter()
        .map(|(cap, why)| format!("{cap} ({why})"))
        .collect();
    format!(
        "agentmon lacks {}: run it as root, or grant {} (the systemd unit's AmbientCapabilities=)",
        list.join(", "),
        names(REQUIRED)
    )
}

fn names(set: &[(Capability, &str)]) -> String {
    let names: Vec<String> = set.iter().map(|(cap, _)| cap.to_string()).collect();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_missing_capability_and_the_fix() {
        let missing = missing_from(|cap| cap != Capability::CAP_SYS_PTRACE);
        assert_eq!(missing.len(), 1);
        let line = describe_missing(&missing);
        assert!(line.starts_with("agentmon lacks CAP_SYS_PTRACE (to read other users'"));
        assert!(line.ends_with(
            "grant CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH \
             (the systemd unit's AmbientCapabilities=)"
        ));
        assert!(!line.contains('\n'));
        assert!(missing_from(|_| true).is_empty());
    }
}

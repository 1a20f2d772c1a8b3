//! Whether the kernel lets agentmon create uprobes at all. Kernels with
//! the 2025 fix "perf/core: Require CAP_SYS_ADMIN for uprobes" (merged
//! upstream and backported to the stable series) refuse `perf_event_open`
//! of a uprobe to a process holding CAP_PERFMON without CAP_SYS_ADMIN,
//! with EACCES. Found out once at start, so that the loss is one warning
//! line and a 0 in `agentmon_kernel_feature_available{feature="uprobes"}`
//! rather than a refusal per agent process.

use std::num::NonZeroU32;

use aya::{
    Ebpf,
    programs::{
        ProgramError, UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope},
    },
    sys::SyscallError,
};
use tracing::debug;

use super::{LoadError, program};

/// A libc function agentmon never calls: the probe on it, in agentmon's
/// own process, never fires, and is detached at once.
const NEVER_CALLED: &str = "mblen";

/// Tries a uprobe with `program`; a refusal of `perf_event_open` is an
/// error, anything else (libc not found, say) counts as allowed: the
/// probes for agents then say what went wrong.
pub fn uprobes_allowed(ebpf: &mut Ebpf, program_name: &str) -> Result<(), LoadError> {
    let probe: &mut UProbe = program(ebpf, program_name)?;
    let Some(me) = NonZeroU32::new(std::process::id()) else {
        return Ok(());
    };
    let point = UProbeAttachPoint {
        location: UProbeAttachLocation::Symbol(NEVER_CALLED),
        cookie: None,
    };
    match probe.attach(point, "libc", UProbeScope::OneProcess(me)) {
        Ok(link) => {
            let _ = probe.detach(link);
            Ok(())
        }
        Err(ProgramError::SyscallError(SyscallError {
            call: "perf_event_open",
            io_error,
        })) if matches!(io_error.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            Err(LoadError::Program {
                program: program_name.to_owned(),
                reason: format!(
                    "perf_event_open of a uprobe: {io_error}; this kernel creates uprobes only for CAP_SYS_ADMIN (the 2025 fix \"perf/core: Require CAP_SYS_ADMIN for uprobes\"): give agentmon CAP_SYS_ADMIN to probe TLS libraries"
                ),
            })
        }
        Err(e) => {
            debug!("uprobe check on {NEVER_CALLED} inconclusive: {e}");
            Ok(())
        }
    }
}

//! `agentmon doctor`: whether agentmon can run on this machine, and what to
//! do when it cannot. One check per row (`ok`, `warn`, `FAIL`, or `skip`
//! when an earlier failure leaves nothing to check), each failure and
//! warning with its fix; the exit code says whether agentmon could run.
//!
//! The checks use the code `run` uses (the kernel loader, the config
//! loader, the GeoIP loader, the uprobe planner), so they cannot disagree
//! with it. They change nothing on the machine: the kernel programs are
//! loaded and attached for a moment with maps of their own, the listen
//! address is bound for a moment.
//!
//! The groups of checks: `system` (kernel, BTF, tracefs, cgroup2, bpffs,
//! capabilities, the programs and each optional feature), `setup` (config,
//! GeoIP files, connection log, listen address) and `tls` (the TLS
//! libraries on the machine and their probe points).

mod render;
mod setup;
mod system;
mod tls;

use std::path::PathBuf;

use serde::Serialize;

pub use self::render::{SCHEMA_VERSION, json, table};
use crate::exit;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// agentmon runs, with less than it could have.
    Warn,
    /// agentmon cannot run.
    Fail,
    /// Not checked: a check it depends on failed.
    Skip,
}

/// What a failure is about, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Config,
    Capabilities,
    Other,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable, for fleet tooling: `kernel`, `feature:tls_tie`,
    /// `geoip:country`, `tls:libssl.so.3`...
    pub name: String,
    pub status: Status,
    /// What was found, on one line.
    pub detail: String,
    /// What to do, for a failure or a warning.
    pub fix: Option<String>,
    #[serde(skip)]
    pub cause: Cause,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Ok, detail, None, Cause::Other)
    }

    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Warn, detail, Some(fix.into()), Cause::Other)
    }

    pub fn fail(
        name: impl Into<String>,
        cause: Cause,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check::new(name, Status::Fail, detail, Some(fix.into()), cause)
    }

    pub fn skip(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Skip, detail, None, Cause::Other)
    }

    fn new(
        name: impl Into<String>,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
        cause: Cause,
    ) -> Check {
        // One line each, whatever an underlying error looks like.
        let one_line = |s: String| s.replace('\n', " ");
        Check {
            name: name.into(),
            status,
            detail: one_line(detail.into()),
            fix: fix.map(one_line),
            cause,
        }
    }
}

/// What `agentmon doctor` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The config file; `None`: /etc/agentmon/config.toml when it exists
    /// (what the systemd unit runs with), else the built-in defaults.
    pub config: Option<PathBuf>,
}

/// Runs every check, in the order of the report.
pub fn run(options: &Options) -> Vec<Check> {
    // The loaders log what they do; the report says it better.
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        let mut checks = system::checks();
        checks.extend(setup::checks(options.config.as_deref()));
        checks.extend(tls::checks());
        checks
    })
}

/// 0 when agentmon could run (warnings allowed); when it could not,
/// [`exit::NO_PERMISSION`] (77) or [`exit::CONFIG`] (78) when every failure
/// is about capabilities, or about the config, else [`exit::FAILURE`] (1).
pub fn exit_code(checks: &[Check]) -> u8 {
    let mut causes = checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.cause);
    let Some(first) = causes.next() else {
        return exit::OK;
    };
    if causes.any(|c| c != first) {
        return exit::FAILURE;
    }
    match first {
        Cause::Config => exit::CONFIG,
        Cause::Capabilities => exit::NO_PERMISSION,
        Cause::Other => exit::FAILURE,
    }
}

#[cfg(test)]
mod tests;

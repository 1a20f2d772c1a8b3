//! agentmon's exit codes. Failures that a restart cannot mend have codes of
//! their own (from sysexits.h), so that systemd's
//! `RestartPreventExitStatus=77 78` stops a crash loop on them.

/// Everything worked (for `doctor`: agentmon can run here).
pub const OK: u8 = 0;
/// Anything else that went wrong.
pub const FAILURE: u8 = 1;
/// EX_NOPERM: capabilities are missing.
pub const NO_PERMISSION: u8 = 77;
/// EX_CONFIG: the config file or an option value is wrong.
pub const CONFIG: u8 = 78;

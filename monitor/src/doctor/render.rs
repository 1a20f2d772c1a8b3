//! The report: a table for people, JSON for fleet tooling.

use serde::Serialize;

use super::{Check, Status, exit_code};
use crate::exit;

/// The version of the JSON document's shape. Raised when a field changes
/// meaning or goes away; new fields and new check names do not raise it.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON document: `{"schema": 1, "agentmon": "0.1.0", "can_run": true,
/// "exit_code": 0, "checks": [{"name", "status", "detail", "fix"}]}`, with
/// `status` one of `ok`, `warn`, `fail`, `skip` and `fix` null for `ok`
/// and `skip`.
#[derive(Serialize)]
struct Document<'a> {
    schema: u32,
    agentmon: &'static str,
    can_run: bool,
    exit_code: u8,
    checks: &'a [Check],
}

pub fn json(checks: &[Check]) -> String {
    let code = exit_code(checks);
    let document = Document {
        schema: SCHEMA_VERSION,
        agentmon: env!("CARGO_PKG_VERSION"),
        can_run: code == exit::OK,
        exit_code: code,
        checks,
    };
    // Plain strings, numbers and enums: serialising cannot fail.
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}

/// One row per check (status, name, what was found), each fix on the line
/// below its row, and a last line that says whether agentmon can run.
pub fn table(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let indent = " ".repeat(6 + width + 2);
    let mut out = String::new();
    for check in checks {
        let status = match check.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        out.push_str(&format!(
            "{status:<6}{:<width$}  {}\n",
            check.name, check.detail
        ));
        if let Some(fix) = &check.fix {
            out.push_str(&format!("{indent}fix: {fix}\n"));
        }
    }
    out.push('\n');
    out.push_str(&summary(checks));
    out.push('\n');
    out
}

fn summary(checks: &[Check]) -> String {
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let code = exit_code(checks);
    if code == exit::OK {
        return match count(Status::Warn) {
            0 => "agentmon can run here.".to_owned(),
            n => format!("agentmon can run here ({}).", plural(n, "warning")),
        };
    }
    let why = match code {
        exit::NO_PERMISSION => " (exit 77: capabilities)",
        exit::CONFIG => " (exit 78: configuration)",
        _ => "",
    };
    format!(
        "agentmon cannot run here: {} failed{why}.",
        plural(count(Status::Fail), "check")
    )
}

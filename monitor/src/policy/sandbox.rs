//! Allowlists agents declare for their own sandboxes, imported as allow
//! rules (`from = "claude-code-sandbox"`), so that what an agent promised
//! and what the kernel saw are compared all the time: the daemon reloads
//! its config when an imported file changes (`daemon::housekeeping`).
//!
//! Claude Code's settings (`~/.claude/settings.json`, a project's
//! `.claude/settings.json`, or the managed `/etc/claude-code/managed-settings.json`)
//! declare the hosts its sandbox lets commands reach in
//! `sandbox.network.allowedDomains` (`example.com`, `*.example.com`); its
//! `WebFetch(domain:example.com)` permission rules allow the same. Codex's
//! sandbox (`~/.codex/config.toml`, `[sandbox_workspace_write]
//! network_access`) is on or off for the network, with no list of hosts.

use std::{fs, path::Path};

use serde_json::Value;
use tracing::{info, warn};

/// The `from` value for Claude Code's sandbox settings.
pub const CLAUDE_CODE: &str = "claude-code-sandbox";
/// Where an organisation's managed Claude Code settings live on Linux.
pub const CLAUDE_MANAGED: &str = "/etc/claude-code/managed-settings.json";

/// The hosts Claude Code's settings file at `path` allows, lower case, as
/// `name` or `*.name`. An error is one line naming the file and the fix.
pub fn claude_allowed(path: &Path) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read Claude Code settings {}: {e} (give the settings file that declares the sandbox with `path`)",
            path.display()
        )
    })?;
    let settings: Value = serde_json::from_str(&text)
        .map_err(|e| format!("Claude Code settings {} are not JSON: {e}", path.display()))?;
    let (hosts, enabled) = claude_hosts(&settings);
    let hosts = hosts
        .into_iter()
        .filter_map(|h| {
            let ok = valid(&h);
            if !ok {
                warn!(path = %path.display(), host = %h, "a sandbox allowlist entry is not a host name or *.name: left out of the policy");
            }
            ok.then_some(h)
        })
        .collect::<Vec<_>>();
    if !enabled {
        warn!(path = %path.display(), "Claude Code's sandbox is not enabled in these settings: its allowlist is a promise nothing but agentmon checks");
    }
    info!(path = %path.display(), hosts = hosts.len(), sandbox_enabled = enabled, "imported Claude Code's sandbox allowlist into the policy");
    Ok(hosts)
}

/// The declared hosts (allowedDomains, then WebFetch domains), and whether
/// `sandbox.enabled` is true.
pub fn claude_hosts(settings: &Value) -> (Vec<String>, bool) {
    let sandbox = &settings["sandbox"];
    let enabled = sandbox["enabled"].as_bool().unwrap_or(false);
    let mut hosts: Vec<String> = sandbox["network"]["allowedDomains"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect();
    let web_fetch = settings["permissions"]["allow"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|r| r.strip_prefix("WebFetch(domain:")?.strip_suffix(')'))
        .map(str::to_ascii_lowercase);
    for host in web_fetch {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    (hosts, enabled)
}

fn valid(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    crate::dest::Hostname::parse_str(name).is_some_and(|h| h.as_str() == name)
}

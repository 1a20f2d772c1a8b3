//! `agentmon policy learn` and `agentmon policy check`: a policy from what
//! each tool did according to the connection log, and a log replayed
//! against a policy.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    io::BufRead,
    net::IpAddr,
    time::SystemTime,
};

use serde::Deserialize;

use super::{Action, Policy, rule::Target};

/// The fields of a connection-log record that a policy judges.
#[derive(Debug, Clone, Deserialize)]
pub struct Seen {
    pub id: String,
    pub time: String,
    pub tool: String,
    pub proto: String,
    pub host: Option<String>,
    pub remote_addr: IpAddr,
    pub remote_port: u16,
    pub dest: String,
    pub dest_country: String,
    pub dest_asn: String,
    pub purpose: String,
    pub egress_bytes: u64,
}

impl Seen {
    pub fn target(&self) -> Target<'_> {
        Target {
            host: self.host.as_deref(),
            ip: Some(self.remote_addr),
            port: Some(self.remote_port),
            country: Some(&self.dest_country),
            asn: self
                .dest_asn
                .strip_prefix("AS")
                .and_then(|n| n.parse().ok()),
            purpose: Some(&self.purpose),
        }
    }
}

/// The connections of a log (each once: its last record), from `since`
/// on; and a one-line note about lines that were not records.
pub fn read(
    log: impl BufRead,
    name: &str,
    since: Option<SystemTime>,
) -> (Vec<Seen>, Option<String>) {
    let mut by_id: BTreeMap<String, Seen> = BTreeMap::new();
    let (mut bad, mut first_bad) = (0usize, None);
    for (n, line) in log.lines().enumerate() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Seen>(&line) {
            Ok(seen) => {
                let recent = since.is_none_or(|since| {
                    humantime::parse_rfc3339(&seen.time).is_ok_and(|t| t >= since)
                });
                if recent {
                    by_id.insert(seen.id.clone(), seen);
                }
            }
            Err(e) => {
                bad += 1;
                first_bad.get_or_insert_with(|| format!("{name}:{}: {e}", n + 1));
            }
        }
    }
    let note = first_bad.map(|first| {
        format!("{bad} line(s) are not connection-log records and were skipped (first: {first}); give the file `[log] connections` names")
    });
    (by_id.into_values().collect(), note)
}

/// A policy file allowing what each tool did: its hosts, and the addresses
/// of connections no name was seen for. `default = "alert"` flags the rest.
pub fn learn(seen: &[Seen], source: &str) -> String {
    let mut tools: BTreeMap<&str, BTreeMap<String, (usize, u64)>> = BTreeMap::new();
    for s in seen {
        let key = match &s.host {
            Some(host) => format!("host = {}", quote(host)),
            None => {
                let prefix = if s.remote_addr.is_ipv4() { 32 } else { 128 };
                format!("cidr = {}", quote(&format!("{}/{prefix}", s.remote_addr)))
            }
        };
        let e = tools.entry(&s.tool).or_default().entry(key).or_default();
        e.0 += 1;
        e.1 += s.egress_bytes;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Learned by `agentmon policy learn` from {source} ({} connections).",
        seen.len()
    );
    let _ = writeln!(
        out,
        "# What each tool reached is allowed; anything else raises an alert."
    );
    let _ = writeln!(
        out,
        "# Review it, then put the [policy] tables into the config file."
    );
    let _ = writeln!(out, "[policy]");
    for (tool, rules) in &tools {
        let _ = writeln!(
            out,
            "\n[[policy.tool]]\nname = {}\ndefault = \"alert\"\nallow = [",
            quote(tool)
        );
        for (rule, (conns, sent)) in rules {
            let _ = writeln!(
                out,
                "  {{ {rule} }},  # {conns} connection(s), {sent} bytes sent"
            );
        }
        let _ = writeln!(out, "]");
    }
    out
}

/// A TOML basic string: JSON's escapes are TOML's.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// (tool, destination, rule, action) of a violation.
type Found = (String, String, String, &'static str);

/// One line per (tool, destination, rule) the policy does not allow, with
/// how many connections; empty when everything was allowed.
pub fn check(policy: &Policy, seen: &[Seen]) -> Vec<String> {
    let mut found: BTreeMap<Found, (usize, BTreeSet<String>)> = BTreeMap::new();
    for s in seen {
        let Some(verdict) = policy.judge(&s.tool, &s.target()) else {
            continue;
        };
        if verdict.action == Action::Allow {
            continue;
        }
        let dest = s.host.clone().unwrap_or_else(|| s.remote_addr.to_string());
        let e = found
            .entry((s.tool.clone(), dest, verdict.rule, verdict.action.label()))
            .or_default();
        e.0 += 1;
        e.1.insert(format!("{}:{}/{}", s.remote_addr, s.remote_port, s.proto));
    }
    found
        .into_iter()
        .map(|((tool, dest, rule, action), (n, addrs))| {
            let addrs: Vec<_> = addrs.into_iter().take(3).collect();
            format!(
                "{action}: tool={tool} dest={dest} rule={rule} connections={n} addresses={}",
                addrs.join(",")
            )
        })
        .collect()
}

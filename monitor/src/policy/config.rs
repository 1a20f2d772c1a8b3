//! `[policy]` as written in the config file, and its checks: a bad value is
//! an error at its place (`path:line:column`), before anything runs.
//!
//! ```toml
//! [policy]
//! violations_log = "/var/log/agentmon/violations.jsonl"
//! [[policy.tool]]
//! name = "*"                     # every tool
//! deny = [ { country = "KP" }, { cidr = "192.0.2.0/24", port = 25 } ]
//! [[policy.tool]]
//! name = "claude-code"
//! default = "alert"              # allow (the default), alert or deny
//! enforce = false                # true: refuse denied connects (EPERM)
//! allow = [
//!   { host = "api.anthropic.com", port = 443 },
//!   { domain = "sentry.io", name = "error-reports" },
//!   { purpose = "package-registry" },
//!   { from = "claude-code-sandbox", path = "/etc/claude-code/managed-settings.json" },
//! ]
//! ```

use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::Deserialize;
use toml::Spanned;

use super::{
    ALL, Action, Policy, Scope,
    rule::{HostPattern, Rule},
    sandbox,
};
use crate::{agents::valid_tool_name, dest::Hostname, dest::purpose::Purpose};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The violations log (JSON Lines); absent: violations go to the
    /// daemon's log and the metric only.
    #[serde(default)]
    pub violations_log: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub tool: Vec<ToolPolicySpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicySpec {
    /// A tool of the catalog, or `*` for every tool.
    pub name: Spanned<String>,
    /// What a destination no rule matches gets.
    #[serde(default)]
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub enforce: Option<Spanned<bool>>,
    #[serde(default)]
    pub allow: Vec<Spanned<RuleSpec>>,
    #[serde(default)]
    pub deny: Vec<Spanned<RuleSpec>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    #[serde(default)]
    pub domain: Option<Spanned<String>>,
    #[serde(default)]
    pub purpose: Option<Spanned<String>>,
    #[serde(default)]
    pub country: Option<Spanned<String>>,
    #[serde(default)]
    pub asn: Option<Spanned<Asn>>,
    #[serde(default)]
    pub cidr: Option<Spanned<String>>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    /// An allowlist an agent declares for its own sandbox.
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<Spanned<PathBuf>>,
}

/// `64500` or `"AS64500"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Asn {
    Number(u32),
    Text(String),
}

/// A problem with the policy: the byte offset of the value it is about,
/// and one line saying what is wrong and how to fix it.
pub type Invalid = (Option<usize>, String);

fn at<T>(value: &Spanned<T>, message: String) -> Invalid {
    (Some(value.span().start), message)
}

impl PolicyConfig {
    /// Checks every rule and builds the policy; `tools` are the catalog's
    /// tool names.
    pub fn build(&self, tools: &[&str]) -> Result<Policy, Invalid> {
        let mut policy = Policy {
            violations_log: self.violations_log.as_ref().map(|p| p.get_ref().clone()),
            ..Policy::default()
        };
        for spec in &self.tool {
            let name = spec.name.get_ref();
            if name != ALL && !tools.contains(&name.as_str()) {
                let hint = if valid_tool_name(name) {
                    ""
                } else {
                    " (tool names are lower case)"
                };
                return Err(at(
                    &spec.name,
                    format!(
                        "[[policy.tool]]: unknown tool {name:?}{hint}: use a tool of the catalog (`agentmon doctor` lists them) or \"*\" for every tool"
                    ),
                ));
            }
            if policy.scopes.contains_key(name) {
                return Err(at(
                    &spec.name,
                    format!("[[policy.tool]]: tool {name:?} has two entries: merge them into one"),
                ));
            }
            let default = spec
                .default
                .as_ref()
                .map(|d| match d.get_ref().as_str() {
                    "allow" => Ok(Action::Allow),
                    "alert" => Ok(Action::Alert),
                    "deny" => Ok(Action::Deny),
                    other => Err(at(d, format!("[[policy.tool]] {name:?}: unknown default {other:?} (use allow, alert or deny)"))),
                })
                .transpose()?;
            let mut scope = Scope {
                default,
                enforce: spec.enforce.as_ref().map(|e| *e.get_ref()),
                ..Scope::default()
            };
            for (kind, specs, rules) in [
                ("allow", &spec.allow, &mut scope.allow),
                ("deny", &spec.deny, &mut scope.deny),
            ] {
                for (i, rule) in specs.iter().enumerate() {
                    let label = rule.get_ref().name.as_ref().map_or_else(
                        || format!("{name}:{kind}:{}", i + 1),
                        |n| n.get_ref().clone(),
                    );
                    let context = format!("[[policy.tool]] {name:?} {kind} rule {}", i + 1);
                    rules.extend(build_rule(
                        rule,
                        label,
                        kind,
                        &context,
                        &mut policy.imports,
                    )?);
                }
            }
            policy.scopes.insert(name.clone(), scope);
        }
        Ok(policy)
    }
}

/// One rule as written: one rule, or (`from`) the rules of an imported
/// allowlist.
fn build_rule(
    spec: &Spanned<RuleSpec>,
    label: String,
    kind: &str,
    context: &str,
    imports: &mut Vec<PathBuf>,
) -> Result<Vec<Rule>, Invalid> {
    let s = spec.get_ref();
    let bad = |value_at: Option<usize>, problem: String| {
        (
            value_at.or(Some(spec.span().start)),
            format!("{context}: {problem}"),
        )
    };
    if let Some(from) = &s.from {
        let others = [&s.host, &s.domain, &s.purpose, &s.country, &s.cidr]
            .iter()
            .any(|c| c.is_some())
            || s.asn.is_some()
            || s.port.is_some();
        if others {
            return Err(bad(None, "`from` imports a whole allowlist and takes no other condition (only `path` and `name`)".into()));
        }
        if kind != "allow" {
            return Err(bad(
                Some(from.span().start),
                "`from` imports an allowlist: put it under `allow`".into(),
            ));
        }
        return match from.get_ref().as_str() {
            sandbox::CLAUDE_CODE => {
                let path = s.path.as_ref().map_or_else(
                    || PathBuf::from(sandbox::CLAUDE_MANAGED),
                    |p| p.get_ref().clone(),
                );
                if !imports.contains(&path) {
                    imports.push(path.clone());
                }
                let hosts = sandbox::claude_allowed(&path).map_err(|e| {
                    bad(
                        Some(
                            s.path
                                .as_ref()
                                .map_or(from.span().start, |p| p.span().start),
                        ),
                        e,
                    )
                })?;
                Ok(hosts
                    .into_iter()
                    .map(|host| Rule {
                        label: label.clone(),
                        host: Some(HostPattern::new(&host)),
                        ..Rule::default()
                    })
                    .collect())
            }
            other => Err(bad(
                Some(from.span().start),
                format!(
                    "unknown allowlist {other:?} (use {:?}: Claude Code's sandbox settings; Codex's sandbox has only an on/off switch for the network, no list to import)",
                    sandbox::CLAUDE_CODE
                ),
            )),
        };
    }
    if let Some(path) = &s.path {
        return Err(bad(
            Some(path.span().start),
            "`path` goes with `from`".into(),
        ));
    }
    let mut rule = Rule {
        label,
        ..Rule::default()
    };
    if let Some(host) = &s.host {
        rule.host = Some(HostPattern::new(
            &host_name(host, true).map_err(|e| bad(Some(host.span().start), e))?,
        ));
    }
    if let Some(domain) = &s.domain {
        rule.domain =
            Some(host_name(domain, false).map_err(|e| bad(Some(domain.span().start), e))?);
    }
    if let Some(purpose) = &s.purpose {
        let p = Purpose::from_label(purpose.get_ref()).ok_or_else(|| {
            bad(
                Some(purpose.span().start),
                format!(
                    "unknown purpose {:?} (use one of {})",
                    purpose.get_ref(),
                    Purpose::ALL.map(|p| p.label()).join(", ")
                ),
            )
        })?;
        rule.purpose = Some(p.label());
    }
    if let Some(country) = &s.country {
        let c = country.get_ref();
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(bad(
                Some(country.span().start),
                format!("invalid country {c:?}: use a two-letter ISO 3166-1 code such as \"DE\""),
            ));
        }
        rule.country = Some(c.to_ascii_uppercase());
    }
    if let Some(asn) = &s.asn {
        let n = match asn.get_ref() {
            Asn::Number(n) => Some(*n),
            Asn::Text(t) => t
                .strip_prefix("AS")
                .or(t.strip_prefix("as"))
                .and_then(|n| n.parse().ok()),
        };
        rule.asn = Some(n.filter(|n| *n != 0).ok_or_else(|| {
            bad(
                Some(asn.span().start),
                "invalid asn: use a number such as 64500 or \"AS64500\"".into(),
            )
        })?);
    }
    if let Some(cidr) = &s.cidr {
        let net: IpNetwork = cidr.get_ref().parse().map_err(|e| {
            bad(
                Some(cidr.span().start),
                format!(
                    "invalid cidr {:?}: {e} (write it as 10.0.0.0/8 or 2001:db8::/32)",
                    cidr.get_ref()
                ),
            )
        })?;
        if net.network() != net.ip() {
            return Err(bad(
                Some(cidr.span().start),
                format!(
                    "cidr {:?} has host bits set: write {}/{}",
                    cidr.get_ref(),
                    net.network(),
                    net.prefix()
                ),
            ));
        }
        rule.cidr = Some(net);
    }
    if let Some(port) = &s.port {
        if *port.get_ref() == 0 {
            return Err(bad(
                Some(port.span().start),
                "port 0: use 1 to 65535".into(),
            ));
        }
        rule.port = Some(*port.get_ref());
    }
    if rule
        == (Rule {
            label: rule.label.clone(),
            ..Rule::default()
        })
    {
        return Err(bad(
            None,
            "a rule needs at least one of host, domain, purpose, country, asn, cidr, port or from"
                .into(),
        ));
    }
    Ok(vec![rule])
}

/// A host name (`wildcard`: or `*.name`), lower case; an error says why
/// it is not one.
fn host_name(value: &Spanned<String>, wildcard: bool) -> Result<String, String> {
    let text = value.get_ref().to_ascii_lowercase();
    let name = match text.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => &text,
    };
    match Hostname::parse_str(name) {
        Some(h) if h.as_str() == name => Ok(text),
        _ => Err(format!(
            "invalid host {:?}: write a name such as \"api.example.com\"{}",
            value.get_ref(),
            if wildcard {
                " or \"*.example.com\""
            } else {
                ""
            }
        )),
    }
}

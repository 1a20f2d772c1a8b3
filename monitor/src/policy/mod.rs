//! The egress policy: which destinations each tool may reach.
//!
//! Rules are per tool (`[[policy.tool]] name = "codex"`) or for every tool
//! (`name = "*"`); both apply to a tool. How a destination is judged:
//! 1. a deny rule that matches wins over every allow rule, whatever their
//!    scope or how specific they are;
//! 2. otherwise an allow rule that matches allows it;
//! 3. otherwise the tool's `default` (else the `*` entry's, else `allow`).
//!
//! Among several matching rules of one kind the most specific names the
//! verdict (`Rule::specificity`: exact host, `*.host`, domain, CIDR, ASN,
//! country, purpose; a port adds to any), the tool's own before `*`'s on a
//! tie. A tool no entry names (and no `*` entry) is not judged.

pub mod cli;
pub mod config;
pub mod enforce;
pub mod learn;
pub mod rule;
pub mod sandbox;
#[cfg(test)]
mod tests;
pub mod violations;

use std::{collections::HashMap, path::PathBuf};

pub use self::config::PolicyConfig;
use self::rule::{Rule, Target};

/// The `*` entry: rules for every tool.
pub const ALL: &str = "*";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    /// A violation, counted and logged; never refused.
    Alert,
    /// A violation; refused at connect() when the tool's `enforce` is on
    /// and the kernel can tell from the address.
    Deny,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Alert => "alert",
            Action::Deny => "deny",
        }
    }
}

/// The rules of one `[[policy.tool]]` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub default: Option<Action>,
    pub enforce: Option<bool>,
    pub allow: Vec<Rule>,
    pub deny: Vec<Rule>,
}

/// A checked policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// By tool name, and [`ALL`].
    pub scopes: HashMap<String, Scope>,
    pub violations_log: Option<PathBuf>,
    /// Files allowlists were imported from (`from`), watched for changes.
    pub imports: Vec<PathBuf>,
}

/// What the policy says of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// The rule that decided: its label, or `<tool or *>:default`.
    pub rule: String,
    /// That rule's port condition.
    pub port: Option<u16>,
}

impl Verdict {
    pub fn violation(&self) -> bool {
        self.action != Action::Allow
    }
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The entries that apply to `tool`: its own first, then `*`.
    pub fn scopes_of<'a>(
        &'a self,
        tool: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Scope)> + 'a {
        [tool, ALL]
            .into_iter()
            .filter_map(move |name| self.scopes.get_key_value(name))
            .map(|(name, scope)| (name.as_str(), scope))
    }

    /// Judges a destination of `tool`; `None` when no entry applies to it.
    pub fn judge(&self, tool: &str, target: &Target<'_>) -> Option<Verdict> {
        let mut scopes = self.scopes_of(tool).peekable();
        scopes.peek()?;
        let mut default = None;
        let (mut deny, mut allow): (Option<&Rule>, Option<&Rule>) = (None, None);
        for (name, scope) in scopes {
            deny = most_specific(deny, &scope.deny, target);
            allow = most_specific(allow, &scope.allow, target);
            if default.is_none() {
                default = scope
                    .default
                    .map(|action| (action, format!("{name}:default")));
            }
        }
        let verdict = match (deny, allow) {
            (Some(rule), _) => Verdict {
                action: Action::Deny,
                rule: rule.label.clone(),
                port: rule.port,
            },
            (None, Some(rule)) => Verdict {
                action: Action::Allow,
                rule: rule.label.clone(),
                port: rule.port,
            },
            (None, None) => {
                let (action, rule) = default.unwrap_or((Action::Allow, format!("{ALL}:default")));
                Verdict {
                    action,
                    rule,
                    port: None,
                }
            }
        };
        Some(verdict)
    }

    /// Whether `tool`'s connections to denied addresses are refused: its
    /// own `enforce`, else the `*` entry's; off by default.
    pub fn enforced(&self, tool: &str) -> bool {
        self.scopes_of(tool)
            .find_map(|(_, s)| s.enforce)
            .unwrap_or(false)
    }

    /// `; policy: <entry> (<n> rules[, enforced]), ...` for
    /// `agentmon check-config`; empty without a policy.
    pub fn summary(&self) -> String {
        let mut names: Vec<&String> = self.scopes.keys().collect();
        names.sort();
        let entries: Vec<String> = names
            .into_iter()
            .map(|name| {
                let scope = &self.scopes[name];
                let rules = scope.allow.len() + scope.deny.len();
                let enforced = if scope.enforce == Some(true) {
                    ", enforced"
                } else {
                    ""
                };
                format!("{name} ({rules} rules{enforced})")
            })
            .collect();
        if entries.is_empty() {
            String::new()
        } else {
            format!("; policy: {}", entries.join(", "))
        }
    }

    /// Whether any tool is enforced (the connect hooks are attached only
    /// then).
    pub fn enforces_any(&self) -> bool {
        self.scopes.values().any(|s| s.enforce == Some(true))
    }
}

/// The more specific of `best` and the rules of `rules` that match; the
/// earlier on a tie.
fn most_specific<'a>(
    best: Option<&'a Rule>,
    rules: &'a [Rule],
    target: &Target<'_>,
) -> Option<&'a Rule> {
    rules
        .iter()
        .filter(|r| r.matches(target))
        .fold(best, |best, r| match best {
            Some(b) if b.specificity() >= r.specificity() => Some(b),
            _ => Some(r),
        })
}

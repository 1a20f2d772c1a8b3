//! Which AI coding agent a process belongs to.
//!
//! The rules are data: the built-in catalog (`catalog.toml`, embedded) has the
//! same shape as the `[agents]` table of the config file, so users extend or
//! trim it without a new build. Matching looks at one process at a time; the
//! process tree decides what children inherit.

mod elf_note;
mod rule;

use serde::Deserialize;
use toml::Spanned;

use self::rule::{Rule, RuleAt};
pub use crate::origin::Origin;
use crate::procfs::ProcInfo;

/// The embedded built-in catalog, in config format.
pub const BUILTIN_CATALOG: &str = include_str!("catalog.toml");

/// Index of a tool in its [`Catalog`].
pub type ToolId = u32;

/// How much a match can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strength {
    /// The rule looked at the executable or the arguments: this process is
    /// the agent (or a part of it).
    Strong,
    /// The rule looked only at comm or the environment. Children inherit
    /// environment markers and anything can set its comm, so this only
    /// corroborates.
    Weak,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub tool: ToolId,
    pub strength: Strength,
}

/// The `[agents]` table of the config file: changes to the built-in
/// catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// Built-in (or configured) tool names to drop.
    #[serde(default)]
    pub disable: Vec<Spanned<String>>,
    /// `[[agents.tool]]`: new tools, or more rules for an existing one.
    #[serde(default)]
    pub tool: Vec<ToolSpec>,
}

/// One tool as written in a catalog or config file. Values keep their
/// place in the file, for errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// Metric label value: `^[a-z0-9][a-z0-9._-]{0,62}$`.
    pub name: Spanned<String>,
    /// A process belongs to the tool when any rule matches.
    pub rules: Vec<Spanned<RuleSpec>>,
}

/// A rule matches when all of its given conditions hold; at least one is
/// required. Globs use globset syntax where `*` does not cross '/' and `**`
/// does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Glob on the `/proc/<pid>/exe` target, e.g. `**/.local/share/claude/versions/*`.
    pub exe: Option<Spanned<String>>,
    /// Substring of any argv element, e.g. `/node_modules/@google/gemini-cli/`.
    pub argv: Option<Spanned<String>>,
    /// Glob on any argv element after argv[0], e.g. `**/bin/aider` for the
    /// script an interpreter runs.
    pub arg: Option<Spanned<String>>,
    /// Glob on argv[0].
    pub argv0: Option<Spanned<String>>,
    /// Exact comm (at most 15 bytes). Weak on its own.
    pub comm: Option<Spanned<String>>,
    /// `NAME` (present) or `NAME=VALUE`. Weak on its own.
    pub env: Option<Spanned<String>>,
    /// Name of an ELF note the program's file carries, e.g. `NODE_SEA_BLOB`
    /// (a Node single executable). Only with `exe`: the file is read only
    /// for processes whose exe matches, after every other condition.
    pub elf_note: Option<Spanned<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("built-in catalog is not valid: {}", .0.message())]
    Parse(#[source] toml::de::Error),
    #[error(
        "{}invalid tool name {name:?}: use 1 to 63 of a-z 0-9 . _ -, starting with a letter or digit",
        prefix(*origin)
    )]
    BadName { origin: Origin, name: String },
    #[error("{}tool `{tool}` has no rules", prefix(*origin))]
    NoRules { origin: Origin, tool: String },
    #[error("{}tool `{tool}` rule {}: a rule needs at least one of exe, argv, arg, argv0, comm, env", prefix(*origin), rule + 1)]
    EmptyRule {
        origin: Origin,
        tool: String,
        rule: usize,
    },
    #[error("{}tool `{tool}` rule {}: invalid {field} glob: {source}", prefix(*origin), rule + 1)]
    BadGlob {
        origin: Origin,
        tool: String,
        rule: usize,
        field: &'static str,
        #[source]
        source: globset::Error,
    },
    #[error("{}tool `{tool}` rule {}: invalid {field} {value:?}: {reason}", prefix(*origin), rule + 1)]
    BadCondition {
        origin: Origin,
        tool: String,
        rule: usize,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot disable unknown tool {name:?}")]
    UnknownDisabled { origin: Origin, name: String },
}

impl CatalogError {
    /// Where the problem is: the config value it is about, or the built-in
    /// catalog.
    pub fn origin(&self) -> Origin {
        match self {
            CatalogError::Parse(_) => Origin::Builtin,
            CatalogError::BadName { origin, .. }
            | CatalogError::NoRules { origin, .. }
            | CatalogError::EmptyRule { origin, .. }
            | CatalogError::BadGlob { origin, .. }
            | CatalogError::BadCondition { origin, .. }
            | CatalogError::UnknownDisabled { origin, .. } => *origin,
        }
    }
}

fn prefix(origin: Origin) -> &'static str {
    match origin {
        Origin::Builtin => "built-in catalog: ",
        Origin::Config(_) => "",
    }
}

/// True if `name` is usable as a tool label.
pub fn valid_tool_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some((first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= 63
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    tool: Vec<ToolSpec>,
}

#[derive(Debug, Clone)]
struct Tool {
    name: String,
    rules: Vec<Rule>,
}

/// The tools we recognise, in match-priority order.
#[derive(Debug, Clone)]
pub struct Catalog {
    tools: Vec<Tool>,
    env_names: Vec<String>,
}

impl Catalog {
    /// The embedded catalog alone.
    pub fn builtin() -> Catalog {
        // The embedded text is ours and a unit test builds it, so failing here
        // is a build defect, not bad input.
        Catalog::new(BUILTIN_CATALOG, &[], &[]).expect("embedded catalog.toml is valid")
    }

    /// `builtin` (catalog TOML text) plus `extra` tools, minus the tools named
    /// in `disable`. An extra tool with a built-in name adds rules to it.
    pub fn new(
        builtin: &str,
        extra: &[ToolSpec],
        disable: &[Spanned<String>],
    ) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(builtin).map_err(CatalogError::Parse)?;
        let specs = file
            .tool
            .iter()
            .map(|spec| (Origin::Builtin, spec))
            .chain(extra.iter().map(|s| (Origin::config(&s.name), s)));

        let mut tools: Vec<Tool> = Vec::new();
        for (origin, spec) in specs {
            let name = spec.name.get_ref();
            if !valid_tool_name(name) {
                return Err(CatalogError::BadName {
                    origin,
                    name: name.clone(),
                });
            }
            if spec.rules.is_empty() {
                return Err(CatalogError::NoRules {
                    origin,
                    tool: name.clone(),
                });
            }
            let rules = spec
                .rules
                .iter()
                .enumerate()
                .map(|(rule, r)| {
                    let at = RuleAt {
                        origin: origin.at(r),
                        tool: name,
                        rule,
                    };
                    Rule::compile(r.get_ref(), &at)
                })
                .collect::<Result<Vec<_>, _>>()?;
            match tools.iter_mut().find(|t| t.name == *name) {
                Some(tool) => tool.rules.extend(rules),
                None => tools.push(Tool {
                    name: name.clone(),
                    rules,
                }),
            }
        }

        for name in disable {
            if !tools.iter().any(|t| t.name == *name.get_ref()) {
                return Err(CatalogError::UnknownDisabled {
                    origin: Origin::config(name),
                    name: name.get_ref().clone(),
                });
            }
        }
        tools.retain(|t| !disable.iter().any(|d| *d.get_ref() == t.name));

        let mut env_names: Vec<String> = tools
            .iter()
            .flat_map(|t| t.rules.iter().filter_map(Rule::env_name))
            .map(str::to_owned)
            .collect();
        env_names.sort_unstable();
        env_names.dedup();
        Ok(Catalog { tools, env_names })
    }

    /// The built-in catalog adjusted by the `[agents]` config table.
    pub fn with_config(cfg: &AgentsConfig) -> Result<Catalog, CatalogError> {
        Catalog::new(BUILTIN_CATALOG, &cfg.tool, &cfg.disable)
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The tool's label; "unknown" for an id from another catalog.
    pub fn name(&self, id: ToolId) -> &str {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.tools.get(i))
            .map_or("unknown", |t| t.name.as_str())
    }

    /// Tool labels in id order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.iter().map(|t| t.name.as_str())
    }

    /// The id of the tool called `name`.
    pub fn id(&self, name: &str) -> Option<ToolId> {
        let index = self.tools.iter().position(|t| t.name == name)?;
        ToolId::try_from(index).ok()
    }

    /// Environment variable names some rule looks at (sorted, unique): the
    /// only ones worth reading from `/proc/<pid>/environ`.
    pub fn env_names(&self) -> &[String] {
        &self.env_names
    }

    /// The tool `p` belongs to by its own attributes. A strong match anywhere
    /// beats any weak one; otherwise catalog order decides.
    pub fn match_process(&self, p: &ProcInfo) -> Option<Match> {
        let mut weak = None;
        for (index, tool) in self.tools.iter().enumerate() {
            for rule in &tool.rules {
                let worth_checking = rule.strength == Strength::Strong || weak.is_none();
                if !worth_checking || !rule.matches(p) {
                    continue;
                }
                let id = ToolId::try_from(index).ok()?;
                match rule.strength {
                    Strength::Strong => {
                        return Some(Match {
                            tool: id,
                            strength: Strength::Strong,
                        });
                    }
                    Strength::Weak => weak = Some(id),
                }
            }
        }
        weak.map(|tool| Match {
            tool,
            strength: Strength::Weak,
        })
    }
}

#[cfg(test)]
mod tests;

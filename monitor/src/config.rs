//! The daemon's TOML config file.
//!
//! ```toml
//! listen = "127.0.0.1:9977"            # /metrics and /healthz
//! [log]
//! connections = "/var/log/agentmon/connections.jsonl"   # absent = off
//! paths = false          # true: request paths (no query strings) in that log
//! max_bytes = 0          # rotate past this size (0 = never; logrotate works too)
//! keep = 5               # rotated files kept: connections.jsonl.1 ... .5
//! interim_seconds = 300  # interim records of open connections that moved (0 = off)
//! [agents]
//! disable = ["cursor"]
//! [[agents.tool]]
//! name = "my-agent"
//! rules = [ { exe = "**/bin/my-agent" }, { argv = "my-agent.js" } ]
//! [geoip]
//! country = "/var/lib/agentmon/geoip/country.mmdb"   # default
//! asn = "/var/lib/agentmon/geoip/asn.mmdb"           # default
//! reload_seconds = 10
//! [dest]
//! max_per_tool = 64
//! [[dest.entry]]
//! host = "llm.internal.example"
//! purpose = "model-api"
//! [[dest.path]]
//! host = "llm.internal.example"
//! path = "/v1/telemetry"
//! purpose = "telemetry"
//! ```
//!
//! Parsing also builds the agent catalog, so a config that would fail later
//! is rejected before the daemon starts, with `path:line:column: problem`.

use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::agents::{Catalog, CatalogError, Origin, ToolSpec};
use crate::connlog::{LogConfig, LogTable};
use crate::dest::{BUILTIN_PATHS, Catalog as DestCatalog, EntrySpec, PathCatalog, PathEntrySpec};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9977";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where /metrics and /healthz are served.
    pub listen: SocketAddr,
    /// The `[log]` table: the connection log.
    pub log: LogConfig,
    pub agents: AgentsConfig,
    pub geoip: GeoipConfig,
    pub dest: DestConfig,
}

/// The `[geoip]` table: MaxMind-format databases for country and ASN.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// A GeoLite2/GeoIP2 Country or City file, or a compatible mmdb.
    #[serde(default = "default_country")]
    pub country: PathBuf,
    /// A GeoLite2/GeoIP2 ASN file, or a compatible mmdb.
    #[serde(default = "default_asn")]
    pub asn: PathBuf,
    /// How often the files are checked for a new version.
    #[serde(default = "default_reload")]
    pub reload_seconds: u64,
}

fn default_country() -> PathBuf {
    PathBuf::from("/var/lib/agentmon/geoip/country.mmdb")
}

fn default_asn() -> PathBuf {
    PathBuf::from("/var/lib/agentmon/geoip/asn.mmdb")
}

fn default_reload() -> u64 {
    10
}

impl Default for GeoipConfig {
    fn default() -> Self {
        Self {
            country: default_country(),
            asn: default_asn(),
            reload_seconds: default_reload(),
        }
    }
}

/// The `[dest]` table: destination labels.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestConfig {
    /// Distinct `dest` label values per tool; more go to `dest="other"`.
    #[serde(default = "default_max_per_tool")]
    pub max_per_tool: usize,
    /// `[[dest.entry]]`: host patterns with their purpose (and `dest` label),
    /// added to the built-in destination catalog; they win over it.
    #[serde(default)]
    pub entry: Vec<EntrySpec>,
    /// `[[dest.path]]`: (host, path pattern) -> purpose for requests seen in
    /// plaintext, added to the built-in path catalog; they win over it.
    #[serde(default)]
    pub path: Vec<PathEntrySpec>,
}

fn default_max_per_tool() -> usize {
    crate::dest::DEFAULT_DEST_CAP
}

impl Default for DestConfig {
    fn default() -> Self {
        Self {
            max_per_tool: default_max_per_tool(),
            entry: Vec::new(),
            path: Vec::new(),
        }
    }
}

/// The `[agents]` table: changes to the built-in catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// Built-in (or configured) tool names to drop.
    #[serde(default)]
    pub disable: Vec<String>,
    /// `[[agents.tool]]`: new tools, or more rules for an existing one.
    #[serde(default)]
    pub tool: Vec<ToolSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // Same as DEFAULT_LISTEN (checked by a test), built without parsing.
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9977)),
            log: LogConfig::default(),
            agents: AgentsConfig::default(),
            geoip: GeoipConfig::default(),
            dest: DestConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The io error is part of the message, as operators read it; it is not
    // also returned as source() so `{:#}` chains do not print it twice.
    #[error("cannot read config {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{}: {message}", Location { path, position: *position })]
    Invalid {
        path: PathBuf,
        /// 1-based line and column, when the problem has a place in the file.
        position: Option<(usize, usize)>,
        message: String,
    },
}

struct Location<'a> {
    path: &'a Path,
    position: Option<(usize, usize)>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// The file as written. Strict: unknown keys are errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Spanned<String>>,
    log: Option<LogTable>,
    #[serde(default)]
    agents: AgentsConfig,
    #[serde(default)]
    geoip: GeoipConfig,
    #[serde(default)]
    dest: DestConfig,
}

/// Reads and validates the config at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text, path)
}

/// Parses and validates config `text`; `path` is only used in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |span: Option<usize>, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        position: span.map(|offset| line_column(text, offset)),
        // One line per error, whatever the underlying message looks like.
        message: message.replace('\n', " "),
    };

    let file: File = toml::from_str(text)
        .map_err(|e| invalid(e.span().map(|s| s.start), e.message().to_owned()))?;

    let mut config = Config::default();
    if let Some(listen) = &file.listen {
        config.listen = listen.get_ref().parse().map_err(|e| {
            invalid(
                Some(listen.span().start),
                format!("invalid listen address {:?}: {e}", listen.get_ref()),
            )
        })?;
    }
    if let Some(log) = file.log {
        config.log = log
            .build()
            .map_err(|(offset, message)| invalid(Some(offset), message))?;
    }
    config.agents = file.agents;
    config.geoip = file.geoip;
    config.dest = file.dest;
    if let Err(e) = DestCatalog::new(crate::dest::purpose::BUILTIN_CATALOG, &config.dest.entry) {
        return Err(invalid(None, format!("[[dest.entry]]: {e}")));
    }
    if let Err(e) = PathCatalog::new(BUILTIN_PATHS, &config.dest.path) {
        return Err(invalid(None, format!("[[dest.path]]: {e}")));
    }

    if let Err(e) = Catalog::with_config(&config.agents) {
        return Err(invalid(locate(text, &e), e.to_string()));
    }
    Ok(config)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Where the config says what a catalog error is about. The strict parse has
/// already succeeded, so this lenient second parse only collects spans.
fn locate(text: &str, error: &CatalogError) -> Option<usize> {
    #[derive(Deserialize)]
    struct Spans {
        agents: Option<AgentSpans>,
    }
    #[derive(Deserialize)]
    struct AgentSpans {
        #[serde(default)]
        disable: Vec<Spanned<String>>,
        #[serde(default)]
        tool: Vec<ToolSpans>,
    }
    #[derive(Deserialize)]
    struct ToolSpans {
        name: Spanned<String>,
        #[serde(default)]
        rules: Vec<Spanned<RuleSpans>>,
    }
    #[derive(Deserialize)]
    struct RuleSpans {
        exe: Option<Spanned<String>>,
        argv: Option<Spanned<String>>,
        arg: Option<Spanned<String>>,
        argv0: Option<Spanned<String>>,
        comm: Option<Spanned<String>>,
        env: Option<Spanned<String>>,
    }
    impl RuleSpans {
        fn field(&self, name: &str) -> Option<&Spanned<String>> {
            match name {
                "exe" => self.exe.as_ref(),
                "argv" => self.argv.as_ref(),
                "arg" => self.arg.as_ref(),
                "argv0" => self.argv0.as_ref(),
                "comm" => self.comm.as_ref(),
                "env" => self.env.as_ref(),
                _ => None,
            }
        }
    }

    let agents = toml::from_str::<Spans>(text).ok()?.agents?;
    let tool = |origin: &Origin| match origin {
        Origin::Extra(i) => agents.tool.get(*i),
        Origin::Builtin => None,
    };
    let span = match error {
        CatalogError::Parse(_) => return None,
        CatalogError::BadName { origin, .. } | CatalogError::NoRules { origin, .. } => {
            tool(origin)?.name.span()
        }
        CatalogError::EmptyRule { origin, rule, .. } => tool(origin)?.rules.get(*rule)?.span(),
        CatalogError::BadGlob {
            origin,
            rule,
            field,
            ..
        }
        | CatalogError::BadCondition {
            origin,
            rule,
            field,
            ..
        } => {
            let rule = tool(origin)?.rules.get(*rule)?;
            rule.get_ref()
                .field(field)
                .map_or_else(|| rule.span(), Spanned::span)
        }
        CatalogError::UnknownDisabled { name } => {
            agents.disable.iter().find(|d| d.get_ref() == name)?.span()
        }
    };
    Some(span.start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::RuleSpec;

    const PATH: &str = "/etc/agentmon.toml";

    fn err(text: &str) -> String {
        parse(text, Path::new(PATH)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let config = parse("", Path::new(PATH)).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(config.log.connections, None);
        assert_eq!(config.agents, AgentsConfig::default());
        // Comments and empty tables change nothing.
        let config = parse("# nothing\n[log]\n[agents]\n", Path::new(PATH)).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn full_file() {
        let text = r#"
listen = "[::1]:9100"   # /metrics and /healthz
[log]
connections = "/var/log/agentmon/connections.jsonl"
paths = true
[agents]
disable = ["cursor", "windsurf"]
[[agents.tool]]
name = "my-agent"
rules = [ { exe = "**/bin/my-agent" }, { argv = "my-agent.js" } ]
[[agents.tool]]
name = "claude-code"
rules = [
  { argv0 = "**/claude-wrapper", env = "CLAUDE_FORK=1" },
  { arg = "**/claude-fork.js", comm = "node" },
]
"#;
        let config = parse(text, Path::new(PATH)).unwrap();
        assert_eq!(config.listen, "[::1]:9100".parse().unwrap());
        assert_eq!(
            config.log.connections,
            Some(PathBuf::from("/var/log/agentmon/connections.jsonl"))
        );
        assert!(config.log.paths);
        assert_eq!(config.agents.disable, ["cursor", "windsurf"]);
        assert_eq!(config.agents.tool.len(), 2);
        assert_eq!(
            config.agents.tool[0].rules[1],
            RuleSpec {
                argv: Some("my-agent.js".to_owned()),
                ..RuleSpec::default()
            }
        );
        let catalog = Catalog::with_config(&config.agents).unwrap();
        assert_eq!(catalog.len(), 11);
        assert!(catalog.env_names().contains(&"CLAUDE_FORK".to_owned()));
    }

    #[test]
    fn unknown_keys_point_at_the_key() {
        assert_eq!(
            err("listen = \"127.0.0.1:9977\"\n\nlissten = \"x\"\n"),
            "/etc/agentmon.toml:3:1: unknown field `lissten`, expected one of `listen`, `log`, `agents`, `geoip`, `dest`"
        );
        assert_eq!(
            err("[log]\n  connection = \"/tmp/x\"\n"),
            "/etc/agentmon.toml:2:3: unknown field `connection`, expected one of `connections`, `paths`, `max_bytes`, `keep`, `interim_seconds`"
        );
        assert!(
            err("[[agents.tool]]\nname = \"x\"\nrules = [ { exe = \"a\", path = \"b\" } ]\n")
                .starts_with("/etc/agentmon.toml:3:24: unknown field `path`")
        );
    }

    #[test]
    fn syntax_and_type_errors_have_positions() {
        let e = err("listen = 9977\n");
        assert!(
            e.starts_with("/etc/agentmon.toml:1:10: invalid type"),
            "{e}"
        );
        let e = err("[log\n");
        assert!(e.starts_with("/etc/agentmon.toml:1:"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn bad_listen_address() {
        assert_eq!(
            err("# metrics\nlisten = \"localhost:9977\"\n"),
            "/etc/agentmon.toml:2:10: invalid listen address \"localhost:9977\": invalid socket address syntax"
        );
    }

    #[test]
    fn empty_log_path() {
        assert!(err("[log]\nconnections = \"\"\n").starts_with("/etc/agentmon.toml:2:15: "));
    }

    #[test]
    fn bad_rotation_size_points_at_the_value() {
        assert_eq!(
            err("[log]\nmax_bytes = 100\n"),
            "/etc/agentmon.toml:2:13: log.max_bytes = 100 is too small: use at least 4096, or 0 for no rotation"
        );
    }

    #[test]
    fn bad_glob() {
        let e = err(
            "[[agents.tool]]\nname = \"x\"\nrules = [ { argv = \"ok\" }, { exe = \"**/{a\" } ]\n",
        );
        assert!(
            e.starts_with("/etc/agentmon.toml:3:36: tool `x` rule 2: invalid exe glob"),
            "{e}"
        );
    }

    #[test]
    fn bad_tool_name() {
        assert_eq!(
            err("[[agents.tool]]\nname = \"My Agent\"\nrules = [ { exe = \"**/a\" } ]\n"),
            "/etc/agentmon.toml:2:8: invalid tool name \"My Agent\": use 1 to 63 of a-z 0-9 . _ -, starting with a letter or digit"
        );
    }

    #[test]
    fn rule_without_conditions() {
        let e = err("[[agents.tool]]\nname = \"x\"\nrules = [\n  { exe = \"**/a\" },\n  {},\n]\n");
        assert!(
            e.starts_with("/etc/agentmon.toml:5:3: tool `x` rule 2: "),
            "{e}"
        );
    }

    #[test]
    fn unknown_disabled_tool() {
        assert_eq!(
            err("[agents]\ndisable = [\"codex\", \"cursr\"]\n"),
            "/etc/agentmon.toml:2:21: cannot disable unknown tool \"cursr\""
        );
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "a\né = 1\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_column(text, 5), (2, 3));
        assert_eq!(line_column(text, 4), (2, 2));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentmon.toml");
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cannot read config {}: ", path.display())),
            "{e}"
        );

        fs::write(&path, "listen = \"0.0.0.0:1\"\n").unwrap();
        assert_eq!(load(&path).unwrap().listen, "0.0.0.0:1".parse().unwrap());
    }
}

//! The daemon's TOML config file.
//!
//! ```toml
//! listen = "127.0.0.1:9977"            # /metrics and /healthz
//! web_config_file = "/etc/agentmon/web.yml"   # TLS, basic auth; absent = off
//! [log]
//! connections = "/var/log/agentmon/connections.jsonl"   # absent = off
//! paths = false          # true: request paths (no query strings) in that log
//! [agents]
//! disable = ["cursor"]
//! [[agents.tool]]
//! name = "my-agent"
//! rules = [ { exe = "**/bin/my-agent" }, { argv = "my-agent.js" } ]
//! [geoip]
//! country = "/var/lib/agentmon/geoip/country.mmdb"   # default
//! asn = "/var/lib/agentmon/geoip/asn.mmdb"           # default
//! reload_seconds = 10
//! anycast_asns = [64500]   # added to the built-in anycast networks
//! [dest]
//! max_per_tool = 64
//! max_networks_per_tool = 256
//! [[dest.entry]]
//! host = "llm.internal.example"
//! purpose = "model-api"
//! [[dest.path]]
//! host = "llm.internal.example"
//! path = "/v1/telemetry"
//! purpose = "telemetry"
//! [policy]
//! violations_log = "/var/log/agentmon/violations.jsonl"
//! [[policy.tool]]
//! name = "claude-code"
//! default = "alert"
//! allow = [ { host = "llm.internal.example" } ]
//! [top]
//! socket = "/run/agentmon/top.sock"   # what `agentmon top` reads; "none": off
//! group = "agentmon"
//! ```
//!
//! Each table's schema lives beside the code that uses it (`LogConfig` in
//! `connlog`, `AgentsConfig` in `agents`, `GeoipConfig` in `geoip`,
//! `DestConfig` in `dest`, `PolicyConfig` in `policy`, `TopConfig` in `top`); this module puts
//! them together, and building a [`Loaded`] also builds the catalogs and
//! the policy, once: a config that would fail later is rejected before the
//! daemon starts, with `path:line:column: problem`.
//! Building one touches nothing else, so a running daemon can build a new
//! one on SIGHUP ([`Source::load`]) and keep its old one when that fails.

use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::agents::{self, AgentsConfig};
use crate::connlog::{LogConfig, LogTable};
use crate::dest::{self, DestConfig, PathCatalog};
use crate::geoip::GeoipConfig;
use crate::kernel::MapSizes;
use crate::origin::Origin;
use crate::policy::{Policy, PolicyConfig};
use crate::top::config::TopConfig;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9977";
/// Where the package installs the config, and the systemd unit reads it.
pub const DEFAULT_PATH: &str = "/etc/agentmon/config.toml";

/// The config a command reads: the one given with `--config`, else the
/// installed one if there is one (else `None`: the built-in defaults).
pub fn given_or_installed(given: Option<&Path>) -> Option<PathBuf> {
    let installed = Path::new(DEFAULT_PATH);
    given
        .map(Path::to_owned)
        .or_else(|| installed.exists().then(|| installed.to_owned()))
}

/// The file as written. Strict: unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where /metrics and /healthz are served.
    #[serde(default = "default_listen", deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// TLS and basic authentication for the endpoint (`web::config`, the
    /// Prometheus exporters' web-config format); `--web.config.file` wins.
    #[serde(default)]
    pub web_config_file: Option<PathBuf>,
    /// `[log]` as written; [`parse`] checks it into [`Config::log`], so
    /// that a bad value's error points at the value.
    #[serde(default, rename = "log")]
    log_table: Option<LogTable>,
    #[serde(skip)]
    pub log: LogConfig,
    #[serde(default)]
    pub agents: AgentsConfig,
    #[serde(default)]
    pub geoip: GeoipConfig,
    #[serde(default)]
    pub dest: DestConfig,
    /// `[policy]`: which destinations each tool may reach (`policy`).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[top]`: the socket `agentmon top` reads (`top::config`).
    #[serde(default)]
    pub top: TopConfig,
    /// `[kernel]`: the bounded kernel maps' sizes (`kernel::sizes`).
    #[serde(default)]
    pub kernel: MapSizes,
}

fn default_listen() -> SocketAddr {
    // Same as DEFAULT_LISTEN (checked by a test), built without parsing.
    SocketAddr::from((Ipv4Addr::LOCALHOST, 9977))
}

/// An `ADDR:PORT`; a bad one is a config error at its place.
fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("invalid listen address {text:?}: {e}")))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            web_config_file: None,
            log_table: None,
            log: LogConfig::default(),
            agents: AgentsConfig::default(),
            geoip: GeoipConfig::default(),
            dest: DestConfig::default(),
            policy: PolicyConfig::default(),
            top: TopConfig::default(),
            kernel: MapSizes::default(),
        }
    }
}

/// A config and the catalogs built from it: everything the daemon takes
/// from its config file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The agent catalog: built-in tools adjusted by `[agents]`.
    pub agents: agents::Catalog,
    /// The destination catalog: built-in entries plus `[[dest.entry]]`.
    pub dest: dest::Catalog,
    /// The path catalog: built-in entries plus `[[dest.path]]`.
    pub paths: PathCatalog,
    /// The egress policy (empty: nothing is judged).
    pub policy: Policy,
}

impl Loaded {
    /// The built-in defaults (no config file).
    pub fn defaults() -> Loaded {
        Loaded {
            config: Config::default(),
            agents: agents::Catalog::builtin(),
            dest: dest::Catalog::builtin(),
            paths: PathCatalog::builtin(),
            policy: Policy::default(),
        }
    }
}

/// Where the daemon's config comes from: a file (or the defaults) and the
/// command-line options that win over it. Kept by the daemon, so that a
/// reload reads the same file and applies the same options again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// The config file; `None`: the built-in defaults.
    pub path: Option<PathBuf>,
    /// `--listen`, over `listen`.
    pub listen: Option<SocketAddr>,
    /// `--connection-log`, over `[log] connections`.
    pub connection_log: Option<PathBuf>,
    /// `--web.config.file`, over `web_config_file`.
    pub web_config_file: Option<PathBuf>,
}

impl Source {
    /// Reads the file, builds the catalogs and applies the command-line
    /// options. Reads one file and nothing else: on SIGHUP the daemon swaps
    /// in the result, or keeps what it has and logs the error (one line,
    /// `path:line:column: problem`).
    pub fn load(&self) -> Result<Loaded, ConfigError> {
        let mut loaded = match &self.path {
            Some(path) => load(path)?,
            None => Loaded::defaults(),
        };
        if let Some(listen) = self.listen {
            loaded.config.listen = listen;
        }
        if let Some(path) = &self.connection_log {
            loaded.config.log.connections = Some(path.clone());
        }
        if let Some(path) = &self.web_config_file {
            loaded.config.web_config_file = Some(path.clone());
        }
        Ok(loaded)
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

/// Reads the config at `path` and builds its catalogs.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    parse(&text, path)
}

/// Parses config `text` and builds its catalogs; `path` is only used in
/// errors.
pub fn parse(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let invalid = |offset: Option<usize>, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        position: offset.map(|offset| line_column(text, offset)),
        // One line per error, whatever the underlying message looks like.
        message: message.replace('\n', " "),
    };
    // A catalog error about a config value carries the value's place.
    let at = |origin: Origin, message: String| invalid(origin.offset(), message);

    let mut config: Config = toml::from_str(text)
        .map_err(|e| invalid(e.span().map(|s| s.start), e.message().to_owned()))?;
    if let Some(table) = config.log_table.take() {
        config.log = table
            .build()
            .map_err(|(offset, message)| invalid(Some(offset), message))?;
    }
    let dest = dest::Catalog::with_config(&config.dest)
        .map_err(|e| at(e.origin(), format!("[[dest.entry]]: {e}")))?;
    let paths = PathCatalog::with_config(&config.dest)
        .map_err(|e| at(e.origin(), format!("[[dest.path]]: {e}")))?;
    let agents =
        agents::Catalog::with_config(&config.agents).map_err(|e| at(e.origin(), e.to_string()))?;
    let tools: Vec<&str> = agents.names().collect();
    let policy = config
        .policy
        .build(&tools)
        .map_err(|(offset, message)| invalid(offset, message))?;
    Ok(Loaded {
        config,
        agents,
        dest,
        paths,
        policy,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::RuleSpec;
    use crate::origin::unplaced;

    const PATH: &str = "/etc/agentmon.toml";

    fn err(text: &str) -> String {
        parse(text, Path::new(PATH)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let loaded = parse("", Path::new(PATH)).unwrap();
        let config = &loaded.config;
        assert_eq!(*config, Config::default());
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(config.log.connections, None);
        assert_eq!(config.agents, AgentsConfig::default());
        assert_eq!(loaded.agents.len(), agents::Catalog::builtin().len());
        // Comments and empty tables change nothing.
        let loaded = parse("# nothing\n[log]\n[agents]\n", Path::new(PATH)).unwrap();
        assert_eq!(loaded.config, Config::default());
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
        let loaded = parse(text, Path::new(PATH)).unwrap();
        let config = &loaded.config;
        assert_eq!(config.listen, "[::1]:9100".parse().unwrap());
        assert_eq!(
            config.log.connections,
            Some(PathBuf::from("/var/log/agentmon/connections.jsonl"))
        );
        assert!(config.log.paths);
        let disabled: Vec<&str> = config
            .agents
            .disable
            .iter()
            .map(|d| d.get_ref().as_str())
            .collect();
        assert_eq!(disabled, ["cursor", "windsurf"]);
        assert_eq!(config.agents.tool.len(), 2);
        assert_eq!(
            *config.agents.tool[0].rules[1].get_ref(),
            RuleSpec {
                argv: Some(unplaced("my-agent.js".to_owned())),
                ..RuleSpec::default()
            }
        );
        // The catalog is built with the config, once.
        let catalog = &loaded.agents;
        assert_eq!(catalog.len(), 15);
        assert!(catalog.env_names().contains(&"CLAUDE_FORK".to_owned()));
    }

    #[test]
    fn unknown_keys_point_at_the_key() {
        assert_eq!(
            err("listen = \"127.0.0.1:9977\"\n\nlissten = \"x\"\n"),
            "/etc/agentmon.toml:3:1: unknown field `lissten`, expected one of `listen`, `web_config_file`, `log`, `agents`, `geoip`, `dest`, `policy`, `top`, `kernel`"
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
        assert_eq!(
            load(&path).unwrap().config.listen,
            "0.0.0.0:1".parse().unwrap()
        );
    }

    #[test]
    fn dest_errors_point_at_the_value() {
        assert_eq!(
            err("[[dest.entry]]\nhost = \"a.test\"\npurpose = \"spying\"\n"),
            "/etc/agentmon.toml:3:11: [[dest.entry]]: destination entry \"a.test\": unknown purpose \"spying\" (use one of model-api, telemetry, update, package-registry, auth, geolocation, other)"
        );
        assert!(
            err("[[dest.entry]]\nhost = \"a b\"\npurpose = \"auth\"\n")
                .starts_with("/etc/agentmon.toml:2:8: [[dest.entry]]: destination entry \"a b\": ")
        );
        let e = err("[[dest.path]]\nhost = \"a.test\"\npath = \"x\"\npurpose = \"auth\"\n");
        assert!(
            e.starts_with("/etc/agentmon.toml:3:8: [[dest.path]]: path entry \"a.test\" \"x\": path: must start with `/`"),
            "{e}"
        );
    }

    #[test]
    fn a_source_applies_command_line_options_on_every_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentmon.toml");
        fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nweb_config_file = \"/a.yml\"\n[log]\nconnections = \"/a.jsonl\"\n",
        )
        .unwrap();
        let source = Source {
            path: Some(path.clone()),
            listen: Some("127.0.0.1:2".parse().unwrap()),
            connection_log: Some(PathBuf::from("/b.jsonl")),
            web_config_file: None,
        };
        let loaded = source.load().unwrap();
        assert_eq!(loaded.config.listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(loaded.config.web_config_file, Some(PathBuf::from("/a.yml")));
        let flag = Source {
            web_config_file: Some(PathBuf::from("/b.yml")),
            ..source.clone()
        };
        assert_eq!(
            flag.load().unwrap().config.web_config_file,
            Some(PathBuf::from("/b.yml"))
        );
        assert_eq!(
            loaded.config.log.connections,
            Some(PathBuf::from("/b.jsonl"))
        );

        // A reload reads the file again; a bad file is an error, and the
        // caller keeps what it had.
        fs::write(&path, "[agents]\ndisable = [\"cursor\"]\n").unwrap();
        let reloaded = source.load().unwrap();
        assert_eq!(reloaded.agents.len() + 1, loaded.agents.len());
        assert_eq!(reloaded.config.listen, "127.0.0.1:2".parse().unwrap());
        fs::write(&path, "[agents]\ndisable = [\"cursr\"]\n").unwrap();
        let e = source.load().unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:2:12: cannot disable unknown tool \"cursr\"",
                path.display()
            )
        );

        let defaults = Source::default().load().unwrap();
        assert_eq!(defaults.config, Config::default());
    }
}

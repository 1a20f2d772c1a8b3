//! The destination catalog: host patterns -> `dest` label and `purpose`.
//!
//! Like the agent catalog, it is data: the embedded `catalog.toml` has the
//! same shape as the config's `[[dest.entry]]` list, and config entries win
//! over built-in ones.

use std::collections::HashMap;

use serde::Deserialize;
use toml::Spanned;

use super::hostname::Hostname;
use super::pattern::HostPattern;

/// The embedded built-in catalog.
pub const BUILTIN_CATALOG: &str = include_str!("catalog.toml");

/// What a destination is for. Label values are a contract with dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    ModelApi,
    Telemetry,
    Update,
    PackageRegistry,
    Auth,
    /// "What is my IP / where am I" services.
    Geolocation,
    Other,
}

impl Purpose {
    pub const ALL: [Purpose; 7] = [
        Purpose::ModelApi,
        Purpose::Telemetry,
        Purpose::Update,
        Purpose::PackageRegistry,
        Purpose::Auth,
        Purpose::Geolocation,
        Purpose::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Purpose::ModelApi => "model-api",
            Purpose::Telemetry => "telemetry",
            Purpose::Update => "update",
            Purpose::PackageRegistry => "package-registry",
            Purpose::Auth => "auth",
            Purpose::Geolocation => "geolocation",
            Purpose::Other => "other",
        }
    }

    pub fn from_label(label: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.label() == label)
    }
}

/// One catalog entry as written in `catalog.toml` or the config. Values
/// keep their place in the file, for errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// `api.anthropic.com` (exactly that host), `*.sentry.io` (any name
    /// below sentry.io, not sentry.io itself), `q.*.amazonaws.com` (`*` as
    /// an inner label: exactly one label) or `*-aiplatform.googleapis.com`
    /// (`*` inside a label: any text within that one label).
    pub host: Spanned<String>,
    /// One of [`Purpose::label`].
    pub purpose: Spanned<String>,
    /// The `dest` label value. Default: the host for exact patterns, the
    /// registrable domain of the matched name for wildcard patterns.
    pub dest: Option<Spanned<String>>,
}

/// Where an entry came from (the built-in list, or the config's
/// `[[dest.entry]]`), as for agent rules.
pub use crate::origin::Origin;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("built-in destination catalog is not valid: {}", .0.message())]
    Parse(#[source] toml::de::Error),
    #[error("{}destination entry {host:?}: {reason}", prefix(*origin))]
    BadHost {
        origin: Origin,
        host: String,
        reason: &'static str,
    },
    #[error(
        "{}destination entry {host:?}: unknown purpose {purpose:?} (use one of model-api, telemetry, update, package-registry, auth, geolocation, other)",
        prefix(*origin)
    )]
    BadPurpose {
        origin: Origin,
        host: String,
        purpose: String,
    },
    #[error(
        "{}destination entry {host:?}: dest {dest:?} is not a host name (labels of a-z 0-9 - _, at most 253 bytes)",
        prefix(*origin)
    )]
    BadDest {
        origin: Origin,
        host: String,
        dest: String,
    },
}

impl CatalogError {
    /// Where the problem is: the config value it is about, or the built-in
    /// catalog.
    pub fn origin(&self) -> Origin {
        match self {
            CatalogError::Parse(_) => Origin::Builtin,
            CatalogError::BadHost { origin, .. }
            | CatalogError::BadPurpose { origin, .. }
            | CatalogError::BadDest { origin, .. } => *origin,
        }
    }
}

fn prefix(origin: Origin) -> &'static str {
    match origin {
        Origin::Builtin => "built-in catalog: ",
        Origin::Config(_) => "",
    }
}

/// How a connection's destination is labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The `dest` label value: a valid host name, so safe as a label.
    pub dest: String,
    pub purpose: Purpose,
}

#[derive(Debug, Clone)]
struct Wildcard {
    /// As written, for `agentmon lookup`.
    text: String,
    pattern: HostPattern,
    purpose: Purpose,
    dest: Option<String>,
}

/// Entries of one origin (built-in or config).
#[derive(Debug, Clone, Default)]
struct Layer {
    exact: HashMap<String, (Purpose, Option<String>)>,
    /// Most specific first.
    wildcards: Vec<Wildcard>,
}

impl Layer {
    fn classify(&self, host: &Hostname) -> Option<Classified> {
        if let Some((purpose, dest)) = self.exact.get(host.as_str()) {
            let dest = dest.clone().unwrap_or_else(|| host.as_str().to_owned());
            return Some(Classified {
                dest,
                purpose: *purpose,
            });
        }
        let hit = self.wildcards.iter().find(|w| w.pattern.matches(host))?;
        let dest = hit
            .dest
            .clone()
            .unwrap_or_else(|| registrable_domain(host).to_owned());
        Some(Classified {
            dest,
            purpose: hit.purpose,
        })
    }

    /// The `host` of the entry [`classify`](Self::classify) uses.
    fn entry(&self, host: &Hostname) -> Option<String> {
        if self.exact.contains_key(host.as_str()) {
            return Some(host.as_str().to_owned());
        }
        let hit = self.wildcards.iter().find(|w| w.pattern.matches(host))?;
        Some(hit.text.clone())
    }
}

/// The catalog entry that labels a name, for people asking why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedEntry {
    /// From the config's `[[dest.entry]]` rather than the built-in list.
    pub config: bool,
    /// Its `host` (a name or pattern), lower case.
    pub host: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    entry: Vec<EntrySpec>,
}

/// The destination catalog: built-in entries plus the config's.
#[derive(Debug, Clone)]
pub struct Catalog {
    user: Layer,
    builtin: Layer,
}

impl Catalog {
    /// The embedded catalog alone.
    pub fn builtin() -> Catalog {
        // The embedded text is ours and a unit test builds it, so failing here
        // is a build defect, not bad input.
        Catalog::new(BUILTIN_CATALOG, &[]).expect("embedded dest catalog.toml is valid")
    }

    /// `builtin` (catalog TOML text: a list `entry` of [`EntrySpec`]) plus
    /// `extra` entries from the config. Any matching config entry wins over
    /// any built-in one; within each, an exact host wins over patterns, a
    /// pattern with more labels over one with fewer, then more literal text,
    /// then the later entry.
    pub fn new(builtin: &str, extra: &[EntrySpec]) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = toml::from_str(builtin).map_err(CatalogError::Parse)?;
        let builtin = layer(file.entry.iter().map(|spec| (Origin::Builtin, spec)))?;
        let user = layer(extra.iter().map(|spec| (Origin::config(&spec.host), spec)))?;
        Ok(Catalog { user, builtin })
    }

    /// The `dest` label and purpose of a named destination: the catalog's
    /// when an entry matches, else the registrable domain and `other`.
    pub fn classify(&self, host: &Hostname) -> Classified {
        self.user
            .classify(host)
            .or_else(|| self.builtin.classify(host))
            .unwrap_or_else(|| Classified {
                dest: registrable_domain(host).to_owned(),
                purpose: Purpose::Other,
            })
    }

    /// The entry [`classify`](Self::classify) takes its labels from;
    /// `None`: no entry matches (the registrable domain and `other`).
    pub fn entry(&self, host: &Hostname) -> Option<MatchedEntry> {
        let user = self
            .user
            .entry(host)
            .map(|host| MatchedEntry { config: true, host });
        user.or_else(|| {
            let host = self.builtin.entry(host)?;
            Some(MatchedEntry {
                config: false,
                host,
            })
        })
    }
}

/// The registrable domain (eTLD+1) of `host` by the public suffix list,
/// private section included (so `bucket.s3.amazonaws.com` is its own domain).
/// Names under a suffix the list does not know fall back to their last two
/// labels (the list's implicit `*` rule); a name that is itself a public
/// suffix, or a single label, is returned whole.
pub fn registrable_domain(host: &Hostname) -> &str {
    let name = host.as_str();
    match psl::domain(name.as_bytes()) {
        // psl returns a suffix of its input; slicing by length keeps the
        // original (validated) text.
        Some(domain) => name
            .get(name.len().saturating_sub(domain.as_bytes().len())..)
            .unwrap_or(name),
        None => name,
    }
}

fn layer<'a>(specs: impl Iterator<Item = (Origin, &'a EntrySpec)>) -> Result<Layer, CatalogError> {
    let mut layer = Layer::default();
    for (origin, spec) in specs {
        let host = spec.host.get_ref();
        let bad_host = |reason| CatalogError::BadHost {
            origin,
            host: host.clone(),
            reason,
        };
        let purpose = Purpose::from_label(spec.purpose.get_ref()).ok_or_else(|| {
            CatalogError::BadPurpose {
                origin: origin.at(&spec.purpose),
                host: host.clone(),
                purpose: spec.purpose.get_ref().clone(),
            }
        })?;
        let dest = spec
            .dest
            .as_ref()
            .map(|dest| match Hostname::parse_str(dest.get_ref()) {
                Some(name) => Ok(name.as_str().to_owned()),
                None => Err(CatalogError::BadDest {
                    origin: origin.at(dest),
                    host: host.clone(),
                    dest: dest.get_ref().clone(),
                }),
            });
        let dest = dest.transpose()?;
        if !host.contains('*') {
            let name = Hostname::parse_str(host)
                .ok_or_else(|| bad_host("not a host name (labels of a-z 0-9 - _)"))?;
            layer
                .exact
                .insert(name.as_str().to_owned(), (purpose, dest));
            continue;
        }
        let wildcard = wildcard(host, purpose, dest).map_err(bad_host)?;
        // Keep the later of equally specific entries first: insert before
        // every entry that is not more specific (stable for later ones).
        let key = |w: &Wildcard| w.pattern.specificity();
        let at = layer
            .wildcards
            .iter()
            .position(|w| key(w) <= key(&wildcard))
            .unwrap_or(layer.wildcards.len());
        layer.wildcards.insert(at, wildcard);
    }
    Ok(layer)
}

fn wildcard(host: &str, purpose: Purpose, dest: Option<String>) -> Result<Wildcard, &'static str> {
    Ok(Wildcard {
        text: host.to_ascii_lowercase(),
        pattern: HostPattern::parse(host)?,
        purpose,
        dest,
    })
}

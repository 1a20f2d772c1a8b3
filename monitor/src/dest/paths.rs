//! The path catalog: (host pattern, path pattern) -> purpose and class.
//!
//! One host can carry both model traffic and telemetry
//! (api.anthropic.com serves `/v1/messages` and `/api/event_logging/batch`),
//! so once TLS plaintext gives a request's path, the path refines the host's
//! purpose. Like the destination catalog it is data: the embedded
//! `paths.toml` has the shape of the config's `[[dest.path]]` list, and
//! config entries win over built-in ones.
//!
//! A path reaches a label only as its entry's `class`, a short name from the
//! catalog itself; the raw path never does.

use serde::Deserialize;
use toml::Spanned;

use super::hostname::Hostname;
use super::http::MAX_PATH_LEN;
use super::pattern::{HostPattern, Piece};
use super::purpose::{Origin, Purpose};

/// The embedded built-in path catalog.
pub const BUILTIN_PATHS: &str = include_str!("paths.toml");
/// Longest `class` label.
pub const MAX_CLASS_LEN: usize = 32;
/// Most segments in a path pattern.
const MAX_SEGMENTS: usize = 16;
/// A `class` for a pattern without literal text (`/`).
const ROOT_CLASS: &str = "root";

/// One entry as written in `paths.toml` or the config. Values keep their
/// place in the file, for errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathEntrySpec {
    /// A host pattern as in the destination catalog: `api.anthropic.com`,
    /// `*.githubcopilot.com` (any name below), `bedrock-runtime.*.amazonaws.com`
    /// (`*` as one inner label), `*-aiplatform.googleapis.com` (`*` inside a
    /// label).
    pub host: Spanned<String>,
    /// A path pattern: `/`-separated segments, each literal or with one `*`
    /// standing for any non-empty text within that segment
    /// (`/v1beta/models/*:generateContent`). It matches a path that starts
    /// with those segments: `/v1/messages` matches `/v1/messages` and
    /// `/v1/messages/batches`, not `/v1/messagesX`. `/` matches every path.
    pub path: Spanned<String>,
    /// One of [`Purpose::label`].
    pub purpose: Spanned<String>,
    /// The `class` label value: 1 to 32 of `a-z 0-9 _ -`. Default: the last
    /// segment with literal text, lowercased, other bytes as `_`
    /// (`/v1/chat/completions` -> `completions`), or `root`.
    pub class: Option<Spanned<String>>,
}

/// What a request's path says it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathClass<'a> {
    pub purpose: Purpose,
    /// A catalog entry's `class`: bounded and from the catalog, so safe as a
    /// label.
    pub class: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum PathCatalogError {
    #[error("built-in path catalog is not valid: {}", .0.message())]
    Parse(#[source] toml::de::Error),
    #[error("{}path entry {host:?} {path:?}: host: {reason}", prefix(*origin))]
    BadHost {
        origin: Origin,
        host: String,
        path: String,
        reason: &'static str,
    },
    #[error("{}path entry {host:?} {path:?}: path: {reason}", prefix(*origin))]
    BadPath {
        origin: Origin,
        host: String,
        path: String,
        reason: &'static str,
    },
    #[error(
        "{}path entry {host:?} {path:?}: unknown purpose {purpose:?} (use one of model-api, telemetry, update, package-registry, auth, geolocation, other)",
        prefix(*origin)
    )]
    BadPurpose {
        origin: Origin,
        host: String,
        path: String,
        purpose: String,
    },
    #[error(
        "{}path entry {host:?} {path:?}: class {class:?} is not 1 to 32 of a-z 0-9 _ -",
        prefix(*origin)
    )]
    BadClass {
        origin: Origin,
        host: String,
        path: String,
        class: String,
    },
}

impl PathCatalogError {
    /// Where the problem is: the config value it is about, or the built-in
    /// catalog.
    pub fn origin(&self) -> Origin {
        match self {
            PathCatalogError::Parse(_) => Origin::Builtin,
            PathCatalogError::BadHost { origin, .. }
            | PathCatalogError::BadPath { origin, .. }
            | PathCatalogError::BadPurpose { origin, .. }
            | PathCatalogError::BadClass { origin, .. } => *origin,
        }
    }
}

fn prefix(origin: Origin) -> &'static str {
    match origin {
        Origin::Builtin => "built-in path catalog: ",
        Origin::Config(_) => "",
    }
}

#[derive(Debug, Clone)]
struct PathPattern {
    segments: Vec<Piece>,
    literal_len: usize,
}

impl PathPattern {
    fn parse(raw: &str) -> Result<PathPattern, &'static str> {
        if raw.len() > MAX_PATH_LEN {
            return Err("longer than 256 bytes");
        }
        let Some(rest) = raw.strip_prefix('/') else {
            return Err("must start with `/`");
        };
        // Paths are matched as sanitised (see `http` and `h2`): this alphabet,
        // no query string.
        if !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%".contains(&b))
        {
            return Err("only RFC 3986 path characters and `*` (no query string)");
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let segments = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/')
                .map(|s| match s {
                    "" => Err("empty segment (`//`)"),
                    s => Piece::parse(s),
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if segments.len() > MAX_SEGMENTS {
            return Err("more than 16 segments");
        }
        let literal_len = segments.iter().map(Piece::literal_len).sum();
        Ok(PathPattern {
            segments,
            literal_len,
        })
    }

    fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut segments = rest.split('/');
        self.segments
            .iter()
            .all(|pattern| segments.next().is_some_and(|s| pattern.matches(s)))
    }

    /// The default class: the last segment with literal text.
    fn default_class(&self) -> String {
        let class: String = self
            .segments
            .iter()
            .rev()
            .map(|s| match s {
                Piece::Literal(l) => l.as_str(),
                Piece::Glob(pre, suf) if suf.len() >= pre.len() => suf.as_str(),
                Piece::Glob(pre, _) => pre.as_str(),
            })
            .find(|text| text.bytes().any(|b| b.is_ascii_alphanumeric()))
            .unwrap_or(ROOT_CLASS)
            .bytes()
            .map(|b| match b.to_ascii_lowercase() {
                b @ (b'a'..=b'z' | b'0'..=b'9' | b'-') => char::from(b),
                _ => '_',
            })
            .collect();
        let class = class.trim_matches(['_', '-']);
        class.get(..MAX_CLASS_LEN).unwrap_or(class).to_owned()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    host: HostPattern,
    path: PathPattern,
    purpose: Purpose,
    class: String,
}

impl Entry {
    /// Most specific first: more path segments, more literal path text, an
    /// exact host over a pattern, more host labels, more literal host text.
    fn specificity(&self) -> (usize, usize, bool, usize, usize) {
        (
            self.path.segments.len(),
            self.path.literal_len,
            self.host.exact,
            self.host.labels.len() + usize::from(self.host.any_subdomain),
            self.host.literal_len,
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    #[serde(default)]
    path: Vec<PathEntrySpec>,
}

/// The path catalog: built-in entries plus the config's.
#[derive(Debug, Clone)]
pub struct PathCatalog {
    /// Config entries, then built-in ones; each most specific first.
    user: Vec<Entry>,
    builtin: Vec<Entry>,
}

impl PathCatalog {
    /// The embedded catalog alone.
    pub fn builtin() -> PathCatalog {
        // The embedded text is ours and a unit test builds it, so failing here
        // is a build defect, not bad input.
        PathCatalog::new(BUILTIN_PATHS, &[]).expect("embedded dest paths.toml is valid")
    }

    /// `builtin` (TOML text: a list `path` of [`PathEntrySpec`]) plus `extra`
    /// entries from the config. Any matching config entry wins over any
    /// built-in one; within each, the most specific entry wins (see
    /// [`PathEntrySpec::path`]), then the later one.
    pub fn new(builtin: &str, extra: &[PathEntrySpec]) -> Result<PathCatalog, PathCatalogError> {
        let file: PathFile = toml::from_str(builtin).map_err(PathCatalogError::Parse)?;
        let builtin = entries(file.path.iter().map(|spec| (Origin::Builtin, spec)))?;
        let user = entries(extra.iter().map(|spec| (Origin::config(&spec.host), spec)))?;
        Ok(PathCatalog { user, builtin })
    }

    /// The purpose and class of a request to `host` for `path` (as sanitised
    /// by [`super::http`] or [`super::h2`]: no query string), or `None` when
    /// no entry matches (the host's purpose then stands).
    pub fn classify(&self, host: &Hostname, path: &str) -> Option<PathClass<'_>> {
        self.user
            .iter()
            .chain(&self.builtin)
            .find(|e| e.host.matches(host) && e.path.matches(path))
            .map(|e| PathClass {
                purpose: e.purpose,
                class: &e.class,
            })
    }

    /// Every `class` value, for pre-registering label sets.
    pub fn classes(&self) -> impl Iterator<Item = &str> {
        self.user
            .iter()
            .chain(&self.builtin)
            .map(|e| e.class.as_str())
    }
}

fn entries<'a>(
    specs: impl Iterator<Item = (Origin, &'a PathEntrySpec)>,
) -> Result<Vec<Entry>, PathCatalogError> {
    let mut out = Vec::new();
    for (origin, spec) in specs {
        let (host, path) = (spec.host.get_ref().clone(), spec.path.get_ref().clone());
        let host_pattern =
            HostPattern::parse(&host).map_err(|reason| PathCatalogError::BadHost {
                origin,
                host: host.clone(),
                path: path.clone(),
                reason,
            })?;
        let path_pattern =
            PathPattern::parse(&path).map_err(|reason| PathCatalogError::BadPath {
                origin: origin.at(&spec.path),
                host: host.clone(),
                path: path.clone(),
                reason,
            })?;
        let Some(purpose) = Purpose::from_label(spec.purpose.get_ref()) else {
            return Err(PathCatalogError::BadPurpose {
                origin: origin.at(&spec.purpose),
                host,
                path,
                purpose: spec.purpose.get_ref().clone(),
            });
        };
        let class = match &spec.class {
            Some(class) if valid_class(class.get_ref()) => class.get_ref().clone(),
            Some(class) => {
                return Err(PathCatalogError::BadClass {
                    origin: origin.at(class),
                    host,
                    path,
                    class: class.get_ref().clone(),
                });
            }
            None => path_pattern.default_class(),
        };
        out.push(Entry {
            host: host_pattern,
            path: path_pattern,
            purpose,
            class,
        });
    }
    // Stable sort: reversing first keeps the later of equally specific
    // entries ahead.
    out.reverse();
    out.sort_by_key(|e| std::cmp::Reverse(e.specificity()));
    Ok(out)
}

fn valid_class(class: &str) -> bool {
    (1..=MAX_CLASS_LEN).contains(&class.len())
        && class
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

//! The `[log]` table of the config file.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use toml::Spanned;

/// Interim records of a long-lived connection, by default every 5 minutes.
pub const DEFAULT_INTERIM: Duration = Duration::from_secs(300);
/// Rotated files kept when `max_bytes` is set and `keep` is not.
pub const DEFAULT_KEEP: u32 = 5;
/// The smallest `max_bytes`: a few records per file.
pub const MIN_MAX_BYTES: u64 = 4096;
pub const MAX_KEEP: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// JSON Lines log of agent connections; `None` turns it off.
    pub connections: Option<PathBuf>,
    /// Request paths, without query strings, in that log.
    pub paths: bool,
    /// Size-based rotation; `None`: the file grows (or logrotate rotates it).
    pub rotate: Option<Rotation>,
    /// How often an open connection gets an interim record; `None`: never.
    pub interim: Option<Duration>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            connections: None,
            paths: false,
            rotate: None,
            interim: Some(DEFAULT_INTERIM),
        }
    }
}

/// Before a line would take the file past `max_bytes`, it is renamed
/// `<name>.1` (older ones move up to `<name>.<keep>`; the oldest goes) and a
/// new file is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub keep: u32,
}

/// The table as written. Strict: unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogTable {
    connections: Option<Spanned<String>>,
    #[serde(default)]
    paths: bool,
    max_bytes: Option<Spanned<u64>>,
    keep: Option<Spanned<u32>>,
    interim_seconds: Option<u64>,
}

/// A bad value: the byte offset of the value in the file, and what to do.
pub type Invalid = (usize, String);

impl LogTable {
    pub fn build(self) -> Result<LogConfig, Invalid> {
        let mut config = LogConfig {
            paths: self.paths,
            ..LogConfig::default()
        };
        if let Some(connections) = self.connections {
            if connections.get_ref().is_empty() {
                return Err((
                    connections.span().start,
                    "log.connections is empty; leave it out to turn the log off".to_owned(),
                ));
            }
            config.connections = Some(PathBuf::from(connections.into_inner()));
        }
        let keep = match self.keep {
            Some(keep) if !(1..=MAX_KEEP).contains(keep.get_ref()) => {
                return Err((
                    keep.span().start,
                    format!(
                        "log.keep = {} is out of range: keep 1 to {MAX_KEEP} rotated files",
                        keep.get_ref()
                    ),
                ));
            }
            Some(keep) => keep.into_inner(),
            None => DEFAULT_KEEP,
        };
        match self.max_bytes {
            Some(max) if *max.get_ref() == 0 => {}
            Some(max) if *max.get_ref() < MIN_MAX_BYTES => {
                return Err((
                    max.span().start,
                    format!(
                        "log.max_bytes = {} is too small: use at least {MIN_MAX_BYTES}, or 0 for no rotation",
                        max.get_ref()
                    ),
                ));
            }
            Some(max) => {
                config.rotate = Some(Rotation {
                    max_bytes: max.into_inner(),
                    keep,
                });
            }
            None => {}
        }
        config.interim = match self.interim_seconds {
            Some(0) => None,
            Some(seconds) => Some(Duration::from_secs(seconds)),
            None => Some(DEFAULT_INTERIM),
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<LogConfig, Invalid> {
        toml::from_str::<LogTable>(text).unwrap().build()
    }

    #[test]
    fn defaults_are_no_rotation_and_interim_records_every_five_minutes() {
        assert_eq!(build("").unwrap(), LogConfig::default());
        assert_eq!(LogConfig::default().interim, Some(Duration::from_secs(300)));
        assert_eq!(LogConfig::default().rotate, None);
    }

    #[test]
    fn rotation_and_interim_settings() {
        let config = build("max_bytes = 10485760\nkeep = 3\ninterim_seconds = 1\n").unwrap();
        assert_eq!(
            config.rotate,
            Some(Rotation {
                max_bytes: 10 << 20,
                keep: 3
            })
        );
        assert_eq!(config.interim, Some(Duration::from_secs(1)));
        let config = build("max_bytes = 4096\n").unwrap();
        assert_eq!(config.rotate.unwrap().keep, DEFAULT_KEEP);
        let config = build("max_bytes = 0\nkeep = 2\ninterim_seconds = 0\n").unwrap();
        assert_eq!((config.rotate, config.interim), (None, None));
    }

    #[test]
    fn bad_values_name_the_fix() {
        assert_eq!(
            build("max_bytes = 100\n").unwrap_err(),
            (
                12,
                "log.max_bytes = 100 is too small: use at least 4096, or 0 for no rotation"
                    .to_owned()
            )
        );
        assert_eq!(
            build("max_bytes = 5000\nkeep = 0\n").unwrap_err(),
            (
                24,
                "log.keep = 0 is out of range: keep 1 to 1000 rotated files".to_owned()
            )
        );
    }
}

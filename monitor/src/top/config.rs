//! The `[top]` table: where the daemon hands snapshots to `agentmon top`.
//!
//! ```toml
//! [top]
//! socket = "/run/agentmon/top.sock"   # "none": no socket
//! group = "agentmon"                  # who may read it (default: agentmon's own group)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The socket's default path; systemd makes `/run/agentmon` for the unit
/// (`RuntimeDirectory=`).
pub const DEFAULT_SOCKET: &str = "/run/agentmon/top.sock";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopConfig {
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// The group the socket belongs to (mode 0660): its members run `top`
    /// without root. agentmon must be in it (the unit's `Group=` or
    /// `SupplementaryGroups=`).
    #[serde(default)]
    pub group: Option<String>,
}

fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}

impl Default for TopConfig {
    fn default() -> Self {
        Self {
            socket: default_socket(),
            group: None,
        }
    }
}

impl TopConfig {
    /// The socket's path, `None` when turned off.
    pub fn socket(&self) -> Option<&Path> {
        Some(self.socket.as_path()).filter(|p| *p != Path::new("none"))
    }
}

//! What a restarted agentmon needs from the run before it: the exported
//! counters' values, and how much of each open connection and UDP flow is
//! already in them. Written atomically at every scrape (before the
//! exposition is sent) and every housekeeping tick, read once at start.
//!
//! The exported counters continue from these values instead of starting
//! at zero: Prometheus detects a counter reset only when a value goes down,
//! so a restarted counter that climbed past its old value within one scrape
//! interval would silently lose the old run's total. Continuing also keeps
//! `increase()` exact: bytes the old run counted after its last save are
//! counted again by the new run from the per-connection baselines here.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::traffic::Direction;

/// Bumped when the file's meaning changes; another version is ignored.
pub const VERSION: u32 = 1;
const FILE: &str = "state.json";

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
// Fields a file lacks read as empty, so that its version is what is checked.
#[serde(default)]
pub struct Saved {
    pub version: u32,
    /// The kernel's boot id: connection cookies mean nothing after a reboot.
    pub boot_id: String,
    /// The catalog's tool names in id order, which the kernel's maps use.
    pub tools: Vec<String>,
    pub counters: Vec<Series>,
    pub conns: Vec<SavedConn>,
    pub flows: Vec<SavedFlow>,
}

/// One exported counter series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: u64,
}

/// The labels a connection or flow was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDest {
    pub name: String,
    pub country: String,
    pub asn: String,
    pub purpose: String,
}

/// An open connection: what of its kernel counts is in the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConn {
    pub sock: u64,
    pub start_ns: u64,
    pub inbound: bool,
    pub counted: (u64, u64),
    pub tls_counted: (u64, u64),
    pub dest: Option<SavedDest>,
    /// The name that labelled it (SNI, Host or DNS), for the log.
    pub host: Option<String>,
    /// Its process, for a connection that closes before this run meets it.
    pub proc: SavedProc,
}

/// What the log says of a connection's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedProc {
    pub tool: String,
    pub root: u32,
    pub ppid: u32,
    pub exe: String,
    pub argv0: String,
    pub uid: Option<u32>,
}

/// A UDP flow, keyed as in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFlow {
    pub tgid: u32,
    pub family: u16,
    pub raddr: [u8; 16],
    pub rport: u16,
    pub counted: (u64, u64),
    pub dest: SavedDest,
}

impl SavedConn {
    pub fn direction(&self) -> Direction {
        if self.inbound {
            Direction::Ingress
        } else {
            Direction::Egress
        }
    }
}

/// Where the state lives: `DIR/state.json`.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The previous run's state. None when there is none (a first start);
    /// an unreadable or other-version file is an error to report once.
    pub fn load(&self) -> Result<Option<Saved>, String> {
        let text = match fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let saved: Saved = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
        if saved.version != VERSION {
            return Err(format!(
                "version {} (this agentmon writes {VERSION})",
                saved.version
            ));
        }
        Ok(Some(saved))
    }

    /// Replaces the file atomically (see [`write_private`]).
    pub fn save(&self, saved: &Saved) -> io::Result<()> {
        write_private(&self.path, &serde_json::to_vec(saved)?)
    }
}

/// Replaces the file at `path` with `bytes` atomically (write, then
/// rename): a crash leaves the old file or the new one, never half of one.
/// State files name the hosts agents reached and the programs they ran, so
/// the file is made 0600 (its folder, if missing, 0750 as the unit's
/// StateDirectoryMode); the temporary file is made afresh, never opened
/// through a link someone planted at its name, and the rename replaces a
/// link at the path rather than following it.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent() {
        if let Some(up) = dir.parent() {
            fs::create_dir_all(up)?;
        }
        match fs::DirBuilder::new().mode(0o750).create(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    let tmp = path.with_extension("json.tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&tmp, path)
}

/// The running kernel's boot id (empty if unreadable).
pub fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_loads_back_and_refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path());
        assert_eq!(file.load(), Ok(None));
        let saved = Saved {
            version: VERSION,
            boot_id: "b".into(),
            tools: vec!["claude-code".into()],
            counters: vec![Series {
                name: "agentmon_egress_bytes_total".into(),
                labels: [("tool".to_owned(), "claude-code".to_owned())].into(),
                value: 70_000,
            }],
            conns: vec![SavedConn {
                sock: 7,
                start_ns: 9,
                inbound: false,
                counted: (1, 2),
                tls_counted: (0, 0),
                dest: None,
                host: Some("api.anthropic.com".into()),
                proc: SavedProc {
                    tool: "claude-code".into(),
                    root: 10,
                    ppid: 1,
                    exe: "/usr/bin/claude".into(),
                    argv0: "claude".into(),
                    uid: Some(1000),
                },
            }],
            flows: Vec::new(),
        };
        file.save(&saved).unwrap();
        let back = file.load().unwrap().unwrap();
        assert_eq!(back.counters, saved.counters);
        assert_eq!(back.conns, saved.conns);
        assert!(!dir.path().join("state.json.tmp").exists());
        fs::write(file.path(), br#"{"version":99}"#).unwrap();
        assert!(file.load().unwrap_err().contains("version 99"));
    }

    #[test]
    fn the_state_is_private_and_never_written_through_a_planted_link() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "root:secret\n").unwrap();
        let state = dir.path().join("state");
        let file = StateFile::new(&state);
        fs::create_dir_all(&state).unwrap();
        std::os::unix::fs::symlink(&victim, state.join("state.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, file.path()).unwrap();
        let saved = Saved {
            version: VERSION,
            boot_id: "b".into(),
            tools: Vec::new(),
            counters: Vec::new(),
            conns: Vec::new(),
            flows: Vec::new(),
        };
        file.save(&saved).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root:secret\n");
        let meta = fs::symlink_metadata(file.path()).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(file.load().unwrap().map(|s| s.version), Some(VERSION));
    }
}

//! Probe points already found, by the build they were found in, kept in
//! the state folder (`DIR/tls-plans.json`) for the next run.
//!
//! A program's first run after agentmon starts would otherwise wait for
//! the search: Codex 0.171 sends its first model request 0.4 s after its
//! exec, and searching its 315 MB takes 0.2 s here, which a slower or
//! busier machine can stretch past that request (it is then sized from
//! its records and its head not read).
//!
//! A build is known by its GNU or Go build id, else (Codex has neither) by
//! a fingerprint of its size and sampled content. Before a kept plan is
//! used, the bytes at each of its probe points are compared with those it
//! was found at: a probe never lands inside another build's instructions.

use std::{
    fs,
    hash::Hasher,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Plan, Scope, TlsLib, plan};
use crate::kernel::{ProbeAt, TLS_PROGRAMS};

const FILE: &str = "tls-plans.json";
/// Bumped when a kept plan's meaning changes; another version is ignored.
const VERSION: u32 = 1;
/// Builds kept at most (the oldest goes first): agents upgrade often.
const KEEP: usize = 128;
/// Bytes compared at each probe point.
const CHECK: u64 = 16;
/// The fingerprint reads this much at each of `SAMPLES` places.
const SAMPLE: u64 = 4096;
const SAMPLES: u64 = 64;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    version: u32,
    builds: Vec<Build>,
}

/// One build's plan, and the bytes at its probe points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Build {
    /// `id:` and the build id, or `fp:` and the fingerprint, in hex.
    key: String,
    lib: String,
    per_file: bool,
    uretprobes: bool,
    probes: Vec<Point>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    program: String,
    offset: u64,
    required: bool,
    /// The file's first bytes at `offset`, in hex.
    bytes: String,
}

/// Plans by build: in memory, and in the state folder when there is one.
#[derive(Debug, Default)]
pub struct PlanCache {
    builds: Vec<Build>,
    file: Option<PathBuf>,
    /// Whether the file could not be written last time (warned once).
    failed: bool,
}

impl PlanCache {
    /// The plans kept in `dir` by earlier runs, written back there. An
    /// unreadable file costs one warning: its plans are found again.
    pub fn load(dir: &Path) -> Self {
        let file = dir.join(FILE);
        let kept = match fs::read(&file) {
            Ok(text) => match serde_json::from_slice::<Kept>(&text) {
                Ok(kept) if kept.version == VERSION => kept,
                Ok(kept) => {
                    warn!(path = %file.display(), "TLS probe points kept by another agentmon (version {}) are not used; they are found again", kept.version);
                    Kept::default()
                }
                Err(e) => {
                    warn!(path = %file.display(), "cannot read the TLS probe points kept by the last run ({e}); they are found again");
                    Kept::default()
                }
            },
            Err(_) => Kept::default(),
        };
        Self {
            builds: kept.builds,
            file: Some(file),
            failed: false,
        }
    }

    /// How many builds' plans are known.
    pub fn len(&self) -> usize {
        self.builds.len()
    }

    /// The plan of `key`'s build for the file `target`, when the bytes at
    /// every probe point are the ones it was found at.
    pub fn get(&self, key: &str, target: &Path) -> Option<Plan> {
        let build = self.builds.iter().find(|b| b.key == key)?;
        let file = fs::File::open(target).ok()?;
        let mut probes = Vec::new();
        for point in &build.probes {
            if hex(&read_at(&file, point.offset)?) != point.bytes {
                return None;
            }
            let program = TLS_PROGRAMS.iter().find(|p| **p == point.program)?;
            probes.push((*program, ProbeAt::Offset(point.offset), point.required));
        }
        Some(Plan {
            lib: TlsLib::ALL.into_iter().find(|l| l.label() == build.lib)?,
            scope: if build.per_file {
                Scope::PerFile
            } else {
                Scope::PerProcess
            },
            probes,
            uretprobes: build.uretprobes,
        })
    }

    /// Keeps `plan`, found in `target`, for `key`'s build (and writes the
    /// state folder's file).
    pub fn put(&mut self, key: &str, plan: &Plan, target: &Path) {
        let Ok(file) = fs::File::open(target) else {
            return;
        };
        let mut probes = Vec::new();
        for (program, at, required) in &plan.probes {
            // Resolved plans name offsets; one that does not is not kept.
            let ProbeAt::Offset(offset) = at else { return };
            let Some(bytes) = read_at(&file, *offset) else {
                return;
            };
            probes.push(Point {
                program: (*program).to_owned(),
                offset: *offset,
                required: *required,
                bytes: hex(&bytes),
            });
        }
        self.builds.retain(|b| b.key != key);
        if self.builds.len() >= KEEP {
            self.builds.remove(0);
        }
        self.builds.push(Build {
            key: key.to_owned(),
            lib: plan.lib.label().to_owned(),
            per_file: plan.scope == Scope::PerFile,
            uretprobes: plan.uretprobes,
            probes,
        });
        self.write();
    }

    fn write(&mut self) {
        let Some(path) = &self.file else { return };
        let kept = Kept {
            version: VERSION,
            builds: self.builds.clone(),
        };
        let written = serde_json::to_vec(&kept)
            .map_err(std::io::Error::other)
            .and_then(|text| crate::saved::write_private(path, &text));
        match written {
            Ok(()) => self.failed = false,
            Err(e) if !self.failed => {
                self.failed = true;
                warn!(path = %path.display(), "cannot keep the TLS probe points for the next run ({e}); it finds them again");
            }
            Err(_) => {}
        }
    }
}

/// What a build is known by: its build id, else a fingerprint of the file
/// (its size, and SipHash of `SAMPLES` evenly spread pieces and its end).
pub fn key(target: &Path) -> Option<String> {
    if let Some(id) = plan::build_id(target) {
        return Some(format!("id:{}", hex(&id)));
    }
    let file = fs::File::open(target).ok()?;
    let size = file.metadata().ok()?.len();
    let mut hash = siphasher::sip128::SipHasher13::new();
    hash.write_u64(size);
    let mut piece = vec![0; SAMPLE as usize];
    let places = (0..SAMPLES)
        .map(|i| i * (size / SAMPLES))
        .chain([size.saturating_sub(SAMPLE)]);
    for at in places {
        let n = file.read_at(&mut piece, at).ok()?;
        hash.write(&piece[..n]);
    }
    use siphasher::sip128::Hasher128;
    Some(format!("fp:{size}:{:032x}", hash.finish128().as_u128()))
}

fn read_at(file: &fs::File, offset: u64) -> Option<Vec<u8>> {
    let mut bytes = vec![0; CHECK as usize];
    let n = file.read_at(&mut bytes, offset).ok()?;
    bytes.truncate(n);
    (n > 0).then_some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{AEAD_SEAL, TLS_ENTRY_WRITE};

    fn plan() -> Plan {
        Plan {
            lib: TlsLib::Rustls,
            scope: Scope::PerFile,
            probes: vec![
                (AEAD_SEAL, ProbeAt::Offset(0x100), true),
                (TLS_ENTRY_WRITE, ProbeAt::Offset(0x2000), false),
            ],
            uretprobes: false,
        }
    }

    fn program(dir: &Path, name: &str, fill: u8) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, vec![fill; 0x3000]).unwrap();
        path
    }

    #[test]
    fn a_plan_kept_in_the_state_folder_is_used_by_the_next_run_for_the_same_build() {
        let dir = tempfile::tempdir().unwrap();
        let exe = program(dir.path(), "codex", 0x90);
        let key = key(&exe).unwrap();
        assert!(key.starts_with("fp:12288:"), "{key}");
        PlanCache::load(dir.path()).put(&key, &plan(), &exe);

        let next = PlanCache::load(dir.path());
        assert_eq!(next.len(), 1);
        assert_eq!(next.get(&key, &exe), Some(plan()));
        // Another copy of the same build: the same key, the same plan.
        let copy = program(dir.path(), "copy", 0x90);
        assert_eq!(super::key(&copy).as_deref(), Some(key.as_str()));
        assert_eq!(next.get(&key, &copy), Some(plan()));
    }

    #[test]
    fn other_bytes_at_a_probe_point_are_not_probed_from_a_kept_plan() {
        let dir = tempfile::tempdir().unwrap();
        let exe = program(dir.path(), "codex", 0x90);
        let key = key(&exe).unwrap();
        let mut cache = PlanCache::default();
        cache.put(&key, &plan(), &exe);
        let mut bytes = fs::read(&exe).unwrap();
        bytes[0x2005] = 0xcc;
        fs::write(&exe, &bytes).unwrap();
        assert_eq!(cache.get(&key, &exe), None);
        // Other content is another key in the first place.
        assert_ne!(super::key(&exe), Some(key));
    }

    #[test]
    fn a_damaged_file_is_found_again_with_one_warning_and_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{ not json").unwrap();
        let mut cache = PlanCache::load(dir.path());
        assert_eq!(cache.len(), 0);
        let exe = program(dir.path(), "codex", 0x90);
        let key = key(&exe).unwrap();
        cache.put(&key, &plan(), &exe);
        assert_eq!(PlanCache::load(dir.path()).len(), 1);
    }
}

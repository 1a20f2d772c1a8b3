//! Keeping count across restarts: the maps live in bpffs, so a restarted
//! agentmon (after an upgrade, a crash or `kill -9`) finds the connections,
//! sockets and processes the kernel kept counting; the hooks' links live
//! there too while agentmon runs, so that a crashed agentmon's programs go
//! on counting until it is back. A clean stop takes the links down (a
//! stopped agentmon costs nothing) and leaves the maps: TCP is counted by
//! sequence numbers, so the bytes a connection moved while agentmon was
//! stopped are counted at its next packet.
//!
//! Layout under the pin directory (default `/sys/fs/bpf/agentmon`):
//! `maps-v<MAPS_VERSION>/<MAP>` and `links-<object hash>/<PROGRAM>`.

use std::{
    collections::hash_map::DefaultHasher,
    fs,
    hash::{Hash, Hasher},
    io,
    path::{Path, PathBuf},
};

use aya::maps::MapInfo;
use tracing::warn;

/// Bumped when a pinned map's key or value changes meaning without changing
/// size (a size change is caught by comparing the pinned maps' shapes).
const MAPS_VERSION: u32 = 1;
/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The pin directory, once it is known to be usable.
#[derive(Debug)]
pub struct Pins {
    root: PathBuf,
    maps: PathBuf,
    links: PathBuf,
    /// The maps were already there (a restart), not made now.
    pub resumed: bool,
}

/// What agentmon's eBPF object says a map looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

impl Pins {
    /// Prepares `root` for maps shaped as `shapes` (name, shape) and links
    /// of `object` (with the `variant` of features asked for). None, with
    /// one warning, where bpffs is not mounted above `root`: agentmon then
    /// runs without pins, and a restart starts counting afresh.
    pub fn open(
        root: &Path,
        object: &[u8],
        variant: &str,
        shapes: &[(String, Shape)],
    ) -> Option<Self> {
        let parent = root.parent().unwrap_or(root);
        if !is_bpffs(parent) {
            warn!(
                dir = %parent.display(),
                "no BPF filesystem here, so a restart of agentmon starts counting afresh; mount it with `mount -t bpf bpf {}`",
                parent.display()
            );
            return None;
        }
        if let Err(e) = fs::create_dir_all(root) {
            warn!(dir = %root.display(), error = %e, "cannot create the pin directory, so a restart of agentmon starts counting afresh");
            return None;
        }
        let maps = root.join(format!("maps-v{MAPS_VERSION}"));
        let links = root.join(format!("links-{:016x}", object_hash(object, variant)));
        let mut stale = other_dirs(root, &maps, "maps-");
        let resumed = maps.is_dir();
        let compatible = !resumed
            || shapes.iter().all(|(name, want)| {
                let path = maps.join(name);
                !path.exists() || pinned_shape(&path).is_ok_and(|have| have == *want)
            });
        if !compatible {
            stale.push(maps.clone());
        }
        if !stale.is_empty() {
            let names: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
            warn!(
                "replacing maps pinned by an incompatible agentmon ({}; another build, or other [kernel] sizes): counting starts afresh",
                names.join(", ")
            );
            for dir in &stale {
                remove_dir(dir);
            }
        }
        let resumed = resumed && compatible;
        if let Err(e) = fs::create_dir_all(&maps) {
            warn!(dir = %maps.display(), error = %e, "cannot create the pin directory, so a restart of agentmon starts counting afresh");
            return None;
        }
        Some(Self {
            root: root.to_owned(),
            maps,
            links,
            resumed,
        })
    }

    pub fn map(&self, name: &str) -> PathBuf {
        self.maps.join(name)
    }

    /// Where this build's link for `program` is pinned.
    pub fn link(&self, program: &str) -> PathBuf {
        self.links.join(program)
    }

    /// Whether this same build left its links pinned (it crashed or was
    /// killed): its programs are still attached and counting.
    pub fn links_left(&self) -> bool {
        self.links.is_dir()
    }

    /// Makes the directory for this build's links, after removing a partial
    /// one.
    pub fn start_links(&self) -> io::Result<()> {
        remove_dir(&self.links);
        fs::create_dir_all(&self.links)
    }

    /// Removes the links other builds left (their programs detach now that
    /// this build's are attached).
    pub fn drop_other_links(&self) {
        for dir in other_dirs(&self.root, &self.links, "links-") {
            remove_dir(&dir);
        }
    }

    /// A clean stop: this build's links go, and with them its programs.
    pub fn unpin_links(&self) {
        remove_dir(&self.links);
    }
}

/// Removes everything agentmon pinned under `root` (`agentmon unpin`).
pub fn unpin_all(root: &Path) -> io::Result<()> {
    if root.exists() {
        remove_dir(root);
        if root.exists() {
            return Err(io::Error::other(format!(
                "{} is still there",
                root.display()
            )));
        }
    }
    Ok(())
}

fn is_bpffs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string and a zeroed out-parameter.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(path.as_ptr(), &mut stat) } == 0) && stat.f_type as i64 == BPF_FS_MAGIC
}

fn pinned_shape(path: &Path) -> Result<Shape, aya::maps::MapError> {
    let info = MapInfo::from_pin(path)?;
    Ok(Shape {
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
        flags: info.map_flags(),
    })
}

/// Subdirectories of `root` named `prefix*`, other than `keep`.
fn other_dirs(root: &Path, keep: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p != keep)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect()
}

/// Removes a pin directory: unlinking a pin drops the kernel's reference.
fn remove_dir(dir: &Path) {
    if let Err(e) = fs::remove_dir_all(dir)
        && e.kind() != io::ErrorKind::NotFound
    {
        warn!(dir = %dir.display(), error = %e, "cannot remove pins");
    }
}

/// Identifies a build's programs: a link pinned by another build is
/// replaced, not reused.
fn object_hash(object: &[u8], variant: &str) -> u64 {
    let mut h = DefaultHasher::new();
    object.hash(&mut h);
    variant.hash(&mut h);
    h.finish()
}

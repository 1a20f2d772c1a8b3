//! Opening the file a process maps, to search it and attach probes to it.
//!
//! The file may have been renamed or deleted since it was mapped: Codex
//! copies itself to a staging directory, runs the copy and renames the
//! directory while agentmon searches the copy (about a second for its
//! 315 MB); an upgrade deletes the libssl a running agent maps. So the file
//! is opened once, checked to be the mapped one, and named from then on by
//! agentmon's own descriptor, `/proc/self/fd/N`: the kernel follows that
//! link to the open file whatever it is called now, both for reading and
//! for registering a uprobe (which names an inode, not a path).

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use super::mapped::Mapped;
use crate::procfs::{ProcSource, RealProc};

/// A file's size and modification time (seconds, nanoseconds): a plan
/// found for an inode is only reused while they are the same, since an
/// inode is rewritten in place (`cp` over an installed program) or its
/// number reused for another file once the last mapping is gone, and
/// probes at another build's offsets would break the traced program.
pub type Stamp = (u64, i64, i64);

/// A file to search and attach to, and the path that names it.
pub struct Target {
    path: PathBuf,
    stamp: Option<Stamp>,
    /// Keeps `/proc/self/fd/N` naming the file until the probes are on.
    _file: Option<File>,
}

impl Target {
    /// A target named by a path alone, unstamped (the fake attacher of
    /// unit tests).
    pub fn named(path: PathBuf) -> Self {
        Self {
            path,
            stamp: None,
            _file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stamp(&self) -> Option<Stamp> {
        self.stamp
    }

    /// Opens the file process `pid` maps: by its name, by the same name
    /// inside the process's `root` (another mount namespace), by the
    /// process's executable link when it is that, or by the process's own
    /// mapping (`/proc/<pid>/map_files/<range>`, which needs CAP_SYS_ADMIN
    /// like the probes themselves). None when none of them is the file,
    /// which is no reason to give the file up: another process may map it
    /// by a name that works.
    pub fn open(file: &Mapped, pid: u32, root: &Path, is_exe: bool) -> Option<Self> {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let mut tried = Vec::new();
        if !file.deleted {
            tried.push(file.path.clone());
            tried.push(root.join(file.path.strip_prefix("/").unwrap_or(&file.path)));
        }
        if is_exe {
            tried.push(proc.join("exe"));
        }
        if let Some(range) = &file.range {
            tried.push(proc.join("map_files").join(range));
        }
        // The inode alone: on btrfs `stat` reports a subvolume's device,
        // not the superblock's that maps show.
        let same = |meta: &std::fs::Metadata| meta.is_file() && meta.ino() == file.inode;
        tried.iter().find_map(|path| {
            // Looked at before it is opened: a device mapped executable is
            // never opened (its driver would see it).
            if !std::fs::metadata(path).is_ok_and(|m| same(&m)) {
                return None;
            }
            let opened = File::open(path).ok()?;
            let meta = opened.metadata().ok()?;
            if !same(&meta) {
                return None;
            }
            Some(Self {
                path: PathBuf::from(format!("/proc/self/fd/{}", opened.as_raw_fd())),
                stamp: Some(stamp(&meta)),
                _file: Some(opened),
            })
        })
    }
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (meta.size(), meta.mtime(), meta.mtime_nsec())
}

/// Whether `file` is process `pid`'s executable: by name, or by identity
/// when it was renamed after the exec.
pub fn is_exe(file: &Mapped, exe: Option<&Path>, pid: u32) -> bool {
    if exe == Some(file.path.as_path()) {
        return true;
    }
    exe.is_some() && RealProc::new().exe_ino(pid) == Some(file.inode)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::uprobes::mapped;

    /// This test process's mapping of `path`, from its own maps.
    fn mapping_of(path: &Path) -> Option<Mapped> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        mapped::parse(&maps).into_iter().find(|m| m.path == path)
    }

    /// Maps a new file executable, as the loader maps a library.
    fn map_exec(path: &Path) -> memmap2::Mmap {
        let mut f = File::create(path).unwrap();
        f.write_all(&[0xc3; 4096]).unwrap();
        let f = File::open(path).unwrap();
        // SAFETY: a private file of this test, not written while mapped.
        unsafe { memmap2::MmapOptions::new().map_exec(&f) }.unwrap()
    }

    #[test]
    fn a_file_renamed_or_deleted_after_it_was_mapped_is_still_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (staged, released) = (dir.path().join("staged"), dir.path().join("released"));
        let _map = map_exec(&staged);
        let before = mapping_of(&staged).expect("mapped under its first name");
        std::fs::rename(&staged, &released).unwrap();
        let pid = std::process::id();

        // The name the mapping was read under is gone: found by the
        // process's mapping of it, and read through agentmon's descriptor.
        // The kernel follows map_files links for CAP_SYS_ADMIN alone.
        let target = Target::open(&before, pid, Path::new("/"), false);
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            assert!(target.is_none());
            return;
        }
        let target = target.expect("opened");
        assert!(target.path().starts_with("/proc/self/fd/"));
        let ino = std::fs::metadata(target.path()).unwrap().ino();
        assert_eq!(ino, before.inode);

        // Deleted: maps keep the old name, marked; still opened.
        std::fs::remove_file(&released).unwrap();
        let gone = mapping_of(&released).expect("mapped after deletion");
        assert!(gone.deleted);
        let target = Target::open(&gone, pid, Path::new("/"), false).expect("opened");
        assert_eq!(std::fs::read(target.path()).unwrap().len(), 4096);
    }

    #[test]
    fn a_device_is_not_a_file_to_search() {
        let null = Path::new("/dev/null");
        let mapped = Mapped {
            path: null.to_owned(),
            dev: (0, 0),
            inode: std::fs::metadata(null).unwrap().ino(),
            range: None,
            deleted: false,
        };
        assert!(Target::open(&mapped, std::process::id(), Path::new("/"), false).is_none());
    }

    #[test]
    fn another_file_under_the_name_is_not_taken_for_the_mapped_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib");
        let _map = map_exec(&path);
        let mut mapped = mapping_of(&path).expect("mapped");
        // Not this process's mapping, and the name holds another inode.
        mapped.inode += 1;
        mapped.range = None;
        assert!(Target::open(&mapped, std::process::id(), Path::new("/"), false).is_none());
    }
}

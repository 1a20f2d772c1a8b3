//! The executable file mappings of a process, from /proc/<pid>/maps (the
//! text, not BPF maps).

use std::path::PathBuf;

/// One executable mapping of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The file's name now (the kernel writes a renamed file's new name);
    /// for a deleted file, the name it had.
    pub path: PathBuf,
    /// Device (major, minor) and inode: the identity of the file.
    pub dev: (u32, u32),
    pub inode: u64,
    /// The mapping's address range (`start-end`), which names it in
    /// `/proc/<pid>/map_files`; None for a file not mapped yet.
    pub range: Option<String>,
    /// The file was deleted after it was mapped (an upgrade replaced it).
    pub deleted: bool,
}

impl Mapped {
    pub fn id(&self) -> (u32, u32, u64) {
        (self.dev.0, self.dev.1, self.inode)
    }
}

/// Executable file mappings in `maps` text, one per file.
pub fn parse(maps: &str) -> Vec<Mapped> {
    let mut out: Vec<Mapped> = Vec::new();
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut cols = line.splitn(6, ' ');
        let (Some(range), Some(perms), Some(_offset), Some(dev), Some(inode)) = (
            cols.next(),
            cols.next(),
            cols.next(),
            cols.next(),
            cols.next(),
        ) else {
            continue;
        };
        let path = cols.next().unwrap_or("").trim_start();
        if !perms.contains('x') || !path.starts_with('/') {
            continue;
        }
        let (path, deleted) = match path.strip_suffix(" (deleted)") {
            Some(path) => (path, true),
            None => (path, false),
        };
        let (Some((major, minor)), Ok(inode)) = (dev.split_once(':'), inode.parse::<u64>()) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (
            u32::from_str_radix(major, 16),
            u32::from_str_radix(minor, 16),
        ) else {
            continue;
        };
        let mapped = Mapped {
            path: PathBuf::from(path),
            dev: (major, minor),
            inode,
            range: Some(range.to_owned()),
            deleted,
        };
        if inode != 0 && !out.iter().any(|m| m.id() == mapped.id()) {
            out.push(mapped);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_executable_file_mappings_once() {
        let maps = "\
55d0c0a00000-55d0c0a28000 r--p 00000000 fe:01 1835265                    /usr/bin/curl
55d0c0a28000-55d0c0a8c000 r-xp 00028000 fe:01 1835265                    /usr/bin/curl
7f1c2b400000-7f1c2b49a000 r-xp 00000000 fe:01 1841311                    /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1c2b5a0000-7f1c2b5a1000 r-xp 00001000 fe:01 1841312                    /tmp/x (deleted)
7ffd1b3f0000-7ffd1b412000 rw-p 00000000 00:00 0                          [stack]
7ffd1b5f4000-7ffd1b5f6000 r-xp 00000000 00:00 0                          [vdso]
7f1c2b600000-7f1c2b610000 r-xp 00000000 103:02 77 /opt/with space/libgnutls.so.30
";
        let m = parse(maps);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].path, PathBuf::from("/usr/bin/curl"));
        assert_eq!(m[0].dev, (0xfe, 1));
        // The first executable mapping names the file in map_files.
        assert_eq!(m[0].range.as_deref(), Some("55d0c0a28000-55d0c0a8c000"));
        assert!(!m[0].deleted);
        assert_eq!(m[1].inode, 1841311);
        assert_eq!(m[2].path, PathBuf::from("/tmp/x"));
        assert!(m[2].deleted);
        assert_eq!(m[3].path, PathBuf::from("/opt/with space/libgnutls.so.30"));
        assert_eq!(m[3].dev, (0x103, 2));
    }
}

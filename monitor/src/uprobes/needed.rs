//! The TLS libraries an executable will map, known before the dynamic
//! loader maps them: its `DT_NEEDED` entries, followed through the
//! libraries they name. A probe for one process can be registered on a
//! library's file before the process maps it (the kernel plants it when the
//! mapping appears), so an agent's helper that speaks TLS within
//! milliseconds of its exec (`curl`, `git`) is probed from its first call.
//! Python loads libssl with `dlopen`, through its `_ssl` extension module:
//! for a Python interpreter that module's libraries count as needed too.
//! Other libraries loaded with `dlopen` are found later, in
//! `/proc/<pid>/maps`.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use object::Object;

use super::mapped::Mapped;

/// Libraries followed per executable, at most (a large program links a
/// few dozen).
const MAX_LIBRARIES: usize = 128;

/// The library directories the dynamic loader searches by default.
pub fn default_dirs() -> Vec<PathBuf> {
    let triple = format!("{}-linux-gnu", std::env::consts::ARCH);
    [
        format!("/lib/{triple}"),
        format!("/usr/lib/{triple}"),
        "/lib64".into(),
        "/usr/lib64".into(),
        "/lib".into(),
        "/usr/lib".into(),
        "/usr/local/lib".into(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Whether a library's file name is a TLS library agentmon probes.
pub fn is_tls_library(name: &str) -> bool {
    name.starts_with("libssl.so") || name.starts_with("libgnutls.so")
}

/// Remembers, per executable file, which TLS libraries it needs.
#[derive(Default)]
pub struct Needed {
    cache: HashMap<(u64, u64), Vec<Mapped>>,
}

impl Needed {
    /// The TLS libraries `exe` (a path inside `root`, the process's view of
    /// the file system) will map, as the files they are here.
    pub fn tls_libraries(&mut self, exe: &Path, root: &Path) -> Vec<Mapped> {
        let host = inside(root, exe);
        let Ok(meta) = std::fs::metadata(&host) else {
            return Vec::new();
        };
        let key = (meta.dev(), meta.ino());
        if let Some(found) = self.cache.get(&key) {
            return found.clone();
        }
        let mut roots = vec![host.clone()];
        roots.extend(python_ssl_module(&host));
        let found = walk(roots, root);
        self.cache.insert(key, found.clone());
        found
    }
}

/// `path` (absolute, as the process sees it) as seen from here.
fn inside(root: &Path, path: &Path) -> PathBuf {
    if root == Path::new("/") {
        return path.to_owned();
    }
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Python's `_ssl` extension module next to interpreter `exe`
/// (`<prefix>/bin/python3.11` -> `<prefix>/lib/python3.11/lib-dynload/`,
/// or Debian's `/usr/lib/python3.11/lib-dynload/`).
fn python_ssl_module(exe: &Path) -> Option<PathBuf> {
    let name = exe.file_name()?.to_str()?;
    if !name.starts_with("python") {
        return None;
    }
    let prefix = exe.parent()?.parent()?;
    [prefix, Path::new("/usr")].iter().find_map(|prefix| {
        let dir = prefix.join("lib").join(name).join("lib-dynload");
        std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
            let file = e.file_name();
            let file = file.to_str()?;
            (file.starts_with("_ssl.") && file.ends_with(".so")).then(|| e.path())
        })
    })
}

/// Breadth-first through the `DT_NEEDED` names, resolved in the default
/// directories (RUNPATH is not followed: TLS libraries are system ones).
fn walk(roots: Vec<PathBuf>, root: &Path) -> Vec<Mapped> {
    let dirs = default_dirs();
    let mut queue = VecDeque::from(roots);
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    while let Some(file) = queue.pop_front() {
        if seen.len() >= MAX_LIBRARIES {
            break;
        }
        for name in needed(&file) {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(host) = dirs.iter().find_map(|dir| {
                let host = inside(root, &dir.join(&name));
                host.is_file().then_some(host)
            }) else {
                continue;
            };
            if is_tls_library(&name) {
                if let Some(mapped) = identify(&host) {
                    found.push(mapped);
                }
            } else {
                queue.push_back(host);
            }
        }
    }
    found
}

/// The `DT_NEEDED` names of one ELF file (none if it is not one).
fn needed(path: &Path) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    // SAFETY: a read-only map of a library or executable in use.
    let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
        return Vec::new();
    };
    let Ok(elf) = object::File::parse(&*map) else {
        return Vec::new();
    };
    let Ok(libraries) = elf.import_libraries() else {
        return Vec::new();
    };
    libraries
        .filter_map(Result::ok)
        .filter_map(|l| std::str::from_utf8(l.name()).ok().map(str::to_owned))
        .collect()
}

/// The file at `host` as a mapping of it would show: the loader maps the
/// file a symlink (`libssl.so.3` in a merged `/lib`) points to, and the
/// device and inode are what identify it.
fn identify(host: &Path) -> Option<Mapped> {
    let real = std::fs::canonicalize(host).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    Some(Mapped {
        path: real,
        dev: (libc::major(meta.dev()), libc::minor(meta.dev())),
        inode: meta.ino(),
        range: None,
        deleted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_needs_libssl_through_libcurl() {
        // Debian's curl links libcurl, which links libssl (and GnuTLS
        // through its dependencies, on some builds).
        let Some(curl) = ["/usr/bin/curl"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
        else {
            return;
        };
        let found = Needed::default().tls_libraries(curl, Path::new("/"));
        assert!(
            found.iter().any(|m| m
                .path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libssl.so"))),
            "{found:?}"
        );
        for m in &found {
            let meta = std::fs::metadata(&m.path).unwrap();
            assert_eq!(meta.ino(), m.inode);
        }
    }

    #[test]
    fn python_needs_libssl_through_its_ssl_module() {
        // The interpreter itself, not a launcher script (pyenv's shims).
        let Ok(out) = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
        else {
            return;
        };
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let python = std::fs::canonicalize(exe).unwrap();
        let found = Needed::default().tls_libraries(&python, Path::new("/"));
        assert!(
            found.iter().any(|m| m
                .path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libssl.so"))),
            "{} -> {found:?}",
            python.display()
        );
    }

    #[test]
    fn a_file_that_is_not_elf_needs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(
            Needed::default()
                .tls_libraries(&script, Path::new("/"))
                .is_empty()
        );
    }

    #[test]
    fn tls_library_names() {
        assert!(is_tls_library("libssl.so.3"));
        assert!(is_tls_library("libgnutls.so.30"));
        assert!(!is_tls_library("libcrypto.so.3"));
        assert!(!is_tls_library("libcurl.so.4"));
    }
}

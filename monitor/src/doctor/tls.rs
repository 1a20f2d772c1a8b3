//! The TLS libraries on this machine, and whether agentmon's probe points
//! resolve in each, by the uprobe planner's own resolution (the same as
//! when an agent maps the file).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use super::Check;
use crate::uprobes::{self, Checked, Needed, is_tls_library};

/// Programs agents run on, which may carry a TLS library of their own
/// (node exporting OpenSSL, Bun's BoringSSL) or load a system one.
const RUNTIMES: [&str; 3] = ["node", "bun", "python3"];

pub(super) fn checks() -> Vec<Check> {
    let libraries = system_libraries();
    let mut out: Vec<Check> = libraries
        .iter()
        .map(|(path, name)| library(path, name))
        .collect();
    for name in RUNTIMES {
        if let Some(check) = on_path(name).and_then(|path| runtime(name, &path)) {
            out.push(check);
        }
    }
    if out.is_empty() {
        out.push(Check::ok(
            "tls",
            "no libssl or libgnutls found by ldconfig, and no node, bun or python3 on PATH: agents that bring their own TLS are probed when they start",
        ));
    }
    out
}

/// The TLS libraries the dynamic loader knows (`ldconfig -p`), else those
/// in its default directories: each file once (`libssl.so` and
/// `libssl.so.3` are one), by the longest name it has (its soname).
fn system_libraries() -> BTreeMap<PathBuf, String> {
    let listed = ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]
        .into_iter()
        .find_map(|ldconfig| Command::new(ldconfig).arg("-p").output().ok())
        .filter(|out| out.status.success())
        .map(|out| ldconfig_libraries(&String::from_utf8_lossy(&out.stdout)))
        .unwrap_or_default();
    let paths: Vec<PathBuf> = if listed.is_empty() {
        uprobes::default_dirs()
            .iter()
            .filter_map(|dir| std::fs::read_dir(dir).ok())
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(is_tls_library))
            .map(|e| e.path())
            .collect()
    } else {
        listed
    };
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for path in paths {
        let (Ok(real), Some(name)) = (std::fs::canonicalize(&path), path.file_name()) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        let known = files.entry(real).or_default();
        if name.len() > known.len() {
            *known = name;
        }
    }
    files
}

/// The TLS libraries in `ldconfig -p` output:
/// `\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3`.
pub(super) fn ldconfig_libraries(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let (name, path) = line.trim().split_once(" => ")?;
            let name = name.split_whitespace().next()?;
            is_tls_library(name).then(|| PathBuf::from(path.trim()))
        })
        .collect()
}

fn library(path: &Path, file: &str) -> Check {
    let name = format!("tls:{file}");
    match uprobes::check_file(path, false) {
        Some(result) => resolved(name, path, result),
        None => Check::ok(
            name,
            format!("{}: not a library agentmon probes", path.display()),
        ),
    }
}

/// A runtime on PATH: its own TLS library, else the system ones it loads.
fn runtime(name: &str, path: &Path) -> Option<Check> {
    let row = format!("tls:{name}");
    if let Some(result) = uprobes::check_file(path, true) {
        return Some(resolved(row, path, result));
    }
    let loads: Vec<String> = Needed::default()
        .tls_libraries(path, Path::new("/"))
        .iter()
        .map(|m| m.path.display().to_string())
        .collect();
    (!loads.is_empty()).then(|| {
        Check::ok(
            row,
            format!(
                "{} loads {} (probed as above)",
                path.display(),
                loads.join(", ")
            ),
        )
    })
}

fn resolved(name: String, path: &Path, result: Result<Checked, uprobes::ProbeError>) -> Check {
    match result {
        Ok(checked) => Check::ok(
            name,
            format!(
                "{} ({}): {}",
                path.display(),
                checked.lib.label(),
                checked.functions.join(", ")
            ),
        ),
        Err(e) => Check::warn(
            name,
            format!(
                "{}: {e}: its TLS 1.3 sizes come from records",
                path.display()
            ),
            "agentmon runs without it; for plaintext sizes and requests, use the distribution's build of this library",
        ),
    }
}

/// `name` in the directories of PATH, as the real file.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .and_then(|p| std::fs::canonicalize(p).ok())
}

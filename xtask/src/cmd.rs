//! Running child commands: PATH with `$CARGO_HOME/bin`, failures that carry an
//! exit code, and output that is shown only when a quiet step fails.
use std::env;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use anyhow::{Context as _, Result};

/// A child command that ran and failed. `main` exits with its code.
#[derive(Debug)]
pub struct Failed {
    /// One line: what failed and how to fix it.
    pub message: String,
    pub code: i32,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// `$CARGO_HOME`, or `~/.cargo`.
pub fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"))
}

pub fn home() -> PathBuf {
    env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// PATH for every child: `$CARGO_HOME/bin` first, so that a freshly installed
/// bpf-linker is found by aya-build without the user's shell setup.
pub fn path_env() -> OsString {
    let bin = cargo_home().join("bin");
    let old = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&old).collect();
    if !dirs.contains(&bin) {
        dirs.insert(0, bin);
    }
    env::join_paths(dirs).unwrap_or(old)
}

/// A command whose program is looked up in (and which inherits) [`path_env`].
pub fn tool(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", path_env());
    cmd
}

/// The first `name` on [`path_env`], if any.
pub fn which(name: &str) -> Option<PathBuf> {
    env::split_paths(&path_env())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether this process runs with effective uid 0 (from /proc/self/status).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    // $CARGO is the toolchain's full path; "cargo" says the same, shorter.
    let mut s = if program.file_name().is_some_and(|n| n == "cargo") {
        "cargo".to_string()
    } else {
        program.to_string_lossy().into_owned()
    };
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn failed(cmd: &Command, status: ExitStatus, fix: &str) -> Failed {
    let how = match status.code() {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    };
    let mut message = format!("`{}` failed ({how})", describe(cmd));
    if !fix.is_empty() {
        message.push_str("; ");
        message.push_str(fix);
    }
    Failed {
        message,
        code: status.code().unwrap_or(1),
    }
}

/// Runs `cmd` with inherited stdio; a non-zero exit becomes [`Failed`].
pub fn run(cmd: &mut Command, fix: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    check(cmd, status, fix)
}

/// Ok if `status` is a success, else a [`Failed`] naming `cmd` and `fix`.
pub fn check(cmd: &Command, status: ExitStatus, fix: &str) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        Err(failed(cmd, status, fix).into())
    }
}

/// Runs `cmd` and returns its output whatever its exit status (None if it
/// could not be started, e.g. not installed).
pub fn output(cmd: &mut Command) -> Option<Output> {
    cmd.stdin(Stdio::null()).output().ok()
}

/// Runs `cmd` with its output captured; on failure the last lines of that
/// output are printed, then a [`Failed`] naming `fix` is returned.
pub fn run_quiet(cmd: &mut Command, fix: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("--- last lines of `{}` ---", describe(cmd));
    for l in &lines[lines.len().saturating_sub(40)..] {
        eprintln!("{l}");
    }
    eprintln!("---");
    Err(failed(cmd, out.status, fix).into())
}

/// Stdout of a command that must succeed, trimmed.
pub fn stdout(cmd: &mut Command, fix: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{}`; {fix}", describe(cmd)))?;
    if !out.status.success() {
        return Err(failed(cmd, out.status, fix).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

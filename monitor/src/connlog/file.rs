//! The log file itself: created 0640, reopened on request (logrotate), and
//! rotated by size when configured.

use std::{
    ffi::OsString,
    fs::{self, DirBuilder, File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use tracing::warn;

use super::config::Rotation;

/// The file's mode: the owner writes, its group (adm, or agentmon's own)
/// reads, others nothing: the log names hosts, programs and users.
pub const MODE: u32 = 0o640;
/// Folders agentmon creates for the log.
const DIR_MODE: u32 = 0o750;

pub struct LogFile {
    path: PathBuf,
    file: File,
    /// Bytes in the file, as far as this process knows.
    size: u64,
    rotate: Option<Rotation>,
    /// A rotation failed: no more tries (and warnings) until the next reopen.
    rotate_failed: bool,
}

impl LogFile {
    pub fn open(path: &Path, rotate: Option<Rotation>) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)?;
        }
        let (file, size) = open_append(path)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            rotate,
            rotate_failed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again: after logrotate renamed the file, new lines go
    /// to a new one. On failure the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        self.rotate_failed = false;
        Ok(())
    }

    /// Appends one whole line (one write, so a reader never sees half).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some(rotate) = self.rotate
            && !self.rotate_failed
            && self.size > 0
            && self.size + line.len() as u64 > rotate.max_bytes
            && let Err(e) = self.rotate(rotate.keep)
        {
            // Keep logging into the full file rather than lose lines.
            self.rotate_failed = true;
            warn!(path = %self.path.display(), error = %e,
                "cannot rotate the connection log; it grows past log.max_bytes until agentmon is reloaded (SIGHUP)");
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// `<name>.<keep-1>` → `<name>.<keep>` ... `<name>` → `<name>.1`, then
    /// a new `<name>`. The renames replace the oldest file.
    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        for n in (1..keep).rev() {
            match fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        self.reopen()
    }
}

/// The name of the `n`th rotated file: `connections.jsonl.1`, `.2` ...
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Opens `path` for appending, creating it with [`MODE`]. An existing file
/// that others (or its group) may write, or others read, is tightened to
/// [`MODE`]'s bits; a stricter mode is left as it is.
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(MODE)
        .open(path)?;
    let meta = file.metadata()?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & !MODE != 0 {
        let tightened = mode & MODE;
        if let Err(e) = file.set_permissions(Permissions::from_mode(tightened)) {
            warn!(path = %path.display(), error = %e,
                "the connection log is mode {mode:o} and cannot be changed to {tightened:o}; chmod it yourself");
        }
    }
    Ok((file, meta.len()))
}

//! The log file itself: created 0640, never through a symbolic link or into
//! a file with other hard links, reopened on request (logrotate) or when
//! its path no longer names it (removed, replaced), rotated by size when
//! configured. A write that fails drops its record, counted, with one
//! warning until writing works again.

use std::{
    ffi::OsString,
    fs::{self, DirBuilder, File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{
        DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
    },
    path::{Path, PathBuf},
};

use tracing::{info, warn};

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
    /// Writes fail (disk full, file system gone): warned once.
    failing: bool,
    /// Records dropped since [`LogFile::take_dropped`].
    dropped: u64,
    /// Reopening a path that no longer names the file failed: warned once.
    lost_path: bool,
}

impl LogFile {
    pub fn open(path: &Path, rotate: Option<Rotation>) -> io::Result<Self> {
        let (file, size) = create(path)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            rotate,
            rotate_failed: false,
            failing: false,
            dropped: 0,
            lost_path: false,
        })
    }

    /// Records dropped since the last call (for the metric).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Housekeeping: when the path no longer names the open file (it, or
    /// its folder, was removed or replaced without a SIGHUP), new records
    /// go to a new file at the path; until then they would be lost.
    pub fn follow_path(&mut self) {
        let ours = self.file.metadata().map(|m| (m.dev(), m.ino()));
        let named = fs::metadata(&self.path).map(|m| (m.dev(), m.ino()));
        if let (Ok(ours), Ok(named)) = (&ours, &named)
            && ours == named
        {
            return;
        }
        match create(&self.path) {
            Ok((file, size)) => {
                info!(path = %self.path.display(),
                    "the log file was removed or replaced; writing to a new one at its path");
                (self.file, self.size) = (file, size);
                self.rotate_failed = false;
                self.lost_path = false;
            }
            Err(e) if !self.lost_path => {
                self.lost_path = true;
                warn!(path = %self.path.display(), error = %e,
                    "the log file was removed or replaced and its path cannot be opened; records go to the old file until it can");
            }
            Err(_) => {}
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again: after logrotate renamed the file, new lines go
    /// to a new one. On failure the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        let (file, size) = create(&self.path)?;
        self.file = file;
        self.size = size;
        self.rotate_failed = false;
        Ok(())
    }

    /// Appends one whole line (one write, so a reader never sees half). A
    /// line that cannot be written is dropped and counted; the first of a
    /// run is warned about, and so is the next that is written again.
    pub fn write_line(&mut self, line: &[u8]) {
        match self.try_write(line) {
            Ok(()) if self.failing => {
                self.failing = false;
                info!(path = %self.path.display(), "the log file is written again");
            }
            Ok(()) => {}
            Err(e) => {
                self.dropped += 1;
                if !self.failing {
                    self.failing = true;
                    warn!(path = %self.path.display(), error = %e,
                        "cannot write the log file; its records are dropped and counted in agentmon_log_records_dropped_total until it can be written again (free space, or fix the path)");
                }
            }
        }
    }

    fn try_write(&mut self, line: &[u8]) -> io::Result<()> {
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

/// The log's folders (mode [`DIR_MODE`]) and the file, opened to append.
fn create(path: &Path) -> io::Result<(File, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
    }
    open_append(path)
}

/// Opens `path` for appending, creating it with [`MODE`]. An existing file
/// that others (or its group) may write, or others read, is tightened to
/// [`MODE`]'s bits; a stricter mode is left as it is. A symbolic link, a
/// FIFO or a file with other hard links (planted where anyone may write,
/// to have agentmon append to, or chmod, a file of someone else's) is
/// refused: not followed, not waited on, not written.
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let refuse = |what: &str| {
        io::Error::other(format!(
            "{} is {what}; agentmon writes its logs only into a regular file of its own \
             (remove it, or point the config at another path)",
            path.display()
        ))
    };
    let file = match OpenOptions::new()
        .create(true)
        .append(true)
        .mode(MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse("a symbolic link")),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(refuse("a FIFO")),
        other => other?,
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.nlink() > 1 {
        return Err(refuse("a file with other hard links"));
    }
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

//! The JSON Lines connection log: one record per agent connection or UDP
//! flow when it ends, and interim records while it lasts. Sizes and
//! metadata only, never payload.

mod config;
mod file;
pub mod read;
mod record;
#[cfg(test)]
mod tests;
mod users;

use std::{io, path::Path, time::Duration};

pub use self::{
    config::{DEFAULT_INTERIM, LogConfig, LogTable, Rotation},
    file::{LogFile, MODE, rotated},
    record::{Event, Process, Record, SCHEMA_VERSION},
    users::Users,
};
use crate::traffic::{ConnReport, FlowReport};

pub struct ConnLog {
    file: LogFile,
    users: Users,
    interim: Option<Duration>,
}

impl ConnLog {
    /// Opens (or creates, mode 0640) the log at `path` for appending.
    pub fn open(
        path: &Path,
        rotate: Option<Rotation>,
        interim: Option<Duration>,
    ) -> io::Result<Self> {
        Ok(Self {
            file: LogFile::open(path, rotate)?,
            users: Users::default(),
            interim,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// How often an open connection gets an interim record.
    pub fn interim(&self) -> Option<Duration> {
        self.interim
    }

    /// Opens the file again (logrotate renamed it) and forgets the user
    /// names looked up so far. On failure the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.users.clear();
        self.file.reopen()
    }

    pub fn write_conn(&mut self, event: Event, tool: &str, report: &ConnReport) -> io::Result<()> {
        let user = report.conn.proc.uid.and_then(|uid| self.users.name(uid));
        let line = line(&Record::conn(event, tool, user, report))?;
        self.file.write_line(&line);
        Ok(())
    }

    pub fn write_flow(&mut self, event: Event, tool: &str, report: &FlowReport) -> io::Result<()> {
        let user = report.proc.uid.and_then(|uid| self.users.name(uid));
        let line = line(&Record::flow(event, tool, user, report))?;
        self.file.write_line(&line);
        Ok(())
    }

    /// See [`LogFile::follow_path`] and [`LogFile::take_dropped`].
    pub fn file(&mut self) -> &mut LogFile {
        &mut self.file
    }
}

/// One record as its line in the log, newline included.
pub fn line(record: &Record<'_>) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    Ok(line)
}

//! The violations log: one JSON line per connection (or refused connect)
//! the policy does not allow. Field names are a contract with log
//! pipelines, as the connection log's are (README "Egress policy").

use std::{io, path::Path, time::SystemTime};

use serde::Serialize;

use crate::{clock::rfc3339, connlog::LogFile};

/// The `v` field.
pub const SCHEMA_VERSION: u32 = 1;

/// One process of the chain from the agent's root down to the one that
/// connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub pid: u32,
    pub exe: String,
    pub argv0: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub v: u32,
    pub time: String,
    pub tool: String,
    /// `alert` or `deny`.
    pub action: &'static str,
    /// The rule that decided (its name, `<tool>:deny:<n>`, `<tool>:default`).
    pub rule: String,
    /// The kernel refused the connect() or sendmsg(): nothing was sent.
    pub blocked: bool,
    /// The connection log's `id` of the connection (`None` when blocked).
    pub id: Option<String>,
    pub proto: &'static str,
    pub pid: u32,
    /// Root first.
    pub chain: Vec<Link>,
    pub host: Option<String>,
    pub dns_name: Option<String>,
    pub remote_addr: String,
    pub remote_port: u16,
    pub dest: String,
    pub dest_country: String,
    pub dest_asn: String,
    pub dest_asn_org: Option<String>,
    pub purpose: &'static str,
    /// Bytes of the connection when it was judged (its first bytes).
    pub egress_bytes: u64,
    pub ingress_bytes: u64,
}

impl Violation {
    pub fn at(mut self, time: SystemTime) -> Self {
        self.time = rfc3339(time);
        self
    }
}

pub struct ViolationLog {
    file: LogFile,
}

impl ViolationLog {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: LogFile::open(path, None)?,
        })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    pub fn reopen(&mut self) -> io::Result<()> {
        self.file.reopen()
    }

    pub fn write(&mut self, v: &Violation) -> io::Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.file.write_line(&line);
        Ok(())
    }

    /// See [`LogFile::follow_path`] and [`LogFile::take_dropped`].
    pub fn file(&mut self) -> &mut LogFile {
        &mut self.file
    }
}

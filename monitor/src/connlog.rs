//! The JSON Lines connection log: one line per closed TCP connection of an
//! agent. Sizes and metadata only, never payload.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{requests::RequestRecord, traffic::ClosedConn};

/// The `[log]` table of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The JSON Lines log of closed connections; `None` turns it off.
    #[serde(default, deserialize_with = "log_path")]
    pub connections: Option<PathBuf>,
    /// Request paths, without query strings, in that log.
    #[serde(default)]
    pub paths: bool,
}

/// A log path; an empty one is refused (rather than meaning "off", which
/// leaving it out says), and the config error points at it.
fn log_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let path = PathBuf::deserialize(d)?;
    if path.as_os_str().is_empty() {
        return Err(serde::de::Error::custom(
            "log.connections is empty; leave it out to turn the log off",
        ));
    }
    Ok(Some(path))
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One line of the log. Field names are a contract with log pipelines.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub tool: &'a str,
    pub pid: u32,
    pub ppid: u32,
    pub exe: &'a str,
    pub argv0: &'a str,
    pub root_pid: u32,
    pub proto: &'static str,
    pub direction: &'static str,
    pub remote_addr: String,
    pub remote_port: u16,
    pub local_addr: String,
    pub local_port: u16,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The name that won (SNI, then HTTP Host, then DNS), if any.
    pub host: Option<&'a str>,
    pub sni: Option<&'a str>,
    pub alpn: Option<&'a str>,
    pub http_host: Option<&'a str>,
    pub http_method: Option<&'a str>,
    pub dns_name: Option<&'a str>,
    /// The `dest` label the connection was counted under.
    pub dest: &'a str,
    pub country: &'a str,
    pub asn: &'a str,
    pub asn_org: Option<&'a str>,
    pub purpose: &'a str,
    /// The TLS library whose probes saw this connection's plaintext
    /// (`None`: not probed, its TLS is seen as metadata only).
    pub tls_library: Option<&'static str>,
    pub plaintext_sent: Option<u64>,
    pub plaintext_received: Option<u64>,
    /// Its HTTP requests written through a probed TLS library, with
    /// plaintext sizes; at most `requests::MAX_LOGGED`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub requests: &'a [RequestRecord],
    #[serde(skip_serializing_if = "is_zero")]
    pub requests_dropped: u64,
    /// RFC 3339, UTC.
    pub start: String,
    pub end: String,
}

/// Converts the kernel's monotonic clock to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Wall time minus monotonic time, in ns, taken at start-up.
    offset_ns: i128,
}

impl Clock {
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i128;
        Self {
            offset_ns: wall - monotonic_ns() as i128,
        }
    }

    pub fn wall(&self, ktime_ns: u64) -> SystemTime {
        let ns = (ktime_ns as i128 + self.offset_ns).max(0) as u64;
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)
    }

    pub fn rfc3339(&self, ktime_ns: u64) -> String {
        humantime::format_rfc3339_millis(self.wall(ktime_ns)).to_string()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub struct ConnLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ConnLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            out: BufWriter::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, tool: &str, closed: &ClosedConn, clock: &Clock) -> std::io::Result<()> {
        let c = &closed.conn;
        let probed = c.tls_lib.is_some();
        let (plain_sent, plain_received) = c.plaintext();
        let record = Record {
            tool,
            pid: c.pid,
            ppid: c.proc.ppid,
            exe: &c.proc.exe,
            argv0: &c.proc.argv0,
            root_pid: c.proc.root,
            proto: "tcp",
            direction: c.direction.label(),
            remote_addr: c.remote.ip().to_string(),
            remote_port: c.remote.port(),
            local_addr: c.local.ip().to_string(),
            local_port: c.local.port(),
            bytes_sent: closed.sent,
            bytes_received: closed.received,
            host: c.names.host.as_deref(),
            sni: c.names.sni.as_deref(),
            alpn: c.names.alpn.as_deref(),
            http_host: c.names.http_host.as_deref(),
            http_method: c.names.http_method,
            dns_name: c.names.dns_name.as_deref(),
            dest: &closed.dest.name,
            country: &closed.dest.country,
            asn: &closed.dest.asn,
            asn_org: c.names.asn_org.as_deref(),
            purpose: closed.dest.purpose,
            tls_library: c.tls_lib.map(|lib| lib.label()),
            plaintext_sent: probed.then_some(plain_sent),
            plaintext_received: probed.then_some(plain_received),
            requests: &c.requests.logged,
            requests_dropped: c.requests.dropped,
            start: clock.rfc3339(c.start_ns),
            end: clock.rfc3339(closed.end_ns),
        };
        serde_json::to_writer(&mut self.out, &record)?;
        self.out.write_all(b"\n")?;
        // Each line is flushed so that a tail -f (or a test) sees it at once.
        self.out.flush()
    }
}

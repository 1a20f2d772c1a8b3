//! A bound on distinct `dest` label values per tool.
//!
//! # Worst-case series count
//!
//! With `T` tools, cap `C` and the label sets
//! `agentmon_egress_bytes_total` and `agentmon_ingress_bytes_total`:
//! `{tool, proto, dest, dest_country, dest_asn, purpose}`, and
//! `agentmon_connections_total`: the same plus `direction`:
//!
//! - `dest` takes at most `C + 2` values per tool: `C` admitted names plus
//!   `ip` (no name known) and `other` (overflow), which never count.
//! - `proto` has 2 values (`tcp`, `udp`), `direction` 2, `purpose` 7.
//! - `dest_country` and `dest_asn` depend on the *address*, not the name: a
//!   CDN name resolves to addresses in several networks and countries, and
//!   `ip` and `other` gather any number of addresses. So they are bounded only
//!   by the GeoIP database: `K` countries (about 250, plus `unknown` and
//!   `private`) and `A` ASNs (about 80,000, plus `unknown`).
//! - `purpose` is a function of the name, but not of the `dest` label: names
//!   sharing a registrable domain or an `other` bucket can differ.
//!
//! The honest bound per byte counter is therefore
//! `T * 2 * (C + 2) * K * A * 7` series, and twice that for
//! `agentmon_connections_total`: finite, but far beyond anything reachable.
//! The practical estimate: a named `dest` maps to one purpose and to one to
//! three (country, ASN) pairs, while `ip` and `other` carry one series per
//! distinct network contacted without a name or past the cap, `N`, so per
//! byte counter about `T * P * (C * 2 + N)` where `P` is the number of
//! protocols in use (mostly 1: `dest` is rarely known for UDP). With the
//! default `C = 64`, 12 tools and `N = 10` that is at most about 1,600 series
//! per byte counter; a single agent in practice uses tens.

use std::collections::{HashMap, HashSet};

/// Default for the `dest` cap per tool.
pub const DEFAULT_DEST_CAP: usize = 64;
/// `dest` value when no name is known for the address.
pub const DEST_IP: &str = "ip";
/// `dest` value for names past the cap.
pub const DEST_OTHER: &str = "other";

/// The label to use for a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted<'a> {
    /// `dest` itself, or [`DEST_OTHER`] past the cap.
    pub label: &'a str,
    /// The cap turned `dest` away: count it in
    /// `agentmon_dest_overflow_total{tool}`.
    pub overflow: bool,
}

/// Remembers which `dest` values each tool has used, and admits at most
/// `max_per_tool` of them. Memory: at most `max_per_tool` names (each at
/// most 253 bytes) per tool, and tools come from the agent catalog.
#[derive(Debug, Clone)]
pub struct DestCap {
    max_per_tool: usize,
    seen: HashMap<u32, HashSet<Box<str>>>,
}

impl Default for DestCap {
    fn default() -> Self {
        DestCap::new(DEFAULT_DEST_CAP)
    }
}

impl DestCap {
    pub fn new(max_per_tool: usize) -> DestCap {
        DestCap {
            max_per_tool,
            seen: HashMap::new(),
        }
    }

    /// The label for `dest` on a series of `tool`: `dest` if the tool has
    /// used it before or is under the cap (it then counts), else `other`.
    /// `ip` and `other` always pass and never count.
    pub fn admit<'a>(&mut self, tool: u32, dest: &'a str) -> Admitted<'a> {
        if dest == DEST_IP || dest == DEST_OTHER {
            return Admitted {
                label: dest,
                overflow: false,
            };
        }
        let seen = self.seen.entry(tool).or_default();
        if seen.contains(dest) {
            return Admitted {
                label: dest,
                overflow: false,
            };
        }
        if seen.len() < self.max_per_tool {
            seen.insert(dest.into());
            return Admitted {
                label: dest,
                overflow: false,
            };
        }
        Admitted {
            label: DEST_OTHER,
            overflow: true,
        }
    }

    /// Distinct `dest` values admitted for `tool` so far.
    pub fn admitted(&self, tool: u32) -> usize {
        self.seen.get(&tool).map_or(0, HashSet::len)
    }

    /// Forgets a tool, for example when the catalog is reloaded without it.
    pub fn forget(&mut self, tool: u32) {
        self.seen.remove(&tool);
    }
}

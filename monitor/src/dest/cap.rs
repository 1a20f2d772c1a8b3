//! Bounds on the destination labels each tool can create: distinct `dest`
//! values ([`DestCap`]) and distinct (`dest`, `dest_country`, `dest_asn`)
//! combinations ([`NetworkCap`]).
//!
//! # Worst-case series count
//!
//! With `T` tools, `dest` cap `C`, network cap `M` and the label sets
//! `agentmon_egress_bytes_total` and `agentmon_ingress_bytes_total`:
//! `{tool, proto, dest, dest_country, dest_asn, purpose}`, and
//! `agentmon_connections_total`: the same plus `direction`:
//!
//! - `dest` takes at most `C + 2` values per tool: `C` admitted names plus
//!   `ip` (no name known) and `other` (overflow), which never count.
//! - (`dest_country`, `dest_asn`) depend on the *address*, not the name: a
//!   CDN name resolves to addresses in several networks, and `ip` and
//!   `other` gather any address at all. So the network cap admits at most
//!   `M` (`dest`, `dest_country`, `dest_asn`) combinations per tool; past it
//!   a connection keeps its `dest` and gets `dest_country="other"`,
//!   `dest_asn="other"` (one more combination per `dest` value, `C + 2`).
//! - `proto` has 2 values (`tcp`, `udp`), `direction` 2, `purpose` 7 (a
//!   function of the name, but names sharing a `dest` can differ).
//!
//! The bound per byte counter is therefore `T * 2 * 7 * (M + C + 2)`
//! series, and twice that for `agentmon_connections_total`: with the
//! defaults (`C = 64`, `M = 256`) and the 16 built-in tools, 72,128. In
//! practice a named `dest` has one purpose and one to three networks, `ip`
//! and `other` one series per network contacted without a name, and one
//! protocol is in use: a single agent makes tens of series.

use std::collections::{HashMap, HashSet};

/// Default for the `dest` cap per tool.
pub const DEFAULT_DEST_CAP: usize = 64;
/// Default for the cap on (`dest`, `dest_country`, `dest_asn`)
/// combinations per tool.
pub const DEFAULT_NETWORK_CAP: usize = 256;
/// `dest_country` and `dest_asn` past the network cap.
pub const NETWORK_OTHER: &str = "other";
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
    names: Seen,
}

impl Default for DestCap {
    fn default() -> Self {
        DestCap::new(DEFAULT_DEST_CAP)
    }
}

impl DestCap {
    pub fn new(max_per_tool: usize) -> DestCap {
        DestCap {
            names: Seen::new(max_per_tool),
        }
    }

    /// The label for `dest` on a series of `tool`: `dest` if the tool has
    /// used it before or is under the cap (it then counts), else `other`.
    /// `ip` and `other` always pass and never count.
    pub fn admit<'a>(&mut self, tool: u32, dest: &'a str) -> Admitted<'a> {
        if dest == DEST_IP || dest == DEST_OTHER || self.names.admit(tool, dest) {
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
        self.names.len(tool)
    }

    /// Forgets a tool, for example when the catalog is reloaded without it.
    pub fn forget(&mut self, tool: u32) {
        self.names.forget(tool);
    }
}

/// Remembers which (`dest`, `dest_country`, `dest_asn`) combinations each
/// tool has used, and admits at most `max_per_tool` of them. Memory: at
/// most `max_per_tool` keys of at most about 300 bytes per tool.
#[derive(Debug, Clone)]
pub struct NetworkCap {
    combinations: Seen,
}

impl Default for NetworkCap {
    fn default() -> Self {
        NetworkCap::new(DEFAULT_NETWORK_CAP)
    }
}

impl NetworkCap {
    pub fn new(max_per_tool: usize) -> NetworkCap {
        NetworkCap {
            combinations: Seen::new(max_per_tool),
        }
    }

    /// Whether `tool`'s series for `dest` may carry this country and ASN
    /// (used before, or under the cap: it then counts). If not, label them
    /// [`NETWORK_OTHER`] and count the overflow.
    pub fn admit(&mut self, tool: u32, dest: &str, country: &str, asn: &str) -> bool {
        // Labels never contain a space: `dest` is a hostname or a word.
        let key = format!("{dest} {country} {asn}");
        self.combinations.admit(tool, &key)
    }

    /// Distinct combinations admitted for `tool` so far.
    pub fn admitted(&self, tool: u32) -> usize {
        self.combinations.len(tool)
    }
}

/// Up to `max_per_tool` distinct keys per tool.
#[derive(Debug, Clone)]
struct Seen {
    max_per_tool: usize,
    seen: HashMap<u32, HashSet<Box<str>>>,
}

impl Seen {
    fn new(max_per_tool: usize) -> Seen {
        Seen {
            max_per_tool,
            seen: HashMap::new(),
        }
    }

    /// True if `key` was admitted before or fits under the cap now.
    fn admit(&mut self, tool: u32, key: &str) -> bool {
        let seen = self.seen.entry(tool).or_default();
        if seen.contains(key) {
            return true;
        }
        if seen.len() < self.max_per_tool {
            seen.insert(key.into());
            return true;
        }
        false
    }

    fn len(&self, tool: u32) -> usize {
        self.seen.get(&tool).map_or(0, HashSet::len)
    }

    fn forget(&mut self, tool: u32) {
        self.seen.remove(&tool);
    }
}

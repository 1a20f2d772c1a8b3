//! Destination enrichment: naming each connection and classifying the name.
//!
//! Names come from what the traced process itself resolved or sent, never
//! from reverse DNS (which leaks the question and is often wrong): the DNS
//! answers it received ([`dns`], kept per process tree in [`bindings`]), the
//! server name in its TLS ClientHello ([`tls`]) and the Host of its first
//! plain HTTP request ([`http`]). All of them are attacker-controlled, so
//! every name passes through [`Hostname`] before it reaches a label or the
//! log. [`purpose`] maps names to the `dest` label and a purpose; [`cap`]
//! bounds how many `dest` values each tool can create.
//!
//! Everything here is pure: no kernel, no I/O.

pub mod bindings;
pub mod cap;
pub mod client_hello;
pub mod dns;
pub mod h2;
pub mod hostname;
pub mod http;
pub mod paths;
mod pattern;
pub mod purpose;

pub use self::bindings::Bindings;
pub use self::cap::{
    Admitted, DEFAULT_DEST_CAP, DEFAULT_NETWORK_CAP, DEST_IP, DEST_OTHER, DestCap, NETWORK_OTHER,
    NetworkCap,
};
pub use self::client_hello::{ClientHello, is_tls_client_hello, parse_client_hello};
pub use self::dns::{Binding, TcpAnswers, parse_response, parse_tcp, parse_tcp_read};
pub use self::h2::{H2Conn, H2Request};
pub use self::hostname::Hostname;
pub use self::http::{HttpRequest, HttpStart, Method, parse_request};
pub use self::paths::{BUILTIN_PATHS, PathCatalog, PathCatalogError, PathClass, PathEntrySpec};
pub use self::purpose::{
    BUILTIN_CATALOG, Catalog, CatalogError, Classified, EntrySpec, MatchedEntry, Origin, Purpose,
    registrable_domain,
};

/// The name chosen for a connection and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming<'a> {
    /// The server name of the TLS ClientHello.
    Sni(&'a Hostname),
    /// The Host of the first plain HTTP request.
    Http(&'a Hostname),
    /// The name this process tree resolved for the peer address.
    Dns(&'a Hostname),
    /// No name: the address itself.
    Ip,
}

impl<'a> Naming<'a> {
    pub fn host(self) -> Option<&'a Hostname> {
        match self {
            Naming::Sni(h) | Naming::Http(h) | Naming::Dns(h) => Some(h),
            Naming::Ip => None,
        }
    }

    /// The log's `source` field: `sni`, `http`, `dns` or `ip`.
    pub fn source(self) -> &'static str {
        match self {
            Naming::Sni(_) => "sni",
            Naming::Http(_) => "http",
            Naming::Dns(_) => "dns",
            Naming::Ip => "ip",
        }
    }

    /// The `dest` label and purpose: the catalog's for a name, `ip` and
    /// `other` without one.
    pub fn classify(self, catalog: &Catalog) -> Classified {
        match self.host() {
            Some(host) => catalog.classify(host),
            None => Classified {
                dest: DEST_IP.to_owned(),
                purpose: Purpose::Other,
            },
        }
    }
}

/// Picks a connection's name. Precedence: SNI (what the client told the
/// server it wants, even when it connected to a bare address), then the HTTP
/// Host, then the name the process tree resolved for the address, else none.
pub fn name_connection<'a>(
    sni: Option<&'a Hostname>,
    http_host: Option<&'a Hostname>,
    dns: Option<&'a Hostname>,
) -> Naming<'a> {
    match (sni, http_host, dns) {
        (Some(h), _, _) => Naming::Sni(h),
        (None, Some(h), _) => Naming::Http(h),
        (None, None, Some(h)) => Naming::Dns(h),
        (None, None, None) => Naming::Ip,
    }
}

/// The `[dest]` table of the config file: destination labels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestConfig {
    /// Distinct `dest` label values per tool; more go to `dest="other"`.
    #[serde(default = "default_max_per_tool")]
    pub max_per_tool: usize,
    /// Distinct (`dest`, `dest_country`, `dest_asn`) combinations per tool;
    /// more get `dest_country="other"`, `dest_asn="other"`.
    #[serde(default = "default_max_networks_per_tool")]
    pub max_networks_per_tool: usize,
    /// `[[dest.entry]]`: host patterns with their purpose (and `dest` label),
    /// added to the built-in destination catalog; they win over it.
    #[serde(default)]
    pub entry: Vec<EntrySpec>,
    /// `[[dest.path]]`: (host, path pattern) -> purpose for requests seen in
    /// plaintext, added to the built-in path catalog; they win over it.
    #[serde(default)]
    pub path: Vec<PathEntrySpec>,
}

fn default_max_per_tool() -> usize {
    DEFAULT_DEST_CAP
}

fn default_max_networks_per_tool() -> usize {
    DEFAULT_NETWORK_CAP
}

impl Default for DestConfig {
    fn default() -> Self {
        Self {
            max_per_tool: default_max_per_tool(),
            max_networks_per_tool: default_max_networks_per_tool(),
            entry: Vec::new(),
            path: Vec::new(),
        }
    }
}

impl Catalog {
    /// The built-in catalog plus the config's `[[dest.entry]]`.
    pub fn with_config(cfg: &DestConfig) -> Result<Catalog, CatalogError> {
        Catalog::new(BUILTIN_CATALOG, &cfg.entry)
    }
}

impl PathCatalog {
    /// The built-in path catalog plus the config's `[[dest.path]]`.
    pub fn with_config(cfg: &DestConfig) -> Result<PathCatalog, PathCatalogError> {
        PathCatalog::new(BUILTIN_PATHS, &cfg.path)
    }
}

#[cfg(test)]
mod tests;

//! Destination enrichment: what a connection's first bytes and its process
//! tree's DNS answers say about where it goes, and the labels that follow:
//! `dest` (bounded per tool), `dest_country`, `dest_asn`, `purpose`.

use std::{collections::HashMap, net::SocketAddr, time::Instant};

use crate::{
    agents::ToolId,
    dest::{
        self, Bindings, Catalog, DestCap, H2Conn, Hostname, HttpStart, NETWORK_OTHER, NetworkCap,
        PathCatalog, is_tls_client_hello, name_connection, parse_client_hello, parse_request,
        parse_response, parse_tcp_read,
    },
    geoip::GeoIp,
    requests::Request,
    traffic::{Dest, Names},
};

/// DNS bindings kept across all trees; the oldest go first.
const BINDINGS: usize = 16_384;

pub struct Enricher {
    catalog: Catalog,
    paths: PathCatalog,
    /// HTTP/2 request-head decoders of TLS connections, by socket.
    h2: HashMap<u64, H2Conn>,
    cap: DestCap,
    networks: NetworkCap,
    bindings: Bindings,
    pub geoip: GeoIp,
    /// Keep request paths (without query strings) for the connection log:
    /// `[log] paths`, off by default.
    pub keep_paths: bool,
}

/// What labelling a connection also produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// The tool's `dest` cap turned this name into `other`.
    pub overflow: bool,
    /// The tool's network cap turned its country and ASN into `other`.
    pub network_overflow: bool,
    /// The country and AS of the address, whatever the caps made of the
    /// labels: what the policy judges.
    pub country: String,
    pub asn: Option<u32>,
    /// The purpose of the destination's catalog entry (`other` if none).
    pub purpose: &'static str,
}

impl Enricher {
    pub fn new(
        catalog: Catalog,
        paths: PathCatalog,
        caps: &dest::DestConfig,
        geoip: GeoIp,
    ) -> Self {
        Self {
            catalog,
            paths,
            h2: HashMap::new(),
            cap: DestCap::new(caps.max_per_tool),
            networks: NetworkCap::new(caps.max_networks_per_tool),
            bindings: Bindings::new(BINDINGS),
            geoip,
            keep_paths: false,
        }
    }

    /// A reloaded config's catalogs: connections labelled from now on use
    /// them (labels already given stay, as their counters do).
    pub fn set_catalogs(&mut self, catalog: Catalog, paths: PathCatalog) {
        self.catalog = catalog;
        self.paths = paths;
    }

    /// A DNS answer received by the tree `root` (`tcp`: read from a TCP
    /// stream, length-prefixed). Returns the A/AAAA bindings it carried.
    pub fn on_dns(
        &mut self,
        root: u32,
        data: &[u8],
        tcp: bool,
        now: Instant,
    ) -> Vec<dest::Binding> {
        let bindings = if tcp {
            parse_tcp_read(data)
        } else {
            parse_response(data)
        };
        for binding in &bindings {
            self.bindings.insert(root, binding, now);
        }
        bindings
    }

    /// What the policy judges of a connection to `ip` now named by
    /// `names.host`, without touching its labels or the caps.
    pub fn relabel(&self, ip: std::net::IpAddr, names: &Names) -> Labelled {
        let geo = self.geoip.lookup(ip);
        let purpose = names
            .host
            .as_deref()
            .and_then(Hostname::parse_str)
            .map_or("other", |h| self.purpose_of(&h));
        Labelled {
            country: geo.country,
            asn: geo.asn,
            purpose,
            ..Labelled::default()
        }
    }

    /// The purpose the catalog gives `host`.
    pub fn purpose_of(&self, host: &Hostname) -> &'static str {
        self.catalog.classify(host).purpose.label()
    }

    /// Reads the first bytes a client sent: a TLS ClientHello (SNI, ALPN) or
    /// an HTTP/1 request head (Host, method). Nothing else is kept.
    pub fn read_first_bytes(data: &[u8], names: &mut Names) {
        names.tls = is_tls_client_hello(data);
        if let Some(hello) = parse_client_hello(data) {
            names.sni = hello.sni.map(|h| h.as_str().to_owned());
            if !hello.alpn.is_empty() {
                names.alpn = Some(hello.alpn.join(","));
            }
        } else if let Some(HttpStart::Request(request)) = parse_request(data) {
            names.http_host = request.host.map(|h| h.as_str().to_owned());
            names.http_method = Some(request.method.label());
        }
    }

    /// Labels a connection of `tool` in the tree `root` to `remote`.
    pub fn label(
        &mut self,
        tool: ToolId,
        root: u32,
        remote: &SocketAddr,
        names: &mut Names,
        now: Instant,
    ) -> (Dest, Labelled) {
        names.dns_name = self
            .bindings
            .lookup(root, remote.ip(), now)
            .map(|h| h.as_str().to_owned());
        // The names were sanitised when read; parse again to get the type.
        let parse = |s: &Option<String>| s.as_deref().and_then(Hostname::parse_str);
        let (sni, http, dns) = (
            parse(&names.sni),
            parse(&names.http_host),
            parse(&names.dns_name),
        );
        let naming = name_connection(sni.as_ref(), http.as_ref(), dns.as_ref());
        names.host = naming.host().map(|h| h.as_str().to_owned());
        let classified = naming.classify(&self.catalog);
        let admitted = self.cap.admit(tool, &classified.dest);
        let geo = self.geoip.lookup(remote.ip());
        names.asn_org = geo.asn_org.clone();
        let (mut country, mut asn) = (geo.country_label().to_owned(), geo.asn_label());
        let network_overflow = !self.networks.admit(tool, admitted.label, &country, &asn);
        if network_overflow {
            (country, asn) = (NETWORK_OTHER.to_owned(), NETWORK_OTHER.to_owned());
        }
        let dest = Dest {
            name: admitted.label.to_owned(),
            country,
            asn,
            purpose: classified.purpose.label(),
        };
        (
            dest,
            Labelled {
                overflow: admitted.overflow,
                network_overflow,
                country: geo.country,
                asn: geo.asn,
                purpose: classified.purpose.label(),
            },
        )
    }

    /// Reads a request head written in plaintext on connection `sock` whose
    /// name is `host`: HTTP/1, or HTTP/2 frames (decoded with per-connection
    /// HPACK state). Returns the requests found.
    pub fn requests(&mut self, sock: u64, host: Option<&str>, data: &[u8]) -> Vec<Request> {
        let host = host.and_then(Hostname::parse_str);
        let keep_paths = self.keep_paths;
        let request = |paths: &PathCatalog,
                       method: &'static str,
                       path: Option<&str>,
                       authority: Option<&Hostname>| {
            let purpose = path
                .zip(authority.or(host.as_ref()))
                .and_then(|(path, host)| paths.classify(host, path).map(|c| c.purpose.label()));
            Request {
                method,
                purpose,
                path: path.filter(|_| keep_paths).map(str::to_owned),
            }
        };
        match parse_request(data) {
            Some(HttpStart::Request(r)) => {
                return vec![request(
                    &self.paths,
                    r.method.label(),
                    Some(&r.path),
                    r.host.as_ref(),
                )];
            }
            Some(HttpStart::Http2Preface) => {
                self.h2.insert(sock, H2Conn::new());
            }
            None => {}
        }
        let Some(conn) = self.h2.get_mut(&sock) else {
            return Vec::new();
        };
        let truncated = data.len() >= monitor_common::PAYLOAD_LEN;
        let paths = &self.paths;
        conn.feed_at_frame(data, truncated)
            .into_iter()
            .map(|r| {
                let method = r.method.map_or("unknown", |m| m.label());
                request(paths, method, r.path.as_deref(), r.authority.as_ref())
            })
            .collect()
    }

    /// A connection ended: its HTTP/2 state goes.
    pub fn closed(&mut self, sock: u64) {
        self.h2.remove(&sock);
    }

    /// Drops DNS bindings that have expired.
    pub fn expire(&mut self, now: Instant) {
        self.bindings.purge_expired(now);
    }
}

/// The default cap on distinct `dest` values per tool.
pub const DEFAULT_MAX_DEST_PER_TOOL: usize = dest::DEFAULT_DEST_CAP;

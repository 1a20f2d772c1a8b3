//! One line of the connection log. Field names are a contract with log
//! pipelines: README's "Connection log" lists them; a change that renames or
//! removes one, or changes its meaning, raises [`SCHEMA_VERSION`].

use serde::Serialize;

use crate::{
    clock::rfc3339,
    requests::RequestRecord,
    traffic::{ConnReport, FlowReport},
    tree::Proc,
};

/// The `v` field. 1 (no `v` field) was one record per closed TCP
/// connection; 2 adds `v`, `event`, `id`, `time`, `uid`, `user`, interim
/// records and UDP flows; 3 names directions as the metrics do: `egress_*`
/// and `ingress_*` for `bytes_sent`/`_received` and the like, `direction`
/// `egress`/`ingress`, and `dest_country`, `dest_asn`, `dest_asn_org`.
pub const SCHEMA_VERSION: u32 = 3;

/// The `event` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The connection is still open: its totals so far.
    Interim,
    /// The connection ended (a UDP flow: its process exited): its final totals.
    Close,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub v: u32,
    pub event: Event,
    /// The same for every record of one connection: `tcp:<socket cookie>`
    /// or `udp:<pid>:<remote address>`.
    pub id: String,
    /// When the totals were read (RFC 3339, UTC): the end, for `close`.
    pub time: String,
    pub tool: &'a str,
    #[serde(flatten)]
    pub process: Process<'a>,
    pub proto: &'static str,
    pub direction: &'static str,
    pub remote_addr: String,
    pub remote_port: u16,
    /// `None` for UDP: a flow is one process and one peer, whatever local
    /// address it used.
    pub local_addr: Option<String>,
    pub local_port: Option<u16>,
    /// Since the connection began, in every record (not since the last one).
    pub egress_bytes: u64,
    pub ingress_bytes: u64,
    /// UDP only.
    pub egress_datagrams: Option<u64>,
    pub ingress_datagrams: Option<u64>,
    /// The name that won (SNI, then HTTP Host, then DNS), if any.
    pub host: Option<&'a str>,
    pub sni: Option<&'a str>,
    pub alpn: Option<&'a str>,
    pub http_host: Option<&'a str>,
    pub http_method: Option<&'a str>,
    pub dns_name: Option<&'a str>,
    /// The `dest` label the connection was counted under.
    pub dest: &'a str,
    pub dest_country: &'a str,
    pub dest_asn: &'a str,
    pub dest_asn_org: Option<&'a str>,
    pub purpose: &'a str,
    /// The TLS library whose probes saw this connection's plaintext;
    /// `record`: no probe, sizes derived from TLS record framing
    /// (`None`: no plaintext size is known).
    pub tls_library: Option<&'static str>,
    pub egress_plaintext_bytes: Option<u64>,
    pub ingress_plaintext_bytes: Option<u64>,
    /// Its HTTP requests written through a probed TLS library, with
    /// plaintext sizes; at most `requests::MAX_LOGGED`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub requests: &'a [RequestRecord],
    #[serde(skip_serializing_if = "is_zero")]
    pub requests_dropped: u64,
    /// RFC 3339, UTC. `end` is `None` in interim records.
    pub start: String,
    pub end: Option<String>,
}

/// The process that opened the connection (or exchanged the datagrams).
#[derive(Debug, Serialize)]
pub struct Process<'a> {
    pub pid: u32,
    pub ppid: u32,
    /// Its real uid, and that uid's user name if an account has it.
    pub uid: Option<u32>,
    pub user: Option<&'a str>,
    pub exe: &'a str,
    pub argv0: &'a str,
    /// The process whose match put its tree under watch.
    pub root_pid: u32,
}

impl<'a> Process<'a> {
    fn new(pid: u32, proc: &'a Proc, user: Option<&'a str>) -> Self {
        Self {
            pid,
            ppid: proc.ppid,
            uid: proc.uid,
            user,
            exe: &proc.exe,
            argv0: &proc.argv0,
            root_pid: proc.root,
        }
    }
}

impl<'a> Record<'a> {
    pub fn conn(event: Event, tool: &'a str, user: Option<&'a str>, r: &'a ConnReport) -> Self {
        let c = &r.conn;
        let probed = c.tls_lib.is_some();
        let (plain_sent, plain_received) = c.plaintext();
        Self {
            v: SCHEMA_VERSION,
            event,
            id: format!("tcp:{}", r.sock),
            time: rfc3339(r.at),
            tool,
            process: Process::new(c.pid, &c.proc, user),
            proto: "tcp",
            direction: c.direction.label(),
            remote_addr: c.remote.ip().to_string(),
            remote_port: c.remote.port(),
            local_addr: Some(c.local.ip().to_string()),
            local_port: Some(c.local.port()),
            egress_bytes: r.sent,
            ingress_bytes: r.received,
            egress_datagrams: None,
            ingress_datagrams: None,
            host: c.names.host.as_deref(),
            sni: c.names.sni.as_deref(),
            alpn: c.names.alpn.as_deref(),
            http_host: c.names.http_host.as_deref(),
            http_method: c.names.http_method,
            dns_name: c.names.dns_name.as_deref(),
            dest: &r.dest.name,
            dest_country: &r.dest.country,
            dest_asn: &r.dest.asn,
            dest_asn_org: c.names.asn_org.as_deref(),
            purpose: r.dest.purpose,
            tls_library: c.tls_lib.map(|lib| lib.label()),
            egress_plaintext_bytes: probed.then_some(plain_sent),
            ingress_plaintext_bytes: probed.then_some(plain_received),
            requests: &c.requests.logged,
            requests_dropped: c.requests.dropped,
            start: rfc3339(c.start),
            end: (event == Event::Close).then(|| rfc3339(r.at)),
        }
    }

    pub fn flow(event: Event, tool: &'a str, user: Option<&'a str>, r: &'a FlowReport) -> Self {
        Self {
            v: SCHEMA_VERSION,
            event,
            id: format!("udp:{}:{}", r.pid, r.remote),
            time: rfc3339(r.at),
            tool,
            process: Process::new(r.pid, &r.proc, user),
            proto: "udp",
            direction: r.direction.label(),
            remote_addr: r.remote.ip().to_string(),
            remote_port: r.remote.port(),
            local_addr: None,
            local_port: None,
            egress_bytes: r.totals.tx_bytes,
            ingress_bytes: r.totals.rx_bytes,
            egress_datagrams: Some(r.totals.tx_datagrams),
            ingress_datagrams: Some(r.totals.rx_datagrams),
            host: r.names.host.as_deref(),
            sni: None,
            alpn: None,
            http_host: None,
            http_method: None,
            dns_name: r.names.dns_name.as_deref(),
            dest: &r.dest.name,
            dest_country: &r.dest.country,
            dest_asn: &r.dest.asn,
            dest_asn_org: r.names.asn_org.as_deref(),
            purpose: r.dest.purpose,
            tls_library: None,
            egress_plaintext_bytes: None,
            ingress_plaintext_bytes: None,
            requests: &[],
            requests_dropped: 0,
            start: rfc3339(r.start),
            end: (event == Event::Close).then(|| rfc3339(r.at)),
        }
    }
}

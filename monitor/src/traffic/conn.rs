//! One watched TCP connection: what the kernel counted of it, what is in
//! the metrics already, and who sees its plaintext.

use std::{net::SocketAddr, time::SystemTime};

use monitor_common::Conn;

use super::{Counters, Dest, Direction, Labeler, Logged, Names, Proto, Subject, records};
use crate::{agents::ToolId, requests::RequestSizes, tree::Proc, uprobes::TlsLib};

/// A watched TCP connection.
#[derive(Debug, Clone)]
pub struct OpenConn {
    pub tool: ToolId,
    pub pid: u32,
    pub proc: Proc,
    pub direction: Direction,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub start_ns: u64,
    /// `start_ns` as wall-clock time, converted when it was first seen.
    pub start: SystemTime,
    pub(super) logged: Logged,
    pub names: Names,
    /// Labels, once decided; bytes are counted from then on.
    pub dest: Option<Dest>,
    /// Latest kernel counts, and how much of them is in the metrics.
    pub(super) seen: (u64, u64),
    pub(super) counted: (u64, u64),
    /// The same for TLS plaintext, and the library that saw it.
    pub(super) tls_seen: (u64, u64),
    pub(super) tls_counted: (u64, u64),
    pub tls_lib: Option<TlsLib>,
    /// The record framing was lost: derived plaintext stops short.
    pub framing_lost: bool,
    /// The probes' own plaintext counts, which request marks refer to.
    pub(super) probe_seen: (u64, u64),
    /// Plaintext sizes of its HTTP requests.
    pub requests: RequestSizes,
}

/// A TCP connection's totals at one moment, for the connection log: at its
/// close, or while it is open.
#[derive(Debug, Clone)]
pub struct ConnReport {
    /// The socket cookie (the key of the kernel's `CONNS`).
    pub sock: u64,
    pub conn: OpenConn,
    pub dest: Dest,
    /// Bytes since the connection began.
    pub sent: u64,
    pub received: u64,
    /// When these totals were read: its end, for a closed connection.
    pub at: SystemTime,
}

impl OpenConn {
    /// Decides the labels (once) and counts the connection.
    pub(super) fn settle(
        &mut self,
        sock: u64,
        label: &mut Labeler<'_>,
        counters: &mut dyn Counters,
    ) {
        if self.dest.is_none() {
            let subject = Subject {
                pid: self.pid,
                proc: &self.proc,
                proto: Proto::Tcp,
                direction: self.direction,
                remote: self.remote,
                sock: Some(sock),
                bytes: self.seen,
            };
            let dest = label(&subject, &mut self.names);
            counters.connection(self.tool, Proto::Tcp, self.direction, &dest);
            self.dest = Some(dest);
        }
        self.count(counters);
    }

    pub(super) fn update(&mut self, conn: &Conn) {
        // The kernel learns the local port of a connect() at its handshake.
        if self.local.port() == 0 {
            self.local.set_port(conn.lport);
        }
        self.saw(conn);
        // Who sees the plaintext is decided once: the records when no probe
        // tied the connection in time, else the probe.
        if self.tls_lib.is_none() {
            self.tls_lib = if records::unprobed(&conn.records) {
                Some(TlsLib::Record)
            } else {
                TlsLib::from_wire(conn.tls_lib)
            };
        }
        let plaintext = match self.tls_lib {
            Some(TlsLib::Record) => records::derived(&conn.records).unwrap_or_default(),
            _ => (conn.tls_tx, conn.tls_rx),
        };
        self.tls_seen = (
            self.tls_seen.0.max(plaintext.0),
            self.tls_seen.1.max(plaintext.1),
        );
        self.framing_lost = records::lost(&conn.records);
        self.probe_seen = (
            self.probe_seen.0.max(conn.tls_tx),
            self.probe_seen.1.max(conn.tls_rx),
        );
    }

    /// Takes the kernel's latest byte counts, and only those.
    pub(super) fn saw(&mut self, conn: &Conn) {
        self.seen = (
            self.seen.0.max(conn.tx_bytes),
            self.seen.1.max(conn.rx_bytes),
        );
    }

    /// TLS plaintext (sent, received) seen so far.
    pub fn plaintext(&self) -> (u64, u64) {
        self.tls_seen
    }

    pub(super) fn report(&self, sock: u64, at: SystemTime) -> ConnReport {
        ConnReport {
            sock,
            conn: self.clone(),
            dest: self.dest.clone().unwrap_or_default(),
            sent: self.seen.0,
            received: self.seen.1,
            at,
        }
    }

    /// Adds what the kernel counted since the last time, once labelled.
    pub(super) fn count(&mut self, counters: &mut dyn Counters) {
        let Some(dest) = &self.dest else { return };
        let sent = self.seen.0 - self.counted.0;
        let received = self.seen.1 - self.counted.1;
        if sent > 0 || received > 0 {
            counters.bytes(self.tool, Proto::Tcp, dest, sent, received);
        }
        self.counted = self.seen;
        let sent = self.tls_seen.0 - self.tls_counted.0;
        let received = self.tls_seen.1 - self.tls_counted.1;
        if let Some(lib) = self.tls_lib
            && (sent > 0 || received > 0)
        {
            counters.tls_bytes(self.tool, dest, lib, sent, received);
        }
        self.tls_counted = self.tls_seen;
    }
}

//! The daemon's state: applies kernel events to the process trees and the
//! traffic totals, and refreshes the metrics at scrape time.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    num::NonZeroU32,
    os::fd::AsRawFd,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
    time::Instant,
};

use aya::{
    maps::{HashMap as BpfHashMap, MapData, RingBuf},
    programs::uprobe::UProbeLinkId,
};
use monitor_common::{
    Conn, TOOL_PENDING, Tracked, UdpFlow, UdpKey, conn_flags, counter, payload_kind,
};
use tokio::io::{Interest, unix::AsyncFd};
use tracing::{info, warn};

use crate::{
    agents::{Catalog, ToolId},
    connlog::{Clock, ConnLog, monotonic_ns},
    enrich::Enricher,
    events::{Event, decode},
    kernel::{Kernel, ProbeAt, adopt},
    metrics::Metrics,
    procfs::{ProcSource, RealProc},
    traffic::{Dest, KernelCounters, Names, Traffic},
    tree::{TrackedMap, Tree},
    uprobes::{Attacher, LIBS, ProbeError, TlsProbes, lib_label, proc_root},
};

pub struct State {
    kernel: Kernel,
    catalog: Catalog,
    enricher: Enricher,
    tls: TlsProbes<UProbeLinkId>,
    tree: Tree,
    traffic: Traffic,
    metrics: Metrics,
    log: Option<ConnLog>,
    clock: Clock,
    procs: RealProc,
    /// Connections without state callbacks whose process was gone at the
    /// last sweep (see [`State::end_orphans`]).
    orphans: HashSet<u64>,
}

pub type Shared = Arc<Mutex<State>>;

impl TrackedMap for BpfHashMap<MapData, u32, Tracked> {
    fn set(&mut self, tgid: u32, value: Tracked) {
        if let Err(e) = self.insert(tgid, value, 0) {
            warn!(pid = tgid, error = %e, "cannot track process (TRACKED map full?)");
        }
    }
    fn remove(&mut self, tgid: u32) {
        // Already gone is fine: the kernel removes exited processes itself.
        let _ = BpfHashMap::remove(self, &tgid);
    }
    fn tgids(&self) -> Vec<u32> {
        self.keys().filter_map(Result::ok).collect()
    }
}

/// The kernel's counter maps as the traffic module sees them.
struct KernelTraffic<'a> {
    conns: &'a mut BpfHashMap<MapData, u64, Conn>,
    flows: &'a mut BpfHashMap<MapData, UdpKey, UdpFlow>,
}

impl KernelCounters for KernelTraffic<'_> {
    fn conn(&self, sock: u64) -> Option<Conn> {
        self.conns.get(&sock, 0).ok()
    }
    fn flows(&self) -> Vec<(UdpKey, UdpFlow)> {
        self.flows.iter().filter_map(Result::ok).collect()
    }
    fn remove_flow(&mut self, key: &UdpKey) {
        let _ = self.flows.remove(key);
    }
}

impl State {
    pub fn new(
        kernel: Kernel,
        catalog: Catalog,
        enricher: Enricher,
        metrics: Metrics,
        log: Option<ConnLog>,
    ) -> Self {
        metrics
            .programs_attached
            .set(kernel.programs_attached as i64);
        metrics.set_features(&kernel.features);
        metrics.start_tools(&catalog);
        Self {
            kernel,
            catalog,
            enricher,
            tls: TlsProbes::default(),
            tree: Tree::default(),
            traffic: Traffic::default(),
            metrics,
            log,
            clock: Clock::new(),
            procs: RealProc::new(),
            orphans: HashSet::new(),
        }
    }

    /// Tracks the agents that are already running, counts the sockets they
    /// have open from now on, and probes their TLS libraries.
    pub fn scan(&mut self) {
        self.tree
            .scan(&self.procs, &self.catalog, &mut self.kernel.tracked);
        for pid in self.tree.pids() {
            adopt_sockets(&mut self.kernel, &mut self.traffic, &self.tree, pid);
            probe_tls(&mut self.tls, &mut self.kernel, &self.tree, pid);
        }
    }

    /// Applies a batch of events in order. An exec followed by another exec
    /// of the same process in the batch is judged by its own filename: /proc
    /// already shows the later program.
    pub fn handle_batch(&mut self, events: Vec<Event>) {
        let mut last_exec = HashMap::new();
        for (i, event) in events.iter().enumerate() {
            if let Event::Exec { tgid, .. } = event {
                last_exec.insert(*tgid, i);
            }
        }
        for (i, event) in events.into_iter().enumerate() {
            let superseded = matches!(&event, Event::Exec { tgid, .. } if last_exec[tgid] != i);
            self.handle(event, superseded);
        }
    }

    pub fn handle(&mut self, event: Event, superseded: bool) {
        let Self {
            kernel,
            catalog,
            enricher,
            tls,
            tree,
            traffic,
            metrics,
            log,
            clock,
            procs,
            ..
        } = self;
        let mut counters = metrics.counters(catalog);
        let now = Instant::now();
        match event {
            Event::Exec {
                tgid,
                tool,
                filename,
            } => {
                let source: &dyn ProcSource = if superseded { &Gone } else { procs };
                let new_root =
                    tree.on_exec(tgid, tool, &filename, source, catalog, &mut kernel.tracked);
                // Sockets it had before this exec made it an agent's.
                if new_root {
                    adopt_sockets(kernel, traffic, tree, tgid);
                }
                expect_tls(tls, kernel, tree, tgid);
                probe_tls(tls, kernel, tree, tgid);
            }
            Event::Fork { parent, child } => tree.on_fork(parent, child, &mut kernel.tracked),
            Event::Exit { tgid } => {
                tree.on_exit(tgid);
                tls.exited(tgid, now, &mut KernelProbes(kernel));
            }
            Event::ConnOpen { sock, conn } => match tree.get(conn.tgid) {
                Some(proc) => {
                    if conn.tool == TOOL_PENDING {
                        // Tell the kernel, so that the label survives a later
                        // exec of the owner into another tool.
                        let _ = kernel.resolved.insert(sock, proc.tool, 0);
                    }
                    traffic.on_open(sock, &conn, proc, || {
                        procs.listening_ports(conn.tgid).contains(&conn.lport)
                    });
                    // TLS libraries come with dlopen: look again on new connections.
                    probe_tls(tls, kernel, tree, conn.tgid);
                }
                // Opened while its process was pending; it is not an agent.
                // Only that entry goes: the socket may have been handed to
                // an agent since, under the same key.
                None => {
                    if kernel
                        .conns
                        .get(&sock, 0)
                        .is_ok_and(|now| now.tgid == conn.tgid && now.start_ns == conn.start_ns)
                    {
                        let _ = kernel.conns.remove(&sock);
                    }
                }
            },
            Event::ConnClose {
                sock,
                conn,
                ktime_ns,
            } => {
                enricher.closed(sock);
                let mut closed = traffic.on_close(
                    sock,
                    &conn,
                    ktime_ns,
                    &mut labeler(enricher, metrics, catalog, now),
                    &mut counters,
                );
                if closed.is_none()
                    && let Some(proc) = tree.get(conn.tgid)
                {
                    // Its open event was lost: count it whole now.
                    let opened = Conn {
                        tx_bytes: 0,
                        rx_bytes: 0,
                        ..conn
                    };
                    traffic.on_open(sock, &opened, proc, || false);
                    closed = traffic.on_close(
                        sock,
                        &conn,
                        ktime_ns,
                        &mut labeler(enricher, metrics, catalog, now),
                        &mut counters,
                    );
                }
                // TLS that no probe covered: a gap the metric shows.
                if let Some(closed) = &closed
                    && closed.conn.names.tls
                    && closed.conn.tls_lib == 0
                {
                    metrics
                        .tls_unseen_connections
                        .with_label_values(&[catalog.name(closed.conn.tool)])
                        .inc();
                }
                if let (Some(closed), Some(log)) = (closed, log.as_mut())
                    && let Err(e) = log.write(catalog.name(closed.conn.tool), &closed, clock)
                {
                    warn!(path = %log.path().display(), error = %e, "cannot write the connection log");
                }
            }
            Event::Payload {
                tgid,
                sock,
                kind,
                marks,
                data,
            } => match kind {
                payload_kind::FIRST_TX => traffic.named(
                    sock,
                    |names| Enricher::read_first_bytes(&data, names),
                    &mut labeler(enricher, metrics, catalog, now),
                    &mut counters,
                ),
                payload_kind::DNS => {
                    if let Some(proc) = tree.get(tgid) {
                        let tcp = traffic.is_open(sock);
                        let answers = enricher.on_dns(proc.root, &data, tcp, now);
                        metrics
                            .dns_answers
                            .with_label_values(&[catalog.name(proc.tool)])
                            .inc_by(answers as u64);
                    }
                }
                payload_kind::TLS_REQUEST => {
                    let mut label = labeler(enricher, metrics, catalog, now);
                    let settled = traffic.settle(sock, &mut label, &mut counters);
                    drop(label);
                    let Some(host) = settled else {
                        return;
                    };
                    let requests = enricher.requests(sock, host.as_deref(), &data);
                    traffic.count_requests(sock, &requests, marks, &mut counters);
                }
                _ => {}
            },
            Event::UdpFlow { key, inbound } => match tree.get(key.tgid) {
                Some(proc) => {
                    traffic.on_udp_flow(
                        key,
                        (proc.tool, proc.root),
                        inbound,
                        &mut labeler(enricher, metrics, catalog, now),
                        &mut counters,
                    );
                    probe_tls(tls, kernel, tree, key.tgid);
                }
                None => {
                    let _ = kernel.udp_flows.remove(&key);
                }
            },
        }
    }

    /// Reads the kernel's counters into the metrics.
    pub fn refresh(&mut self) {
        let Self {
            kernel,
            catalog,
            enricher,
            tree,
            traffic,
            metrics,
            ..
        } = self;
        let mut counters = metrics.counters(catalog);
        let mut maps = KernelTraffic {
            conns: &mut kernel.conns,
            flows: &mut kernel.udp_flows,
        };
        traffic.refresh(
            &mut maps,
            monotonic_ns(),
            |tgid| tree.get(tgid).map(|p| (p.tool, p.root)),
            &mut labeler(enricher, metrics, catalog, Instant::now()),
            &mut counters,
        );
        metrics.set_processes(catalog, &tree.counts());
        set_tls_gauges(metrics, catalog, tree, &self.tls, kernel.features.uprobes);
        Metrics::raise_to(&metrics.events_lost, kernel.events_lost());
        Metrics::raise_to(
            &metrics.tls_untied_bytes,
            kernel.counter(counter::TLS_UNTIED_BYTES),
        );
        Metrics::raise_to(
            &metrics.packets_unparsed,
            kernel.counter(counter::PACKETS_UNPARSED),
        );
        for (map, index) in [
            ("conns", counter::CONNS_FULL),
            ("udp_flows", counter::UDP_FLOWS_FULL),
            ("tracked", counter::TRACKED_FULL),
            ("socks", counter::SOCKS_FULL),
        ] {
            let total = kernel.counter(index);
            Metrics::raise_to(&metrics.kernel_map_full.with_label_values(&[map]), total);
        }
    }

    /// Refreshes and renders the exposition.
    pub fn scrape(&mut self) -> prometheus::Result<String> {
        self.refresh();
        self.metrics.encode()
    }

    /// Housekeeping: drops kernel entries of processes whose events were
    /// lost, expired DNS bindings, and picks up new GeoIP files.
    pub fn sweep(&mut self) {
        self.enricher.expire(Instant::now());
        self.enricher.geoip.reload_if_changed();
        // Libraries an idle agent dlopened since (e.g. Python's `import ssl`).
        for pid in self.tree.pids() {
            probe_tls(&mut self.tls, &mut self.kernel, &self.tree, pid);
        }
        self.tls
            .reap(Instant::now(), &mut KernelProbes(&mut self.kernel));
        // Unregistering slows attaching: close old links while no new agent
        // process is getting probes (or when too many wait).
        if self.tls.quiet_since(DETACH_QUIET, Instant::now())
            || self.kernel.detached_len() > MAX_DETACHED
        {
            self.kernel.close_detached();
        }
        self.tree.sweep(&mut self.kernel.tracked, |tgid| {
            Path::new(&format!("/proc/{tgid}")).exists()
        });
        self.end_orphans();
    }

    /// Ends connections the kernel can no longer close: without sock_ops
    /// state callbacks (an older kernel, or a socket adopted by user space)
    /// a connection ends at its last FIN or RST packet, and one that dies
    /// without them (a SYN never answered) would stay open forever. Once its
    /// process has been gone for two sweeps in a row, it ends here with the
    /// counts it has.
    fn end_orphans(&mut self) {
        let alive = |tgid: u32| Path::new(&format!("/proc/{tgid}")).exists();
        let gone: Vec<(u64, Conn)> = self
            .kernel
            .conns
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, c)| c.flags & conn_flags::STATE_CB == 0 && !alive(c.tgid))
            .collect();
        let strikes: HashSet<u64> = gone.iter().map(|(sock, _)| *sock).collect();
        for (sock, conn) in gone {
            if !self.orphans.contains(&sock) {
                continue;
            }
            let _ = self.kernel.conns.remove(&sock);
            let event = Event::ConnClose {
                sock,
                conn,
                ktime_ns: monotonic_ns(),
            };
            self.handle(event, false);
        }
        self.orphans = strikes;
    }

    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.kernel.events.take()
    }
}

/// How long no probe must have been attached before old ones are closed,
/// and how many may wait regardless.
const DETACH_QUIET: Duration = Duration::from_secs(2);
const MAX_DETACHED: usize = 4096;

/// The kernel, as the TLS module attaches probes through it.
struct KernelProbes<'a>(&'a mut Kernel);

impl Attacher for KernelProbes<'_> {
    type Link = UProbeLinkId;
    fn attach(
        &mut self,
        program: &'static str,
        target: &Path,
        at: &ProbeAt,
        lib: u32,
        pid: Option<NonZeroU32>,
    ) -> Result<UProbeLinkId, ProbeError> {
        self.0
            .attach_tls(program, target, at, lib, pid)
            .map_err(|e| ProbeError::Attach {
                program,
                at: at.clone(),
                source: Box::new(e),
            })
    }
    fn detach(&mut self, program: &str, link: UProbeLinkId) {
        self.0.detach_tls(program, link);
    }
}

/// Looks at the TLS libraries a tracked process maps (rate-limited).
fn probe_tls(tls: &mut TlsProbes<UProbeLinkId>, kernel: &mut Kernel, tree: &Tree, pid: u32) {
    let Some(proc) = tree.get(pid) else { return };
    let now = Instant::now();
    if !kernel.features.uprobes || !tls.due(pid, now) {
        return;
    }
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return;
    };
    let exe = Path::new(&proc.exe);
    tls.scan(
        pid,
        &maps,
        Some(exe),
        &proc_root(pid),
        &mut KernelProbes(kernel),
        now,
    );
}

/// Probes the TLS libraries a tracked process just exec'd will link, before
/// it maps them.
fn expect_tls(tls: &mut TlsProbes<UProbeLinkId>, kernel: &mut Kernel, tree: &Tree, pid: u32) {
    let Some(proc) = tree.get(pid) else { return };
    if kernel.features.uprobes {
        let exe = Path::new(&proc.exe);
        tls.expect(pid, exe, &proc_root(pid), &mut KernelProbes(kernel));
    }
}

/// Counts the sockets process `pid` already has from now on (see
/// `kernel::adopt`); its connected TCP sockets join the traffic table.
fn adopt_sockets(kernel: &mut Kernel, traffic: &mut Traffic, tree: &Tree, pid: u32) {
    let Some(proc) = tree.get(pid) else { return };
    let (adopted, summary) = adopt::adopt(kernel, pid, proc.tool, monotonic_ns());
    for a in &adopted {
        traffic.on_open(a.sock, &a.conn, proc, || false);
    }
    if summary.failed > 0 {
        warn!(
            pid,
            sockets = summary.failed,
            "cannot adopt sockets the agent opened before it was recognised; they are not counted (agentmon needs CAP_SYS_PTRACE for pidfd_getfd)"
        );
    }
    if summary.sockets > 0 {
        info!(
            pid,
            connections = summary.sockets,
            "counting connections the agent already had, from now on"
        );
    }
}

/// `agentmon_tls_coverage` and `agentmon_uprobes_attached`, from scratch.
fn set_tls_gauges(
    metrics: &Metrics,
    catalog: &Catalog,
    tree: &Tree,
    tls: &TlsProbes<UProbeLinkId>,
    ready: bool,
) {
    metrics.tls_coverage.reset();
    let mut plaintext: HashMap<ToolId, std::collections::BTreeSet<u32>> = HashMap::new();
    let mut tools = std::collections::BTreeSet::new();
    for pid in tree.pids() {
        let Some(proc) = tree.get(pid) else { continue };
        tools.insert(proc.tool);
        plaintext
            .entry(proc.tool)
            .or_default()
            .extend(tls.libs_of(pid));
    }
    for tool in tools {
        let name = catalog.name(tool);
        match plaintext.get(&tool) {
            Some(libs) if ready && !libs.is_empty() => {
                for lib in libs {
                    metrics
                        .tls_coverage
                        .with_label_values(&[name, lib_label(*lib), "plaintext"])
                        .set(1);
                }
            }
            _ => metrics
                .tls_coverage
                .with_label_values(&[name, "none", "metadata"])
                .set(1),
        }
    }
    let attached = tls.attached();
    for lib in LIBS {
        let n = attached.get(&lib).copied().unwrap_or(0);
        metrics
            .uprobes_attached
            .with_label_values(&[lib_label(lib)])
            .set(n as i64);
    }
}

/// The labeler the traffic module calls when a connection's labels are
/// decided: enrichment, plus the overflow counter when the cap bites.
fn labeler<'a>(
    enricher: &'a mut Enricher,
    metrics: &'a Metrics,
    catalog: &'a Catalog,
    now: Instant,
) -> impl FnMut(ToolId, u32, &SocketAddr, &mut Names) -> Dest + 'a {
    move |tool, root, remote, names| {
        let (dest, labelled) = enricher.label(tool, root, remote, names, now);
        if labelled.overflow {
            metrics
                .dest_overflow
                .with_label_values(&[catalog.name(tool)])
                .inc();
        }
        dest
    }
}

/// A process source for a process whose /proc entry no longer describes
/// the exec being judged.
struct Gone;

impl ProcSource for Gone {
    fn pids(&self) -> std::io::Result<Vec<u32>> {
        Ok(Vec::new())
    }
    fn read(&self, _pid: u32, _env_names: &[String]) -> Option<crate::procfs::ProcInfo> {
        None
    }
}

/// Reads kernel events until the ring buffer fails.
pub async fn read_events(state: Shared, ring: RingBuf<MapData>) -> anyhow::Result<()> {
    // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for
    // as long as the AsyncFd owns the RingBuf.
    let mut events = Vec::new();
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("cannot watch the ring buffer: {e}"))?;
    info!(fd = fd.get_ref().as_raw_fd(), "reading kernel events");
    loop {
        // Deferred events (closes, payload heads) do not wake us: the tick does.
        let woken = tokio::time::timeout(DRAIN_EVERY, fd.readable_mut()).await;
        match woken.ok().transpose()? {
            Some(mut guard) => {
                drain(guard.get_inner_mut(), &state, &mut events);
                guard.clear_ready();
            }
            None => drain(fd.get_mut(), &state, &mut events),
        }
    }
}

/// How often the ring buffer is read when nothing woke us (see the kernel's
/// `maps::deferred`): the most an event of that kind waits.
pub const DRAIN_EVERY: Duration = Duration::from_millis(10);

fn drain(ring: &mut RingBuf<MapData>, state: &Shared, events: &mut Vec<Event>) {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    while let Some(item) = ring.next() {
        events.extend(decode(&item));
    }
    if !events.is_empty() {
        state.handle_batch(std::mem::take(events));
    }
}

/// Refreshes and sweeps every few seconds (the GeoIP reload interval, at
/// most a minute), so flows of processes that exit are read and released
/// even when nobody scrapes, and new GeoIP files are picked up.
pub async fn housekeeping(state: Shared, every_seconds: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_seconds.clamp(1, 60)));
    loop {
        tick.tick().await;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.refresh();
        state.sweep();
    }
}

//! The daemon's state: applies kernel events to the process trees and the
//! traffic totals, and refreshes the metrics at scrape time.

mod policy;
mod port;
mod probes;
#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use monitor_common::{Conn, TOOL_PENDING, conn_flags, counter};
use tracing::{info, warn};

mod explain;
mod logs;
use self::explain::TlsExplained;
use self::logs::{log_conn, log_flow};
use self::policy::PolicyState;
pub use self::port::{KernelPort, MapFill};
pub use self::probes::watch_young;
use self::probes::{adopt_sockets, expect_tls, probe_tls, set_tls_gauges};
use crate::{
    agents::Catalog,
    clock::{monotonic_ns, unix_ms},
    config::{Config, Loaded},
    connlog::{ConnLog, Event as LogEvent},
    enrich::Enricher,
    events::{Event, PayloadKind},
    exporter::Scrape,
    geoip::GeoIp,
    kernel::evictions::Evictions,
    metrics::Metrics,
    policy::Policy,
    procfs::ProcSource,
    saved::{self, Saved, StateFile},
    top::{
        snapshot::{self, Snapshot},
        socket::Snapshots,
    },
    traffic::{Dest, Names, Subject, Traffic},
    tree::{Exec, Tree},
    uprobes::{TlsLib, TlsProbes},
};

/// The event router: applies kernel events to the process trees and the
/// traffic totals, and refreshes the metrics at scrape time. `K` is the
/// kernel (aya, or a fake in tests), `P` the /proc it reads.
pub struct State<K: KernelPort, P: ProcSource> {
    kernel: K,
    catalog: Catalog,
    enricher: Enricher,
    tls: TlsProbes<K::Link>,
    tree: Tree,
    traffic: Traffic,
    metrics: Metrics,
    log: Option<ConnLog>,
    procs: P,
    /// Connections without state callbacks whose process was gone at the
    /// last sweep (see [`State::end_orphans`]).
    orphans: HashSet<u64>,
    /// Where the counters are saved for a restart (see `saved.rs`).
    state_file: Option<StateFile>,
    save_failed: bool,
    /// Sweeps left before baselines from the previous run that nothing
    /// took up are dropped.
    resume_sweeps: u8,
    /// Programs whose unprobed TLS was explained in the log, once each.
    tls_explained: TlsExplained,
    /// The egress policy, its violations log and its kernel side.
    policy: PolicyState,
    /// When this state was made, for `agentmon top`.
    started_ms: u64,
    /// What the LRU maps dropped (see `kernel/evictions.rs`).
    evictions: Evictions,
}

pub type Shared<K, P> = Arc<Mutex<State<K, P>>>;

impl<K: KernelPort, P: ProcSource> State<K, P> {
    pub fn new(
        kernel: K,
        catalog: Catalog,
        enricher: Enricher,
        metrics: Metrics,
        log: Option<ConnLog>,
        procs: P,
    ) -> Self {
        metrics
            .programs_attached
            .set(kernel.programs_attached() as i64);
        metrics.set_features(&kernel.features());
        metrics.start_tools(&catalog);
        let evictions = Evictions::new(kernel.resumed());
        let rx_tie = kernel.features().rx_tie;
        Self {
            kernel,
            catalog,
            enricher,
            tls: TlsProbes::default().with_rustls(rx_tie),
            tree: Tree::default(),
            traffic: Traffic::default(),
            metrics,
            log,
            procs,
            orphans: HashSet::new(),
            state_file: None,
            save_failed: false,
            resume_sweeps: 0,
            tls_explained: TlsExplained::default(),
            policy: PolicyState::default(),
            started_ms: unix_ms(SystemTime::now()),
            evictions,
        }
    }

    /// Puts `policy` in force: at start, and from [`State::reload`].
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy.replace(policy);
        self.policy.apply(
            self.kernel.enforcement(),
            &self.catalog,
            &self.enricher.geoip,
            &self.metrics,
        );
    }

    /// Continues from the previous run's saved state in `file` (if any), and
    /// saves there from now on. Call after [`State::scan`].
    pub fn resume(&mut self, file: StateFile) {
        let saved = match file.load() {
            Ok(saved) => saved,
            Err(e) => {
                warn!(path = %file.path().display(), "cannot read the saved state ({e}): counters start at zero");
                None
            }
        };
        self.state_file = Some(file);
        let Some(saved) = saved else { return };
        let series = self.metrics.restore(&saved.counters);
        let same_boot = saved.boot_id == saved::boot_id();
        let same_tools = saved
            .tools
            .iter()
            .map(String::as_str)
            .eq(self.catalog.names());
        let mut conns = 0;
        if self.kernel.resumed() && same_boot {
            if same_tools {
                // Processes the kernel tracked while agentmon was down,
                // children that outlived their agent parent among them.
                self.tree
                    .resume(&self.procs, &self.catalog, self.kernel.tracked());
            }
            conns = saved.conns.len() + saved.flows.len();
            self.traffic.resume(saved.conns, saved.flows);
            self.resume_sweeps = 3;
            self.register_kernel_conns();
        }
        tracing::info!(
            series,
            baselines = conns,
            "resumed from the previous run: counters continue from what it exported"
        );
    }

    /// Connections in the kernel's map that this run has not met: after a
    /// restart, those opened before it (or while agentmon was down).
    /// One whose process is gone ended while no hook watched (after a clean
    /// stop): it ends now, with the counts the kernel has.
    fn register_kernel_conns(&mut self) {
        for (sock, conn) in self.kernel.conns() {
            if self.traffic.is_open(sock) {
                continue;
            }
            if let Some(proc) = self.tree.get(conn.tgid) {
                let procs = &self.procs;
                self.traffic.on_open(sock, &conn, proc, || {
                    procs.listening_ports(conn.tgid).contains(&conn.lport)
                });
            } else if !self.procs.alive(conn.tgid) {
                self.end_conn(sock, conn);
            }
        }
    }

    /// Ends a connection the kernel cannot close itself, with the counts it
    /// has: as if its close event had come now.
    fn end_conn(&mut self, sock: u64, conn: Conn) {
        self.kernel.forget_conn(sock);
        let event = Event::ConnClose {
            sock,
            conn,
            ktime_ns: monotonic_ns(),
        };
        self.handle(event, false);
    }

    /// Saves what a restart needs (at every scrape and housekeeping tick).
    pub fn save(&mut self) {
        let Some(file) = &self.state_file else { return };
        let catalog = &self.catalog;
        let (conns, flows) = self.traffic.save(|id| catalog.name(id).to_owned());
        let saved = Saved {
            version: saved::VERSION,
            boot_id: saved::boot_id(),
            tools: self.catalog.names().map(str::to_owned).collect(),
            counters: self.metrics.snapshot(),
            conns,
            flows,
        };
        match file.save(&saved) {
            Ok(()) => self.save_failed = false,
            // Once per failure streak: the log must not flood.
            Err(e) if !self.save_failed => {
                self.save_failed = true;
                warn!(path = %file.path().display(), error = %e, "cannot save the state: a restart would start the counters at zero");
            }
            Err(_) => {}
        }
    }

    /// Tracks the agents that are already running, counts the sockets they
    /// have open from now on, and probes their TLS libraries.
    pub fn scan(&mut self) {
        self.tree
            .scan(&self.procs, &self.catalog, self.kernel.tracked());
        for pid in self.tree.pids() {
            adopt_sockets(&mut self.kernel, &mut self.traffic, &self.tree, pid);
        }
        self.probe_all();
    }

    /// Applies a batch of events in order. An exec followed by another exec
    /// of the same process in the batch is judged by its own filename: /proc
    /// already shows the later program (`handle` also tells one whose later
    /// exec is not read yet).
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
            procs,
            tls_explained,
            policy,
            ..
        } = self;
        let mut counters = metrics.counters(catalog);
        let now = Instant::now();
        match event {
            Event::Exec {
                tgid,
                untracked,
                filename,
                argv,
                exe_ino,
            } => {
                // /proc shows a later program: judged by the kernel's record.
                let later = superseded || procs.runs_other(tgid, exe_ino);
                let gone = Gone(procs);
                let source: &dyn ProcSource = if later { &gone } else { procs };
                let tracked = kernel.tracked();
                let exec = Exec {
                    tgid,
                    untracked,
                    filename: &filename,
                    argv: &argv,
                };
                let new_root = tree.on_exec(&exec, source, catalog, tracked);
                // Sockets it had before this exec made it an agent's.
                if new_root {
                    adopt_sockets(kernel, traffic, tree, tgid);
                }
                expect_tls(tls, kernel, tree, tgid);
                probe_tls(tls, kernel, tree, procs, tgid);
            }
            Event::Fork { parent, child } => tree.on_fork(parent, child, kernel.tracked()),
            Event::Exit { tgid } => {
                tree.on_exit(tgid, kernel.tracked());
                tls.exited(tgid, now, kernel.probes());
            }
            Event::ConnOpen { sock, conn } => {
                match tree.get(conn.tgid) {
                    Some(proc) => {
                        if conn.tool == TOOL_PENDING {
                            kernel.resolve(sock, proc.tool);
                        }
                        traffic.on_open(sock, &conn, proc, || {
                            procs.listening_ports(conn.tgid).contains(&conn.lport)
                        });
                        // TLS libraries come with dlopen: look again on new connections.
                        probe_tls(tls, kernel, tree, procs, conn.tgid);
                    }
                    // Opened while its process was pending; it is not an agent.
                    // Only that entry goes: the socket may have been handed to
                    // an agent since, under the same key.
                    None => {
                        if kernel.counters().conn(sock).is_some_and(|now| {
                            now.tgid == conn.tgid && now.start_ns == conn.start_ns
                        }) {
                            kernel.forget_conn(sock);
                        }
                    }
                }
            }
            Event::ConnClose {
                sock,
                conn,
                ktime_ns,
            } => {
                enricher.closed(sock);
                // Its label may have come after the kernel's close.
                kernel.unresolve(sock);
                let mut closed = traffic.on_close(
                    sock,
                    &conn,
                    ktime_ns,
                    &mut labeler(enricher, metrics, catalog, policy, tree, now),
                    &mut counters,
                );
                // Its open event was lost: count it whole now. Its process
                // may be gone, if the run before a restart knew it.
                let proc = || {
                    tree.get(conn.tgid).cloned().or_else(|| {
                        traffic.resumed_proc(sock, conn.start_ns, |name| catalog.id(name))
                    })
                };
                if closed.is_none()
                    && let Some(proc) = proc()
                {
                    let opened = Conn {
                        tx_bytes: 0,
                        rx_bytes: 0,
                        ..conn
                    };
                    traffic.on_open(sock, &opened, &proc, || false);
                    closed = traffic.on_close(
                        sock,
                        &conn,
                        ktime_ns,
                        &mut labeler(enricher, metrics, catalog, policy, tree, now),
                        &mut counters,
                    );
                }
                // TLS that no probe or record covered, or covered short:
                // gaps the metrics show.
                if let Some(closed) = &closed {
                    let tool = catalog.name(closed.conn.tool);
                    match closed.conn.tls_lib {
                        None if closed.conn.names.tls => {
                            metrics
                                .tls_unseen_connections
                                .with_label_values(&[tool])
                                .inc();
                            let uprobes = kernel.features().uprobes;
                            tls_explained.unseen(tool, &closed.conn.proc.exe, uprobes);
                        }
                        Some(TlsLib::Record) => {
                            if closed.conn.framing_lost {
                                metrics.tls_framing_lost.with_label_values(&[tool]).inc();
                            }
                            let uprobes = kernel.features().uprobes;
                            tls_explained.derived(tool, &closed.conn.proc, uprobes);
                        }
                        _ => {}
                    }
                }
                if let (Some(closed), Some(log)) = (closed, log.as_mut()) {
                    log_conn(log, catalog, LogEvent::Close, &closed);
                }
            }
            Event::Payload {
                tgid,
                sock,
                kind,
                marks,
                data,
            } => match kind {
                PayloadKind::FirstBytes => {
                    // What it had sent when judged: read only when a policy
                    // judges (one map lookup per connection otherwise spared).
                    if policy.judges()
                        && let Some(conn) = kernel.counters().conn(sock)
                    {
                        traffic.saw(sock, &conn);
                    }
                    let read = |names: &mut Names| Enricher::read_first_bytes(&data, names);
                    if traffic.is_labelled(sock) {
                        // A better name than its labels were decided by is
                        // judged again.
                        traffic.named_late(sock, read, |subject, names, dest| {
                            let labelled = enricher.relabel(subject.remote.ip(), names);
                            policy
                                .labelled(subject, names, dest, &labelled, tree, catalog, metrics);
                        });
                    } else {
                        traffic.named(
                            sock,
                            read,
                            &mut labeler(enricher, metrics, catalog, policy, tree, now),
                            &mut counters,
                        );
                    }
                }
                PayloadKind::Dns => {
                    if let Some(proc) = tree.get(tgid) {
                        let tcp = traffic.is_open(sock);
                        let answers = enricher.on_dns(proc.root, &data, tcp, now);
                        metrics
                            .dns_answers
                            .with_label_values(&[catalog.name(proc.tool)])
                            .inc_by(answers.len() as u64);
                        let tool = catalog.name(proc.tool);
                        policy.on_dns(kernel.enforcement(), tool, proc.root, &answers, enricher);
                    }
                }
                PayloadKind::TlsRequest => {
                    let mut label = labeler(enricher, metrics, catalog, policy, tree, now);
                    let settled = traffic.settle(sock, &mut label, &mut counters);
                    drop(label);
                    let Some(host) = settled else {
                        return;
                    };
                    let requests = enricher.requests(sock, host.as_deref(), &data);
                    traffic.count_requests(sock, &requests, marks, &mut counters);
                }
            },
            Event::UdpFlow { key, inbound } => match tree.get(key.tgid) {
                Some(proc) => {
                    traffic.on_udp_flow(
                        key,
                        proc,
                        inbound,
                        &mut labeler(enricher, metrics, catalog, policy, tree, now),
                        &mut counters,
                    );
                    probe_tls(tls, kernel, tree, procs, key.tgid);
                }
                None => kernel.forget_flow(&key),
            },
            Event::PolicyBlock {
                tgid,
                rule,
                remote,
                udp,
            } => policy.blocked(tgid, rule, remote, udp, tree, enricher, catalog, metrics),
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
            log,
            policy,
            evictions,
            ..
        } = self;
        let mut counters = metrics.counters(catalog);
        let ended = traffic.refresh(
            kernel.counters(),
            monotonic_ns(),
            |tgid| tree.get(tgid),
            &mut labeler(enricher, metrics, catalog, policy, tree, Instant::now()),
            &mut counters,
        );
        if let Some(log) = log {
            for flow in &ended {
                log_flow(log, catalog, LogEvent::Close, flow);
            }
        }
        metrics.set_processes(catalog, &tree.counts());
        // Here rather than at each reload: a SIGHUP may swap the databases.
        metrics.set_geoip(&enricher.geoip);
        set_tls_gauges(metrics, catalog, tree, &self.tls, kernel.features().uprobes);
        Metrics::raise_to(&metrics.events_lost, kernel.counter(counter::EVENTS_LOST));
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
        let lru = kernel.lru_counts().into_iter().map(|count| {
            let evicted = evictions.update(&count);
            Metrics::raise_to(
                &metrics.kernel_map_evictions.with_label_values(&[count.map]),
                evicted,
            );
            (count.map, count.entries as usize, count.capacity)
        });
        for (map, entries, capacity) in kernel.fill().into_iter().chain(lru) {
            metrics
                .kernel_map_entries
                .with_label_values(&[map])
                .set(entries as i64);
            metrics
                .kernel_map_capacity
                .with_label_values(&[map])
                .set(i64::from(capacity));
        }
    }

    /// Writes an interim record for each connection and flow that has had
    /// none (nor its start) for the log's interim interval, with its totals
    /// as of the last [`State::refresh`].
    pub fn write_interim(&mut self) {
        let Some(log) = &mut self.log else { return };
        let Some(every) = log.interim() else { return };
        let (conns, flows) = self.traffic.due(every.as_nanos() as u64);
        for conn in &conns {
            log_conn(log, &self.catalog, LogEvent::Interim, conn);
        }
        for flow in &flows {
            log_flow(log, &self.catalog, LogEvent::Interim, flow);
        }
    }

    /// Opens the log files again, for logrotate (SIGHUP). A log that cannot
    /// be reopened keeps its old file.
    /// SIGHUP with a config that loaded: takes its catalogs and GeoIP
    /// files; counters, open connections and tracked processes stay. What
    /// only a restart can change (the listen address, a tool list whose
    /// existing tools moved: their ids are in the kernel's maps) is kept as
    /// it is, and the log says so.
    pub fn reload(&mut self, loaded: Loaded, running: &Config) {
        let Loaded {
            config,
            agents,
            dest,
            paths,
            policy,
        } = loaded;
        let keeps_ids = agents.len() >= self.catalog.len()
            && self
                .catalog
                .names()
                .zip(agents.names())
                .all(|(a, b)| a == b);
        if keeps_ids {
            self.catalog = agents;
            self.metrics.start_tools(&self.catalog);
        } else {
            warn!(
                "the config renames, removes or reorders tools: restart agentmon to apply the new tool list (the other changes are applied)"
            );
        }
        self.enricher.set_catalogs(dest, paths);
        if config.geoip != running.geoip {
            self.enricher.geoip = GeoIp::from_config(&config.geoip);
        }
        if config.listen != running.listen {
            warn!(listen = %config.listen, "a new listen address takes a restart of agentmon");
        }
        if config.web_config_file != running.web_config_file {
            warn!(
                "a new web_config_file takes a restart of agentmon (edits to the file itself apply at once)"
            );
        }
        if config.log != running.log {
            warn!("new [log] settings take a restart of agentmon; SIGHUP reopens the same log");
        }
        if config.kernel != running.kernel {
            warn!("new [kernel] map sizes take a restart of agentmon");
        }
        // After the GeoIP swap: countries and ASNs are expanded from it.
        self.set_policy(policy);
        info!(tools = self.catalog.len(), "config reloaded");
    }

    /// Housekeeping: drops kernel entries of processes whose events were
    /// lost, expired DNS bindings, and picks up new GeoIP files.
    pub fn sweep(&mut self) {
        self.follow_logs();
        self.enricher.expire(Instant::now());
        self.enricher.geoip.reload_if_changed();
        // Libraries an idle agent dlopened since (e.g. Python's `import ssl`).
        self.probe_all();
        self.tls.reap(Instant::now(), self.kernel.probes());
        // Unregistering slows attaching: close old links while no new agent
        // process is getting probes (or when too many wait).
        if self.tls.quiet_since(probes::DETACH_QUIET, Instant::now())
            || self.kernel.detached_len() > probes::MAX_DETACHED
        {
            self.kernel.close_detached();
        }
        let procs = &self.procs;
        self.tree
            .sweep(self.kernel.tracked(), |tgid| procs.alive(tgid));
        self.policy
            .forget_gone_trees(self.kernel.enforcement(), &self.tree);
        self.end_orphans();
        if self.resume_sweeps > 0 {
            self.resume_sweeps -= 1;
            if self.resume_sweeps == 0 {
                let left = self.traffic.end_resume();
                if left > 0 {
                    warn!(
                        connections = left,
                        "connections the previous run counted ended without a close event this run could read (lost from the ring, or read by the previous run after its last save): their last bytes are not counted"
                    );
                }
            }
        }
    }

    /// Ends connections the kernel can no longer close: without sock_ops
    /// state callbacks (an older kernel, or a socket adopted by user space)
    /// a connection ends at its last FIN or RST packet, and one that dies
    /// without them (a SYN never answered) would stay open forever. Once its
    /// process has been gone for two sweeps in a row, it ends here with the
    /// counts it has.
    fn end_orphans(&mut self) {
        let gone: Vec<(u64, Conn)> = self
            .kernel
            .conns()
            .into_iter()
            .filter(|(_, c)| c.flags & conn_flags::STATE_CB == 0 && !self.procs.alive(c.tgid))
            .collect();
        let strikes: HashSet<u64> = gone.iter().map(|(sock, _)| *sock).collect();
        for (sock, conn) in gone {
            if self.orphans.contains(&sock) {
                self.end_conn(sock, conn);
            }
        }
        self.orphans = strikes;
    }

    /// Looks for TLS libraries in every tracked process (rate-limited).
    fn probe_all(&mut self) {
        for pid in self.tree.pids() {
            let (tls, kernel) = (&mut self.tls, &mut self.kernel);
            probe_tls(tls, kernel, &self.tree, &self.procs, pid);
        }
    }

    /// Detaches every TLS probe and waits until they are gone: uprobes
    /// take long to unregister, and a stop should not wait for them one by
    /// one in the kernel's exit path.
    pub fn shutdown(&mut self) {
        self.refresh();
        self.save();
        self.tls.detach_all(self.kernel.probes());
        let n = self.kernel.detached_len();
        if n > 0 {
            // About 100 ms each: see `kernel/closer.rs`.
            tracing::info!(probes = n, "detaching TLS probes before exit");
        }
        self.kernel.finish_detaching();
        self.kernel.release_hooks();
    }

    /// Counts ring-buffer records the decoder could not read.
    pub fn undecoded(&self, n: u64) {
        self.metrics.events_undecoded.inc_by(n);
    }
}

impl<K, P> Snapshots for State<K, P>
where
    K: KernelPort + Send + 'static,
    K::Link: Send,
    P: ProcSource + Send + 'static,
{
    /// Refreshes, then takes what `agentmon top` shows.
    fn snapshot(&mut self) -> Snapshot {
        self.refresh();
        snapshot::build(&self.metrics, unix_ms(SystemTime::now()), self.started_ms)
    }
}

impl<K, P> Scrape for State<K, P>
where
    K: KernelPort + Send + 'static,
    K::Link: Send,
    P: ProcSource + Send + 'static,
{
    /// Refreshes and renders the exposition.
    fn scrape(&mut self) -> prometheus::Result<String> {
        self.refresh();
        // Saved before it is served: a restart continues from at least
        // what Prometheus saw, never below it (see `saved.rs`).
        self.save();
        self.metrics.encode()
    }
}

/// The labeler the traffic module calls when a connection's labels are
/// decided: enrichment, the overflow counter when the cap bites, and the
/// policy's verdict.
fn labeler<'a>(
    enricher: &'a mut Enricher,
    metrics: &'a Metrics,
    catalog: &'a Catalog,
    policy: &'a mut PolicyState,
    tree: &'a Tree,
    now: Instant,
) -> impl FnMut(&Subject<'_>, &mut Names) -> Dest + 'a {
    move |subject, names| {
        let tool = subject.proc.tool;
        let (dest, labelled) = enricher.label(tool, subject.proc.root, &subject.remote, names, now);
        policy.labelled(subject, names, &dest, &labelled, tree, catalog, metrics);
        if labelled.overflow {
            metrics
                .dest_overflow
                .with_label_values(&[catalog.name(tool)])
                .inc();
        }
        if labelled.network_overflow {
            metrics
                .dest_network_overflow
                .with_label_values(&[catalog.name(tool)])
                .inc();
        }
        dest
    }
}

/// A process source for a process whose /proc entry no longer describes
/// the exec being judged; the file system behind it still does.
struct Gone<'a>(&'a dyn ProcSource);

impl ProcSource for Gone<'_> {
    fn pids(&self) -> std::io::Result<Vec<u32>> {
        Ok(Vec::new())
    }
    fn read(&self, _pid: u32, _env_names: &[String]) -> Option<crate::procfs::ProcInfo> {
        None
    }
    fn resolve(&self, path: &str) -> Option<std::path::PathBuf> {
        self.0.resolve(path)
    }
}

/// Refreshes and sweeps every few seconds (the GeoIP reload interval, or
/// the connection log's interim interval if shorter; at most a minute), so
/// flows of processes that exit are read, logged and released even when
/// nobody scrapes, interim records go out, and new GeoIP files are picked up.
///
/// A file the policy imported an allowlist from that changed asks for a
/// reload through `reload` (what SIGHUP does), once per change.
pub async fn housekeeping<K: KernelPort, P: ProcSource>(
    state: Shared<K, P>,
    every_seconds: u64,
    reload: Arc<tokio::sync::Notify>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_seconds.clamp(1, 60)));
    loop {
        tick.tick().await;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.refresh();
        state.write_interim();
        state.sweep();
        state.save();
        if state.policy.imports_to_reload() {
            info!(
                "a file the egress policy imports an allowlist from changed: reloading the config"
            );
            reload.notify_one();
        }
    }
}

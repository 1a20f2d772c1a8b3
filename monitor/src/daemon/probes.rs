//! The router's TLS probe and socket adoption steps, and the TLS gauges.

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Notify;
use tracing::{info, warn};

use super::KernelPort;
use crate::{
    agents::{Catalog, ToolId},
    clock::monotonic_ns,
    metrics::Metrics,
    procfs::ProcSource,
    traffic::Traffic,
    tree::Tree,
    uprobes::{Searcher, TlsLib, TlsProbes, proc_root, search::Searched},
};

/// How long no probe must have been attached before old ones are closed,
/// and how many may wait regardless.
pub const DETACH_QUIET: Duration = Duration::from_secs(2);
pub const MAX_DETACHED: usize = 4096;

/// Looks at the TLS libraries a tracked process maps (rate-limited).
pub fn probe_tls<K: KernelPort>(
    tls: &mut TlsProbes<K::Link>,
    kernel: &mut K,
    tree: &Tree,
    procs: &dyn ProcSource,
    pid: u32,
) {
    let Some(proc) = tree.get(pid) else { return };
    let now = Instant::now();
    if !kernel.features().uprobes || !tls.due(pid, now) {
        return;
    }
    let Some(maps) = procs.maps(pid) else {
        return;
    };
    let exe = Path::new(&proc.exe);
    tls.scan(pid, &maps, Some(exe), &proc_root(pid), kernel.probes(), now);
}

/// Probes the TLS libraries a tracked process just exec'd will link, before
/// it maps them.
pub fn expect_tls<K: KernelPort>(
    tls: &mut TlsProbes<K::Link>,
    kernel: &mut K,
    tree: &Tree,
    pid: u32,
) {
    let Some(proc) = tree.get(pid) else { return };
    if kernel.features().uprobes {
        let exe = Path::new(&proc.exe);
        tls.expect(pid, exe, &proc_root(pid), kernel.probes());
    }
}

/// Counts the sockets process `pid` already has from now on (see
/// `kernel::adopt`); its connected TCP sockets join the traffic table.
pub fn adopt_sockets<K: KernelPort>(kernel: &mut K, traffic: &mut Traffic, tree: &Tree, pid: u32) {
    let Some(proc) = tree.get(pid) else { return };
    let (adopted, summary) = kernel.adopt(pid, proc.tool, monotonic_ns());
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
pub fn set_tls_gauges<L>(
    metrics: &Metrics,
    catalog: &Catalog,
    tree: &Tree,
    tls: &TlsProbes<L>,
    ready: bool,
) {
    metrics.tls_coverage.reset();
    let mut plaintext: HashMap<ToolId, BTreeSet<TlsLib>> = HashMap::new();
    let mut tools = BTreeSet::new();
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
                        .with_label_values(&[name, lib.label(), "plaintext"])
                        .set(1);
                }
            }
            // No probe: TLS 1.3 sizes come from the records.
            _ => metrics
                .tls_coverage
                .with_label_values(&[name, TlsLib::Record.label(), "derived"])
                .set(1),
        }
    }
    let attached = tls.attached();
    for lib in TlsLib::ALL {
        let n = attached.get(&lib).copied().unwrap_or(0);
        metrics
            .uprobes_attached
            .with_label_values(&[lib.label()])
            .set(n as i64);
    }
}

impl<K: KernelPort, P: ProcSource> super::State<K, P> {
    /// Keeps the TLS probe points found in the state folder `dir` for the
    /// next run, and uses those earlier runs kept there: call before the
    /// first scan, so agents already running are not searched again.
    pub fn keep_tls_plans_in(&mut self, dir: &Path) {
        self.tls.keep_plans_in(dir);
    }

    /// Searches files for TLS probe points with `searcher` (a thread of
    /// their own) from now on; each result goes to [`State::tls_searched`].
    pub fn search_tls_with(&mut self, searcher: Searcher) {
        self.tls.search_with(searcher);
    }

    /// A search [`State::search_tls_with`] started has ended.
    pub fn tls_searched(&mut self, done: Searched) {
        self.tls.searched(done, self.kernel.probes());
    }

    /// Looks at the libraries of the processes in their first seconds
    /// (see [`crate::uprobes::YOUNG`]; each at most every `RESCAN`).
    /// Returns whether there were any.
    pub fn probe_young(&mut self) -> bool {
        let young = self.tls.young(Instant::now());
        for &pid in &young {
            probe_tls(
                &mut self.tls,
                &mut self.kernel,
                &self.tree,
                &self.procs,
                pid,
            );
        }
        !young.is_empty()
    }
}

/// Calls [`State::probe_young`] ten times a second while there are young
/// processes; without any, it sleeps until one comes (an idle agentmon
/// does not wake).
pub async fn watch_young<K: KernelPort, P: ProcSource>(state: super::Shared<K, P>) {
    let notify = Arc::new(Notify::new());
    lock(&state).tls.notify_young(notify.clone());
    loop {
        if lock(&state).probe_young() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            notify.notified().await;
        }
    }
}

fn lock<K: KernelPort, P: ProcSource>(
    state: &super::Shared<K, P>,
) -> std::sync::MutexGuard<'_, super::State<K, P>> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

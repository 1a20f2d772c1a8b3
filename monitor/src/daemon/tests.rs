//! The event router with a fake kernel and a fake /proc: what each kernel
//! event does to the trees, the kernel's maps, the metrics and the log.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    num::NonZeroU32,
    path::Path,
};

use monitor_common::{
    AF_INET, Conn, TOOL_PENDING, Tracked, UdpFlow, UdpKey, conn_flags, origin, tls_lib,
};

use super::*;
use crate::{
    agents::ToolId,
    dest::{BUILTIN_CATALOG, BUILTIN_PATHS, Catalog as DestCatalog, PathCatalog},
    geoip::GeoIp,
    kernel::{
        Features, ProbeAt,
        adopt::{Adopted, Summary},
    },
    procfs::ProcInfo,
    traffic::KernelCounters,
    tree::TrackedMap,
    uprobes::{Attacher, ProbeError, TlsLib},
};

const CLAUDE: &str = "/home/u/.local/share/claude/versions/2.1.0";

#[derive(Default)]
struct FakeKernel {
    tracked: BTreeMap<u32, Tracked>,
    conns: HashMap<u64, Conn>,
    flows: HashMap<UdpKey, UdpFlow>,
    resolved: HashMap<u64, u32>,
    counters: HashMap<u32, u64>,
    /// Sockets of a process that adoption finds (pid -> connections).
    open_sockets: HashMap<u32, Vec<Adopted>>,
}

impl TrackedMap for FakeKernel {
    fn set(&mut self, tgid: u32, value: Tracked) {
        self.tracked.insert(tgid, value);
    }
    fn remove(&mut self, tgid: u32) {
        self.tracked.remove(&tgid);
    }
    fn tgids(&self) -> Vec<u32> {
        self.tracked.keys().copied().collect()
    }
    fn get(&self, tgid: u32) -> Option<Tracked> {
        self.tracked.get(&tgid).copied()
    }
}

impl KernelCounters for FakeKernel {
    fn conn(&self, sock: u64) -> Option<Conn> {
        self.conns.get(&sock).copied()
    }
    fn flows(&self) -> Vec<(UdpKey, UdpFlow)> {
        self.flows.iter().map(|(k, v)| (*k, *v)).collect()
    }
    fn remove_flow(&mut self, key: &UdpKey) {
        self.flows.remove(key);
    }
}

impl Attacher for FakeKernel {
    type Link = ();
    fn attach(
        &mut self,
        _: &'static str,
        _: &Path,
        _: &ProbeAt,
        _: TlsLib,
        _: Option<NonZeroU32>,
    ) -> Result<(), ProbeError> {
        Ok(())
    }
    fn detach(&mut self, _: &str, _: ()) {}
}

impl KernelPort for FakeKernel {
    type Link = ();
    fn features(&self) -> Features {
        // No uprobes: the router must not read libraries off this machine.
        Features {
            sock_ops: true,
            tls_tie: true,
            uprobes: false,
            exec_args: true,
            rx_tie: false,
        }
    }
    fn programs_attached(&self) -> usize {
        7
    }
    fn tracked(&mut self) -> &mut dyn TrackedMap {
        self
    }
    fn counters(&mut self) -> &mut dyn KernelCounters {
        self
    }
    fn counter(&self, index: u32) -> u64 {
        self.counters.get(&index).copied().unwrap_or(0)
    }
    fn resolve(&mut self, sock: u64, tool: ToolId) {
        self.resolved.insert(sock, tool);
    }
    fn unresolve(&mut self, sock: u64) {
        self.resolved.remove(&sock);
    }
    fn conns(&self) -> Vec<(u64, Conn)> {
        self.conns.iter().map(|(k, v)| (*k, *v)).collect()
    }
    fn forget_conn(&mut self, sock: u64) {
        self.conns.remove(&sock);
    }
    fn forget_flow(&mut self, key: &UdpKey) {
        self.flows.remove(key);
    }
    fn adopt(&mut self, pid: u32, _: ToolId, _: u64) -> (Vec<Adopted>, Summary) {
        let found = self.open_sockets.remove(&pid).unwrap_or_default();
        for a in &found {
            self.conns.insert(a.sock, a.conn);
        }
        let summary = Summary {
            sockets: found.len(),
            failed: 0,
        };
        (found, summary)
    }
    fn probes(&mut self) -> &mut dyn Attacher<Link = ()> {
        self
    }
    fn detached_len(&self) -> usize {
        0
    }
    fn close_detached(&mut self) {}
    fn finish_detaching(&mut self) {}
}

#[derive(Default)]
struct FakeProc {
    procs: Vec<ProcInfo>,
    gone: HashSet<u32>,
}

impl FakeProc {
    fn add(&mut self, pid: u32, ppid: u32, exe: &str) {
        self.procs.push(ProcInfo {
            pid,
            ppid,
            exe: Some(exe.into()),
            argv: vec![exe.to_owned()],
            ..ProcInfo::default()
        });
    }
}

impl ProcSource for FakeProc {
    fn pids(&self) -> std::io::Result<Vec<u32>> {
        Ok(self.procs.iter().map(|p| p.pid).collect())
    }
    fn read(&self, pid: u32, _: &[String]) -> Option<ProcInfo> {
        if self.gone.contains(&pid) {
            return None;
        }
        self.procs.iter().find(|p| p.pid == pid).cloned()
    }
}

fn state(kernel: FakeKernel, procs: FakeProc) -> State<FakeKernel, FakeProc> {
    let enricher = Enricher::new(
        DestCatalog::new(BUILTIN_CATALOG, &[]).unwrap(),
        PathCatalog::new(BUILTIN_PATHS, &[]).unwrap(),
        &Default::default(),
        GeoIp::open(None, None),
    );
    State::new(
        kernel,
        Catalog::builtin(),
        enricher,
        Metrics::new().unwrap(),
        None,
        procs,
    )
}

/// The exposition's value of the series whose line starts with `series`
/// (name and labels in the exposition's order).
fn value(s: &mut State<FakeKernel, FakeProc>, series: &str) -> Option<f64> {
    let text = s.scrape().unwrap();
    text.lines()
        .filter(|l| l.starts_with(series))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .reduce(|a, b| a + b)
}

fn conn(tgid: u32, tool: u32, tx: u64, rx: u64) -> Conn {
    Conn {
        tgid,
        tool,
        start_ns: monotonic_ns(),
        tx_bytes: tx,
        rx_bytes: rx,
        raddr: [203, 0, 113, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        laddr: [203, 0, 113, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        rport: 443,
        lport: 40000,
        family: AF_INET,
        origin: origin::CONNECT,
        flags: conn_flags::STATE_CB,
        ..Conn::default()
    }
}

/// Process `tgid` sends a ClientHello for api.model.test on `sock`.
fn client_hello(s: &mut State<FakeKernel, FakeProc>, tgid: u32, sock: u64) {
    s.handle(
        Event::Payload {
            tgid,
            sock,
            kind: PayloadKind::FirstBytes,
            marks: [0; 2],
            data: include_bytes!("../dest/testdata/openssl_s_client.bin").to_vec(),
        },
        false,
    );
}

/// The kernel reports `sock` closed with `conn`'s final counts.
fn close(s: &mut State<FakeKernel, FakeProc>, sock: u64, conn: Conn) {
    s.kernel.conns.remove(&sock);
    s.handle(
        Event::ConnClose {
            sock,
            conn,
            ktime_ns: monotonic_ns(),
        },
        false,
    );
}

fn exec(s: &mut State<FakeKernel, FakeProc>, tgid: u32) {
    s.kernel.tracked.insert(
        tgid,
        Tracked {
            tool: TOOL_PENDING,
            root_tgid: tgid,
        },
    );
    s.handle(
        Event::Exec {
            tgid,
            untracked: true,
            filename: String::new(),
            argv: Vec::new(),
            exe_ino: None,
        },
        false,
    );
}

const CODEX: &str = "/usr/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex-x86_64-unknown-linux-musl";

/// Claude Code execs Codex before agentmon reads its first exec, and the
/// second exec's event comes in a later batch: /proc shows Codex's file
/// (inode 2) where the kernel loaded Claude Code's (inode 1), so the first
/// exec is judged by its own record: the process is Claude Code's until
/// the second exec's event is read.
#[test]
fn an_exec_read_after_the_process_execd_again_is_judged_by_its_own_record() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CODEX);
    procs.procs[0].exe_ino = Some(2);
    let mut s = state(FakeKernel::default(), procs);
    s.kernel.tracked.insert(
        10,
        Tracked {
            tool: TOOL_PENDING,
            root_tgid: 10,
        },
    );
    let exec_of = |filename: &str, ino: u64, untracked: bool| Event::Exec {
        tgid: 10,
        untracked,
        filename: filename.into(),
        argv: vec![filename.into()],
        exe_ino: Some(ino),
    };
    s.handle(exec_of(CLAUDE, 1, true), false);
    let claude = s.catalog.id("claude-code").unwrap();
    assert_eq!(s.tree.get(10).map(|p| p.tool), Some(claude));
    s.handle(exec_of(CODEX, 2, false), false);
    let codex = s.catalog.id("codex").unwrap();
    assert_eq!(s.tree.get(10).map(|p| p.tool), Some(codex));
    assert_eq!(s.kernel.tracked[&10].tool, codex);
}

/// The egress series of the connection to api.model.test (its registrable
/// domain, as nothing in the built-in catalog names it).
const EGRESS: &str = "agentmon_egress_bytes_total{dest=\"model.test\"";

#[test]
fn an_agent_connection_is_named_by_its_client_hello_and_counted_to_its_close() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CLAUDE);
    let mut s = state(FakeKernel::default(), procs);
    exec(&mut s, 10);
    let claude = s.catalog.id("claude-code").unwrap();
    assert_eq!(s.kernel.tracked[&10].tool, claude);
    let opened = conn(10, claude, 0, 0);
    s.kernel.conns.insert(7, opened);
    s.handle(
        Event::ConnOpen {
            sock: 7,
            conn: opened,
        },
        false,
    );
    client_hello(&mut s, 10, 7);
    // Open: the kernel's counts are read at scrape time.
    s.kernel.conns.get_mut(&7).unwrap().tx_bytes = 500;
    assert_eq!(value(&mut s, EGRESS), Some(500.0));
    // Closed: the last counts, once; no plaintext was seen, so it is TLS
    // no probe covered.
    close(&mut s, 7, conn(10, claude, 1200, 300));
    assert_eq!(value(&mut s, EGRESS), Some(1200.0));
    assert_eq!(
        value(
            &mut s,
            "agentmon_tls_connections_unseen_total{tool=\"claude-code\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn the_policy_judges_what_an_agent_reaches_not_who_reaches_it() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CLAUDE);
    let mut s = state(FakeKernel::default(), procs);
    let text = "[[policy.tool]]\nname = \"claude-code\"\ndefault = \"alert\"\n";
    s.set_policy(
        crate::config::parse(text, Path::new("a.toml"))
            .unwrap()
            .policy,
    );
    exec(&mut s, 10);
    let claude = s.catalog.id("claude-code").unwrap();
    for (sock, origin) in [(7, origin::CONNECT), (8, origin::ACCEPT)] {
        let opened = Conn {
            origin,
            ..conn(10, claude, 0, 0)
        };
        s.kernel.conns.insert(sock, opened);
        s.handle(Event::ConnOpen { sock, conn: opened }, false);
        s.kernel.conns.get_mut(&sock).unwrap().tx_bytes = 517;
        client_hello(&mut s, 10, sock);
    }
    // The connection it opened is a violation, judged at its ClientHello
    // with the bytes sent by then; the one it accepted is not judged.
    let series = "agentmon_policy_violations_total{dest=\"model.test\",rule=\"claude-code:default\",tool=\"claude-code\"}";
    assert_eq!(value(&mut s, series), Some(1.0));
    // No enforcement asked for: the kernel side is left alone.
    assert_eq!(value(&mut s, "agentmon_policy_enforced"), None);
}

#[test]
fn a_plaintext_connection_is_not_counted_as_unseen_tls() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CLAUDE);
    let mut s = state(FakeKernel::default(), procs);
    exec(&mut s, 10);
    let claude = s.catalog.id("claude-code").unwrap();
    let opened = conn(10, claude, 0, 0);
    s.handle(
        Event::ConnOpen {
            sock: 7,
            conn: opened,
        },
        false,
    );
    let tls_seen = Conn {
        tls_lib: tls_lib::OPENSSL,
        tls_tx: 10,
        ..conn(10, claude, 100, 100)
    };
    client_hello(&mut s, 10, 7);
    close(&mut s, 7, tls_seen);
    assert_eq!(
        value(
            &mut s,
            "agentmon_tls_connections_unseen_total{tool=\"claude-code\"}"
        ),
        Some(0.0)
    );
}

#[test]
fn a_pending_process_that_is_no_agent_leaves_its_connection_and_flow_behind() {
    let mut procs = FakeProc::default();
    procs.add(20, 1, "/usr/bin/curl");
    let mut s = state(FakeKernel::default(), procs);
    exec(&mut s, 20);
    assert!(s.kernel.tracked.is_empty(), "not an agent: untracked");
    let opened = conn(20, TOOL_PENDING, 0, 0);
    s.kernel.conns.insert(9, opened);
    s.handle(
        Event::ConnOpen {
            sock: 9,
            conn: opened,
        },
        false,
    );
    assert!(s.kernel.conns.is_empty(), "the kernel stops watching it");
    let key = UdpKey {
        tgid: 20,
        rport: 53,
        family: AF_INET,
        raddr: [192, 0, 2, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    s.kernel.flows.insert(key, UdpFlow::default());
    s.handle(
        Event::UdpFlow {
            key,
            inbound: false,
        },
        false,
    );
    assert!(s.kernel.flows.is_empty());
}

#[test]
fn a_connection_opened_while_pending_gets_its_tool_in_the_kernel() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CLAUDE);
    let mut s = state(FakeKernel::default(), procs);
    exec(&mut s, 10);
    let claude = s.catalog.id("claude-code").unwrap();
    s.handle(
        Event::ConnOpen {
            sock: 3,
            conn: conn(10, TOOL_PENDING, 0, 0),
        },
        false,
    );
    assert_eq!(s.kernel.resolved.get(&3), Some(&claude));
}

#[test]
fn a_connection_the_kernel_cannot_close_ends_after_its_process_is_gone_twice() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CLAUDE);
    let mut s = state(FakeKernel::default(), procs);
    exec(&mut s, 10);
    let claude = s.catalog.id("claude-code").unwrap();
    // Without state callbacks (no sock_ops, or adopted), and no FIN came.
    let stuck = Conn {
        flags: 0,
        ..conn(10, claude, 64, 0)
    };
    s.kernel.conns.insert(5, stuck);
    s.handle(
        Event::ConnOpen {
            sock: 5,
            conn: stuck,
        },
        false,
    );
    s.sweep();
    assert!(s.kernel.conns.contains_key(&5), "its process lives");
    s.procs.gone.insert(10);
    s.sweep();
    assert!(s.kernel.conns.contains_key(&5), "first strike");
    s.sweep();
    assert!(!s.kernel.conns.contains_key(&5), "second strike: ended");
    let line = "agentmon_egress_bytes_total{dest=\"ip\"";
    assert_eq!(value(&mut s, line), Some(64.0));
}

#[test]
fn sockets_an_agent_had_before_it_was_recognised_are_adopted_once() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CLAUDE);
    let mut kernel = FakeKernel::default();
    let claude = Catalog::builtin().id("claude-code").unwrap();
    // Opened two seconds ago: unnamed, it is labelled at the next refresh.
    let old = Conn {
        origin: origin::FIRST_USE,
        flags: 0,
        start_ns: monotonic_ns() - 2_000_000_000,
        ..conn(10, claude, 0, 0)
    };
    kernel.open_sockets.insert(
        10,
        vec![Adopted {
            sock: 11,
            conn: old,
        }],
    );
    let mut s = state(kernel, procs);
    exec(&mut s, 10);
    assert!(s.traffic.is_open(11));
    s.kernel.conns.get_mut(&11).unwrap().tx_bytes = 99;
    let line = "agentmon_egress_bytes_total{dest=\"ip\"";
    assert_eq!(value(&mut s, line), Some(99.0));
}

#[test]
fn records_the_decoder_could_not_read_are_counted() {
    let mut s = state(FakeKernel::default(), FakeProc::default());
    s.undecoded(3);
    assert_eq!(value(&mut s, "agentmon_events_undecoded_total"), Some(3.0));
}

#[test]
fn an_agent_exit_untracks_it() {
    let mut procs = FakeProc::default();
    procs.add(10, 1, CLAUDE);
    let mut s = state(FakeKernel::default(), procs);
    exec(&mut s, 10);
    assert_eq!(
        value(&mut s, "agentmon_agent_processes{tool=\"claude-code\"}"),
        Some(1.0)
    );
    s.handle(Event::Exit { tgid: 10 }, false);
    assert_eq!(
        value(&mut s, "agentmon_agent_processes{tool=\"claude-code\"}"),
        Some(0.0)
    );
}

//! `agentmon run`: load the kernel programs, then serve `/metrics` and the
//! `top` socket until SIGTERM; and the same daemon inside `agentmon top
//! --standalone`, without the endpoints.

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use tracing::{error, info, warn};

use crate::{
    config::{self, Config, Loaded},
    connlog::ConnLog,
    daemon::{self, KernelPort as _, Shared, State},
    enrich::Enricher,
    exporter,
    geoip::GeoIp,
    kernel::{self, Kernel, ring},
    metrics::Metrics,
    procfs::RealProc,
    saved::StateFile,
    service, top,
    uprobes::{self, search::Search},
    web,
};

/// The log target of the daemon's own lines, as when they were in the
/// binary: `journalctl` users and the journal test look for `agentmon:`.
const TARGET: &str = "agentmon";

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/agentmon";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/agentmon/state";

#[derive(clap::Args)]
pub struct RunArgs {
    /// Address for /metrics and /healthz [default: 127.0.0.1:9977, or `listen` in the config].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Config file (TOML); without it the built-in defaults apply.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// TLS and basic authentication for /metrics: a web-config file in the
    /// format Prometheus exporters share (overrides `web_config_file`).
    #[arg(long = "web.config.file", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,
    /// Write the JSON Lines connection log here (overrides `[log] connections`).
    #[arg(long, value_name = "PATH")]
    pub connection_log: Option<PathBuf>,
    /// Keep the kernel maps (and, while running, the hooks) pinned here so
    /// that a restart, even after a crash, goes on counting; `none` to not pin.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    /// Save the exported counters here at every scrape, so that a restart
    /// continues them; `none` to start at zero.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Run as if the kernel lacked these optional features (tests of the
    /// fallbacks on one kernel).
    #[arg(long, value_name = "FEATURE", value_delimiter = ',', hide = true)]
    pub without: Vec<kernel::Feature>,
}

type Daemon = Shared<Kernel, RealProc>;

/// A loaded daemon, not yet reading events.
struct Started {
    state: Daemon,
    ring: ring::Events,
    config: Config,
    /// The capabilities to keep once serving.
    keep: Vec<crate::caps::Need>,
}

/// Loads the programs and builds the daemon's state.
fn start(
    loaded: Loaded,
    pin_dir: Option<&Path>,
    state_dir: Option<&Path>,
    without: &[kernel::Feature],
) -> anyhow::Result<Started> {
    let Loaded {
        config,
        agents: catalog,
        dest: dest_catalog,
        paths,
        policy,
    } = loaded;
    let pre = kernel::preflight()?;
    let mut kernel = Kernel::load(&pre, without, pin_dir, &config.kernel)?;
    let keep = crate::caps::while_running(policy.enforces_any(), kernel.features().uprobes);
    let metrics = Metrics::new().context("cannot register metrics")?;
    metrics
        .build_info
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            env!("AGENTMON_REVISION"),
            &crate::release::running(),
        ])
        .set(1);
    let log = match &config.log.connections {
        Some(path) => Some(
            ConnLog::open(path, config.log.rotate, config.log.interim).with_context(|| {
                format!(
                    "cannot open the connection log {}; fix the path or its permissions",
                    path.display()
                )
            })?,
        ),
        None => None,
    };
    let geoip = GeoIp::from_config(&config.geoip);
    let mut enricher = Enricher::new(dest_catalog, paths, &config.dest, geoip);
    // Paths are kept only for the log; without one they are not read.
    enricher.keep_paths = config.log.paths && log.is_some();
    let ring = kernel.take_events().context("ring buffer already taken")?;
    let mut state = State::new(kernel, catalog, enricher, metrics, log, RealProc::new());
    if let Some(dir) = state_dir {
        state.keep_tls_plans_in(dir);
    }
    state.scan();
    state.set_policy(policy);
    if let Some(dir) = state_dir {
        state.resume(StateFile::new(dir));
    }
    Ok(Started {
        state: Arc::new(Mutex::new(state)),
        ring,
        config,
        keep,
    })
}

/// Searches files for TLS probe points on a thread of their own, one after
/// another, away from the event loop (see `uprobes/search.rs`); each result
/// is handed back under the state's lock. Without that thread, they are
/// searched on the event loop, as before it.
fn search_tls_on_a_thread(state: &Arc<Mutex<State<Kernel, RealProc>>>) {
    let (tx, rx) = std::sync::mpsc::channel::<Box<Search>>();
    let weak = Arc::downgrade(state);
    let worker = std::thread::Builder::new()
        .name("tls-search".into())
        .spawn(move || {
            for search in rx {
                let done = uprobes::search::run(*search);
                let Some(state) = weak.upgrade() else { return };
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                state.tls_searched(done);
            }
        });
    match worker {
        Ok(_) => {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            state.search_tls_with(Box::new(move |search| tx.send(search).map_err(|e| e.0)));
        }
        Err(e) => warn!(
            target: TARGET,
            "cannot start the thread that searches files for TLS probe points ({e}); they are searched on the event loop"
        ),
    }
}

/// Reads kernel events and keeps house until `until` completes (or the
/// event reader fails), then detaches what the daemon attached.
/// Housekeeping notifies `reload` when an imported allowlist changed.
async fn serve(
    started: Started,
    reload: Arc<tokio::sync::Notify>,
    until: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Started {
        state,
        ring,
        config,
        ..
    } = started;
    let reader = state.clone();
    let events = tokio::spawn(ring::read_events(ring, move |batch, undecoded| {
        let mut state = reader.lock().unwrap_or_else(|e| e.into_inner());
        state.undecoded(undecoded);
        state.handle_batch(batch);
    }));
    // Often enough for the interim records too.
    let interim = config.log.interim.map_or(u64::MAX, |d| d.as_secs());
    tokio::spawn(daemon::housekeeping(
        state.clone(),
        config.geoip.reload_seconds.min(interim),
        reload,
    ));
    tokio::spawn(daemon::watch_young(state.clone()));
    tokio::select! {
        () = until => {}
        r = events => {
            let r = r.context("event reader panicked")?;
            r.context("reading kernel events failed")?;
        }
    }
    service::stopping();
    state.lock().unwrap_or_else(|e| e.into_inner()).shutdown();
    info!(target: TARGET, "stopped");
    Ok(())
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let source = config::Source {
        path: args.config.clone(),
        listen: args.listen,
        connection_log: args.connection_log.clone(),
        web_config_file: args.web_config_file.clone(),
    };
    let loaded = source.load()?;
    let config = loaded.config.clone();
    // Bind first: a taken port is the quickest thing to report.
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; choose another address with --listen or `listen` in the config",
            config.listen
        )
    })?;
    listener.set_nonblocking(true)?;
    // Before the kernel work too: a bad web config is a config error.
    let web = config
        .web_config_file
        .as_deref()
        .map(web::Watched::load)
        .transpose()?;
    let pin_dir = Some(args.pin_dir.as_path()).filter(|p| *p != Path::new("none"));
    let state_dir = Some(args.state_dir.as_path()).filter(|p| *p != Path::new("none"));
    let started = start(loaded, pin_dir, state_dir, &args.without)?;
    let keep = started.keep.clone();
    let state = started.state.clone();
    // What a reload compares the new config with.
    let running = config.clone();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Before /healthz answers: SIGHUP's default action is to exit.
        let reload = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(on_hangup(
            hangups()?,
            reload.clone(),
            state.clone(),
            source,
            running,
        ));
        if let Some(socket) = top::socket::bind(&config.top) {
            tokio::spawn(top::socket::serve(socket, state.clone()));
        }
        // Everything that needed more is done, and no other thread runs yet.
        drop_capabilities(&keep);
        // Capabilities are per thread: started after the drop, it holds
        // only what the daemon kept (least_privilege.rs checks each thread).
        search_tls_on_a_thread(&state);
        let listener = tokio::net::TcpListener::from_std(listener)?;
        info!(target: TARGET, listen = %config.listen, "serving /metrics and /healthz");
        if let Some(every) = service::watchdog_interval() {
            tokio::spawn(watchdog(state.clone(), every));
        }
        let server = web::serve(listener, exporter::router(state), web, shutdown());
        // The listener is bound and the programs attached: scrapes queue
        // until the server polls them, which starts right here.
        service::ready(&format!("serving /metrics on {}", config.listen));
        serve(started, reload, server).await
    })
}

/// Keeps only the capabilities agentmon needs while it runs (README
/// "Capabilities"); one line says which. A failure costs a warning: the
/// daemon goes on with what it had.
fn drop_capabilities(keep: &[crate::caps::Need]) {
    match crate::caps::keep_only(keep) {
        Ok(kept) => info!(
            target: TARGET,
            kept = %crate::caps::set_names(&kept),
            "dropped every capability but those needed while running"
        ),
        Err(e) => warn!(
            target: TARGET,
            "cannot drop capabilities ({e}); running on with those it started with"
        ),
    }
}

/// `agentmon top --standalone`: the daemon in a thread of this process,
/// with no endpoint, no pins, no saved state and no logs of its own (a
/// running agentmon keeps writing those); returns how to take a snapshot.
pub fn standalone(
    config: Option<PathBuf>,
) -> anyhow::Result<impl FnMut() -> anyhow::Result<top::snapshot::Snapshot>> {
    let mut loaded = config::Source {
        path: config,
        ..Default::default()
    }
    .load()?;
    loaded.config.log.connections = None;
    loaded.policy.violations_log = None;
    let started = start(loaded, None, None, &[])?;
    let state = started.state.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    std::thread::Builder::new()
        .name("agentmon".to_owned())
        .spawn(move || {
            // Runs until the process exits, which detaches everything.
            if let Err(e) = runtime.block_on(serve(started, Arc::default(), std::future::pending()))
            {
                error!(target: TARGET, "{e:#}");
            }
        })?;
    Ok(move || {
        use top::socket::Snapshots as _;
        Ok(state.lock().unwrap_or_else(|e| e.into_inner()).snapshot())
    })
}
/// Pings systemd's watchdog while the daemon's state can be locked: a
/// wedged event loop stops the pings and systemd restarts the service.
async fn watchdog<K, P>(state: Shared<K, P>, every: std::time::Duration)
where
    K: daemon::KernelPort,
    P: crate::procfs::ProcSource,
{
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        drop(state.lock().unwrap_or_else(|e| e.into_inner()));
        service::ping();
    }
}

fn hangups() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")
}

/// SIGHUP (`systemctl reload`, logrotate's postrotate): reads the config
/// and its catalogs again and reopens the logs. A config that does not load
/// leaves the running one as it was, and says why.
async fn on_hangup<K, P>(
    mut hangups: tokio::signal::unix::Signal,
    // Housekeeping's ask: an imported allowlist changed.
    reload: Arc<tokio::sync::Notify>,
    state: Shared<K, P>,
    source: config::Source,
    running: Config,
) where
    K: daemon::KernelPort,
    P: crate::procfs::ProcSource,
{
    loop {
        tokio::select! {
            signal = hangups.recv() => match signal {
                Some(()) => info!(target: TARGET, "SIGHUP: reloading"),
                None => return,
            },
            () = reload.notified() => {}
        }
        service::reloading();
        let loaded = source.load();
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(loaded) => state.reload(loaded, &running),
            Err(e) => warn!(target: TARGET, "config not reloaded, keeping the running one: {e}"),
        }
        state.reopen_logs();
        drop(state);
        service::reloaded("reloaded");
    }
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!(target: TARGET, "cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

//! The `agentmon` command line.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use monitor::{
    agents::Catalog,
    config::{self, Config},
    connlog::ConnLog,
    daemon::{self, State},
    dest::{
        BUILTIN_CATALOG as BUILTIN_DEST_CATALOG, BUILTIN_PATHS, Catalog as DestCatalog, PathCatalog,
    },
    enrich::Enricher,
    exporter,
    geoip::GeoIp,
    kernel::{self, Kernel, ring},
    metrics::Metrics,
    procfs::RealProc,
    saved::StateFile,
    service,
};
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "agentmon",
    version,
    about = "Shows where AI coding agents send data (eBPF)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load the kernel programs and serve /metrics (needs root, or the capabilities in the README).
    Run(RunArgs),
    /// Detach agentmon's programs and drop the maps it keeps in bpffs for
    /// restarts (what removing the package does).
    Unpin {
        /// The pin directory of the `agentmon run` to undo.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Check a config file and print the tools it would recognise.
    CheckConfig {
        /// The config file (TOML).
        path: PathBuf,
    },
}

const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/agentmon";
const DEFAULT_STATE_DIR: &str = "/var/lib/agentmon/state";

#[derive(clap::Args)]
struct RunArgs {
    /// Address for /metrics and /healthz [default: 127.0.0.1:9977, or `listen` in the config].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Config file (TOML); without it the built-in defaults apply.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Write one JSON line per closed agent connection here (overrides `[log] connections`).
    #[arg(long, value_name = "PATH")]
    connection_log: Option<PathBuf>,
    /// Keep the kernel maps (and, while running, the hooks) pinned here so
    /// that a restart, even after a crash, goes on counting; `none` to not pin.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Save the exported counters here at every scrape, so that a restart
    /// continues them (see `saved.rs`); `none` to start at zero.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Run as if the kernel lacked these optional features (tests of the
    /// fallbacks on one kernel).
    #[arg(long, value_name = "FEATURE", value_delimiter = ',', hide = true)]
    without: Vec<kernel::Feature>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENTMON_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig { path } => check_config(&path),
        Command::Unpin { pin_dir } => kernel::pins::unpin_all(&pin_dir)
            .with_context(|| format!("cannot remove {}", pin_dir.display())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what is wrong and what to do, with every cause.
            eprintln!("agentmon: error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// A configuration problem: retrying cannot help, so it gets its own exit
/// code (the unit's `RestartPreventExitStatus=`).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct BadConfig(anyhow::Error);

/// sysexits.h codes where retrying cannot help: 78 (EX_CONFIG) for the
/// config, 77 (EX_NOPERM) for missing capabilities; 1 otherwise.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<BadConfig>().is_some() {
        78
    } else if let Some(kernel::LoadError::MissingCaps(_)) = e.downcast_ref() {
        77
    } else {
        1
    }
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let config = config::load(path)?;
    let catalog = Catalog::with_config(&config.agents)?;
    println!(
        "{}: ok; listen {}; tools: {}",
        path.display(),
        config.listen,
        catalog.names().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => config::load(path).map_err(|e| BadConfig(e.into()))?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(path) = args.connection_log {
        config.connection_log = Some(path);
    }
    let catalog = Catalog::with_config(&config.agents).map_err(|e| BadConfig(e.into()))?;
    // Bind first: a taken port is the quickest thing to report.
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; choose another address with --listen or `listen` in the config",
            config.listen
        )
    })?;
    listener.set_nonblocking(true)?;

    let pre = kernel::preflight()?;
    let pin_dir = Some(args.pin_dir.as_path()).filter(|p| *p != std::path::Path::new("none"));
    let kernel = Kernel::load(&pre, &args.without, pin_dir)?;
    let metrics = Metrics::new().context("cannot register metrics")?;
    metrics
        .build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), &kernel_release()])
        .set(1);
    let log = match &config.connection_log {
        Some(path) => Some(ConnLog::open(path).with_context(|| {
            format!(
                "cannot open the connection log {}; fix the path or its permissions",
                path.display()
            )
        })?),
        None => None,
    };
    let dest_catalog = DestCatalog::new(BUILTIN_DEST_CATALOG, &config.dest.entry)
        .map_err(|e| BadConfig(e.into()))?;
    let geoip = GeoIp::open(Some(&config.geoip.country), Some(&config.geoip.asn));
    let paths =
        PathCatalog::new(BUILTIN_PATHS, &config.dest.path).map_err(|e| BadConfig(e.into()))?;
    let mut enricher = Enricher::new(dest_catalog, paths, config.dest.max_per_tool, geoip);
    // Paths are kept only for the log; without one they are not read.
    enricher.keep_paths = config.log_paths && log.is_some();
    let mut kernel = kernel;
    let ring = kernel.take_events().context("ring buffer already taken")?;
    let mut state = State::new(kernel, catalog, enricher, metrics, log, RealProc::new());
    state.scan();
    if args.state_dir != std::path::Path::new("none") {
        state.resume(StateFile::new(&args.state_dir));
    }
    let state = Arc::new(Mutex::new(state));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        info!(listen = %config.listen, "serving /metrics and /healthz");
        let reader = state.clone();
        let events = tokio::spawn(ring::read_events(ring, move |batch, undecoded| {
            let mut state = reader.lock().unwrap_or_else(|e| e.into_inner());
            state.undecoded(undecoded);
            state.handle_batch(batch);
        }));
        tokio::spawn(daemon::housekeeping(
            state.clone(),
            config.geoip.reload_seconds,
        ));
        if let Some(every) = service::watchdog_interval() {
            tokio::spawn(watchdog(state.clone(), every));
        }
        let stopping = state.clone();
        let server =
            axum::serve(listener, exporter::router(state)).with_graceful_shutdown(shutdown());
        // The listener is bound and the programs attached: scrapes queue
        // until the server polls them, which starts right here.
        service::ready(&format!("serving /metrics on {}", config.listen));
        tokio::select! {
            r = server => r.context("HTTP server failed")?,
            r = events => {
                let r = r.context("event reader panicked")?;
                r.context("reading kernel events failed")?;
            }
        }
        service::stopping();
        stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown();
        info!("stopped");
        anyhow::Ok(())
    })
}

/// Pings systemd's watchdog while the daemon's state can be locked: a
/// wedged event loop stops the pings and systemd restarts the service.
async fn watchdog<K, P>(state: daemon::Shared<K, P>, every: std::time::Duration)
where
    K: daemon::KernelPort,
    P: monitor::procfs::ProcSource,
{
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        drop(state.lock().unwrap_or_else(|e| e.into_inner()));
        service::ping();
    }
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

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
    daemon::{self, Shared, State},
    dest::{
        BUILTIN_CATALOG as BUILTIN_DEST_CATALOG, BUILTIN_PATHS, Catalog as DestCatalog, PathCatalog,
    },
    enrich::Enricher,
    exporter,
    geoip::GeoIp,
    kernel::{self, Kernel, ring},
    logging,
    metrics::Metrics,
    procfs::RealProc,
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
    /// Load the kernel programs and serve /metrics (needs root).
    Run(RunArgs),
    /// Check a config file and print the tools it would recognise.
    CheckConfig {
        /// The config file (TOML).
        path: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address for /metrics and /healthz [default: 127.0.0.1:9977, or `listen` in the config].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Config file (TOML); without it the built-in defaults apply.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Write the JSON Lines connection log here (overrides `[log] connections`).
    #[arg(long, value_name = "PATH")]
    connection_log: Option<PathBuf>,
    /// Run as if the kernel lacked these optional features (tests of the
    /// fallbacks on one kernel).
    #[arg(long, value_name = "FEATURE", value_delimiter = ',', hide = true)]
    without: Vec<kernel::Feature>,
}

fn main() -> ExitCode {
    logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig { path } => check_config(&path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what is wrong and what to do, with every cause.
            eprintln!("{}agentmon: error: {e:#}", logging::error_prefix());
            ExitCode::FAILURE
        }
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
        Some(path) => config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(path) = args.connection_log {
        config.log.connections = Some(path);
    }
    let catalog = Catalog::with_config(&config.agents)?;
    // Bind first: a taken port is the quickest thing to report.
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; choose another address with --listen or `listen` in the config",
            config.listen
        )
    })?;
    listener.set_nonblocking(true)?;

    let pre = kernel::preflight()?;
    let kernel = Kernel::load(&pre, &args.without)?;
    let metrics = Metrics::new().context("cannot register metrics")?;
    metrics
        .build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), &kernel_release()])
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
    let dest_catalog = DestCatalog::new(BUILTIN_DEST_CATALOG, &config.dest.entry)?;
    let geoip = GeoIp::open(Some(&config.geoip.country), Some(&config.geoip.asn));
    let paths = PathCatalog::new(BUILTIN_PATHS, &config.dest.path)?;
    let mut enricher = Enricher::new(dest_catalog, paths, config.dest.max_per_tool, geoip);
    // Paths are kept only for the log; without one they are not read.
    enricher.keep_paths = config.log.paths && log.is_some();
    let mut kernel = kernel;
    let ring = kernel.take_events().context("ring buffer already taken")?;
    let mut state = State::new(kernel, catalog, enricher, metrics, log, RealProc::new());
    state.scan();
    let state = Arc::new(Mutex::new(state));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Before /healthz answers: SIGHUP's default action is to exit.
        tokio::spawn(on_hangup(hangups()?, state.clone()));
        let listener = tokio::net::TcpListener::from_std(listener)?;
        info!(listen = %config.listen, "serving /metrics and /healthz");
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
        ));
        let stopping = state.clone();
        let server =
            axum::serve(listener, exporter::router(state)).with_graceful_shutdown(shutdown());
        tokio::select! {
            r = server => r.context("HTTP server failed")?,
            r = events => {
                let r = r.context("event reader panicked")?;
                r.context("reading kernel events failed")?;
            }
        }
        stopping
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown();
        info!("stopped");
        anyhow::Ok(())
    })
}

fn hangups() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")
}

/// SIGHUP (`systemctl reload`, logrotate's postrotate): reopens the logs.
async fn on_hangup<K, P>(mut hangups: tokio::signal::unix::Signal, state: Shared<K, P>)
where
    K: daemon::KernelPort,
    P: monitor::procfs::ProcSource,
{
    while hangups.recv().await.is_some() {
        info!("SIGHUP: reloading");
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.reopen_logs();
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

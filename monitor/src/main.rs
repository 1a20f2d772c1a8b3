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
    config::{self, Loaded},
    connlog::ConnLog,
    daemon::{self, State},
    enrich::Enricher,
    exporter,
    geoip::GeoIp,
    kernel::{self, Kernel, ring},
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
    /// Check whether agentmon can run here, and say what to fix (exit 0: it
    /// can; 77: capabilities missing; 78: config error; 1: anything else).
    Doctor(DoctorArgs),
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// Config file (TOML) [default: /etc/agentmon/config.toml if it exists, else the built-in defaults].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print a JSON document (schema version, then every check) instead of a table.
    #[arg(long)]
    json: bool,
}

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
        Command::Doctor(args) => return doctor(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what is wrong and what to do, with every cause.
            eprintln!("agentmon: error: {e:#}");
            // A bad config stays bad until someone edits it: a code of its
            // own lets systemd stop restarting (RestartPreventExitStatus=).
            if e.downcast_ref::<config::ConfigError>().is_some() {
                ExitCode::from(monitor::exit::CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = config::load(path)?;
    println!(
        "{}: ok; listen {}; tools: {}",
        path.display(),
        loaded.config.listen,
        loaded.agents.names().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn doctor(args: &DoctorArgs) -> ExitCode {
    let checks = monitor::doctor::run(&monitor::doctor::Options {
        config: args.config.clone(),
    });
    let text = if args.json {
        monitor::doctor::json(&checks)
    } else {
        monitor::doctor::table(&checks)
    };
    print!("{text}");
    ExitCode::from(monitor::doctor::exit_code(&checks))
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let source = config::Source {
        path: args.config.clone(),
        listen: args.listen,
        connection_log: args.connection_log.clone(),
    };
    let Loaded {
        config,
        agents: catalog,
        dest: dest_catalog,
        paths,
    } = source.load()?;
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
        .with_label_values(&[env!("CARGO_PKG_VERSION"), &monitor::release::running()])
        .set(1);
    let log = match &config.log.connections {
        Some(path) => Some(ConnLog::open(path).with_context(|| {
            format!(
                "cannot open the connection log {}; fix the path or its permissions",
                path.display()
            )
        })?),
        None => None,
    };
    let geoip = GeoIp::open(Some(&config.geoip.country), Some(&config.geoip.asn));
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

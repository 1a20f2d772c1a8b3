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
    daemon::{self, Shared, State},
    enrich::Enricher,
    exporter,
    geoip::GeoIp,
    kernel::{self, Kernel, ring},
    logging,
    metrics::Metrics,
    procfs::RealProc,
    saved::StateFile,
    service, web,
};
use tracing::{error, info, warn};

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
    /// Check whether agentmon can run here, and say what to fix (exit 0: it
    /// can; 77: capabilities missing; 78: config error; 1: anything else).
    Doctor(DoctorArgs),
    /// Print the labels agentmon gives a destination (dest, purpose and the
    /// catalog entry behind them, country, network, anycast), from the
    /// config's catalog and GeoIP databases. Looks up, never connects.
    Lookup(LookupArgs),
    /// The egress policy: learn one from the connection log, or check a log
    /// against one.
    Policy {
        #[command(subcommand)]
        command: monitor::policy::cli::PolicyCommand,
    },
    /// Summarise the connection log (and its rotated files) over a time
    /// range: per tool, destination, country and purpose, as text, JSON,
    /// CSV, or an HTML page with charts.
    Report(monitor::report::ReportArgs),
}

#[derive(clap::Args)]
struct LookupArgs {
    /// A host name (its addresses from the system resolver, or --addr) or an IP address.
    target: String,
    /// The address the host name resolved to, instead of asking the resolver; repeatable.
    #[arg(long, value_name = "IP")]
    addr: Vec<std::net::IpAddr>,
    /// Config file (TOML) [default: /etc/agentmon/config.toml if it exists, else the built-in defaults].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print a JSON array, one object per address.
    #[arg(long)]
    json: bool,
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
    /// TLS and basic authentication for /metrics: a web-config file in the
    /// format Prometheus exporters share (overrides `web_config_file`).
    #[arg(long = "web.config.file", value_name = "PATH")]
    web_config_file: Option<PathBuf>,
    /// Write the JSON Lines connection log here (overrides `[log] connections`).
    #[arg(long, value_name = "PATH")]
    connection_log: Option<PathBuf>,
    /// Keep the kernel maps (and, while running, the hooks) pinned here so
    /// that a restart, even after a crash, goes on counting; `none` to not pin.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Save the exported counters here at every scrape, so that a restart
    /// continues them; `none` to start at zero.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Run as if the kernel lacked these optional features (tests of the
    /// fallbacks on one kernel).
    #[arg(long, value_name = "FEATURE", value_delimiter = ',', hide = true)]
    without: Vec<kernel::Feature>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command that prints its answer keeps the log to what went wrong.
    logging::init(match cli.command {
        Command::Lookup(_) | Command::Policy { .. } | Command::Report(_) => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    });
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig { path } => check_config(&path),
        Command::Unpin { pin_dir } => kernel::pins::unpin_all(&pin_dir)
            .with_context(|| format!("cannot remove {}", pin_dir.display())),
        Command::Doctor(args) => return doctor(&args),
        Command::Lookup(args) => lookup(&args),
        Command::Report(args) => monitor::report::run(&args),
        // As diff(1): 0 no violation, 1 violations, 2 trouble (78 a bad config).
        Command::Policy { command } => match monitor::policy::cli::run(&command) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => {
                eprintln!("{}agentmon: error: {e:#}", logging::error_prefix());
                return match exit_code(&e) {
                    monitor::exit::FAILURE => ExitCode::from(2),
                    code => ExitCode::from(code),
                };
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what is wrong and what to do, with every cause.
            eprintln!("{}agentmon: error: {e:#}", logging::error_prefix());
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Codes where retrying cannot help (the unit's `RestartPreventExitStatus=`):
/// a bad config stays bad until someone edits it, and missing capabilities
/// until someone grants them.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<config::ConfigError>().is_some()
        || e.downcast_ref::<web::ConfigError>().is_some()
    {
        monitor::exit::CONFIG
    } else if let Some(kernel::LoadError::MissingCaps(_)) = e.downcast_ref() {
        monitor::exit::NO_PERMISSION
    } else {
        monitor::exit::FAILURE
    }
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = config::load(path)?;
    println!(
        "{}: ok; listen {}; tools: {}{}",
        path.display(),
        loaded.config.listen,
        loaded.agents.names().collect::<Vec<_>>().join(", "),
        loaded.policy.summary()
    );
    Ok(())
}

fn lookup(args: &LookupArgs) -> anyhow::Result<()> {
    let path = args.config.clone().or_else(|| {
        let installed = PathBuf::from(config::DEFAULT_PATH);
        installed.exists().then_some(installed)
    });
    let loaded = config::Source {
        path,
        ..Default::default()
    }
    .load()?;
    let (host, addrs) = lookup_target(&args.target, &args.addr)?;
    let geoip = GeoIp::from_config(&loaded.config.geoip);
    let all: Vec<_> = addrs
        .into_iter()
        .map(|addr| monitor::lookup::labels(&loaded.dest, &geoip, host.as_ref(), addr))
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", monitor::lookup::render(&all));
    }
    Ok(())
}

/// The name (if the target is one) and the addresses to label.
fn lookup_target(
    target: &str,
    given: &[std::net::IpAddr],
) -> anyhow::Result<(Option<monitor::dest::Hostname>, Vec<std::net::IpAddr>)> {
    if let Ok(ip) = target.parse::<std::net::IpAddr>() {
        anyhow::ensure!(
            given.is_empty(),
            "{target} is an address: --addr goes with a host name"
        );
        return Ok((None, vec![ip]));
    }
    let host = monitor::dest::Hostname::parse_str(target).ok_or_else(|| {
        anyhow::anyhow!(
            "{target:?} is neither an IP address nor a host name (labels of a-z 0-9 - _)"
        )
    })?;
    if !given.is_empty() {
        return Ok((Some(host), given.to_vec()));
    }
    use std::net::ToSocketAddrs as _;
    let mut addrs: Vec<_> = (host.as_str(), 443)
        .to_socket_addrs()
        .with_context(|| {
            format!("cannot resolve {target}; give the address it resolved to with --addr IP")
        })?
        .map(|sa| sa.ip())
        .collect();
    addrs.sort();
    addrs.dedup();
    Ok((Some(host), addrs))
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
        web_config_file: args.web_config_file.clone(),
    };
    let Loaded {
        config,
        agents: catalog,
        dest: dest_catalog,
        paths,
        policy,
    } = source.load()?;
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

    let pre = kernel::preflight()?;
    let pin_dir = Some(args.pin_dir.as_path()).filter(|p| *p != std::path::Path::new("none"));
    let kernel = Kernel::load(&pre, &args.without, pin_dir)?;
    let metrics = Metrics::new().context("cannot register metrics")?;
    metrics
        .build_info
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            env!("AGENTMON_REVISION"),
            &monitor::release::running(),
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
    let mut kernel = kernel;
    let ring = kernel.take_events().context("ring buffer already taken")?;
    let mut state = State::new(kernel, catalog, enricher, metrics, log, RealProc::new());
    state.scan();
    state.set_policy(policy);
    if args.state_dir != std::path::Path::new("none") {
        state.resume(StateFile::new(&args.state_dir));
    }
    let state = Arc::new(Mutex::new(state));
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
            reload,
        ));
        if let Some(every) = service::watchdog_interval() {
            tokio::spawn(watchdog(state.clone(), every));
        }
        let stopping = state.clone();
        let server = web::serve(listener, exporter::router(state), web, shutdown());
        // The listener is bound and the programs attached: scrapes queue
        // until the server polls them, which starts right here.
        service::ready(&format!("serving /metrics on {}", config.listen));
        tokio::select! {
            () = server => {}
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
async fn watchdog<K, P>(state: Shared<K, P>, every: std::time::Duration)
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
    running: config::Config,
) where
    K: daemon::KernelPort,
    P: monitor::procfs::ProcSource,
{
    loop {
        tokio::select! {
            signal = hangups.recv() => match signal {
                Some(()) => info!("SIGHUP: reloading"),
                None => return,
            },
            () = reload.notified() => {}
        }
        service::reloading();
        let loaded = source.load();
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        match loaded {
            Ok(loaded) => state.reload(loaded, &running),
            Err(e) => warn!("config not reloaded, keeping the running one: {e}"),
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
        error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

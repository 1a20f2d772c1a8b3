//! The `agentmon` command line.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use monitor::{
    config,
    geoip::GeoIp,
    kernel, logging,
    run::{DEFAULT_PIN_DIR, RunArgs, run},
    web,
};

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
    /// Live view of every agent's traffic: per tool, and per destination of
    /// the selected tool (reads the running agentmon's socket, no root needed).
    Top(monitor::top::TopArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command that prints its answer keeps the log to what went wrong.
    logging::init(match cli.command {
        Command::Lookup(_) | Command::Policy { .. } | Command::Report(_) => tracing::Level::WARN,
        // The screen is the output; the standalone daemon's news would
        // scribble over it.
        Command::Top(ref args) if !args.once => tracing::Level::ERROR,
        Command::Top(_) => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    });
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::CheckConfig { path } => check_config(&path),
        Command::Unpin { pin_dir } => kernel::pins::unpin_all(&pin_dir)
            .with_context(|| format!("cannot remove {}", pin_dir.display())),
        Command::Doctor(args) => return doctor(&args),
        Command::Lookup(args) => lookup(&args),
        Command::Top(args) => monitor::top::run(&args),
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
    let path = config::given_or_installed(args.config.as_deref());
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

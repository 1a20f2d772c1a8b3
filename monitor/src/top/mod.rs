//! `agentmon top`: what every agent is sending where, right now, in a
//! terminal (like nethogs per process, here per tool and destination).
//!
//! The running daemon hands out snapshots on a local socket (`socket`),
//! so `top` needs no root, only the socket's group; `--standalone` loads
//! the programs in this process instead. `view` turns the last two
//! snapshots into sorted, filtered rows with rates; `screen` draws them
//! live (ratatui), `text` prints them once.

pub mod config;
mod screen;
pub mod snapshot;
pub mod socket;
#[cfg(test)]
mod tests;
mod text;
pub mod view;

use std::{io::IsTerminal as _, path::PathBuf, time::Duration};

use anyhow::Context as _;

use self::{snapshot::Snapshot, view::View};

#[derive(clap::Args)]
pub struct TopArgs {
    /// The running agentmon's socket [default: `[top] socket` of the config, else /run/agentmon/top.sock].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file (TOML) [default: /etc/agentmon/config.toml if it exists, else the built-in defaults].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Load the kernel programs in this process instead of reading a
    /// running agentmon (needs root, or the capabilities of `agentmon run`).
    #[arg(long)]
    pub standalone: bool,
    /// Print one plain-text snapshot (rates over one interval) and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: print the snapshot as JSON instead.
    #[arg(long, requires = "once")]
    pub json: bool,
    /// Seconds between snapshots.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = interval)]
    pub interval: Duration,
    /// Show only tools whose name contains this.
    #[arg(long, value_name = "NAME")]
    pub tool: Option<String>,
}

fn interval(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.1..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0.1 to 3600"
        )),
    }
}

pub fn run(args: &TopArgs) -> anyhow::Result<()> {
    if !args.once && !std::io::stdout().is_terminal() {
        anyhow::bail!("agentmon top needs a terminal; for a script, use `agentmon top --once`");
    }
    let config = crate::config::given_or_installed(args.config.as_deref());
    let mut source: Box<dyn FnMut() -> anyhow::Result<Snapshot>> = if args.standalone {
        Box::new(crate::run::standalone(config)?)
    } else {
        let path = match &args.socket {
            Some(path) => path.clone(),
            None => socket_of(config)?,
        };
        Box::new(move || socket::fetch(&path))
    };
    let first = source()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&first)?);
        return Ok(());
    }
    let mut view = View::new(first);
    view.set_filter(args.tool.clone().unwrap_or_default());
    if args.once {
        std::thread::sleep(args.interval);
        view.update(source()?);
        print!("{}", text::render(&view, std::io::stdout().is_terminal()));
        return Ok(());
    }
    screen::run(&mut source, view, args.interval)
}

/// The socket named by the config, else the default.
fn socket_of(config: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let Some(path) = config else {
        return Ok(PathBuf::from(config::DEFAULT_SOCKET));
    };
    let loaded = crate::config::Source {
        path: Some(path.clone()),
        ..Default::default()
    }
    .load()
    .with_context(|| {
        format!(
            "cannot read the socket's path from {}; give it with --socket",
            path.display()
        )
    })?;
    loaded
        .config
        .top
        .socket()
        .map(PathBuf::from)
        .with_context(|| {
            format!(
                "{} turns the socket off (`[top] socket = \"none\"`); use --standalone",
                path.display()
            )
        })
}

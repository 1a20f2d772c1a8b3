//! `agentmon policy learn` and `agentmon policy check`.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context as _;

use super::learn;
use crate::{config, connlog};

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Write a policy that allows what each tool did according to the
    /// connection log (anything else: `default = "alert"`), for review.
    Learn {
        /// The connection log (JSON Lines, `[log] connections`).
        #[arg(long, value_name = "LOG")]
        from: PathBuf,
        /// Only connections of this recent period, such as 7d or 12h.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// Write the policy here instead of standard output.
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Replay the connection log against the config's policy and print
    /// what would have been a violation (exit 0: none, 1: some, 2: the log
    /// or the policy could not be read, 78: the config is invalid).
    Check {
        #[arg(long, value_name = "LOG")]
        from: PathBuf,
        /// Config file with the policy [default: /etc/agentmon/config.toml].
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<Duration>,
    },
}

/// Runs the command; `Ok(false)`: `check` found violations.
pub fn run(command: &PolicyCommand) -> anyhow::Result<bool> {
    match command {
        PolicyCommand::Learn {
            from,
            since,
            output,
        } => {
            let seen = read(from, *since)?;
            let text = learn::learn(&seen, &from.display().to_string());
            match output {
                Some(path) => fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(true)
        }
        PolicyCommand::Check {
            from,
            config,
            since,
        } => {
            let path = config
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
            let loaded = config::load(&path)?;
            if loaded.policy.is_empty() {
                anyhow::bail!(
                    "{} has no [[policy.tool]] entries: nothing to check against (write one, or start from `agentmon policy learn`)",
                    path.display()
                );
            }
            let seen = read(from, *since)?;
            let found = learn::check(&loaded.policy, &seen);
            for line in &found {
                println!("{line}");
            }
            if found.is_empty() {
                println!("no violations in {} connections", seen.len());
            }
            Ok(found.is_empty())
        }
    }
}

fn read(from: &Path, since: Option<Duration>) -> anyhow::Result<Vec<learn::Seen>> {
    // A log that logrotate compressed reads as well as a plain one.
    let file = connlog::read::open(from)
        .with_context(|| format!("cannot read the connection log {}", from.display()))?;
    let since = since.map(|d| SystemTime::now() - d);
    let (seen, note) = learn::read(file, &from.display().to_string(), since);
    if let Some(note) = note {
        eprintln!("agentmon: warning: {note}");
    }
    Ok(seen)
}

//! `agentmon report`: what the agents sent and received over a time range,
//! from the connection log and its rotated files, as text tables, JSON,
//! CSV, or an HTML page with charts.
//!
//! `summary` turns records into figures, `render` prints them, `html` and
//! `charts` make the page; `range` reads `--since` and `--until`.

mod charts;
mod html;
mod range;
mod render;
mod summary;
#[cfg(test)]
mod tests;

use std::{fs, path::PathBuf, time::SystemTime};

use anyhow::Context as _;

use self::summary::Collector;
use crate::{config, connlog};

/// Warnings about lines that are not records, one each, before the rest
/// are only counted.
const MAX_LINE_WARNINGS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for people.
    Text,
    /// One object: totals and an array per table.
    Json,
    /// One table with a `table` column.
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The connection log; the files rotation left beside it (.1, .2.gz,
    /// -20261201.gz) are read too [default: `[log] connections` of the config].
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// The config that names the log [default: /etc/agentmon/config.toml if it exists].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// From this time on: 2026-11-29T10:00:00Z, 2026-11-29, or a duration
    /// before now such as 7d or 12h [default: the start of the log].
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Before this time, in the same forms [default: the end of the log].
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this tool's connections; repeatable.
    #[arg(long, value_name = "NAME")]
    pub tool: Vec<String>,
    /// What to print on standard output [default: text].
    #[arg(long, value_enum, conflicts_with = "html")]
    pub format: Option<Format>,
    /// Write a self-contained HTML page with charts and tables here instead.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

fn warn(message: &str) {
    eprintln!("agentmon: warning: {message}");
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let range = range::parse(
        args.since.as_deref(),
        args.until.as_deref(),
        SystemTime::now(),
    )?;
    if let (Some(since), Some(until)) = (range.since, range.until) {
        anyhow::ensure!(
            since < until,
            "--since {} is not before --until {}: nothing could be in between",
            range::seconds(since),
            range::seconds(until)
        );
    }
    let path = log_path(args)?;
    let family = connlog::read::family(&path)
        .with_context(|| format!("cannot read the connection log {}", path.display()))?;
    for file in &family.unreadable {
        warn(&format!(
            "{} skipped: only gzip-compressed rotated files are read (logrotate's default compresscmd)",
            file.display()
        ));
    }
    let mut collector = Collector::new(range, args.tool.clone());
    let mut skipped = 0usize;
    connlog::read::each_line(&family.files, &mut |w| warn(&w), &mut |file, n, line| {
        if let Err(why) = collector.line(line) {
            skipped += 1;
            if skipped <= MAX_LINE_WARNINGS {
                warn(&format!(
                    "{}:{n}: skipped, not a connection-log record: {why}",
                    file.display()
                ));
            }
        }
    });
    if skipped > MAX_LINE_WARNINGS {
        warn(&format!(
            "{} more lines were skipped, not connection-log records",
            skipped - MAX_LINE_WARNINGS
        ));
    }
    let summary = collector.finish();
    if let Some(out) = &args.html {
        let page = html::page(&summary, &family.files)?;
        fs::write(out, page).with_context(|| format!("cannot write {}", out.display()))?;
        println!("wrote {}: {}", out.display(), render::headline(&summary));
        return Ok(());
    }
    print!(
        "{}",
        match args.format.unwrap_or(Format::Text) {
            Format::Text => render::text(&summary),
            Format::Json => render::json(&summary),
            Format::Csv => render::csv(&summary),
        }
    );
    Ok(())
}

/// `--log`, else the config's `[log] connections`.
fn log_path(args: &ReportArgs) -> anyhow::Result<PathBuf> {
    if let Some(log) = &args.log {
        return Ok(log.clone());
    }
    let Some(config) = config::given_or_installed(args.config.as_deref()) else {
        anyhow::bail!(
            "which connection log? Name it with --log PATH (no {} to take `[log] connections` from)",
            config::DEFAULT_PATH
        )
    };
    let loaded = config::load(&config)?;
    loaded.config.log.connections.with_context(|| {
        format!(
            "{} has no `[log] connections`; name the log with --log PATH",
            config.display()
        )
    })
}

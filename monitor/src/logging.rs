//! agentmon's own log, on stderr.
//!
//! Under systemd, stderr is a stream into the journal, which stamps every
//! line itself and reads a syslog priority from a `<N>` prefix
//! (sd-daemon(3)). There each line gets that prefix and no timestamp or
//! colour of ours; `journalctl -p warning` then finds the warnings.
//! Anywhere else the format is tracing's usual one.

use std::{
    fmt,
    fs::File,
    io::{self, IsTerminal as _},
    os::{fd::AsFd as _, unix::fs::MetadataExt as _},
    sync::atomic::{AtomicBool, Ordering},
};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    EnvFilter,
    fmt::{
        FmtContext, FormatEvent, FormatFields, MakeWriter,
        format::{self, Writer},
    },
    registry::LookupSpan,
};

/// Set once [`init`] found stderr to be the journal.
static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Sets up the global subscriber: level from `AGENTMON_LOG` (else
/// `default`), journal format when stderr is the journal.
pub fn init(default: Level) {
    let journal = is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr_id());
    JOURNAL.store(journal, Ordering::Relaxed);
    let filter = EnvFilter::try_from_env("AGENTMON_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default.as_str().to_ascii_lowercase()));
    let style = if journal {
        Style::Journal
    } else {
        Style::Plain {
            ansi: io::stderr().is_terminal(),
        }
    };
    // Only fails if a subscriber is already set, which main does not do.
    let _ = tracing::subscriber::set_global_default(subscriber(style, filter, io::stderr));
}

/// What goes before `agentmon: error: ...`, the last line of a failed run,
/// which main prints itself.
pub fn error_prefix() -> &'static str {
    if JOURNAL.load(Ordering::Relaxed) {
        priority(Level::ERROR)
    } else {
        ""
    }
}

/// Whether stderr is connected to the journal. systemd sets
/// `JOURNAL_STREAM` to `<device>:<inode>` of the stream it connected
/// (systemd.exec(5)); comparing it with stderr's own tells a process whose
/// stderr was redirected since (a shell inside a unit) that it is not.
pub fn is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    match (dev.parse::<u64>(), ino.parse::<u64>(), stderr) {
        (Ok(dev), Ok(ino), Some(stderr)) => (dev, ino) == stderr,
        _ => false,
    }
}

/// stderr's device and inode.
fn stderr_id() -> Option<(u64, u64)> {
    let fd = io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The sd-daemon(3) prefix of a level: `<3>` error, `<4>` warning, `<6>`
/// info, `<7>` debug (trace too: syslog has nothing lower).
pub fn priority(level: Level) -> &'static str {
    match level {
        Level::ERROR => "<3>",
        Level::WARN => "<4>",
        Level::INFO => "<6>",
        Level::DEBUG | Level::TRACE => "<7>",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Priority prefix; no time, level word or colour.
    Journal,
    Plain {
        ansi: bool,
    },
}

fn subscriber<W>(style: Style, filter: EnvFilter, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match style {
        Style::Journal => Box::new(
            builder
                .with_ansi(false)
                .event_format(Prefixed(format().without_time().with_level(false)))
                .finish(),
        ),
        Style::Plain { ansi } => Box::new(builder.with_ansi(ansi).finish()),
    }
}

fn format() -> format::Format {
    format::Format::default()
}

/// Another event format, with the event's priority prefix first.
struct Prefixed<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prefixed<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    #[test]
    fn journal_stream_must_name_stderr_itself() {
        let stderr = Some((64769, 123456));
        assert!(is_journal(Some("64769:123456"), stderr));
        // Set by systemd, but stderr was redirected since.
        assert!(!is_journal(Some("64769:999"), stderr));
        assert!(!is_journal(None, stderr));
        assert!(!is_journal(Some(""), stderr));
        assert!(!is_journal(Some("64769"), stderr));
        assert!(!is_journal(Some("x:123456"), stderr));
        assert!(!is_journal(Some("64769:123456"), None));
    }

    #[test]
    fn this_test_process_is_not_writing_to_a_journal() {
        // JOURNAL_STREAM is not set for `cargo test` (nor inherited from a
        // unit with the same stderr).
        let id = stderr_id().expect("stderr can be stat'ed");
        assert!(!is_journal(Some("0:0"), Some(id)));
        let own = format!("{}:{}", id.0, id.1);
        assert!(is_journal(Some(&own), Some(id)));
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(style: Style) -> Vec<String> {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = subscriber(style, EnvFilter::new("trace"), move || out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(path = "/x", "cannot write");
            tracing::warn!("careful");
            tracing::info!(listen = "127.0.0.1:9977", "serving");
            tracing::debug!("detail");
            tracing::trace!("finer");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn journal_lines_carry_priorities_and_no_time_or_colour() {
        let target = module_path!();
        assert_eq!(
            lines(Style::Journal),
            [
                format!("<3>{target}: cannot write path=\"/x\""),
                format!("<4>{target}: careful"),
                format!("<6>{target}: serving listen=\"127.0.0.1:9977\""),
                format!("<7>{target}: detail"),
                format!("<7>{target}: finer"),
            ]
        );
    }

    #[test]
    fn plain_lines_keep_the_time_and_level() {
        let lines = lines(Style::Plain { ansi: false });
        assert_eq!(lines.len(), 5);
        // 2026-01-02T03:04:05.678901Z ERROR monitor::logging::tests: cannot write path="/x"
        let (time, rest) = lines[0].split_once(' ').unwrap();
        assert!(
            time.len() > 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
        assert!(rest.trim_start().starts_with("ERROR "), "{rest}");
        assert!(
            lines
                .iter()
                .all(|l| !l.starts_with('<') && !l.contains('\x1b'))
        );
    }
}

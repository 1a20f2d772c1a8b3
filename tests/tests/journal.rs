//! agentmon's own log when systemd connects its stderr to the journal
//! (`JOURNAL_STREAM` names stderr's device and inode): each line starts with
//! its syslog priority and carries no timestamp of ours, which the journal
//! adds itself. Anywhere else the lines keep their usual format.

use std::{
    fs,
    process::{Command, Stdio},
    time::Duration,
};

use agentmon_tests::{Agentmon, ChildGuard, TempDir, agentmon_bin, journal_stream, require_root};

const RUN: Duration = Duration::from_secs(30);

/// stderr of `agentmon run --config <a bad file>` written to a file, with
/// `JOURNAL_STREAM` naming that file (`true`) or another one (`false`).
fn failed_run(journal: bool) -> String {
    let tmp = TempDir::new("journal");
    let config = tmp.path().join("agentmon.toml");
    fs::write(&config, "[log]\nmax_bytes = 100\n").unwrap();
    let stderr_path = tmp.path().join("stderr");
    let stderr = fs::File::create(&stderr_path).unwrap();
    let other = fs::File::create(tmp.path().join("other")).unwrap();
    let stream = journal_stream(if journal { &stderr } else { &other });
    let mut cmd = Command::new(agentmon_bin());
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("JOURNAL_STREAM", stream)
        .stdin(Stdio::null())
        .stderr(stderr);
    let child = cmd.spawn().expect("start agentmon");
    let out = ChildGuard::from_child(child, "agentmon run").wait_output(RUN);
    assert!(!out.status.success(), "{out:?}");
    fs::read_to_string(&stderr_path).unwrap()
}

#[test]
fn the_last_error_line_has_the_error_priority_in_the_journal_only() {
    let want = "agentmon: error: ";
    let text = failed_run(true);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with(&format!("<3>{want}")), "{text}");
    assert!(text.contains("log.max_bytes = 100 is too small"), "{text}");
    // JOURNAL_STREAM inherited, but stderr is not that stream.
    let text = failed_run(false);
    assert!(text.starts_with(want), "{text}");
}

#[test]
fn a_running_daemon_logs_priorities_without_timestamps_to_the_journal() {
    if !require_root() {
        return;
    }
    let am = Agentmon::builder().as_journal().start();
    am.scrape();
    let text = am.log_text();
    let serving = text
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .unwrap_or_else(|| panic!("no `serving` line in\n{text}"));
    assert!(serving.starts_with("<6>agentmon: serving"), "{serving}");
    for line in text.lines() {
        let priority = line.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&priority),
            "no priority prefix: {line}"
        );
        // No timestamp of ours (`2026-…Z`), no level word, no colour.
        let rest = &line[3..];
        assert!(!rest.starts_with("20") && !rest.contains('\x1b'), "{line}");
        assert!(
            !rest.starts_with(" INFO") && !rest.starts_with("INFO"),
            "{line}"
        );
    }
}

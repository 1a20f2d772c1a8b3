//! `agentmon policy learn` and `agentmon policy check` as an operator runs
//! them (no root): a policy learnt from a connection log passes that log,
//! and a log with something new fails the check with one line per
//! violation.

use std::{fs, path::Path, process::Command, time::Duration};

use agentmon_tests::{TempDir, agentmon_bin, run_bounded};

const RUN: Duration = Duration::from_secs(30);

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../monitor/src/testdata/connections.jsonl"
    ))
}

fn agentmon(args: &[&str]) -> std::process::Output {
    run_bounded(Command::new(agentmon_bin()).args(args), RUN)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_learned_policy_passes_its_log_and_flags_a_new_destination() {
    let tmp = TempDir::new("policy-cli");
    let policy = tmp.path().join("policy.toml");
    let log = fixture().display().to_string();
    let out = agentmon(&[
        "policy",
        "learn",
        "--from",
        &log,
        "-o",
        &policy.display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    // The fixture's one line that is no record is named, once.
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("1 line(s) are not connection-log records")
            && err.contains("connections.jsonl:5:"),
        "{err}"
    );
    let learned = fs::read_to_string(&policy).unwrap();
    println!("{learned}");
    assert!(learned.contains("name = \"claude-code\"\ndefault = \"alert\"\nallow = [\n  { host = \"api.anthropic.com\" },"), "{learned}");
    assert!(
        learned.contains("{ cidr = \"198.51.100.7/32\" }"),
        "{learned}"
    );

    // The learnt file is a config agentmon accepts.
    let out = agentmon(&["check-config", &policy.display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("; policy: claude-code (1 rules), codex (2 rules)"),
        "{out:?}"
    );

    let out = agentmon(&[
        "policy",
        "check",
        "--from",
        &log,
        "--config",
        &policy.display().to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "no violations in 4 connections\n");

    // One connection more, to a host the policy does not know.
    let newer = tmp.path().join("newer.jsonl");
    let mut lines = fs::read_to_string(fixture()).unwrap();
    let first = lines
        .lines()
        .next()
        .unwrap()
        .replace("\"tcp:1\"", "\"tcp:9\"")
        .replace("\"api.anthropic.com\"", "\"exfil.example.net\"");
    lines.push_str(&first);
    lines.push('\n');
    fs::write(&newer, lines).unwrap();
    let out = agentmon(&[
        "policy",
        "check",
        "--from",
        &newer.display().to_string(),
        "--config",
        &policy.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "alert: tool=claude-code dest=exfil.example.net rule=claude-code:default connections=1 addresses=203.0.113.10:443/tcp\n"
    );
}

#[test]
fn check_without_a_policy_or_log_says_what_to_do() {
    let tmp = TempDir::new("policy-cli-bad");
    let empty = tmp.path().join("empty.toml");
    fs::write(&empty, "").unwrap();
    let out = agentmon(&[
        "policy",
        "check",
        "--from",
        &fixture().display().to_string(),
        "--config",
        &empty.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("has no [[policy.tool]] entries") && err.contains("agentmon policy learn"),
        "{err}"
    );
    let out = agentmon(&[
        "policy",
        "learn",
        "--from",
        "/nonexistent/connections.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("cannot read the connection log /nonexistent/connections.jsonl"),
        "{out:?}"
    );
}

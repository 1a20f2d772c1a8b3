//! `agentmon report` as an operator runs it (no root): a log with a
//! rotated file, a gzip-compressed one and a damaged line, summed up
//! exactly in each format, over the whole log, a range, an empty range and
//! one tool.

use std::{fs, path::Path, process::Command, time::Duration};

use agentmon_tests::{TempDir, agentmon_bin, run_bounded};

const RUN: Duration = Duration::from_secs(30);

/// The fixture's three files (oldest: `.2`, then `.1`, then the log).
fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../monitor/src/testdata/report"
    ))
}

/// The fixture log in a fresh folder, its oldest file compressed as
/// logrotate's `compress` leaves it (`connections.jsonl.2.gz`).
fn log_dir(prefix: &str) -> TempDir {
    let tmp = TempDir::new(prefix);
    for name in [
        "connections.jsonl",
        "connections.jsonl.1",
        "connections.jsonl.2",
    ] {
        fs::copy(fixtures().join(name), tmp.path().join(name)).unwrap();
    }
    let out = run_bounded(
        Command::new("gzip")
            .arg("-n")
            .arg(tmp.path().join("connections.jsonl.2")),
        RUN,
    );
    assert!(out.status.success(), "gzip: {out:?}");
    assert!(tmp.path().join("connections.jsonl.2.gz").exists());
    tmp
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `agentmon report ARGS`.
fn agentmon_report(args: &[&str]) -> Out {
    let out = run_bounded(Command::new(agentmon_bin()).arg("report").args(args), RUN);
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `agentmon report --log LOG ARGS`.
fn report(log: &Path, args: &[&str]) -> Out {
    let log = log.display().to_string();
    agentmon_report(&[&["--log", log.as_str()], args].concat())
}

/// The one warning every read of the fixture gives: the damaged line,
/// named by file and line.
fn assert_one_damaged_line_warning(dir: &Path, stderr: &str) {
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let expected = format!(
        "agentmon: warning: {}:2: skipped, not a connection-log record: EOF while parsing a string",
        dir.join("connections.jsonl.1").display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
}

#[test]
fn the_whole_log_across_rotated_and_compressed_files_has_exact_totals() {
    let tmp = log_dir("report-all");
    let out = report(&tmp.path().join("connections.jsonl"), &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_one_damaged_line_warning(tmp.path(), &out.stderr);
    let expected = "\
5 connections between the start of the log and the end of the log: 13,020 bytes egress, 92,530 bytes ingress

Per tool
TOOL         CONNECTIONS  EGRESS BYTES  INGRESS BYTES  FIRST SEEN            LAST SEEN
codex                  2         8,120          1,980  2026-11-29T10:20:00Z  2026-11-29T10:40:00Z
claude-code            3         4,900         90,550  2026-11-29T09:59:00Z  2026-11-29T11:05:00Z

Per tool and destination
TOOL         DESTINATION            CONNECTIONS  EGRESS BYTES  INGRESS BYTES  FIRST SEEN            LAST SEEN
claude-code  api.anthropic.com                1         4,000            500  2026-11-29T09:59:00Z  2026-11-29T10:10:00Z
claude-code  registry.npmjs.org               1           700         90,000  2026-11-29T11:00:00Z  2026-11-29T11:05:00Z
claude-code  statsig.anthropic.com            1           200             50  2026-11-29T10:02:00Z  2026-11-29T10:03:00Z
codex        api.openai.com                   1         8,000          1,500  2026-11-29T10:20:00Z  2026-11-29T10:40:00Z
codex        ip                               1           120            480  2026-11-29T10:30:00Z  2026-11-29T10:31:00Z

Per country
COUNTRY  CONNECTIONS  EGRESS BYTES  INGRESS BYTES  FIRST SEEN            LAST SEEN
anycast            1         8,000          1,500  2026-11-29T10:20:00Z  2026-11-29T10:40:00Z
US                 3         4,900         90,550  2026-11-29T09:59:00Z  2026-11-29T11:05:00Z
private            1           120            480  2026-11-29T10:30:00Z  2026-11-29T10:31:00Z

Per purpose
PURPOSE           CONNECTIONS  EGRESS BYTES  INGRESS BYTES  FIRST SEEN            LAST SEEN
model-api                   2        12,000          2,000  2026-11-29T09:59:00Z  2026-11-29T10:40:00Z
package-registry            1           700         90,000  2026-11-29T11:00:00Z  2026-11-29T11:05:00Z
telemetry                   1           200             50  2026-11-29T10:02:00Z  2026-11-29T10:03:00Z
other                       1           120            480  2026-11-29T10:30:00Z  2026-11-29T10:31:00Z
";
    assert_eq!(out.stdout, expected);
}

#[test]
fn a_range_counts_only_what_its_records_added() {
    let tmp = log_dir("report-range");
    // tcp:1's 10:00 record (1000/100, in the gzip file) is before the
    // range: only what 10:05 and 10:10 added counts (3000/400). tcp:3
    // started in it and read 5000/1000 at 10:25; its close at 10:40 is
    // after it. The UDP flow starting at 10:30 is not: --until is exclusive.
    let out = report(
        &tmp.path().join("connections.jsonl"),
        &[
            "--since",
            "2026-11-29T10:05:00Z",
            "--until",
            "2026-11-29T11:30:00+01:00",
            "--format",
            "csv",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_one_damaged_line_warning(tmp.path(), &out.stderr);
    assert_eq!(
        out.stdout,
        "\
table,tool,dest,dest_country,purpose,connections,egress_bytes,ingress_bytes,first_seen,last_seen
total,,,,,2,8000,1400,2026-11-29T10:05:00Z,2026-11-29T10:25:00Z
tools,codex,,,,1,5000,1000,2026-11-29T10:20:00Z,2026-11-29T10:25:00Z
tools,claude-code,,,,1,3000,400,2026-11-29T10:05:00Z,2026-11-29T10:10:00Z
destinations,claude-code,api.anthropic.com,,,1,3000,400,2026-11-29T10:05:00Z,2026-11-29T10:10:00Z
destinations,codex,api.openai.com,,,1,5000,1000,2026-11-29T10:20:00Z,2026-11-29T10:25:00Z
countries,,,anycast,,1,5000,1000,2026-11-29T10:20:00Z,2026-11-29T10:25:00Z
countries,,,US,,1,3000,400,2026-11-29T10:05:00Z,2026-11-29T10:10:00Z
purposes,,,,model-api,2,8000,1400,2026-11-29T10:05:00Z,2026-11-29T10:25:00Z
"
    );
}

#[test]
fn json_carries_the_range_and_exact_figures_and_a_tool_filter_keeps_one_tool() {
    let tmp = log_dir("report-json");
    let out = report(
        &tmp.path().join("connections.jsonl"),
        &[
            "--tool",
            "codex",
            "--format",
            "json",
            "--since",
            "2026-11-29",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "since": "2026-11-29T00:00:00Z",
            "until": null,
            "total": {"connections": 2, "egress_bytes": 8120, "ingress_bytes": 1980,
                "first_seen": "2026-11-29T10:20:00Z", "last_seen": "2026-11-29T10:40:00Z"},
            "tools": [{"tool": "codex", "connections": 2, "egress_bytes": 8120, "ingress_bytes": 1980,
                "first_seen": "2026-11-29T10:20:00Z", "last_seen": "2026-11-29T10:40:00Z"}],
            "destinations": [
                {"tool": "codex", "dest": "api.openai.com", "connections": 1, "egress_bytes": 8000,
                    "ingress_bytes": 1500, "first_seen": "2026-11-29T10:20:00Z", "last_seen": "2026-11-29T10:40:00Z"},
                {"tool": "codex", "dest": "ip", "connections": 1, "egress_bytes": 120,
                    "ingress_bytes": 480, "first_seen": "2026-11-29T10:30:00Z", "last_seen": "2026-11-29T10:31:00Z"}
            ],
            "countries": [
                {"dest_country": "anycast", "connections": 1, "egress_bytes": 8000, "ingress_bytes": 1500,
                    "first_seen": "2026-11-29T10:20:00Z", "last_seen": "2026-11-29T10:40:00Z"},
                {"dest_country": "private", "connections": 1, "egress_bytes": 120, "ingress_bytes": 480,
                    "first_seen": "2026-11-29T10:30:00Z", "last_seen": "2026-11-29T10:31:00Z"}
            ],
            "purposes": [
                {"purpose": "model-api", "connections": 1, "egress_bytes": 8000, "ingress_bytes": 1500,
                    "first_seen": "2026-11-29T10:20:00Z", "last_seen": "2026-11-29T10:40:00Z"},
                {"purpose": "other", "connections": 1, "egress_bytes": 120, "ingress_bytes": 480,
                    "first_seen": "2026-11-29T10:30:00Z", "last_seen": "2026-11-29T10:31:00Z"}
            ]
        })
    );
}

#[test]
fn an_empty_range_is_no_traffic_not_an_error() {
    let tmp = log_dir("report-empty");
    let log = tmp.path().join("connections.jsonl");
    let out = report(&log, &["--since", "2026-11-30T00:00:00Z"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "no traffic between 2026-11-30T00:00:00Z and the end of the log\n\nPer tool\n\
             TOOL  CONNECTIONS  EGRESS BYTES  INGRESS BYTES  FIRST SEEN  LAST SEEN\n\n"
        ),
        "{}",
        out.stdout
    );
    let out = report(
        &log,
        &["--until", "2026-11-29T09:00:00Z", "--format", "json"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["total"]["connections"], 0);
    for table in ["tools", "destinations", "countries", "purposes"] {
        assert_eq!(json[table], serde_json::json!([]), "{table}");
    }
    // A tool that is not in the log is an empty report too.
    let out = report(&log, &["--tool", "aider"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("no traffic between the start of the log and the end of the log\n")
    );
}

#[test]
fn a_relative_since_counts_back_from_now() {
    let tmp = TempDir::new("report-relative");
    let log = tmp.path().join("connections.jsonl");
    let ago = |hours: u64| {
        let t = std::time::SystemTime::now() - Duration::from_secs(hours * 3600);
        rfc3339(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
    };
    let fixture = fs::read_to_string(fixtures().join("connections.jsonl")).unwrap();
    let lines: Vec<&str> = fixture.lines().collect();
    // A fixture record, read (and started) at `stamp`.
    let at = |line: &str, stamp: String| {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["time"] = stamp.clone().into();
        v["start"] = stamp.into();
        v.to_string()
    };
    // The UDP flow two days ago, tcp:3's close an hour ago.
    fs::write(
        &log,
        format!("{}\n{}\n", at(lines[1], ago(48)), at(lines[2], ago(1))),
    )
    .unwrap();
    let out = report(&log, &["--since", "12h", "--format", "csv"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let total = out.stdout.lines().nth(1).unwrap();
    assert!(
        total.starts_with("total,,,,,1,8000,1500,"),
        "{}",
        out.stdout
    );
    let out = report(&log, &["--since", "3d", "--format", "csv"]);
    let total = out.stdout.lines().nth(1).unwrap();
    assert!(
        total.starts_with("total,,,,,2,8120,1980,"),
        "{}",
        out.stdout
    );
}

/// `secs` since the epoch as RFC 3339 UTC (civil from days, Howard Hinnant's algorithm).
fn rfc3339(secs: u64) -> String {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[test]
fn bad_input_gets_one_line_that_says_what_to_do() {
    let tmp = log_dir("report-bad");
    let log = tmp.path().join("connections.jsonl");
    let one_line = |out: &Out, code: i32, wanted: &str| {
        assert_eq!(out.code, Some(code), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(wanted), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    };
    one_line(
        &report(&log, &["--since", "yesterday"]),
        1,
        "agentmon: error: --since \"yesterday\" is neither a time (2026-11-29T10:00:00Z",
    );
    one_line(
        &report(&log, &["--since", "2026-11-30", "--until", "2026-11-29"]),
        1,
        "--since 2026-11-30T00:00:00Z is not before --until 2026-11-29T00:00:00Z",
    );
    one_line(
        &report(&tmp.path().join("absent.jsonl"), &[]),
        1,
        "cannot read the connection log",
    );

    // Without --log, the config names the log.
    let config = tmp.path().join("config.toml");
    fs::write(&config, "listen = \"127.0.0.1:9977\"\n").unwrap();
    let config_arg = config.display().to_string();
    one_line(
        &agentmon_report(&["--config", &config_arg]),
        1,
        "has no `[log] connections`; name the log with --log PATH",
    );
    fs::write(
        &config,
        format!("[log]\nconnections = \"{}\"\n", log.display()),
    )
    .unwrap();
    let out = agentmon_report(&["--config", &config_arg, "--format", "csv"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("\ntotal,,,,,5,13020,92530,"),
        "{}",
        out.stdout
    );
}

//! The shipped alert lists against ordinary agent traffic: `promtool test
//! rules` runs the shipped `lists.yml`, `fleet.yml` and `alerts.yml` (not
//! the test fixtures) on series labelled by `agentmon lookup` with the
//! default GeoIP databases (`cargo xtask setup` installs them), for
//! well-known addresses of the catalog's vendors. No alert may fire. The
//! addresses are only looked up, never contacted. No root needed.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{TempDir, agentmon_bin, dashboards_dir, run_bounded};
use serde_json::{Value, json};

const RUN: Duration = Duration::from_secs(120);
/// Where `cargo xtask setup` installs the default databases.
const GEOIP_DIR: &str = "/var/lib/agentmon/geoip";

/// (tool, host, address, whose): addresses the vendors' hosts resolved to
/// (Cloudflare and Fastly are anycast; GitHub and Google answer from sites
/// near the client, so both a US and a European site are here). Telemetry
/// is left out: the shipped lists say claude-code's is turned off, so its
/// telemetry rightly raises AgentTelemetryWhileDisabled.
const VENDORS: &[(&str, &str, &str, &str)] = &[
    (
        "claude-code",
        "api.anthropic.com",
        "160.79.104.10",
        "Anthropic",
    ),
    (
        "claude-code",
        "registry.npmjs.org",
        "104.16.0.35",
        "npm on Cloudflare",
    ),
    (
        "codex",
        "api.openai.com",
        "104.18.33.45",
        "OpenAI on Cloudflare",
    ),
    (
        "codex",
        "api.openai.com",
        "162.159.140.245",
        "OpenAI on Cloudflare",
    ),
    (
        "codex",
        "chatgpt.com",
        "172.64.155.209",
        "OpenAI on Cloudflare",
    ),
    (
        "gemini-cli",
        "generativelanguage.googleapis.com",
        "142.250.72.10",
        "Google",
    ),
    (
        "gemini-cli",
        "cloudcode-pa.googleapis.com",
        "142.251.32.10",
        "Google",
    ),
    (
        "copilot",
        "api.github.com",
        "140.82.121.6",
        "GitHub, Frankfurt",
    ),
    ("copilot", "api.github.com", "140.82.112.6", "GitHub, US"),
    (
        "copilot",
        "api.individual.githubcopilot.com",
        "140.82.113.22",
        "GitHub",
    ),
    ("aider", "pypi.org", "151.101.0.223", "PyPI on Fastly"),
    (
        "aider",
        "files.pythonhosted.org",
        "151.101.64.223",
        "PyPI on Fastly",
    ),
];

/// What `agentmon lookup --json` says about one destination.
fn lookup(host: &str, addr: &str, config: &Path) -> Value {
    let mut cmd = Command::new(agentmon_bin());
    cmd.args(["lookup", "--json", "--config"])
        .arg(config)
        .args([host, "--addr", addr]);
    let out = run_bounded(&mut cmd, RUN);
    assert!(
        out.status.success(),
        "agentmon lookup {host} --addr {addr}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).expect("lookup --json prints JSON");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    all[0].clone()
}

/// `agentmon_egress_bytes_total` of one destination as agentmon exports it,
/// on the machine `dev1:9977`.
fn egress_series(tool: &str, labels: &Value) -> String {
    let label = |k: &str| {
        labels[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} in {labels}"))
    };
    format!(
        "agentmon_egress_bytes_total{{instance=\"dev1:9977\", job=\"agentmon\", tool=\"{tool}\", proto=\"tcp\", dest=\"{}\", dest_country=\"{}\", dest_asn=\"{}\", purpose=\"{}\"}}",
        label("dest"),
        label("dest_country"),
        label("dest_asn"),
        label("purpose")
    )
}

/// Every `- alert:` name in the shipped alerts.yml.
fn alert_names() -> Vec<String> {
    let text = fs::read_to_string(dashboards_dir().join("rules/alerts.yml")).unwrap();
    let names: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_owned())
        .collect();
    assert!(names.len() >= 10, "alerts.yml has {names:?}");
    names
}

/// A promtool test file: three hours of steady uploads to every series (and
/// the machine scraped all along), no alert expected at any of the times.
fn promtool_test(series: &[String]) -> Value {
    let rules = dashboards_dir().join("rules");
    let mut input: Vec<Value> = series
        .iter()
        .map(|s| json!({"series": s, "values": "0+100000x180"}))
        .collect();
    input
        .push(json!({"series": "up{instance=\"dev1:9977\", job=\"agentmon\"}", "values": "1x180"}));
    let mut checks = Vec::new();
    for alert in alert_names() {
        for at in ["5m", "30m", "2h", "3h"] {
            checks.push(json!({"eval_time": at, "alertname": alert, "exp_alerts": []}));
        }
    }
    let files =
        ["lists.yml", "fleet.yml", "alerts.yml"].map(|f| rules.join(f).display().to_string());
    json!({
        "rule_files": files,
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input, "alert_rule_test": checks}],
    })
}

fn promtool(test: &Value, dir: &Path, name: &str) -> (bool, String) {
    // YAML is a superset of JSON.
    let file = dir.join(name);
    fs::write(&file, serde_json::to_string_pretty(test).unwrap()).unwrap();
    let out = run_bounded(
        Command::new("promtool").args(["test", "rules"]).arg(&file),
        RUN,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn default_config(dir: &Path) -> PathBuf {
    for db in ["country.mmdb", "asn.mmdb"] {
        let path = Path::new(GEOIP_DIR).join(db);
        assert!(
            path.exists(),
            "{} is missing: `cargo xtask setup` installs the default GeoIP databases",
            path.display()
        );
    }
    // The built-in defaults, whatever /etc/agentmon/config.toml says.
    let config = dir.join("config.toml");
    fs::write(&config, "").unwrap();
    config
}

#[test]
fn shipped_lists_raise_nothing_for_the_catalog_vendors() {
    let dir = TempDir::new("day-one");
    let config = default_config(dir.path());
    let mut series = Vec::new();
    let mut table = String::new();
    for &(tool, host, addr, whose) in VENDORS {
        let labels = lookup(host, addr, &config);
        // The databases answered: every vendor's network is known.
        assert_ne!(labels["dest_asn"], "unknown", "{host} {addr}: {labels}");
        writeln!(
            table,
            "{tool:12} {host:34} {addr:16} {:8} {:9} {whose}",
            labels["dest_country"].as_str().unwrap(),
            labels["dest_asn"].as_str().unwrap()
        )
        .unwrap();
        series.push(egress_series(tool, &labels));
    }
    eprintln!("{table}");
    let (ok, text) = promtool(&promtool_test(&series), dir.path(), "vendors.yml");
    assert!(
        ok,
        "an alert fired for a vendor's address:\n{table}\n{text}"
    );
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The same harness has teeth: one upload to an address the databases
/// place in a country and network the lists leave out fails it, naming
/// the page.
#[test]
fn shipped_lists_page_for_a_country_they_leave_out() {
    let dir = TempDir::new("day-one");
    let config = default_config(dir.path());
    // Yandex, placed in RU (AS13238).
    let labels = lookup("upload.example.org", "77.88.55.88", &config);
    assert_eq!(
        (&labels["dest_country"], &labels["dest_asn"]),
        (&json!("RU"), &json!("AS13238")),
        "{labels}"
    );
    let series = vec![egress_series("codex", &labels)];
    let (ok, text) = promtool(&promtool_test(&series), dir.path(), "elsewhere.yml");
    assert!(!ok, "no alert for RU:\n{text}");
    for alert in [
        "AgentEgressToCountryNotAllowed",
        "AgentEgressToAsnNotAllowed",
    ] {
        assert!(
            text.contains(&format!("alertname: {alert}")),
            "{alert}:\n{text}"
        );
    }
    assert!(text.contains("dest_country=\"RU\""), "{text}");
}

/// Without --addr a name is resolved by the system resolver (here
/// /etc/hosts); what cannot be looked up gets one line saying what to do.
#[test]
fn lookup_resolves_names_and_names_the_fix_when_it_cannot() {
    let dir = TempDir::new("day-one");
    let config = default_config(dir.path());
    let run = |args: &[&str]| {
        let mut cmd = Command::new(agentmon_bin());
        cmd.args(["lookup", "--config"]).arg(&config).args(args);
        run_bounded(&mut cmd, RUN)
    };
    let out = run(&["localhost"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("localhost at 127.0.0.1\n"), "{text}");
    assert!(text.contains("  dest_country  private\n"), "{text}");
    for (args, message) in [
        (
            &["no-such-host.invalid"][..],
            "agentmon: error: cannot resolve no-such-host.invalid; give the address it resolved to with --addr IP",
        ),
        (
            &["bad name!"],
            "agentmon: error: \"bad name!\" is neither an IP address nor a host name (labels of a-z 0-9 - _)",
        ),
        (
            &["192.0.2.1", "--addr", "192.0.2.2"],
            "agentmon: error: 192.0.2.1 is an address: --addr goes with a host name",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with(message), "{args:?}: {stderr}");
    }
}

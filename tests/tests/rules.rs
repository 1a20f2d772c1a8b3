//! The Prometheus rules and the example configs in `dashboards/`, checked by
//! the real tools: `promtool check rules`, `promtool test rules` (the unit
//! tests in dashboards/rules/tests/), `promtool check config`, `amtool`, and
//! a Prometheus that loads the rules and lists them. No root needed.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use agentmon_tests::{Prometheus, agentmon_metric_names, dashboards_dir, run_bounded};
use serde_json::Value;

const RUN: Duration = Duration::from_secs(120);

fn rules_dir() -> PathBuf {
    dashboards_dir().join("rules")
}

/// The `*.yml` files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yml in {}", dir.display());
    files
}

/// The shipped rule files, in the order the example config loads them.
fn rule_files() -> Vec<PathBuf> {
    yaml_files(&rules_dir())
}

fn test_files() -> Vec<PathBuf> {
    yaml_files(&rules_dir().join("tests"))
}

/// Runs a Prometheus tool; panics with its output unless it succeeds.
fn run_ok(program: &str, args: &[&str], files: &[PathBuf]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).args(files).current_dir(dashboards_dir());
    let out = run_bounded(&mut cmd, RUN);
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{}{}\n(`cargo xtask setup test` installs Debian's prometheus and prometheus-alertmanager)",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn promtool_accepts_every_rule_file() {
    let mut files = rule_files();
    files.extend(yaml_files(&rules_dir().join("tests/fixtures")));
    let out = run_ok("promtool", &["check", "rules"], &files);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("SUCCESS").count(),
        files.len(),
        "one SUCCESS per file:\n{text}"
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let files = test_files();
    let out = run_ok("promtool", &["test", "rules"], &files);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("SUCCESS").count(), files.len(), "{text}");
}

#[test]
fn example_prometheus_config_is_valid() {
    let out = run_ok(
        "promtool",
        &["check", "config"],
        &[dashboards_dir().join("prometheus.yml")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // It names the shipped rule files, and promtool found and checked them.
    for file in rule_files() {
        let name = format!("rules/{}", file.file_name().unwrap().to_string_lossy());
        assert!(
            text.contains(&format!("{name}\n  SUCCESS")),
            "{name}:\n{text}"
        );
    }
}

/// The agent-mode config for machines that push: promtool checks it as
/// agent mode does (no rules, no alerting), and it keeps the job name and
/// loopback target the dashboards and agentmon's default expect.
#[test]
fn example_agent_config_is_valid() {
    let config = dashboards_dir().join("prometheus-agent.yml");
    run_ok(
        "promtool",
        &["check", "config", "--agent"],
        std::slice::from_ref(&config),
    );
    let text = fs::read_to_string(&config).unwrap();
    for line in [
        "  - job_name: agentmon\n",
        "      - targets: [127.0.0.1:9977]\n",
        "    agentmon_host: ${HOSTNAME}\n",
        "        target_label: instance\n",
    ] {
        assert!(text.contains(line), "prometheus-agent.yml has no {line:?}");
    }
}

/// The Alertmanager example takes agentmon's alerts (`component="agentmon"`)
/// and no one else's, even another team's page.
#[test]
fn example_alertmanager_routes_only_agentmon_alerts() {
    let config = dashboards_dir().join("alertmanager.yml");
    run_ok("amtool", &["check-config"], std::slice::from_ref(&config));
    let file = format!("--config.file={}", config.display());
    for (labels, receiver) in [
        (
            &[
                "component=agentmon",
                "severity=page",
                "alertname=AgentUploadSpike",
            ][..],
            "security-oncall",
        ),
        (
            &[
                "component=agentmon",
                "severity=warning",
                "alertname=AgentNewDestination",
            ],
            "security-chat",
        ),
        (&["severity=page", "alertname=DiskFull"], "default"),
        (
            &["severity=warning", "alertname=AgentUploadSpike"],
            "default",
        ),
        (&["alertname=SomethingElse"], "default"),
    ] {
        let verify = format!("--verify.receivers={receiver}");
        let mut args = vec!["config", "routes", "test", file.as_str(), verify.as_str()];
        args.extend(labels);
        run_ok("amtool", &args, &[]);
    }
}

/// Every rule as Prometheus itself parsed it (`/api/v1/rules`).
fn loaded_rules() -> Vec<Value> {
    let files: Vec<String> = rule_files()
        .iter()
        .map(|f| format!("  - {:?}\n", f.display().to_string()))
        .collect();
    let config = format!(
        "global:\n  evaluation_interval: 1m\nrule_files:\n{}",
        files.concat()
    );
    let prometheus = Prometheus::start(None, &config);
    let data = prometheus.api("rules").expect("GET /api/v1/rules");
    data["groups"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Every alert's runbook link starts here: the external label
/// `agentmon_runbook_base` if Prometheus has one, else the upstream runbook.
const RUNBOOK_BASE: &str = "{{ with $externalLabels.agentmon_runbook_base }}{{ . }}{{ else }}https://github.com/agentmon/agentmon/blob/main/dashboards/runbook.md{{ end }}";

/// Headings of runbook.md as GitHub anchors.
fn runbook_anchors() -> BTreeSet<String> {
    let text = fs::read_to_string(dashboards_dir().join("runbook.md")).expect("read runbook.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn alerts_have_a_severity_a_runbook_and_recording_rules_a_level() {
    let rules = loaded_rules();
    let anchors = runbook_anchors();
    let mut alerts = 0;
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or_default();
        match rule["type"].as_str() {
            Some("alerting") => {
                alerts += 1;
                let severity = rule["labels"]["severity"].as_str();
                assert!(
                    matches!(severity, Some("page" | "warning")),
                    "{name}: severity {severity:?}"
                );
                for key in ["summary", "description", "runbook_url"] {
                    assert!(
                        rule["annotations"][key]
                            .as_str()
                            .is_some_and(|s| !s.is_empty()),
                        "{name} has no {key} annotation"
                    );
                }
                assert_eq!(
                    rule["labels"]["component"], "agentmon",
                    "{name}: the Alertmanager route matches component=\"agentmon\""
                );
                let url = rule["annotations"]["runbook_url"].as_str().unwrap();
                assert_eq!(
                    url,
                    format!("{RUNBOOK_BASE}#{}", name.to_lowercase()),
                    "{name}: runbook_url"
                );
                assert!(
                    anchors.contains(&name.to_lowercase()),
                    "runbook.md has no section `## {name}`"
                );
            }
            Some("recording") => {
                // level:metric:operations, on agentmon's metrics.
                let parts: Vec<&str> = name.split(':').collect();
                assert_eq!(parts.len(), 3, "{name}: not level:metric:operations");
                assert!(
                    parts[1].starts_with("agentmon_") && parts.iter().all(|p| !p.is_empty()),
                    "{name}: not level:agentmon_metric:operations"
                );
            }
            other => panic!("{name}: rule type {other:?}"),
        }
    }
    assert!(alerts >= 10, "{alerts} alerts loaded");
}

/// For each alert name in the promtool tests: (has a firing case, has a
/// case where it does not fire). A case is an `alertname:` line followed by
/// `exp_alerts: []` (quiet) or by a list of expected alerts.
fn tested_alerts() -> BTreeMap<String, (bool, bool)> {
    let mut cases: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for file in test_files() {
        let text = fs::read_to_string(&file).unwrap();
        let mut current: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("alertname:") {
                current = Some(name.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
                let name = current
                    .take()
                    .unwrap_or_else(|| panic!("{}: exp_alerts without alertname", file.display()));
                let entry = cases.entry(name).or_default();
                if rest.trim() == "[]" {
                    entry.1 = true;
                } else {
                    entry.0 = true;
                }
            }
        }
    }
    cases
}

#[test]
fn every_alert_is_unit_tested_firing_and_not_firing() {
    let tested = tested_alerts();
    let alerts: Vec<String> = rule_files()
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter_map(|l| {
                    l.trim()
                        .strip_prefix("- alert:")
                        .map(|n| n.trim().to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!alerts.is_empty());
    for alert in &alerts {
        let (firing, quiet) = tested.get(alert).copied().unwrap_or_default();
        assert!(firing, "{alert}: no promtool test where it fires");
        assert!(quiet, "{alert}: no promtool test where it does not fire");
    }
    for name in tested.keys() {
        assert!(alerts.contains(name), "tests name an unknown alert {name}");
    }
}

/// Metric names in the metrics reference table of dashboards/README.md.
fn documented_metrics() -> BTreeSet<String> {
    let text = fs::read_to_string(dashboards_dir().join("README.md")).expect("read README.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("| `agentmon_"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| format!("agentmon_{name}"))
        .collect()
}

#[test]
fn dashboards_rules_and_the_daemon_agree_with_the_metrics_reference() {
    let documented = documented_metrics();
    // What the daemon registers (monitor/src/metrics.rs is the contract).
    let source = fs::read_to_string(dashboards_dir().join("../monitor/src/metrics.rs"))
        .expect("read monitor/src/metrics.rs");
    let registered = agentmon_metric_names(&source);
    assert_eq!(
        registered, documented,
        "metrics registered in monitor/src/metrics.rs vs documented in dashboards/README.md"
    );
    let mut used = BTreeSet::new();
    for (_, dashboard) in agentmon_tests::dashboards() {
        used.extend(agentmon_metric_names(&dashboard.to_string()));
    }
    for file in rule_files() {
        used.extend(agentmon_metric_names(&fs::read_to_string(file).unwrap()));
    }
    // A histogram is used through its `_bucket`, `_sum` and `_count` series.
    let used: BTreeSet<String> = used
        .into_iter()
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|family| documented.contains(*family))
                .map_or(name.clone(), str::to_owned)
        })
        .collect();
    let unknown: Vec<&String> = used.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "dashboards or rules use undocumented metrics {unknown:?}"
    );
}

//! Reading the Grafana dashboards in `dashboards/` the way Grafana would run
//! them: every panel's PromQL, with the dashboard variables filled in.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

/// The repository's `dashboards/` folder.
pub fn dashboards_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    dir.canonicalize().unwrap_or(dir)
}

/// Every `*.json` dashboard in `dashboards/`, by file name, parsed.
pub fn dashboards() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = fs::read_dir(dashboards_dir())
        .expect("read dashboards/")
        .map(|e| e.expect("dashboards/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, json)
        })
        .collect()
}

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    /// The dashboard's `uid`.
    pub dashboard: String,
    pub panel: String,
    pub panel_type: String,
    pub ref_id: String,
    pub expr: String,
    pub legend: String,
}

/// The queries of every panel (rows included, if they hold panels).
pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let uid = dashboard["uid"].as_str().unwrap_or_default();
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(PanelQuery {
                dashboard: uid.to_owned(),
                panel: panel["title"].as_str().unwrap_or_default().to_owned(),
                panel_type: panel["type"].as_str().unwrap_or_default().to_owned(),
                ref_id: target["refId"].as_str().unwrap_or_default().to_owned(),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                legend: target["legendFormat"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    out
}

/// Every panel, with those nested in collapsed rows.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `label_values(METRIC, LABEL)`, the form of a query variable, as PromQL
/// that returns one series per value: `group by (LABEL) (METRIC)`.
pub fn label_values_query(definition: &str) -> Option<String> {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (metric, label) = inner.rsplit_once(',')?;
    Some(format!("group by ({}) ({})", label.trim(), metric.trim()))
}

/// Replaces Grafana's variables (`$name` and `${name}`) with values, longest
/// name first so that `$__range_s` is not read as `$__range` plus `_s`.
pub fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// The `{{label}}` names a legend format shows.
pub fn legend_labels(legend: &str) -> BTreeSet<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(name, _)| name.trim().to_owned())
        .collect()
}

/// Names in `text` that start with `agentmon_` and are whole PromQL
/// identifiers. Recording-rule names (`level:metric:operations`) contain
/// colons and are not metric names agentmon exports, so they are left out.
pub fn agentmon_metric_names(text: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut after_dot = false;
    for word in text.split_inclusive(|c: char| !is_ident(c)) {
        let (name, sep) = match word.char_indices().last() {
            Some((i, c)) if !is_ident(c) => (&word[..i], Some(c)),
            _ => (word, None),
        };
        // A template's field (`$externalLabels.agentmon_runbook_base`) is
        // not a metric.
        if !after_dot && name.starts_with("agentmon_") && !name.contains(':') {
            names.insert(name.to_owned());
        }
        after_dot = sep == Some('.');
    }
    names
}

/// The label names (besides `__name__`) every query of a panel returns, by
/// dashboard uid and panel title. Every panel is listed, and only those.
pub const SHAPES: &[(&str, &str, &[&str])] = &[
    ("agentmon-fleet", "Machines reporting", &[]),
    ("agentmon-fleet", "Live agent processes", &[]),
    ("agentmon-fleet", "Bytes sent", &[]),
    ("agentmon-fleet", "Destinations", &[]),
    ("agentmon-fleet", "Bytes sent per tool", &["tool"]),
    ("agentmon-fleet", "Bytes received per tool", &["tool"]),
    (
        "agentmon-fleet",
        "Top destinations per tool",
        &["dest", "purpose", "tool"],
    ),
    (
        "agentmon-fleet",
        "Model API, telemetry and other",
        &["purpose"],
    ),
    ("agentmon-fleet", "Egress by country", &["dest_country"]),
    ("agentmon-fleet", "Egress by network (ASN)", &["dest_asn"]),
    (
        "agentmon-fleet",
        "Machines ranked by agent egress",
        &["instance"],
    ),
    ("agentmon-fleet", "Live agent processes per tool", &["tool"]),
    (
        "agentmon-fleet",
        "Policy violations by machine",
        &["dest", "instance", "rule", "tool"],
    ),
    ("agentmon-machine", "Agent processes", &[]),
    ("agentmon-machine", "Bytes sent", &[]),
    ("agentmon-machine", "Destinations seen", &[]),
    ("agentmon-machine", "HTTP requests seen", &[]),
    ("agentmon-machine", "Agent processes per tool", &["tool"]),
    ("agentmon-machine", "Bytes sent per tool", &["tool"]),
    ("agentmon-machine", "Bytes received per tool", &["tool"]),
    (
        "agentmon-machine",
        "Destinations",
        &["dest", "dest_asn", "dest_country", "purpose", "tool"],
    ),
    ("agentmon-machine", "Bytes sent by purpose", &["purpose"]),
    (
        "agentmon-machine",
        "Connections per tool",
        &["direction", "tool"],
    ),
    (
        "agentmon-machine",
        "HTTP requests",
        &["dest", "method", "purpose", "tool"],
    ),
    (
        "agentmon-machine",
        "HTTP request sizes (p90)",
        &["direction", "purpose", "tool"],
    ),
    (
        "agentmon-machine",
        "TLS coverage",
        &["library", "mode", "tool"],
    ),
    (
        "agentmon-machine",
        "TLS plaintext bytes",
        &["direction", "library", "tool"],
    ),
    ("agentmon-machine", "DNS answers per tool", &["tool"]),
    (
        "agentmon-machine",
        "Policy violations",
        &["dest", "rule", "tool"],
    ),
    ("agentmon-health", "Up", &["instance"]),
    (
        "agentmon-health",
        "Version and kernel",
        &["instance", "kernel", "version"],
    ),
    ("agentmon-health", "eBPF programs attached", &["instance"]),
    (
        "agentmon-health",
        "TLS probes attached",
        &["instance", "library"],
    ),
    ("agentmon-health", "Kernel events lost", &["instance"]),
    ("agentmon-health", "Kernel maps full", &["instance", "map"]),
    ("agentmon-health", "Scrape duration", &["instance"]),
    ("agentmon-health", "Series per scrape", &["instance"]),
    (
        "agentmon-health",
        "Destinations past the cap",
        &["instance", "tool"],
    ),
    (
        "agentmon-health",
        "TLS bytes not tied to a connection",
        &["instance"],
    ),
];

pub fn shape(dashboard: &str, panel: &str) -> Option<&'static [&'static str]> {
    SHAPES
        .iter()
        .find(|(d, p, _)| *d == dashboard && *p == panel)
        .map(|(_, _, labels)| *labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_recording_rules_and_template_fields() {
        let text = "sum(agentmon_a_total{x=\"1\"}) / tool:agentmon_b:rate5m \
                    {{ $externalLabels.agentmon_runbook_base }} agentmon_c";
        assert_eq!(
            agentmon_metric_names(text),
            BTreeSet::from(["agentmon_a_total".to_owned(), "agentmon_c".to_owned()])
        );
    }

    #[test]
    fn substitutes_longest_names_first() {
        let vars = [("__range", "5m"), ("__range_s", "300"), ("instance", ".*")];
        assert_eq!(
            substitute(
                r#"avg_over_time(x{instance=~"$instance"}[$__range]) * $__range_s"#,
                &vars
            ),
            r#"avg_over_time(x{instance=~".*"}[5m]) * 300"#
        );
        assert_eq!(substitute("${instance}", &vars), ".*");
    }

    #[test]
    fn label_values_become_a_group() {
        assert_eq!(
            label_values_query(r#"label_values(m{instance=~"$instance"}, tool)"#).as_deref(),
            Some(r#"group by (tool) (m{instance=~"$instance"})"#)
        );
        assert_eq!(label_values_query("up"), None);
    }

    #[test]
    fn legends_name_labels() {
        let labels = legend_labels("{{tool}} {{ method }} ({{purpose}})");
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            ["method", "purpose", "tool"]
        );
    }

    #[test]
    fn metric_names_skip_recording_rules() {
        let text = r#"sum(rate(agentmon_egress_bytes_total[5m])) / tool:agentmon_egress_bytes:rate5m
            # agentmon_build_info, and not agentmon itself"#;
        assert_eq!(
            agentmon_metric_names(text).into_iter().collect::<Vec<_>>(),
            ["agentmon_build_info", "agentmon_egress_bytes_total"]
        );
    }
}

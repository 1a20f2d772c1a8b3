//! What `agentmon top` shows, as the daemon hands it out: per tool and per
//! destination, the same counters `/metrics` exports (so the two never
//! disagree), plus when each destination last moved bytes. Rates are not
//! here: the viewer divides the difference of two snapshots by their
//! `time_ms` difference.

use std::collections::{BTreeMap, HashMap};

use prometheus::core::Collector;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// The `v` field; a change that renames or removes a field raises it.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub v: u32,
    /// When it was taken, ms since the Unix epoch.
    pub time_ms: u64,
    /// When this agentmon started; the totals may go back further (a
    /// restart continues the saved counters).
    pub started_ms: u64,
    /// Tools with live processes, traffic or violations, by name.
    pub tools: Vec<Tool>,
    /// Every destination of those tools.
    pub dests: Vec<DestRow>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    /// Live processes in its trees.
    pub processes: u64,
    pub egress_bytes: u64,
    pub ingress_bytes: u64,
    pub connections: u64,
    /// TLS coverage, `library/mode` (`openssl/plaintext`, `record/derived`).
    pub tls: Vec<String>,
    /// `Some(true)`: its policy is enforced; `Some(false)`: enforcement was
    /// asked for and is not in effect.
    pub enforced: Option<bool>,
    pub violations: u64,
}

/// One destination of one tool: the byte counters' labels less `proto`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestRow {
    pub tool: String,
    pub dest: String,
    pub country: String,
    pub asn: String,
    pub purpose: String,
    pub egress_bytes: u64,
    pub ingress_bytes: u64,
    pub connections: u64,
    /// When agentmon last counted bytes for it (at the latest refresh).
    pub last_seen_ms: Option<u64>,
    /// Policy violations of the tool at this `dest` (all rules).
    pub violations: u64,
}

/// A series' labels and value.
type Series = (BTreeMap<String, String>, u64);

fn series(collector: &impl Collector) -> Vec<Series> {
    let mut out = Vec::new();
    for family in collector.collect() {
        let counter = family.get_field_type() == prometheus::proto::MetricType::COUNTER;
        for m in family.get_metric() {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect();
            let value = if counter {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            };
            out.push((labels, value.max(0.0) as u64));
        }
    }
    out
}

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("", String::as_str)
}

type DestKey = (String, String, String, String, String);

fn dest_key(l: &BTreeMap<String, String>) -> DestKey {
    let get = |k| label(l, k).to_owned();
    (
        get("tool"),
        get("dest"),
        get("dest_country"),
        get("dest_asn"),
        get("purpose"),
    )
}

/// Builds a snapshot from the metrics (read after a refresh).
pub fn build(metrics: &Metrics, time_ms: u64, started_ms: u64) -> Snapshot {
    let mut dests: BTreeMap<DestKey, DestRow> = BTreeMap::new();
    for (l, n) in series(&metrics.egress_bytes) {
        entry(&mut dests, &l).egress_bytes += n;
    }
    for (l, n) in series(&metrics.ingress_bytes) {
        entry(&mut dests, &l).ingress_bytes += n;
    }
    for (l, n) in series(&metrics.connections) {
        entry(&mut dests, &l).connections += n;
    }
    let seen = metrics.last_seen();
    let mut dests: Vec<DestRow> = dests.into_values().collect();
    for d in &mut dests {
        d.last_seen_ms = seen.get(&(d.tool.clone(), d.dest.clone())).copied();
    }
    add_violations(&mut dests, series(&metrics.policy_violations));

    let mut tools: BTreeMap<String, Tool> = BTreeMap::new();
    for d in &dests {
        let t = tool_entry(&mut tools, &d.tool);
        t.egress_bytes += d.egress_bytes;
        t.ingress_bytes += d.ingress_bytes;
        t.connections += d.connections;
        t.violations += d.violations;
    }
    for (l, n) in series(&metrics.agent_processes) {
        if n > 0 {
            tool_entry(&mut tools, label(&l, "tool")).processes = n;
        }
    }
    for (l, n) in series(&metrics.tls_coverage) {
        if n > 0 {
            let (lib, mode) = (label(&l, "library"), label(&l, "mode"));
            tool_entry(&mut tools, label(&l, "tool"))
                .tls
                .push(format!("{lib}/{mode}"));
        }
    }
    for (l, n) in series(&metrics.policy_enforced) {
        // Only tools that are in the view already: an enforced tool with
        // no processes and no traffic has nothing to show.
        if let Some(t) = tools.get_mut(label(&l, "tool")) {
            t.enforced = Some(n > 0);
        }
    }
    let mut tools: Vec<Tool> = tools.into_values().collect();
    for t in &mut tools {
        t.tls.sort();
    }
    Snapshot {
        v: VERSION,
        time_ms,
        started_ms,
        tools,
        dests,
    }
}

fn tool_entry<'a>(tools: &'a mut BTreeMap<String, Tool>, name: &str) -> &'a mut Tool {
    tools.entry(name.to_owned()).or_insert_with(|| Tool {
        name: name.to_owned(),
        ..Tool::default()
    })
}

fn entry<'a>(
    dests: &'a mut BTreeMap<DestKey, DestRow>,
    l: &BTreeMap<String, String>,
) -> &'a mut DestRow {
    let key = dest_key(l);
    dests.entry(key.clone()).or_insert_with(|| DestRow {
        tool: key.0,
        dest: key.1,
        country: key.2,
        asn: key.3,
        purpose: key.4,
        ..DestRow::default()
    })
}

/// Violations are counted per (tool, dest): each goes on that pair's
/// busiest row, or on a row of its own when the pair moved no bytes (a
/// refused connect).
fn add_violations(dests: &mut Vec<DestRow>, violations: Vec<Series>) {
    let mut by_pair: HashMap<(String, String), u64> = HashMap::new();
    for (l, n) in violations {
        *by_pair
            .entry((label(&l, "tool").to_owned(), label(&l, "dest").to_owned()))
            .or_default() += n;
    }
    for ((tool, dest), n) in by_pair {
        if n == 0 {
            continue;
        }
        let busiest = dests
            .iter_mut()
            .filter(|d| d.tool == tool && d.dest == dest)
            .max_by_key(|d| d.egress_bytes + d.ingress_bytes);
        match busiest {
            Some(d) => d.violations += n,
            None => dests.push(DestRow {
                tool,
                dest,
                violations: n,
                ..DestRow::default()
            }),
        }
    }
}

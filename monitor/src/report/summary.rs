//! From log records to a report's figures.
//!
//! Every record carries its connection's totals since it began, so the
//! bytes a record adds are its totals minus those of the record before it
//! of the same connection, and they count where the record's `time` falls.
//! That is exact to the record: bytes moved between two records count at
//! the later one's time, whatever the range's edges cut between them.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, HashMap},
    time::SystemTime,
};

use serde::Deserialize;

use super::range::Range;

/// The fields of a connection-log record that a report reads.
#[derive(Debug, Deserialize)]
struct Entry {
    id: String,
    time: String,
    start: String,
    tool: String,
    dest: String,
    dest_country: String,
    purpose: String,
    egress_bytes: u64,
    ingress_bytes: u64,
}

/// A connection's labels: decided once, the same in all its records.
#[derive(Debug, Clone)]
struct Labels {
    tool: String,
    dest: String,
    country: String,
    purpose: String,
}

/// One record's totals.
#[derive(Debug, Clone, Copy)]
struct Reading {
    time: SystemTime,
    egress: u64,
    ingress: u64,
}

#[derive(Debug)]
struct Conn {
    labels: Labels,
    start: SystemTime,
    readings: Vec<Reading>,
}

/// What a group of connections (a tool, a destination ...) did in the range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub connections: u64,
    pub egress: u64,
    pub ingress: u64,
    /// The earliest and latest record (or start) in the range.
    pub first: Option<SystemTime>,
    pub last: Option<SystemTime>,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.connections += other.connections;
        self.egress += other.egress;
        self.ingress += other.ingress;
        self.first = match (self.first, other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // None sorts before any Some.
        self.last = self.last.max(other.last);
    }

    fn seen(&mut self, t: SystemTime) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }
}

/// One table of the report: rows of label values (one per column) and
/// their totals, biggest egress first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Its key in JSON and its `table` value in CSV.
    pub name: &'static str,
    pub title: &'static str,
    /// Field names as in the log (JSON and CSV keys).
    pub columns: &'static [&'static str],
    pub rows: Vec<(Vec<String>, Totals)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub range: Range,
    pub total: Totals,
    /// Per tool; per tool and destination; per country; per purpose.
    pub tables: Vec<Table>,
    /// Each tool's egress as its records added it: (record time, bytes).
    pub egress_over_time: BTreeMap<String, Vec<(SystemTime, u64)>>,
}

impl Summary {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Reads records one line at a time and sums them up at the end.
pub struct Collector {
    range: Range,
    /// Only these tools; empty: all.
    tools: Vec<String>,
    /// By id and start: socket cookies start again at each boot.
    conns: HashMap<(String, String), Conn>,
}

impl Collector {
    pub fn new(range: Range, tools: Vec<String>) -> Self {
        Self {
            range,
            tools,
            conns: HashMap::new(),
        }
    }

    /// Takes one line of the log; `Err`: why it is not a record.
    pub fn line(&mut self, line: &[u8]) -> Result<(), String> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let entry: Entry = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        let time = humantime::parse_rfc3339(&entry.time)
            .map_err(|e| format!("`time` {:?}: {e}", entry.time))?;
        let start = humantime::parse_rfc3339(&entry.start)
            .map_err(|e| format!("`start` {:?}: {e}", entry.start))?;
        if !self.tools.is_empty() && !self.tools.contains(&entry.tool) {
            return Ok(());
        }
        let reading = Reading {
            time,
            egress: entry.egress_bytes,
            ingress: entry.ingress_bytes,
        };
        self.conns
            .entry((entry.id, entry.start))
            .or_insert_with(|| Conn {
                labels: Labels {
                    tool: entry.tool,
                    dest: entry.dest,
                    country: entry.dest_country,
                    purpose: entry.purpose,
                },
                start,
                readings: Vec::new(),
            })
            .readings
            .push(reading);
        Ok(())
    }

    pub fn finish(self) -> Summary {
        let range = self.range;
        let mut total = Totals::default();
        let mut groups: [BTreeMap<Vec<String>, Totals>; 4] = Default::default();
        let mut egress_over_time: BTreeMap<String, Vec<(SystemTime, u64)>> = BTreeMap::new();
        for conn in self.conns.into_values() {
            let (labels, Some((t, egress))) = (&conn.labels, tally(&conn, &range)) else {
                continue;
            };
            if !egress.is_empty() {
                egress_over_time
                    .entry(labels.tool.clone())
                    .or_default()
                    .extend(egress);
            }
            let keys = [
                vec![labels.tool.clone()],
                vec![labels.tool.clone(), labels.dest.clone()],
                vec![labels.country.clone()],
                vec![labels.purpose.clone()],
            ];
            for (group, key) in groups.iter_mut().zip(keys) {
                group.entry(key).or_default().add(&t);
            }
            total.add(&t);
        }
        for points in egress_over_time.values_mut() {
            points.sort();
        }
        let [tools, dests, countries, purposes] = groups;
        Summary {
            range,
            total,
            tables: vec![
                table("tools", "Per tool", &["tool"], tools),
                table(
                    "destinations",
                    "Per tool and destination",
                    &["tool", "dest"],
                    dests,
                ),
                table("countries", "Per country", &["dest_country"], countries),
                table("purposes", "Per purpose", &["purpose"], purposes),
            ],
            egress_over_time,
        }
    }
}

/// What one connection did in the range (`None`: it was not there), and
/// its egress record by record.
fn tally(conn: &Conn, range: &Range) -> Option<(Totals, Vec<(SystemTime, u64)>)> {
    let mut readings = conn.readings.clone();
    // Files come oldest first, but a record's place is its time (a stable
    // sort keeps the file order of records read at the same instant).
    readings.sort_by_key(|r| r.time);
    let mut t = Totals::default();
    let mut present = range.contains(conn.start);
    if present {
        t.seen(conn.start);
    }
    let mut egress_points = Vec::new();
    let (mut egress, mut ingress) = (0, 0);
    for r in readings {
        // Totals only grow; a smaller one (a damaged line) adds nothing and
        // does not make the next record count bytes twice.
        let added = (
            r.egress.saturating_sub(egress),
            r.ingress.saturating_sub(ingress),
        );
        egress = egress.max(r.egress);
        ingress = ingress.max(r.ingress);
        if range.contains(r.time) {
            present = true;
            t.seen(r.time);
            t.egress += added.0;
            t.ingress += added.1;
            if added.0 > 0 {
                egress_points.push((r.time, added.0));
            }
        }
    }
    present.then(|| {
        t.connections = 1;
        (t, egress_points)
    })
}

/// Rows biggest egress first, then biggest ingress, then by name; the
/// destinations of one tool together.
fn table(
    name: &'static str,
    title: &'static str,
    columns: &'static [&'static str],
    groups: BTreeMap<Vec<String>, Totals>,
) -> Table {
    let mut rows: Vec<(Vec<String>, Totals)> = groups.into_iter().collect();
    // The destinations of one tool stay together.
    let tool = |k: &[String]| -> String {
        if columns.len() > 1 {
            k[0].clone()
        } else {
            String::new()
        }
    };
    rows.sort_by_cached_key(|(k, t)| (tool(k), Reverse(t.egress), Reverse(t.ingress), k.clone()));
    Table {
        name,
        title,
        columns,
        rows,
    }
}

//! A summary as text tables, JSON or CSV.

use std::{fmt::Write as _, time::SystemTime};

use serde::Serialize;

use super::{
    range::seconds,
    summary::{Summary, Table, Totals},
};

/// Every label column a table can have, in CSV's order.
const LABELS: &[&str] = &["tool", "dest", "dest_country", "purpose"];

/// 1234567 → "1,234,567": exact, and readable at a glance.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn when(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "-".to_owned(), seconds)
}

/// A label for a terminal: control characters (escape sequences that a
/// crafted log could carry) shown escaped instead of acted on.
fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The first lines of every format that people read: the range, and
/// either the totals or that there was nothing.
pub fn headline(s: &Summary) -> String {
    let (since, until) = (s.range.since_text(), s.range.until_text());
    if s.total.connections == 0 {
        return format!("no traffic between {since} and {until}");
    }
    format!(
        "{} connections between {since} and {until}: {} bytes egress, {} bytes ingress",
        s.total.connections,
        grouped(s.total.egress),
        grouped(s.total.ingress)
    )
}

pub fn text(s: &Summary) -> String {
    let mut out = headline(s);
    out.push('\n');
    for table in &s.tables {
        out.push('\n');
        out.push_str(table.title);
        out.push('\n');
        out.push_str(&text_table(table));
    }
    out
}

fn heading(column: &str) -> &str {
    match column {
        "dest" => "DESTINATION",
        "dest_country" => "COUNTRY",
        "tool" => "TOOL",
        "purpose" => "PURPOSE",
        other => other,
    }
}

fn text_table(table: &Table) -> String {
    let mut lines: Vec<Vec<String>> = vec![
        table
            .columns
            .iter()
            .map(|c| heading(c).to_owned())
            .chain(
                [
                    "CONNECTIONS",
                    "EGRESS BYTES",
                    "INGRESS BYTES",
                    "FIRST SEEN",
                    "LAST SEEN",
                ]
                .map(str::to_owned),
            )
            .collect(),
    ];
    for (labels, t) in &table.rows {
        let mut line: Vec<String> = labels.iter().map(|l| printable(l)).collect();
        line.extend([
            grouped(t.connections),
            grouped(t.egress),
            grouped(t.ingress),
            when(t.first),
            when(t.last),
        ]);
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numbers = table.columns.len()..table.columns.len() + 3;
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                if numbers.contains(&i) {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

#[derive(Serialize)]
struct JsonTotals {
    connections: u64,
    egress_bytes: u64,
    ingress_bytes: u64,
    first_seen: Option<String>,
    last_seen: Option<String>,
}

impl From<&Totals> for JsonTotals {
    fn from(t: &Totals) -> Self {
        Self {
            connections: t.connections,
            egress_bytes: t.egress,
            ingress_bytes: t.ingress,
            first_seen: t.first.map(seconds),
            last_seen: t.last.map(seconds),
        }
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    labels: std::collections::BTreeMap<&'static str, &'a str>,
    #[serde(flatten)]
    totals: JsonTotals,
}

#[derive(Serialize)]
struct Json<'a> {
    since: Option<String>,
    until: Option<String>,
    total: JsonTotals,
    #[serde(flatten)]
    tables: std::collections::BTreeMap<&'static str, Vec<JsonRow<'a>>>,
}

/// One JSON object: the range (null: open), the totals, and an array per
/// table; an empty range has zero totals and empty arrays.
pub fn json(s: &Summary) -> String {
    let doc = Json {
        since: s.range.since.map(seconds),
        until: s.range.until.map(seconds),
        total: (&s.total).into(),
        tables: s
            .tables
            .iter()
            .map(|table| {
                let rows = table
                    .rows
                    .iter()
                    .map(|(labels, t)| JsonRow {
                        labels: table
                            .columns
                            .iter()
                            .copied()
                            .zip(labels.iter().map(String::as_str))
                            .collect(),
                        totals: t.into(),
                    })
                    .collect();
                (table.name, rows)
            })
            .collect(),
    };
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

/// RFC 4180: a field with a comma, quote or line break is quoted.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One CSV table for all: a `table` column (`total`, then each table's
/// name), the label columns a row has (others empty), then the figures.
pub fn csv(s: &Summary) -> String {
    let mut out = String::from("table,");
    out.push_str(&LABELS.join(","));
    out.push_str(",connections,egress_bytes,ingress_bytes,first_seen,last_seen\n");
    let mut row = |table: &str, labels: &[(&str, &str)], t: &Totals| {
        let mut cells = vec![table.to_owned()];
        cells.extend(LABELS.iter().map(|column| {
            labels
                .iter()
                .find(|(c, _)| c == column)
                .map_or_else(String::new, |(_, v)| csv_field(v))
        }));
        cells.extend([
            t.connections.to_string(),
            t.egress.to_string(),
            t.ingress.to_string(),
            t.first.map(seconds).unwrap_or_default(),
            t.last.map(seconds).unwrap_or_default(),
        ]);
        out.push_str(&cells.join(","));
        out.push('\n');
    };
    row("total", &[], &s.total);
    for table in &s.tables {
        for (labels, t) in &table.rows {
            let labels: Vec<(&str, &str)> = table
                .columns
                .iter()
                .copied()
                .zip(labels.iter().map(String::as_str))
                .collect();
            row(table.name, &labels, t);
        }
    }
    out
}

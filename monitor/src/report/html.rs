//! The report as one self-contained HTML page: the charts inline as SVG,
//! the tables below them, and nothing fetched from anywhere (its Content
//! Security Policy forbids it, and scripts, in case a label got past the
//! escaping).

use std::{fmt::Write as _, path::PathBuf};

use super::{
    charts::{self, ChartError},
    range::seconds,
    render::{grouped, headline},
    summary::{Summary, Table},
};

/// Text for HTML content and attribute values: tool names and hosts come
/// from the log, which anyone who can write to it controls.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 2em auto; max-width: 1040px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; font-size: 0.85em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.n, td.t { white-space: nowrap; }
td { overflow-wrap: break-word; }
.wide { overflow-x: auto; }
th { background: #f4f4f4; }
.note { color: #555; }
";

/// The page; `files` are the log files it was made from.
pub fn page(s: &Summary, files: &[PathBuf]) -> Result<String, ChartError> {
    let charts = charts::all(s)?;
    let title = format!(
        "agentmon report: {} to {}",
        s.range.since_text(),
        s.range.until_text()
    );
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p id=\"headline\">{}</p>\n",
        escape(&title),
        escape(&title),
        escape(&headline(s))
    );
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let _ = writeln!(
        out,
        "<p class=\"note\">From {}. Bytes count at the time of the record that reported them.</p>",
        escape(&names.join(", "))
    );
    for chart in &charts {
        let _ = writeln!(
            out,
            "<section class=\"chart\" id=\"{}\">\n<h2>{}</h2>\n<figure>\n{}\n</figure>\n</section>",
            chart.id,
            escape(chart.title),
            chart.svg
        );
    }
    for table in &s.tables {
        let _ = writeln!(
            out,
            "<section class=\"table\" id=\"table-{}\">\n<h2>{}</h2>\n{}</section>",
            table.name,
            escape(table.title),
            html_table(table)
        );
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

fn html_table(table: &Table) -> String {
    // A narrow window scrolls the table, not the page.
    let mut out = String::from("<div class=\"wide\">\n<table>\n<thead><tr>");
    for column in table.columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str(
        "<th>connections</th><th>egress bytes</th><th>ingress bytes</th>\
         <th>first seen</th><th>last seen</th></tr></thead>\n<tbody>\n",
    );
    for (labels, t) in &table.rows {
        out.push_str("<tr>");
        for label in labels {
            let _ = write!(out, "<td>{}</td>", escape(label));
        }
        let _ = writeln!(
            out,
            "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
            grouped(t.connections),
            grouped(t.egress),
            grouped(t.ingress),
            t.first.map(seconds).unwrap_or_default(),
            t.last.map(seconds).unwrap_or_default(),
        );
    }
    out.push_str("</tbody>\n</table>\n</div>\n");
    out
}

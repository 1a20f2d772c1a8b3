//! `agentmon top --once`: one plain-text snapshot, every tool and its
//! destinations, byte totals as exact integers (for scripts), colour only
//! on a terminal.

use std::fmt::Write as _;

use super::view::{self, DestLine, Rate, ToolLine, View};
use crate::clock::rfc3339;

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

pub fn render(view: &View, colour: bool) -> String {
    let mut out = String::new();
    let now = &view.current;
    let at = |ms: u64| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
    let rates = match view.interval() {
        Some(s) => format!("rates over {s:.1} s"),
        None => "no rates (one snapshot)".to_owned(),
    };
    let _ = writeln!(
        out,
        "agentmon top at {}; {rates}; agentmon running since {}",
        at(now.time_ms),
        at(now.started_ms)
    );
    let tools = view.tools();
    if tools.is_empty() {
        let _ = writeln!(out, "no agent processes and no agent traffic yet");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<20} {:>5} {:>12} {:>12} {:>14} {:>14} {:>6} {:>5}  TLS",
        "TOOL", "PROCS", "SENT/s", "RECV/s", "SENT", "RECEIVED", "CONNS", "VIOL"
    );
    for line in &tools {
        let _ = writeln!(out, "{}", tool_line(line));
    }
    for line in &tools {
        let dests = view.dests(&line.tool.name);
        let _ = writeln!(
            out,
            "\n{}: {} destination{}",
            line.tool.name,
            dests.len(),
            if dests.len() == 1 { "" } else { "s" }
        );
        if dests.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<4} {:<32} {:<3} {:<9} {:<16} {:>12} {:>12} {:>14} {:>14} {:>6} {:>5}",
            "FLAG",
            "DESTINATION",
            "CC",
            "ASN",
            "PURPOSE",
            "SENT/s",
            "RECV/s",
            "SENT",
            "RECEIVED",
            "CONNS",
            "LAST"
        );
        for d in &dests {
            let text = dest_line(d, now.time_ms);
            let paint = match d.flags() {
                f if !colour || f.is_empty() => None,
                f if f.starts_with('!') => Some(RED),
                _ => Some(YELLOW),
            };
            let _ = match paint {
                Some(c) => writeln!(out, "{c}{text}{RESET}"),
                None => writeln!(out, "{text}"),
            };
        }
    }
    out
}

fn rates(rate: Option<Rate>) -> (String, String) {
    match rate {
        Some(r) => (
            format!("{}/s", view::bytes(r.sent)),
            format!("{}/s", view::bytes(r.received)),
        ),
        None => ("-".to_owned(), "-".to_owned()),
    }
}

fn tool_line(line: &ToolLine<'_>) -> String {
    let t = line.tool;
    let (sent, received) = rates(line.rate);
    let tls = if t.tls.is_empty() {
        "-".to_owned()
    } else {
        t.tls.join(",")
    };
    let enforced = match t.enforced {
        Some(true) => "  policy enforced",
        Some(false) => "  policy NOT enforced",
        None => "",
    };
    format!(
        "{:<20} {:>5} {:>12} {:>12} {:>14} {:>14} {:>6} {:>5}  {tls}{enforced}",
        t.name,
        t.processes,
        sent,
        received,
        t.egress_bytes,
        t.ingress_bytes,
        t.connections,
        t.violations
    )
}

fn dest_line(line: &DestLine<'_>, now_ms: u64) -> String {
    let d = line.dest;
    let (sent, received) = rates(line.rate);
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    format!(
        "{:<4} {:<32} {:<3} {:<9} {:<16} {:>12} {:>12} {:>14} {:>14} {:>6} {:>5}",
        line.flags(),
        d.dest,
        or_dash(&d.country),
        or_dash(&d.asn),
        or_dash(&d.purpose),
        sent,
        received,
        d.egress_bytes,
        d.ingress_bytes,
        d.connections,
        view::ago(now_ms, d.last_seen_ms)
    )
}

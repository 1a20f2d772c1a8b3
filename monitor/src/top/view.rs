//! What `top` draws, from the last two snapshots: rows with rates, sorted
//! and filtered as the keys asked. Pure: the screen and `--once` both
//! render a [`View`].

use super::snapshot::{DestRow, Snapshot, Tool};

/// Columns the rows can be sorted by; `s` steps through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Sent,
    Received,
    Connections,
    LastSeen,
    Name,
}

impl Sort {
    pub fn next(self) -> Self {
        match self {
            Sort::Sent => Sort::Received,
            Sort::Received => Sort::Connections,
            Sort::Connections => Sort::LastSeen,
            Sort::LastSeen => Sort::Name,
            Sort::Name => Sort::Sent,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::Sent => "sent",
            Sort::Received => "received",
            Sort::Connections => "connections",
            Sort::LastSeen => "last seen",
            Sort::Name => "name",
        }
    }
}

/// Bytes per second each way, when two snapshots are known.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub sent: f64,
    pub received: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolLine<'a> {
    pub tool: &'a Tool,
    pub rate: Option<Rate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DestLine<'a> {
    pub dest: &'a DestRow,
    pub rate: Option<Rate>,
}

impl DestLine<'_> {
    /// `!` policy violation, `T` telemetry, `G` geolocation.
    pub fn flags(&self) -> String {
        let d = self.dest;
        let mut f = String::new();
        if d.violations > 0 {
            f.push('!');
        }
        match d.purpose.as_str() {
            "telemetry" => f.push('T'),
            "geolocation" => f.push('G'),
            _ => {}
        }
        f
    }
}

/// The viewer's state: the data and what the keys chose.
#[derive(Debug, Clone)]
pub struct View {
    pub current: Snapshot,
    pub previous: Option<Snapshot>,
    /// Rates (true) or totals in the byte columns.
    pub rates: bool,
    pub sort: Sort,
    /// Tools whose name contains this (case-insensitive) are shown.
    pub filter: String,
    /// The selected tool, by name: it stays selected as rows move.
    pub selected: Option<String>,
    pub frozen: bool,
}

impl View {
    pub fn new(current: Snapshot) -> Self {
        let mut view = Self {
            current,
            previous: None,
            rates: true,
            sort: Sort::Sent,
            filter: String::new(),
            selected: None,
            frozen: false,
        };
        view.keep_selection();
        view
    }

    /// A new snapshot, unless frozen.
    pub fn update(&mut self, next: Snapshot) {
        if self.frozen {
            return;
        }
        self.previous = Some(std::mem::replace(&mut self.current, next));
        self.keep_selection();
    }

    /// Seconds between the two snapshots rates are taken over.
    pub fn interval(&self) -> Option<f64> {
        let prev = self.previous.as_ref()?;
        let ms = self.current.time_ms.checked_sub(prev.time_ms)?;
        (ms > 0).then(|| ms as f64 / 1000.0)
    }

    fn rate(&self, now: (u64, u64), then: Option<(u64, u64)>) -> Option<Rate> {
        let secs = self.interval()?;
        // Something new since the last snapshot moved from zero.
        let (sent, received) = then.unwrap_or((0, 0));
        Some(Rate {
            sent: now.0.saturating_sub(sent) as f64 / secs,
            received: now.1.saturating_sub(received) as f64 / secs,
        })
    }

    pub fn tools(&self) -> Vec<ToolLine<'_>> {
        let filter = self.filter.to_lowercase();
        let mut lines: Vec<ToolLine<'_>> = self
            .current
            .tools
            .iter()
            .filter(|t| t.name.to_lowercase().contains(&filter))
            .map(|tool| {
                let then = self.previous.as_ref().and_then(|p| {
                    p.tools
                        .iter()
                        .find(|t| t.name == tool.name)
                        .map(|t| (t.egress_bytes, t.ingress_bytes))
                });
                ToolLine {
                    tool,
                    rate: self.rate((tool.egress_bytes, tool.ingress_bytes), then),
                }
            })
            .collect();
        let key = |l: &ToolLine<'_>| {
            let t = l.tool;
            self.key(
                (t.egress_bytes, t.ingress_bytes),
                l.rate,
                t.connections,
                None,
            )
        };
        lines.sort_by(|a, b| self.order(key(a), key(b), a.tool.name.cmp(&b.tool.name)));
        lines
    }

    /// The destinations of `tool`.
    pub fn dests(&self, tool: &str) -> Vec<DestLine<'_>> {
        let mut lines: Vec<DestLine<'_>> = self
            .current
            .dests
            .iter()
            .filter(|d| d.tool == tool)
            .map(|dest| {
                let then = self.previous.as_ref().and_then(|p| {
                    p.dests
                        .iter()
                        .find(|o| same_row(o, dest))
                        .map(|o| (o.egress_bytes, o.ingress_bytes))
                });
                DestLine {
                    dest,
                    rate: self.rate((dest.egress_bytes, dest.ingress_bytes), then),
                }
            })
            .collect();
        let key = |l: &DestLine<'_>| {
            let d = l.dest;
            let totals = (d.egress_bytes, d.ingress_bytes);
            self.key(totals, l.rate, d.connections, d.last_seen_ms)
        };
        lines.sort_by(|a, b| self.order(key(a), key(b), a.dest.dest.cmp(&b.dest.dest)));
        lines
    }

    /// Rows by their sort numbers, largest first, then by name (by name
    /// alone for `Name`).
    fn order(&self, a: f64, b: f64, by_name: std::cmp::Ordering) -> std::cmp::Ordering {
        if self.sort == Sort::Name {
            return by_name;
        }
        b.partial_cmp(&a)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(by_name)
    }

    /// The number a row is sorted by (descending); 0 for `Name`.
    fn key(&self, totals: (u64, u64), rate: Option<Rate>, conns: u64, seen: Option<u64>) -> f64 {
        let rate = rate.unwrap_or_default();
        match (self.sort, self.rates) {
            (Sort::Sent, true) => rate.sent,
            (Sort::Sent, false) => totals.0 as f64,
            (Sort::Received, true) => rate.received,
            (Sort::Received, false) => totals.1 as f64,
            (Sort::Connections, _) => conns as f64,
            (Sort::LastSeen, _) => seen.unwrap_or(0) as f64,
            (Sort::Name, _) => 0.0,
        }
    }

    /// Keeps a selection among the shown tools: the same tool if it is
    /// still shown, else the first.
    pub fn keep_selection(&mut self) {
        let shown: Vec<String> = self.tools().iter().map(|l| l.tool.name.clone()).collect();
        let keep = self.selected.as_ref().is_some_and(|s| shown.contains(s));
        if !keep {
            self.selected = shown.into_iter().next();
        }
    }

    /// Moves the selection `by` rows (negative: up), within the shown tools.
    pub fn select(&mut self, by: isize) {
        let shown: Vec<String> = self.tools().iter().map(|l| l.tool.name.clone()).collect();
        if shown.is_empty() {
            self.selected = None;
            return;
        }
        let at = self
            .selected
            .as_ref()
            .and_then(|s| shown.iter().position(|n| n == s))
            .unwrap_or(0) as isize;
        let to = (at + by).clamp(0, shown.len() as isize - 1) as usize;
        self.selected = Some(shown[to].clone());
    }

    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.keep_selection();
    }
}

fn same_row(a: &DestRow, b: &DestRow) -> bool {
    a.tool == b.tool
        && a.dest == b.dest
        && a.country == b.country
        && a.asn == b.asn
        && a.purpose == b.purpose
}

/// Bytes for people: `517 B`, `12.3 KiB`, `4.0 MiB`; at most 9
/// characters (`999.9 KiB`, then `1.0 MiB`), the screen's column width.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1000.0 {
        return format!("{} B", n.round() as u64);
    }
    let mut v = n / 1024.0;
    let mut unit = 0;
    // 999.95 and up would print as 1000.0.
    while v >= 999.95 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `name` in `width` characters: a longer one keeps its end (a host's
/// domain says more than its first label): `…etry.vendor.test`.
pub fn fit_left(name: &str, width: usize) -> String {
    let n = name.chars().count();
    if n <= width || width == 0 {
        return name.to_owned();
    }
    let tail: String = name.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}

/// How long ago `then` was, at `now` (both ms since the epoch): `4s`,
/// `12m`, `3h`, `2d`; `-` when never.
pub fn ago(now_ms: u64, then_ms: Option<u64>) -> String {
    let Some(then) = then_ms else {
        return "-".to_owned();
    };
    let s = now_ms.saturating_sub(then) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

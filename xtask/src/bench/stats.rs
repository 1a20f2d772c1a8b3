//! What a bench run measured: samples per (variant, figure, arm), their
//! median, min and max, and the with/without ratio.
use std::collections::BTreeMap;

/// What runs while one measurement is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arm {
    /// Nothing loaded: the baseline.
    Without,
    /// `agentmon run` with its kernel programs attached.
    Agentmon,
    /// The reference: a minimal bpftrace script on the same byte tracepoints.
    Bpftrace,
}

impl Arm {
    pub fn heading(self) -> &'static str {
        match self {
            Arm::Without => "without agentmon",
            Arm::Agentmon => "with agentmon",
            Arm::Bpftrace => "with bpftrace (reference)",
        }
    }
}

/// How a figure is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Gbps,
    PerSec,
    Cores,
    CpuSecs,
    MiB,
    KiB,
    Ms,
    Secs,
    Count,
    Bytes,
    Fraction,
}

impl Unit {
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Gbps => format!("{v:.2} Gbit/s"),
            Unit::PerSec if v >= 10_000.0 => format!("{:.1}k/s", v / 1000.0),
            Unit::PerSec => format!("{v:.0}/s"),
            Unit::Cores => format!("{v:.3} cores"),
            Unit::CpuSecs => format!("{v:.2} s"),
            Unit::MiB => format!("{v:.1} MiB"),
            Unit::KiB => format!("{v:.1} KiB"),
            Unit::Ms => format!("{v:.2} ms"),
            Unit::Secs => format!("{v:.2} s"),
            Unit::Count | Unit::Bytes => format!("{v:.0}"),
            Unit::Fraction => format!("{v:.4}"),
        }
    }

    /// Whether a with/without ratio of this figure means something.
    fn has_ratio(self) -> bool {
        matches!(self, Unit::Gbps | Unit::PerSec)
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub variant: String,
    pub figure: &'static str,
    pub unit: Unit,
    pub samples: BTreeMap<Arm, Vec<f64>>,
}

/// One scenario's table.
#[derive(Debug, Clone)]
pub struct Table {
    pub key: &'static str,
    pub title: String,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(key: &'static str, title: impl Into<String>) -> Self {
        Self {
            key,
            title: title.into(),
            rows: Vec::new(),
        }
    }

    fn add(&mut self, variant: &str, arm: Arm, figure: &'static str, unit: Unit, value: f64) {
        let row = match self
            .rows
            .iter()
            .position(|r| r.variant == variant && r.figure == figure)
        {
            Some(i) => &mut self.rows[i],
            None => {
                self.rows.push(Row {
                    variant: variant.to_owned(),
                    figure,
                    unit,
                    samples: BTreeMap::new(),
                });
                self.rows.last_mut().expect("just pushed")
            }
        };
        row.samples.entry(arm).or_default().push(value);
    }

    fn arms(&self) -> Vec<Arm> {
        let mut arms: Vec<Arm> = self
            .rows
            .iter()
            .flat_map(|r| r.samples.keys().copied())
            .collect();
        arms.sort();
        arms.dedup();
        arms
    }

    /// The table in markdown: median (min–max) per arm, and each arm's
    /// median over the baseline's where that is a meaningful ratio.
    pub fn markdown(&self) -> String {
        let arms = self.arms();
        let mut head = "| variant | figure |".to_owned();
        let mut rule = "|---|---|".to_owned();
        for &arm in &arms {
            head.push_str(&format!(" {} |", arm.heading()));
            rule.push_str("---|");
            if arm != Arm::Without {
                head.push_str(" ratio |");
                rule.push_str("---|");
            }
        }
        let mut out = format!("{head}\n{rule}\n");
        for row in &self.rows {
            out.push_str(&format!("| {} | {} |", row.variant, row.figure));
            let base = row
                .samples
                .get(&Arm::Without)
                .map(|s| Summary::of(s).median);
            for &arm in &arms {
                let summary = row.samples.get(&arm).map(|s| Summary::of(s));
                match summary {
                    Some(s) => out.push_str(&format!(" {} |", s.format(row.unit))),
                    None => out.push_str(" – |"),
                }
                if arm != Arm::Without {
                    let ratio = match (base, summary) {
                        (Some(b), Some(s)) if row.unit.has_ratio() && b > 0.0 => {
                            format!("{:.3}", s.median / b)
                        }
                        _ => "–".to_owned(),
                    };
                    out.push_str(&format!(" {ratio} |"));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Median, min and max of some samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Self {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => s[n / 2],
            _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        };
        Self {
            median,
            min: s.first().copied().unwrap_or(f64::NAN),
            max: s.last().copied().unwrap_or(f64::NAN),
            n,
        }
    }

    fn format(&self, unit: Unit) -> String {
        if self.n <= 1 || self.min == self.max {
            unit.format(self.median)
        } else {
            format!(
                "{} ({}–{})",
                unit.format(self.median),
                unit.format(self.min),
                unit.format(self.max)
            )
        }
    }
}

/// Where one measurement's figures go: its table, variant and arm.
pub struct Recorder<'a> {
    table: &'a mut Table,
    variant: &'a str,
    pub arm: Arm,
}

impl<'a> Recorder<'a> {
    pub fn new(table: &'a mut Table, variant: &'a str, arm: Arm) -> Self {
        Self {
            table,
            variant,
            arm,
        }
    }

    pub fn add(&mut self, figure: &'static str, unit: Unit, value: f64) {
        self.table.add(self.variant, self.arm, figure, unit, value);
    }
}

/// Everything one run found: the tables, the cost profiles of the
/// with-agentmon runs, and notes (tools that were missing, and so on).
#[derive(Debug, Default)]
pub struct Results {
    pub tables: Vec<Table>,
    pub profiles: Vec<crate::bench::profile::Profile>,
    pub notes: Vec<String>,
}

impl Results {
    /// The summary of one figure, for checks and the smoke test.
    pub fn summary(&self, variant: &str, figure: &str, arm: Arm) -> Option<Summary> {
        self.tables
            .iter()
            .flat_map(|t| &t.rows)
            .find(|r| r.variant == variant && r.figure == figure)
            .and_then(|r| r.samples.get(&arm))
            .map(|s| Summary::of(s))
    }

    pub fn median(&self, variant: &str, figure: &str, arm: Arm) -> Option<f64> {
        self.summary(variant, figure, arm).map(|s| s.median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_the_middle() {
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }

    #[test]
    fn table_has_a_ratio_column_per_monitor() {
        let mut t = Table::new("msgs", "Small messages");
        for (arm, v) in [
            (Arm::Without, 100.0),
            (Arm::Agentmon, 90.0),
            (Arm::Without, 110.0),
        ] {
            Recorder::new(&mut t, "tracked", arm).add("sends", Unit::PerSec, v);
        }
        Recorder::new(&mut t, "tracked", Arm::Agentmon).add("lost events", Unit::Count, 0.0);
        let md = t.markdown();
        assert!(
            md.starts_with("| variant | figure | without agentmon | with agentmon | ratio |\n")
        );
        assert!(
            md.contains("| tracked | sends | 105/s (100/s–110/s) | 90/s | 0.857 |"),
            "{md}"
        );
        assert!(md.contains("| tracked | lost events | – | 0 | – |"), "{md}");
    }
}

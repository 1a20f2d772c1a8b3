//! A parser for the Prometheus text exposition format (version 0.0.4), strict
//! enough that a malformed exporter line fails the test that scraped it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

/// A series' label set.
pub type Labels = BTreeMap<String, String>;

/// One scrape: every sample, plus the `# HELP` and `# TYPE` lines.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    samples: Vec<Sample>,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    text: String,
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// Where and why a scrape did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metrics line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl Metrics {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut metrics = Metrics {
            text: text.to_owned(),
            ..Metrics::default()
        };
        for (i, line) in text.lines().enumerate() {
            let err = |message: String| ParseError {
                line: i + 1,
                message,
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.trim_start().splitn(3, [' ', '\t']);
                match (words.next(), words.next(), words.next()) {
                    (Some("HELP"), Some(name), doc) => {
                        let doc = unescape_help(doc.unwrap_or_default().trim_start());
                        metrics.help.insert(name.to_owned(), doc);
                    }
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        metrics
                            .types
                            .insert(name.to_owned(), kind.trim().to_owned());
                    }
                    (Some("TYPE"), ..) => {
                        return Err(err(format!("TYPE line without a type: {line:?}")));
                    }
                    _ => {} // any other comment
                }
                continue;
            }
            metrics.samples.push(parse_sample(line).map_err(err)?);
        }
        Ok(metrics)
    }

    /// The sum of the series called `name` whose labels include every
    /// `(label, value)` given (so `&[]` sums the whole metric); `None` when no
    /// series matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut matching = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
            .peekable();
        matching.peek()?;
        Some(matching.sum())
    }

    /// Every series called `name`, in exposition order.
    pub fn series(&self, name: &str) -> Vec<(Labels, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.labels.clone(), s.value))
            .collect()
    }

    /// The values `label` takes across the series of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.get(label).cloned())
            .collect()
    }

    /// Every sample name present (for histograms: `_bucket`, `_sum`, `_count`).
    pub fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }

    /// The `# HELP` text of a metric family, unescaped.
    pub fn help(&self, family: &str) -> Option<&str> {
        self.help.get(family).map(String::as_str)
    }

    /// The `# TYPE` of a metric family (`counter`, `gauge`, `histogram`, ...).
    pub fn metric_type(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// The scraped text as received, for assertion messages.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// `name{label="value",...} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("bad metric name in {line:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let value = parse_value(value).ok_or_else(|| format!("bad value {value:?} in {line:?}"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?} in {line:?}"))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!(
            "unexpected {extra:?} after the timestamp in {line:?}"
        ));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"}` into `labels`; returns what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Labels) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("label without `=`")?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {name:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => return Err(format!("bad escape \\{c} in label {name:?}")),
                    None => return Err(format!("unterminated value of label {name:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name:?} repeated"));
        }
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label {name:?}"));
        }
    }
}

/// Go's float syntax as Prometheus writes it: numbers, `+Inf`, `-Inf`, `NaN`.
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// HELP text escapes only `\\` and `\n`.
fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP agentmon_egress_bytes_total Bytes sent by agents.\nSecond line with a \\ backslash.
# TYPE agentmon_egress_bytes_total counter
agentmon_egress_bytes_total{agent="claude",proto="tcp",family="ipv4"} 100000
agentmon_egress_bytes_total{agent="claude",proto="tcp",family="ipv6"} 2.5e3 1712345678000
agentmon_egress_bytes_total{agent="codex",proto="udp",family="ipv4",} 7
# a free comment
agentmon_tricky{path="C:\\dir\\",quote="say \"hi\"",nl="a\nb",brace="}, x=\"y\""} -1.5

agentmon_up 1
agentmon_inf{le="+Inf"} +Inf
agentmon_nan NaN
"#;

    fn scrape() -> Metrics {
        Metrics::parse(SCRAPE).expect("parses")
    }

    #[test]
    fn value_sums_matching_series() {
        let m = scrape();
        let name = "agentmon_egress_bytes_total";
        assert_eq!(m.value(name, &[("agent", "claude")]), Some(102500.0));
        assert_eq!(
            m.value(name, &[("agent", "claude"), ("family", "ipv6")]),
            Some(2500.0)
        );
        assert_eq!(m.value(name, &[]), Some(102507.0));
        assert_eq!(m.value(name, &[("agent", "nobody")]), None);
        assert_eq!(m.value(name, &[("no_such_label", "")]), None);
        assert_eq!(m.value("agentmon_missing", &[]), None);
        assert_eq!(m.value("agentmon_up", &[]), Some(1.0));
    }

    #[test]
    fn series_keeps_labels_and_order() {
        let series = scrape().series("agentmon_egress_bytes_total");
        assert_eq!(series.len(), 3);
        assert_eq!(series[2].0.get("agent").map(String::as_str), Some("codex"));
        assert_eq!(series[2].0.len(), 3, "a trailing comma adds no label");
        assert_eq!(series[2].1, 7.0);
    }

    #[test]
    fn escaped_label_values() {
        let m = scrape();
        let (labels, value) = &m.series("agentmon_tricky")[0];
        assert_eq!(labels["path"], r"C:\dir\");
        assert_eq!(labels["quote"], r#"say "hi""#);
        assert_eq!(labels["nl"], "a\nb");
        assert_eq!(labels["brace"], r#"}, x="y""#);
        assert_eq!(*value, -1.5);
        assert_eq!(
            m.value("agentmon_tricky", &[("quote", "say \"hi\"")]),
            Some(-1.5)
        );
    }

    #[test]
    fn help_type_and_special_values() {
        let m = scrape();
        assert_eq!(
            m.help("agentmon_egress_bytes_total"),
            Some("Bytes sent by agents.\nSecond line with a \\ backslash.")
        );
        assert_eq!(
            m.metric_type("agentmon_egress_bytes_total"),
            Some("counter")
        );
        assert_eq!(m.metric_type("agentmon_up"), None);
        assert_eq!(
            m.value("agentmon_inf", &[("le", "+Inf")]),
            Some(f64::INFINITY)
        );
        assert!(m.value("agentmon_nan", &[]).unwrap().is_nan());
        assert!(m.names().contains("agentmon_up"));
        assert!(m.text().contains("agentmon_up 1"));
    }

    #[test]
    fn malformed_lines_are_errors() {
        for (bad, line) in [
            ("ok 1\nno_value\n", 2),
            ("m{a=\"x} 1", 1),
            ("m{a=x} 1", 1),
            ("m{a=\"x\" b=\"y\"} 1", 1),
            ("m{a=\"x\",a=\"y\"} 1", 1),
            ("m{a=\"\\q\"} 1", 1),
            ("m one", 1),
            ("m 1 notatimestamp", 1),
            ("m 1 2 3", 1),
            ("1m 1", 1),
            ("# TYPE m", 1),
        ] {
            let err = Metrics::parse(bad).expect_err(bad);
            assert_eq!(err.line, line, "{bad:?}: {err}");
        }
    }

    #[test]
    fn empty_scrape() {
        let m = Metrics::parse("").unwrap();
        assert!(m.names().is_empty());
        assert_eq!(m.value("x", &[]), None);
    }
}

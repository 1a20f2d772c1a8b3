//! The Prometheus exposition: label values come from names agents and
//! remote servers choose (`dest` from SNI, Host or DNS). Whatever they
//! hold, the series stays one line, with exactly its labels, and each
//! value reads back as written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::metrics::{DEST_LABELS, Metrics};

fuzz_target!(|values: [String; 6]| {
    let metrics = Metrics::new().expect("the registry builds");
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    metrics.egress_bytes.with_label_values(&refs).inc_by(7);
    let text = metrics.encode().expect("encodes");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("agentmon_egress_bytes_total{"))
        .collect();
    assert_eq!(series.len(), 1, "{text}");
    let rest = &series[0]["agentmon_egress_bytes_total{".len()..];
    let (labels, value) = read_labels(rest);
    assert_eq!(value, "} 7");
    let mut expected: Vec<(String, String)> = DEST_LABELS
        .iter()
        .map(|n| n.to_string())
        .zip(values.iter().cloned())
        .collect();
    expected.sort();
    let mut got = labels;
    got.sort();
    assert_eq!(got, expected);
});

/// `name="value",...` as the text format writes it (values escape `\`, `"`
/// and newline); returns the pairs and what follows the last one.
fn read_labels(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut pairs = Vec::new();
    while !s.starts_with('}') {
        let eq = s.find("=\"").expect("name=\"value\"");
        let name = s[..eq].to_string();
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let mut value = String::new();
        let mut chars = s[eq + 2..].char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("a closing quote");
            match c {
                '"' => break eq + 2 + i + 1,
                '\\' => match chars.next().expect("an escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("unknown escape \\{c}"),
                },
                '\n' => panic!("a newline inside a label value"),
                c => value.push(c),
            }
        };
        pairs.push((name, value));
        s = s[end..].strip_prefix(',').unwrap_or(&s[end..]);
    }
    (pairs, s)
}

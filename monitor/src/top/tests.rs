use crate::{
    agents::Catalog,
    metrics::Metrics,
    traffic::{Counters as _, Dest, Direction, Proto},
};

use super::{
    snapshot::{self, DestRow, Snapshot, Tool},
    text,
    view::{self, Sort, View},
};

fn dest(name: &str, purpose: &'static str) -> Dest {
    Dest {
        name: name.to_owned(),
        country: "US".to_owned(),
        asn: "AS64500".to_owned(),
        purpose,
    }
}

#[test]
fn a_snapshot_holds_the_exported_counters_per_tool_and_destination() {
    let metrics = Metrics::new().unwrap();
    let catalog = Catalog::builtin();
    let claude = catalog.id("claude-code").unwrap();
    let model = dest("api.model.test", "model-api");
    {
        let mut c = metrics.counters(&catalog);
        c.bytes(claude, Proto::Tcp, &model, 5000, 321);
        c.bytes(claude, Proto::Udp, &model, 100, 0);
        c.connection(claude, Proto::Tcp, Direction::Egress, &model);
        c.connection(claude, Proto::Tcp, Direction::Egress, &model);
    }
    // A refused connect: a violation and no bytes.
    metrics
        .policy_violations
        .with_label_values(&["claude-code", "telemetry.vendor.test", "no-telemetry"])
        .inc();
    metrics
        .agent_processes
        .with_label_values(&["claude-code"])
        .set(3);
    metrics.agent_processes.with_label_values(&["aider"]).set(0);
    let s = snapshot::build(&metrics, 2_000, 1_000);
    assert_eq!(s.v, snapshot::VERSION);
    assert_eq!(
        s.tools,
        vec![Tool {
            name: "claude-code".into(),
            processes: 3,
            egress_bytes: 5100,
            ingress_bytes: 321,
            connections: 2,
            violations: 1,
            ..Tool::default()
        }],
        "a tool with no processes and no traffic is left out"
    );
    assert_eq!(s.dests.len(), 2, "{:?}", s.dests);
    let m = &s.dests[0];
    assert_eq!(
        (
            m.dest.as_str(),
            m.egress_bytes,
            m.ingress_bytes,
            m.connections
        ),
        ("api.model.test", 5100, 321, 2),
        "tcp and udp add up"
    );
    assert!(m.last_seen_ms.is_some());
    let t = &s.dests[1];
    assert_eq!(
        (
            t.dest.as_str(),
            t.violations,
            t.egress_bytes,
            t.country.as_str()
        ),
        ("telemetry.vendor.test", 1, 0, "")
    );
}

fn row(tool: &str, dest: &str, purpose: &str, sent: u64, received: u64) -> DestRow {
    DestRow {
        tool: tool.into(),
        dest: dest.into(),
        country: "US".into(),
        asn: "AS64500".into(),
        purpose: purpose.into(),
        egress_bytes: sent,
        ingress_bytes: received,
        connections: 1,
        last_seen_ms: Some(9_000),
        violations: 0,
    }
}

fn snap(time_ms: u64, rows: Vec<DestRow>) -> Snapshot {
    let mut tools: Vec<Tool> = Vec::new();
    for r in &rows {
        match tools.iter_mut().find(|t| t.name == r.tool) {
            Some(t) => {
                t.egress_bytes += r.egress_bytes;
                t.ingress_bytes += r.ingress_bytes;
            }
            None => tools.push(Tool {
                name: r.tool.clone(),
                egress_bytes: r.egress_bytes,
                ingress_bytes: r.ingress_bytes,
                ..Tool::default()
            }),
        }
    }
    Snapshot {
        v: snapshot::VERSION,
        time_ms,
        started_ms: 0,
        tools,
        dests: rows,
    }
}

#[test]
fn rates_are_the_difference_of_two_snapshots_over_their_interval() {
    let mut v = View::new(snap(
        10_000,
        vec![row("claude-code", "a.test", "model-api", 1000, 0)],
    ));
    assert_eq!(
        v.dests("claude-code")[0].rate,
        None,
        "one snapshot: no rate"
    );
    v.update(snap(
        12_000,
        vec![
            row("claude-code", "a.test", "model-api", 5000, 2048),
            row("claude-code", "new.test", "other", 300, 0),
        ],
    ));
    let d = v.dests("claude-code");
    let rate = |name: &str| {
        d.iter()
            .find(|l| l.dest.dest == name)
            .unwrap()
            .rate
            .unwrap()
    };
    assert_eq!(
        (rate("a.test").sent, rate("a.test").received),
        (2000.0, 1024.0)
    );
    assert_eq!(rate("new.test").sent, 150.0, "new rows count from zero");
    assert_eq!(v.tools()[0].rate.unwrap().sent, 2150.0);
}

#[test]
fn sorting_filtering_selection_and_freezing() {
    let rows = vec![
        row("claude-code", "b.test", "model-api", 10, 900),
        row("claude-code", "a.test", "telemetry", 500, 5),
        row("aider", "c.test", "model-api", 7, 7),
    ];
    let mut v = View::new(snap(1_000, rows.clone()));
    v.rates = false;
    let names = |v: &View| -> Vec<String> {
        v.dests("claude-code")
            .iter()
            .map(|l| l.dest.dest.clone())
            .collect()
    };
    assert_eq!(names(&v), ["a.test", "b.test"], "by bytes sent");
    v.sort = Sort::Received;
    assert_eq!(names(&v), ["b.test", "a.test"]);
    v.sort = Sort::Name;
    assert_eq!(names(&v), ["a.test", "b.test"]);
    assert_eq!(Sort::Name.next(), Sort::Sent);
    v.sort = Sort::Sent;

    // Without rates (one snapshot) every tool ties, so names order them.
    assert_eq!(
        v.selected.as_deref(),
        Some("aider"),
        "the first row is selected"
    );
    v.select(-1);
    assert_eq!(v.tools()[0].tool.name, "claude-code", "by bytes sent");
    assert_eq!(v.selected.as_deref(), Some("claude-code"));
    v.select(1);
    assert_eq!(v.selected.as_deref(), Some("aider"));
    v.select(5);
    assert_eq!(
        v.selected.as_deref(),
        Some("aider"),
        "stays within the rows"
    );
    v.set_filter("CLAUDE".into());
    assert_eq!(v.tools().len(), 1);
    assert_eq!(
        v.selected.as_deref(),
        Some("claude-code"),
        "the selection follows the filter"
    );
    v.set_filter("nothing".into());
    assert!(v.tools().is_empty());
    assert_eq!(v.selected, None);

    v.set_filter(String::new());
    v.frozen = true;
    v.update(snap(
        2_000,
        vec![row("claude-code", "a.test", "telemetry", 99_999, 5)],
    ));
    assert_eq!(
        v.current.time_ms, 1_000,
        "frozen: the new snapshot is not taken"
    );
}

#[test]
fn flags_mark_violations_telemetry_and_geolocation() {
    let mut r = row("t", "x", "telemetry", 1, 1);
    r.violations = 2;
    let v = View::new(snap(
        1,
        vec![
            r,
            row("t", "y", "geolocation", 1, 1),
            row("t", "z", "other", 1, 1),
        ],
    ));
    let flags: Vec<(String, String)> = v
        .dests("t")
        .iter()
        .map(|l| (l.dest.dest.clone(), l.flags()))
        .collect();
    assert!(flags.contains(&("x".into(), "!T".into())), "{flags:?}");
    assert!(flags.contains(&("y".into(), "G".into())), "{flags:?}");
    assert!(flags.contains(&("z".into(), String::new())), "{flags:?}");
}

#[test]
fn once_prints_exact_totals_and_no_colour_off_a_terminal() {
    let mut v = View::new(snap(
        1_000,
        vec![row("claude-code", "api.model.test", "telemetry", 10, 2)],
    ));
    v.update(snap(
        3_000,
        vec![row(
            "claude-code",
            "api.model.test",
            "telemetry",
            123_456_789,
            642,
        )],
    ));
    let out = text::render(&v, false);
    assert!(!out.contains('\x1b'), "{out}");
    assert!(out.contains("rates over 2.0 s"), "{out}");
    let line = out.lines().find(|l| l.contains("api.model.test")).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "T");
    assert!(
        words.contains(&"123456789") && words.contains(&"642"),
        "{line}"
    );
    assert!(line.contains("58.9 MiB/s"), "{line}");
    assert!(text::render(&v, true).contains("\x1b[33m"));
}

#[test]
fn byte_and_age_formats_fit_their_columns() {
    assert_eq!(view::bytes(0.0), "0 B");
    assert_eq!(view::bytes(999.0), "999 B");
    assert_eq!(view::bytes(1000.0), "1.0 KiB");
    assert_eq!(view::bytes(10_000.0), "9.8 KiB");
    assert_eq!(view::bytes(1_023_948.0), "999.9 KiB");
    assert_eq!(view::bytes(1_024_000.0), "1.0 MiB", "not 1000.0 KiB");
    assert_eq!(view::bytes(3.5 * 1024.0 * 1024.0 * 1024.0), "3.5 GiB");
    assert_eq!(
        view::fit_left("telemetry.vendor.test", 17),
        "…etry.vendor.test"
    );
    assert_eq!(view::fit_left("api.model.test", 17), "api.model.test");
    assert_eq!(view::ago(100_000, None), "-");
    assert_eq!(view::ago(100_000, Some(96_000)), "4s");
    assert_eq!(view::ago(100_000_000, Some(100_000_000 - 7_200_000)), "2h");
}

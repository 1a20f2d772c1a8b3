//! The report's figures from hand-made records: deltas across interim and
//! close records, the range's edges, reused ids, filters and bad lines;
//! the time options; and each output format, hostile labels included.

use std::time::{Duration, SystemTime};

use super::{
    html,
    range::{self, Range},
    render,
    summary::{Collector, Summary, Totals},
};

fn at(s: &str) -> SystemTime {
    humantime::parse_rfc3339(s).unwrap()
}

fn hm(hh_mm: &str) -> SystemTime {
    at(&format!("2026-11-29T{hh_mm}:00Z"))
}

/// A record with the fields a report reads (and one it does not).
fn line(id: &str, time: &str, start: &str, tool: &str, dest: &str, e: u64, i: u64) -> String {
    format!(
        r#"{{"v":3,"event":"interim","id":"{id}","time":"2026-11-29T{time}:00.000Z","start":"2026-11-29T{start}:00.000Z","tool":"{tool}","dest":"{dest}","dest_country":"US","purpose":"model-api","egress_bytes":{e},"ingress_bytes":{i},"pid":1}}"#
    )
}

fn summarise(range: Range, tools: &[&str], lines: &[String]) -> Summary {
    let mut c = Collector::new(range, tools.iter().map(|t| t.to_string()).collect());
    for l in lines {
        c.line(l.as_bytes()).unwrap();
    }
    c.finish()
}

fn between(since: &str, until: &str) -> Range {
    Range {
        since: Some(hm(since)),
        until: Some(hm(until)),
    }
}

fn totals(connections: u64, egress: u64, ingress: u64, first: &str, last: &str) -> Totals {
    Totals {
        connections,
        egress,
        ingress,
        first: Some(hm(first)),
        last: Some(hm(last)),
    }
}

/// One connection: interim at 10:00 (1000/10), interim at 10:05
/// (3000/30), close at 10:10 (4500/45); it started at 09:59.
fn three_records() -> Vec<String> {
    vec![
        line("tcp:1", "10:00", "09:59", "claude-code", "a.test", 1000, 10),
        line("tcp:1", "10:05", "09:59", "claude-code", "a.test", 3000, 30),
        line("tcp:1", "10:10", "09:59", "claude-code", "a.test", 4500, 45),
    ]
}

#[test]
fn the_whole_log_counts_each_connection_once_with_its_final_totals() {
    let s = summarise(Range::default(), &[], &three_records());
    assert_eq!(s.total, totals(1, 4500, 45, "09:59", "10:10"));
    let points = &s.egress_over_time["claude-code"];
    assert_eq!(
        points,
        &[
            (hm("10:00"), 1000),
            (hm("10:05"), 2000),
            (hm("10:10"), 1500)
        ]
    );
}

#[test]
fn a_range_counts_what_its_records_added_since_the_record_before() {
    // 10:05 adds 2000, 10:10 adds 1500; the 10:00 record is before --since
    // and only the baseline.
    let s = summarise(between("10:03", "10:20"), &[], &three_records());
    assert_eq!(s.total, totals(1, 3500, 35, "10:05", "10:10"));
    // Only the middle record: its delta, not its total.
    let s = summarise(between("10:01", "10:06"), &[], &three_records());
    assert_eq!(s.total, totals(1, 2000, 20, "10:05", "10:05"));
    // --until is exclusive: a record at 10:05 is not before 10:05.
    let s = summarise(between("09:00", "10:05"), &[], &three_records());
    assert_eq!(s.total, totals(1, 1000, 10, "09:59", "10:00"));
}

#[test]
fn records_read_in_any_file_order_count_in_time_order() {
    let mut lines = three_records();
    lines.reverse();
    let s = summarise(between("10:03", "10:20"), &[], &lines);
    assert_eq!(s.total, totals(1, 3500, 35, "10:05", "10:10"));
}

#[test]
fn a_connection_that_started_in_the_range_counts_even_before_its_first_record() {
    let lines = vec![line("tcp:2", "10:30", "10:20", "codex", "b.test", 500, 5)];
    let s = summarise(between("10:15", "10:25"), &[], &lines);
    assert_eq!(s.total, totals(1, 0, 0, "10:20", "10:20"));
    // Open before the range, no record in it: not there.
    let s = summarise(between("10:21", "10:25"), &[], &lines);
    assert_eq!(s.total, Totals::default());
    assert!(s.tables.iter().all(|t| t.rows.is_empty()));
}

#[test]
fn a_reused_socket_cookie_after_a_reboot_is_another_connection() {
    let lines = vec![
        line("tcp:1", "10:00", "09:59", "claude-code", "a.test", 900, 9),
        // Same id, later boot: its totals start again from zero.
        line("tcp:1", "12:00", "11:59", "claude-code", "a.test", 100, 1),
    ];
    let s = summarise(Range::default(), &[], &lines);
    assert_eq!(s.total, totals(2, 1000, 10, "09:59", "12:00"));
}

#[test]
fn a_total_that_shrinks_adds_nothing_and_is_not_counted_twice() {
    let lines = vec![
        line("tcp:1", "10:00", "09:59", "claude-code", "a.test", 1000, 10),
        line("tcp:1", "10:05", "09:59", "claude-code", "a.test", 10, 1),
        line("tcp:1", "10:10", "09:59", "claude-code", "a.test", 1200, 12),
    ];
    let s = summarise(Range::default(), &[], &lines);
    assert_eq!((s.total.egress, s.total.ingress), (1200, 12));
}

#[test]
fn a_record_read_twice_adds_nothing_the_second_time() {
    // logrotate's compress interrupted: the same file plain and gzipped.
    let mut lines = three_records();
    lines.extend(three_records());
    let s = summarise(Range::default(), &[], &lines);
    assert_eq!(s.total, totals(1, 4500, 45, "09:59", "10:10"));
}

#[test]
fn tables_group_by_tool_destination_country_and_purpose_biggest_first() {
    let mut lines = three_records();
    lines.push(line("tcp:2", "10:30", "10:20", "codex", "b.test", 9000, 5));
    lines.push(line(
        "tcp:3",
        "10:31",
        "10:21",
        "claude-code",
        "c.test",
        100,
        1,
    ));
    let s = summarise(Range::default(), &[], &lines);
    let rows = |name: &str| -> Vec<(Vec<String>, u64, u64)> {
        s.table(name)
            .unwrap()
            .rows
            .iter()
            .map(|(k, t)| (k.clone(), t.connections, t.egress))
            .collect()
    };
    let k = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rows("tools"),
        [(k(&["codex"]), 1, 9000), (k(&["claude-code"]), 2, 4600)]
    );
    // Destinations stay together by tool, biggest first within it.
    assert_eq!(
        rows("destinations"),
        [
            (k(&["claude-code", "a.test"]), 1, 4500),
            (k(&["claude-code", "c.test"]), 1, 100),
            (k(&["codex", "b.test"]), 1, 9000),
        ]
    );
    assert_eq!(rows("countries"), [(k(&["US"]), 3, 13600)]);
    assert_eq!(rows("purposes"), [(k(&["model-api"]), 3, 13600)]);
}

#[test]
fn tool_filter_keeps_only_the_named_tools() {
    let mut lines = three_records();
    lines.push(line("tcp:2", "10:30", "10:20", "codex", "b.test", 9000, 5));
    let s = summarise(Range::default(), &["codex"], &lines);
    assert_eq!(s.total, totals(1, 9000, 5, "10:20", "10:30"));
    let s = summarise(Range::default(), &["codex", "claude-code"], &lines);
    assert_eq!(s.total.connections, 2);
}

#[test]
fn lines_that_are_not_records_say_why_and_blank_ones_are_ignored() {
    let mut c = Collector::new(Range::default(), Vec::new());
    assert!(c.line(b"").is_ok());
    assert!(c.line(b"   ").is_ok());
    let err = c
        .line(br#"{"v":3,"id":"tcp:1","time":"2026-11-29T1"#)
        .unwrap_err();
    assert!(err.contains("EOF"), "{err}");
    let bad_time = line("tcp:1", "10:00", "09:59", "t", "d", 1, 1).replace("10:00:00.000Z", "soon");
    let err = c.line(bad_time.as_bytes()).unwrap_err();
    assert!(err.starts_with("`time` \"2026-11-29Tsoon\""), "{err}");
    let no_bytes =
        line("tcp:1", "10:00", "09:59", "t", "d", 1, 1).replace(r#""egress_bytes":1,"#, "");
    let err = c.line(no_bytes.as_bytes()).unwrap_err();
    assert!(err.contains("missing field `egress_bytes`"), "{err}");
    assert!(c.line(b"\xff\xfe").is_err());
    assert_eq!(c.finish().total, Totals::default());
}

#[test]
fn times_are_rfc3339_dates_or_durations_before_now() {
    let now = at("2026-12-02T12:00:00Z");
    let t = |v| range::parse_time(v, now);
    assert_eq!(t("2026-11-29T10:00:00Z"), Some(hm("10:00")));
    assert_eq!(
        t("2026-11-29T10:00:00.250Z"),
        Some(hm("10:00") + Duration::from_millis(250))
    );
    assert_eq!(t("2026-11-29T11:30:00+01:30"), Some(hm("10:00")));
    assert_eq!(t("2026-11-29T05:00:00-05:00"), Some(hm("10:00")));
    assert_eq!(t("2026-11-29"), Some(hm("00:00")));
    assert_eq!(t("7d"), Some(at("2026-11-25T12:00:00Z")));
    assert_eq!(t("12h"), Some(at("2026-12-02T00:00:00Z")));
    assert_eq!(t("1h 30m"), Some(at("2026-12-02T10:30:00Z")));
    for bad in [
        "",
        "yesterday",
        "2026-11-29T10:00:00",
        "2026-13-01",
        "2026-11-29T10:00:00+25:00",
        "7 parsecs",
    ] {
        assert_eq!(t(bad), None, "{bad:?}");
    }
    let err = range::parse(Some("7d"), Some("later"), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--until \"later\" is neither a time (2026-11-29T10:00:00Z, 2026-11-29T11:00:00+01:00, 2026-11-29) nor a duration before now (7d, 12h, 30m)"
    );
}

#[test]
fn range_edges_include_since_and_exclude_until() {
    let r = between("10:00", "11:00");
    assert!(r.contains(hm("10:00")));
    assert!(!r.contains(hm("11:00")));
    assert!(!r.contains(hm("09:59")));
    assert!(Range::default().contains(hm("00:00")));
}

fn sample() -> Summary {
    let mut lines = three_records();
    lines.push(line(
        "tcp:2", "10:30", "10:20", "codex", "b.test", 1234567, 5,
    ));
    summarise(Range::default(), &[], &lines)
}

#[test]
fn text_tables_line_up_with_exact_grouped_figures() {
    let text = render::text(&sample());
    let expected = "\
2 connections between the start of the log and the end of the log: 1,239,067 bytes egress, 50 bytes ingress

Per tool
TOOL         CONNECTIONS  EGRESS BYTES  INGRESS BYTES  FIRST SEEN            LAST SEEN
codex                  1     1,234,567              5  2026-11-29T10:20:00Z  2026-11-29T10:30:00Z
claude-code            1         4,500             45  2026-11-29T09:59:00Z  2026-11-29T10:10:00Z
";
    assert!(text.starts_with(expected), "{text}");
    assert!(
        text.contains("\nPer tool and destination\nTOOL         DESTINATION  CONNECTIONS"),
        "{text}"
    );
    assert_eq!(render::grouped(0), "0");
    assert_eq!(render::grouped(999), "999");
    assert_eq!(render::grouped(1000), "1,000");
}

#[test]
fn an_empty_range_says_so_and_prints_empty_tables_and_an_empty_json() {
    let s = summarise(between("12:00", "13:00"), &[], &three_records());
    let text = render::text(&s);
    assert!(
        text.starts_with("no traffic between 2026-11-29T12:00:00Z and 2026-11-29T13:00:00Z\n\nPer tool\nTOOL  CONNECTIONS"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render::json(&s)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "since": "2026-11-29T12:00:00Z",
            "until": "2026-11-29T13:00:00Z",
            "total": {"connections": 0, "egress_bytes": 0, "ingress_bytes": 0, "first_seen": null, "last_seen": null},
            "tools": [], "destinations": [], "countries": [], "purposes": []
        })
    );
    assert_eq!(
        render::csv(&s),
        "table,tool,dest,dest_country,purpose,connections,egress_bytes,ingress_bytes,first_seen,last_seen\ntotal,,,,,0,0,0,,\n"
    );
}

#[test]
fn json_and_csv_carry_exact_figures_and_labels() {
    let s = sample();
    let json: serde_json::Value = serde_json::from_str(&render::json(&s)).unwrap();
    assert_eq!(
        json["destinations"][1],
        serde_json::json!({"tool": "codex", "dest": "b.test", "connections": 1, "egress_bytes": 1234567,
            "ingress_bytes": 5, "first_seen": "2026-11-29T10:20:00Z", "last_seen": "2026-11-29T10:30:00Z"})
    );
    let csv = render::csv(&s);
    assert!(
        csv.contains(
            "\ndestinations,codex,b.test,,,1,1234567,5,2026-11-29T10:20:00Z,2026-11-29T10:30:00Z\n"
        ),
        "{csv}"
    );
    assert!(csv.contains("\ncountries,,,US,,2,1239067,50,"), "{csv}");
}

/// A log line's labels are whatever wrote the log: markup, quotes, commas
/// and terminal escapes must come out inert.
fn hostile() -> Summary {
    let tool = "<script>alert(1)</script>\\u001b[2J\\\"a,b\\\"";
    let lines = vec![line(
        "tcp:1",
        "10:00",
        "09:59",
        tool,
        "<img src=x onerror=alert(2)>",
        10,
        1,
    )];
    summarise(Range::default(), &[], &lines)
}

#[test]
fn hostile_labels_are_escaped_in_every_format() {
    let s = hostile();
    let page = html::page(&s, &["/var/log/<x>.jsonl".into()]).unwrap();
    for raw in ["<script", "<img", "<x>"] {
        assert!(!page.contains(raw), "{raw} in the page");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"));
    let text = render::text(&s);
    assert!(
        !text.contains('\u{1b}') && text.contains("\\u{1b}[2J"),
        "{text}"
    );
    let csv = render::csv(&s);
    assert!(
        csv.contains(",\"<script>alert(1)</script>\u{1b}[2J\"\"a,b\"\"\","),
        "{csv}"
    );
    assert_eq!(html::escape("a&'\""), "a&amp;&#39;&quot;");
}

#[test]
fn the_page_has_four_charts_and_the_tables() {
    let page = html::page(&sample(), &["/var/log/agentmon/connections.jsonl".into()]).unwrap();
    assert_eq!(page.matches("<svg").count(), 4, "{page}");
    for title in [
        "Egress per tool over time",
        "Top destinations per tool",
        "Bytes by purpose",
        "Bytes by country",
        "Per tool and destination",
    ] {
        assert!(page.contains(&format!("<h2>{title}</h2>")), "{title}");
    }
    assert!(page.contains(
        "<td>codex</td><td>b.test</td><td class=\"n\">1</td><td class=\"n\">1,234,567</td>"
    ));
    // Nothing to fetch: no external reference of any kind.
    for external in ["http://", "https://", "src=", "@import", "url("] {
        let outside_svg_namespace = page.replace("http://www.w3.org/2000/svg", "");
        assert!(!outside_svg_namespace.contains(external), "{external}");
    }
    // An empty range still draws (empty) charts.
    let empty = summarise(between("12:00", "13:00"), &[], &three_records());
    let page = html::page(&empty, &[]).unwrap();
    assert_eq!(page.matches("no traffic in this range").count(), 4);
}

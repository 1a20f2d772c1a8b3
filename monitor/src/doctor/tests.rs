//! Unit tests of the report: exit codes, the table, the JSON shape, and the
//! parsers behind the checks.

use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn report() -> Vec<Check> {
    vec![
        Check::ok("kernel", "Linux 6.18.44"),
        Check::warn("bpffs", "not mounted", "mount -t bpf bpf /sys/fs/bpf"),
        Check::fail(
            "capabilities",
            Cause::Capabilities,
            "missing CAP_BPF",
            "give agentmon CAP_BPF",
        ),
        Check::skip("programs", "not tried"),
    ]
}

#[test]
fn exit_code_names_the_only_failure_class() {
    let ok = [
        Check::ok("a", "x"),
        Check::warn("b", "y", "z"),
        Check::skip("c", "s"),
    ];
    assert_eq!(exit_code(&ok), 0);
    assert_eq!(exit_code(&report()), 77);
    let config = [Check::fail("config", Cause::Config, "f:1:1: bad", "fix it")];
    assert_eq!(exit_code(&config), 78);
    let both = [config[0].clone(), report()[2].clone()];
    assert_eq!(exit_code(&both), 1);
    let other = [Check::fail("cgroup2", Cause::Other, "none", "mount it")];
    assert_eq!(exit_code(&other), 1);
    assert_eq!(exit_code(&[]), 0);
}

#[test]
fn table_has_a_row_per_check_with_fixes_under_them() {
    let text = table(&report());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "ok    kernel        Linux 6.18.44",
            "warn  bpffs         not mounted",
            "                    fix: mount -t bpf bpf /sys/fs/bpf",
            "FAIL  capabilities  missing CAP_BPF",
            "                    fix: give agentmon CAP_BPF",
            "skip  programs      not tried",
            "",
            "agentmon cannot run here: 1 check failed (exit 77: capabilities).",
        ]
    );
    let fine = table(&[Check::ok("kernel", "x"), Check::warn("bpffs", "y", "z")]);
    assert!(
        fine.ends_with("\nagentmon can run here (1 warning).\n"),
        "{fine}"
    );
    assert!(table(&[Check::ok("kernel", "x")]).ends_with("\nagentmon can run here.\n"));
}

#[test]
fn details_and_fixes_are_one_line() {
    let c = Check::fail("x", Cause::Other, "a\nb", "c\nd");
    assert_eq!((c.detail.as_str(), c.fix.as_deref()), ("a b", Some("c d")));
}

#[test]
fn json_has_the_schema_version_and_every_check() {
    let text = json(&report());
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["agentmon"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["can_run"], false);
    assert_eq!(doc["exit_code"], 77);
    let checks = doc["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4);
    assert_eq!(
        checks[2],
        serde_json::json!({
            "name": "capabilities",
            "status": "fail",
            "detail": "missing CAP_BPF",
            "fix": "give agentmon CAP_BPF",
        })
    );
    let statuses: Vec<&str> = checks
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "warn", "fail", "skip"]);
    assert!(checks[0]["fix"].is_null());
}

#[test]
fn geoip_age_in_whole_days() {
    let built = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(setup::age_days(built, built + day * 91 + day / 2), 91);
    assert_eq!(setup::age_days(built + day, built), 0);
}

#[test]
fn finds_a_running_agentmon_in_its_metrics() {
    let metrics = "# HELP agentmon_build_info x\n# TYPE agentmon_build_info gauge\nagentmon_build_info{kernel=\"6.18\",version=\"0.1.0\"} 1\n";
    assert_eq!(
        setup::build_version(metrics).as_deref(),
        Some("version 0.1.0")
    );
    assert_eq!(
        setup::build_version("node_exporter_build_info{version=\"1\"} 1\n"),
        None
    );
}

#[test]
fn reads_tls_libraries_from_ldconfig() {
    let text = "1234 libs found in cache `/etc/ld.so.cache'
\tlibssl3.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl3.so
\tlibssl.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libssl.so.3
\tlibgnutlsxx.so.30 (libc6,x86-64) => /lib/x86_64-linux-gnu/libgnutlsxx.so.30
\tlibgnutls.so.30 (libc6,x86-64) => /lib/x86_64-linux-gnu/libgnutls.so.30
\tlibcrypto.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libcrypto.so.3
";
    let found = tls::ldconfig_libraries(text);
    assert_eq!(
        found,
        [
            PathBuf::from("/lib/x86_64-linux-gnu/libssl.so.3"),
            PathBuf::from("/lib/x86_64-linux-gnu/libgnutls.so.30"),
        ]
    );
}

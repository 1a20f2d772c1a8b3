//! `agentmon doctor` on this machine: it passes, and with one piece taken
//! away (a config, a GeoIP file, capabilities, bpffs) it says which and how
//! to fix it, with the exit code `RestartPreventExitStatus=` and fleet
//! tooling rely on. Each run happens in a mount namespace of its own, so
//! bpffs can be mounted or taken away without touching the machine's.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agentmon_tests::{
    Agentmon, NETS, TempDir, agentmon_bin, make_geoip_built, require_root, run_bounded,
};
use serde_json::Value;

const RUN: Duration = Duration::from_secs(60);

/// The rows that must say `ok` for agentmon to run.
const REQUIRED: [&str; 9] = [
    "kernel",
    "tracefs",
    "cgroup2",
    "capabilities",
    "programs",
    "config",
    "geoip:country",
    "connection_log",
    "listen",
];

/// bpffs in doctor's mount namespace.
#[derive(Clone, Copy)]
enum Bpffs {
    Mounted,
    Absent,
}

/// A good config in a temp dir: a free port, a connection log in a folder
/// that does not exist yet, fresh GeoIP files; and the same without the
/// log (for a user who could not write it). Doctor loads the kernel
/// programs, so every test needs root: `None` (skip) without it, as
/// [`require_root`] decides.
struct Setup {
    dir: TempDir,
    config: PathBuf,
    without_log: PathBuf,
}

impl Setup {
    fn new() -> Option<Setup> {
        if !require_root() {
            return None;
        }
        let dir = TempDir::new("doctor");
        let geoip = dir.path().join("geoip");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        make_geoip_built(&geoip, &NETS, Some(now.as_secs()));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let common = format!(
            "listen = \"127.0.0.1:{port}\"\n[geoip]\ncountry = \"{g}/country.mmdb\"\nasn = \"{g}/asn.mmdb\"\n",
            g = geoip.display()
        );
        let config = dir.path().join("agentmon.toml");
        let log = dir.path().join("log/connections.jsonl");
        fs::write(
            &config,
            format!("{common}[log]\nconnections = \"{}\"\n", log.display()),
        )
        .unwrap();
        let without_log = dir.path().join("without-log.toml");
        fs::write(&without_log, common).unwrap();
        Some(Setup {
            dir,
            config,
            without_log,
        })
    }
}

/// `agentmon doctor --config CONFIG [args]`, behind `prefix` (setpriv...),
/// in a mount namespace with bpffs as asked.
fn doctor(bpffs: Bpffs, prefix: &[&str], config: &Path, args: &[&str]) -> Output {
    let setup = match bpffs {
        Bpffs::Mounted => "mount -t bpf bpf /sys/fs/bpf",
        Bpffs::Absent => "umount --all --types bpf; true",
    };
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("{setup} && exec \"$@\""))
        .arg("sh")
        .args(prefix)
        .arg(agentmon_bin())
        .arg("doctor")
        .arg("--config")
        .arg(config)
        .args(args);
    run_bounded(&mut cmd, RUN)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs doctor (see [`doctor`]), expects exit `code`, returns its table.
fn run_table(bpffs: Bpffs, prefix: &[&str], config: &Path, code: i32) -> String {
    let out = doctor(bpffs, prefix, config, &[]);
    let table = stdout(&out);
    assert_eq!(out.status.code(), Some(code), "{out:?}\n{table}");
    table
}

/// Runs `doctor --json`, expects exit `code`, returns the document.
fn run_json(bpffs: Bpffs, prefix: &[&str], config: &Path, code: i32) -> Value {
    let out = doctor(bpffs, prefix, config, &["--json"]);
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    json(&out)
}

/// The table's row for check `name`: (status, the rest of the row, its fix).
fn row(table: &str, name: &str) -> (String, String, Option<String>) {
    let lines: Vec<&str> = table.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"));
    let mut words = lines[at].split_whitespace();
    let status = words.next().unwrap().to_owned();
    let rest = words.skip(1).collect::<Vec<_>>().join(" ");
    let fix = lines
        .get(at + 1)
        .and_then(|l| l.trim_start().strip_prefix("fix: "))
        .map(str::to_owned);
    (status, rest, fix)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}):\n{}", stdout(out)))
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc:#}"))
}

#[test]
fn passes_on_this_machine() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let table = run_table(Bpffs::Mounted, &[], &setup.config, 0);
    for name in REQUIRED.iter().chain(&["bpffs", "geoip:asn"]) {
        assert_eq!(row(&table, name).0, "ok", "{name}:\n{table}");
    }
    // Each optional feature this kernel has (all of them, on 6.18).
    for name in [
        "feature:sock_ops",
        "feature:tls_tie",
        "feature:uprobes",
        "feature:exec_args",
        "feature:rx_tie",
    ] {
        assert_eq!(row(&table, name).0, "ok", "{name}:\n{table}");
    }
    let (_, config, _) = row(&table, "config");
    assert!(
        config.starts_with(&format!("{}: ok; tools: ", setup.config.display())),
        "{config}"
    );
    let (_, log, _) = row(&table, "connection_log");
    assert!(
        log.contains("created at start, with its directory"),
        "{log}"
    );
    assert!(table.contains("\nagentmon can run here"), "{table}");
}

#[test]
fn json_is_a_stable_document_with_every_check() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let doc = run_json(Bpffs::Mounted, &[], &setup.config, 0);
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["can_run"], true);
    assert_eq!(doc["exit_code"], 0);
    for name in REQUIRED {
        let c = check(&doc, name);
        assert_eq!(c["status"], "ok", "{c}");
        assert!(c["detail"].as_str().is_some_and(|d| !d.is_empty()), "{c}");
        assert!(c["fix"].is_null(), "{c}");
    }
    // libssl is on every machine agentmon's tests run on; its probe points
    // resolve as they do when an agent maps it.
    let ssl = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("tls:libssl.so"))
        })
        .unwrap_or_else(|| panic!("no libssl row in {doc:#}"));
    assert_eq!(ssl["status"], "ok", "{ssl}");
    assert!(
        ssl["detail"]
            .as_str()
            .unwrap()
            .contains("SSL_write, SSL_read"),
        "{ssl}"
    );
}

#[test]
fn without_bpffs_it_warns_and_says_how_to_mount_it() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let table = run_table(Bpffs::Absent, &[], &setup.config, 0);
    let (status, detail, fix) = row(&table, "bpffs");
    assert_eq!(status, "warn", "{table}");
    assert!(detail.contains("counts restart from zero"), "{detail}");
    assert_eq!(
        fix.as_deref(),
        Some("mount -t bpf bpf /sys/fs/bpf (systemd mounts it at boot)")
    );
    assert!(
        table.contains("agentmon can run here (1 warning)."),
        "{table}"
    );
}

#[test]
fn a_config_error_fails_with_exit_78_and_names_file_line_and_column() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let bad = setup.dir.path().join("bad.toml");
    fs::write(
        &bad,
        "listen = \"127.0.0.1:9977\"\n\n[agents]\ndisabel = [\"cursor\"]\n",
    )
    .unwrap();
    let table = run_table(Bpffs::Mounted, &[], &bad, 78);
    let (status, detail, fix) = row(&table, "config");
    assert_eq!(status, "FAIL");
    assert!(
        detail.starts_with(&format!("{}:4:1: unknown field `disabel`", bad.display())),
        "{detail}"
    );
    assert!(
        fix.unwrap()
            .contains(&format!("agentmon check-config {}", bad.display()))
    );
    // What depends on the config is not guessed at.
    assert_eq!(row(&table, "listen").0, "skip", "{table}");
    assert!(table.contains("(exit 78: configuration)"), "{table}");

    let missing = setup.dir.path().join("nowhere.toml");
    let doc = run_json(Bpffs::Mounted, &[], &missing, 78);
    let config = check(&doc, "config");
    assert_eq!(config["status"], "fail");
    assert!(
        config["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("cannot read config {}: ", missing.display())),
        "{config}"
    );
    assert!(
        config["fix"].as_str().unwrap().contains("--config"),
        "{config}"
    );
}

#[test]
fn a_missing_geoip_file_is_a_warning_that_names_the_fix() {
    let Some(setup) = Setup::new() else {
        return;
    };
    fs::remove_file(setup.dir.path().join("geoip/asn.mmdb")).unwrap();
    // agentmon runs without it: its addresses' ASN is "unknown".
    let table = run_table(Bpffs::Mounted, &[], &setup.config, 0);
    assert_eq!(row(&table, "geoip:country").0, "ok", "{table}");
    let (status, detail, fix) = row(&table, "geoip:asn");
    assert_eq!(status, "warn", "{table}");
    assert!(
        detail.contains("asn.mmdb: not found; dest_asn stays \"unknown\""),
        "{detail}"
    );
    assert!(fix.unwrap().contains("set [geoip] asn to"), "{table}");
}

#[test]
fn missing_capabilities_fail_with_exit_77_and_name_each_one() {
    let Some(setup) = Setup::new() else {
        return;
    };
    // Root without CAP_BPF. CAP_SYS_ADMIN goes too: the kernel accepts it
    // in place of CAP_BPF (bpf_capable()), and so does agentmon.
    let without_bpf = [
        "setpriv",
        "--inh-caps=-all",
        "--bounding-set=-bpf,-sys_admin",
        "--",
    ];
    let table = run_table(Bpffs::Mounted, &without_bpf, &setup.config, 77);
    let (status, detail, fix) = row(&table, "capabilities");
    assert_eq!(status, "FAIL");
    assert!(
        detail.starts_with("missing CAP_BPF (to create the BPF maps"),
        "{detail}"
    );
    assert!(!detail.contains("CAP_PERFMON"), "{detail}");
    let fix = fix.unwrap();
    assert!(fix.starts_with("give agentmon CAP_BPF: "), "{fix}");
    assert!(fix.contains("AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH"), "{fix}");
    assert_eq!(row(&table, "programs").0, "skip", "{table}");

    // A user with no capabilities at all: every one is named, and nothing
    // else fails (what it cannot read is skipped, not failed).
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--",
    ];
    let doc = run_json(Bpffs::Mounted, &nobody, &setup.without_log, 77);
    let caps = check(&doc, "capabilities");
    assert_eq!(caps["status"], "fail");
    for cap in [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_NET_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_DAC_READ_SEARCH",
    ] {
        assert!(caps["detail"].as_str().unwrap().contains(cap), "{caps}");
    }
    let failed: Vec<&Value> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{doc:#}");
}

#[test]
fn a_listen_address_served_by_agentmon_is_fine_one_taken_by_another_program_is_not() {
    let Some(setup) = Setup::new() else {
        return;
    };
    let text = fs::read_to_string(&setup.without_log).unwrap();
    let addr: std::net::SocketAddr = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .unwrap()
        .trim_matches('"')
        .parse()
        .unwrap();

    let am = Agentmon::builder().listen(addr).start();
    let table = run_table(Bpffs::Mounted, &[], &setup.without_log, 0);
    let (status, detail, _) = row(&table, "listen");
    assert_eq!(status, "ok", "{table}");
    assert_eq!(
        detail,
        format!(
            "{addr} is served by a running agentmon (version {})",
            env!("CARGO_PKG_VERSION")
        )
    );
    drop(am);

    let other = TcpListener::bind(addr).unwrap();
    let table = run_table(Bpffs::Mounted, &[], &setup.without_log, 1);
    let (status, detail, fix) = row(&table, "listen");
    assert_eq!(status, "FAIL", "{table}");
    assert_eq!(detail, format!("{addr} is in use by another program"));
    assert!(fix.unwrap().contains("`listen` in the config"), "{table}");
    drop(other);
}

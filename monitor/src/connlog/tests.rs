//! The log's records from connections and flows driven through `Traffic`
//! with a fake clock, the file's modes, reopening and rotation, and the
//! log read back (rotated files, gzip).

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    time::{Duration, SystemTime},
};

use monitor_common::{AF_INET, Conn, UdpFlow, UdpKey, origin};
use serde_json::Value;

use super::{file::LogFile, read, *};
use crate::{
    clock::{fake::FakeClocks, rfc3339},
    traffic::{
        Dest, Names, Subject, Traffic,
        fakes::{self, FakeKernel, Totals},
    },
    tree::Proc,
};

const HOUR: Duration = Duration::from_secs(3600);
const SOCK: u64 = 4099;

fn label(_: &Subject<'_>, names: &mut Names) -> Dest {
    names.dns_name = Some("api.model.test".into());
    names.host = names.dns_name.clone();
    Dest {
        name: "api.model.test".into(),
        country: "US".into(),
        asn: "AS64500".into(),
        purpose: "model-api",
    }
}

fn agent() -> Proc {
    Proc {
        tool: 0,
        root: 4000,
        ppid: 1,
        exe: "/home/dev/.local/share/claude/versions/2.1.0".into(),
        argv0: "claude".into(),
        uid: Some(1000),
    }
}

/// Process 4001's connection from 192.0.2.1:50000 to 203.0.113.10:443.
fn conn(start_ns: u64, tx: u64, rx: u64) -> Conn {
    let mut laddr = [0; 16];
    laddr[..4].copy_from_slice(&[192, 0, 2, 1]);
    Conn {
        tgid: 4001,
        start_ns,
        laddr,
        lport: 50_000,
        ..fakes::conn(tx, rx, origin::CONNECT)
    }
}

fn dev_is_1000(uid: u32) -> Option<String> {
    (uid == 1000).then(|| "dev".to_owned())
}

/// A log in a fresh folder, with user 1000 named `dev`.
fn log_in(dir: &Path, rotate: Option<Rotation>) -> ConnLog {
    let mut log = ConnLog::open(&dir.join("connections.jsonl"), rotate, None).unwrap();
    log.users = Users::with_lookup(dev_is_1000);
    log
}

fn records(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A machine booted 100 s before `t0()`, and traffic timed by its clocks.
fn machine() -> (FakeClocks, Traffic) {
    let clocks = FakeClocks::new(t0(), Duration::from_secs(100));
    let traffic = Traffic::with_clock(clocks.clock());
    (clocks, traffic)
}

/// Closes the open connection at `end_ns` (10 bytes sent, 20 received);
/// the log's text after its record.
fn close_and_log(traffic: &mut Traffic, start_ns: u64, end_ns: u64) -> String {
    let mut counters = Totals::default();
    let closed = traffic
        .on_close(
            SOCK,
            &conn(start_ns, 10, 20),
            end_ns,
            &mut label,
            &mut counters,
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_in(dir.path(), None);
    log.write_conn(Event::Close, "claude-code", &closed)
        .unwrap();
    fs::read_to_string(log.path()).unwrap()
}

/// The log's text after a connection of `proc` opened and closed at once.
fn closed_at_once(proc: &Proc) -> String {
    let (clocks, mut traffic) = machine();
    let now = clocks.monotonic_ns();
    traffic.on_open(SOCK, &conn(now, 0, 0), proc, || false);
    close_and_log(&mut traffic, now, now)
}

#[test]
fn wall_times_stay_right_when_boot_and_monotonic_time_diverge() {
    let (clocks, mut traffic) = machine();
    let started = clocks.monotonic_ns();
    traffic.on_open(SOCK, &conn(started, 0, 0), &agent(), || false);
    clocks.run(Duration::from_secs(60));
    // The lid closes for a night: boot time and wall time move on, the
    // kernel's monotonic clock does not.
    clocks.suspend(8 * HOUR);
    clocks.run(Duration::from_secs(30));
    assert_eq!(clocks.slept(), 8 * HOUR);
    let ended = clocks.monotonic_ns();
    assert_eq!(ended - started, 90_000_000_000, "90 s awake");
    let text = close_and_log(&mut traffic, started, ended);
    let record: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(record["start"], "2027-01-15T08:00:00.000Z");
    assert_eq!(record["start"], rfc3339(t0()));
    let end = t0() + Duration::from_secs(90) + 8 * HOUR;
    assert_eq!(record["end"], rfc3339(end));
    assert_eq!(record["end"], "2027-01-15T16:01:30.000Z");
    assert_eq!(record["time"], record["end"]);
}

#[test]
fn interim_records_carry_totals_so_far_and_the_close_record_the_final_ones() {
    let (clocks, mut traffic) = machine();
    let mut kernel = FakeKernel::default();
    let (mut c, every) = (Totals::default(), Duration::from_secs(1).as_nanos() as u64);
    let started = clocks.monotonic_ns();
    traffic.on_open(SOCK, &conn(started, 0, 0), &agent(), || false);
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_in(dir.path(), None);
    let mut write_due = |traffic: &mut Traffic| {
        let (conns, flows) = traffic.due(every);
        assert!(flows.is_empty());
        for report in &conns {
            log.write_conn(Event::Interim, "claude-code", report)
                .unwrap();
        }
        conns.len()
    };
    let mut step = |tx, rx, traffic: &mut Traffic| {
        clocks.run(Duration::from_millis(1500));
        kernel.conns.insert(SOCK, conn(started, tx, rx));
        traffic.refresh(
            &mut kernel,
            clocks.monotonic_ns(),
            |_| None,
            &mut label,
            &mut c,
        );
    };
    assert_eq!(write_due(&mut traffic), 0, "just opened");
    step(100, 10, &mut traffic);
    assert_eq!(write_due(&mut traffic), 1);
    assert_eq!(write_due(&mut traffic), 0, "one per interval");
    step(250, 40, &mut traffic);
    assert_eq!(write_due(&mut traffic), 1);
    step(250, 40, &mut traffic);
    assert_eq!(write_due(&mut traffic), 0, "idle: nothing new to say");
    let closed = traffic
        .on_close(
            SOCK,
            &conn(started, 300, 41),
            clocks.monotonic_ns(),
            &mut label,
            &mut c,
        )
        .unwrap();
    log.write_conn(Event::Close, "claude-code", &closed)
        .unwrap();
    let (conns, flows) = traffic.due(0);
    assert!(conns.is_empty() && flows.is_empty(), "closed: no more");

    let records = records(log.path());
    let field = |name: &str| records.iter().map(|r| r[name].clone()).collect::<Vec<_>>();
    assert_eq!(field("event"), ["interim", "interim", "close"]);
    assert_eq!(
        field("egress_bytes"),
        [100, 250, 300],
        "cumulative, not deltas"
    );
    assert_eq!(field("ingress_bytes"), [10, 40, 41]);
    assert_eq!(field("id"), ["tcp:4099"; 3]);
    assert_eq!(field("end")[..2], [Value::Null, Value::Null]);
    assert_eq!(field("start"), ["2027-01-15T08:00:00.000Z"; 3]);
    assert_eq!(
        field("time"),
        [
            "2027-01-15T08:00:01.500Z",
            "2027-01-15T08:00:03.000Z",
            "2027-01-15T08:00:04.500Z"
        ]
    );
    // A consumer that sums `close` records counts each connection once.
    let closed_sent: u64 = records
        .iter()
        .filter(|r| r["event"] == "close")
        .map(|r| r["egress_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(closed_sent, 300);
}

#[test]
fn a_udp_flow_is_logged_while_it_lasts_and_when_its_process_is_gone() {
    let (clocks, mut traffic) = machine();
    let mut kernel = FakeKernel::default();
    let key = UdpKey {
        tgid: 4001,
        rport: 53,
        family: AF_INET,
        raddr: [203, 0, 113, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    let proc = agent();
    traffic.on_udp_flow(key, &proc, false, &mut label, &mut Totals::default());
    let flow = |n: u64| UdpFlow {
        tx_bytes: 40 * n,
        tx_datagrams: n,
        rx_bytes: 120 * n,
        rx_datagrams: n,
        ..UdpFlow::default()
    };
    clocks.run(Duration::from_secs(2));
    kernel.flows.insert(key, flow(1));
    let now = clocks.monotonic_ns();
    let ended = traffic.refresh(
        &mut kernel,
        now,
        |_| Some(&proc),
        &mut label,
        &mut Totals::default(),
    );
    assert!(ended.is_empty());
    let (conns, interim) = traffic.due(Duration::from_secs(1).as_nanos() as u64);
    assert!(conns.is_empty());
    kernel.flows.insert(key, flow(3));
    clocks.run(Duration::from_secs(2));
    let now = clocks.monotonic_ns();
    let ended = traffic.refresh(
        &mut kernel,
        now,
        |_| None,
        &mut label,
        &mut Totals::default(),
    );
    assert!(kernel.flows.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let mut log = log_in(dir.path(), None);
    log.write_flow(Event::Interim, "claude-code", &interim[0])
        .unwrap();
    log.write_flow(Event::Close, "claude-code", &ended[0])
        .unwrap();
    let records = records(log.path());
    let (first, last) = (&records[0], &records[1]);
    assert_eq!(first["event"], "interim");
    assert_eq!(
        (
            &first["egress_bytes"],
            &first["egress_datagrams"],
            &first["end"]
        ),
        (&40.into(), &1.into(), &Value::Null)
    );
    assert_eq!(last["event"], "close");
    assert_eq!(last["id"], "udp:4001:203.0.113.53:53");
    assert_eq!(first["id"], last["id"]);
    assert_eq!(last["proto"], "udp");
    assert_eq!(last["direction"], "egress");
    assert_eq!(last["remote_addr"], "203.0.113.53");
    assert_eq!(last["remote_port"], 53);
    assert_eq!(
        (&last["local_addr"], &last["local_port"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        (&last["egress_bytes"], &last["ingress_bytes"]),
        (&120.into(), &360.into())
    );
    assert_eq!(
        (&last["egress_datagrams"], &last["ingress_datagrams"]),
        (&3.into(), &3.into())
    );
    assert_eq!(last["dns_name"], "api.model.test");
    assert_eq!(last["dest"], "api.model.test");
    assert_eq!((&last["uid"], &last["user"]), (&1000.into(), &"dev".into()));
    assert_eq!(last["start"], "2027-01-15T08:00:00.000Z");
    assert_eq!(last["end"], "2027-01-15T08:00:04.000Z");
}

#[test]
fn a_tcp_record_has_the_documented_fields() {
    let text = closed_at_once(&agent());
    assert!(text.ends_with("}\n") && text.lines().count() == 1);
    let record: Value = serde_json::from_str(&text).unwrap();
    let fields: BTreeSet<&str> = record
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    // README's "Connection log" lists these; `requests` and
    // `requests_dropped` appear only when there are some.
    let documented: BTreeSet<&str> = [
        "v",
        "event",
        "id",
        "time",
        "tool",
        "pid",
        "ppid",
        "uid",
        "user",
        "exe",
        "argv0",
        "root_pid",
        "proto",
        "direction",
        "remote_addr",
        "remote_port",
        "local_addr",
        "local_port",
        "egress_bytes",
        "ingress_bytes",
        "egress_datagrams",
        "ingress_datagrams",
        "host",
        "sni",
        "alpn",
        "http_host",
        "http_method",
        "dns_name",
        "dest",
        "dest_country",
        "dest_asn",
        "dest_asn_org",
        "purpose",
        "tls_library",
        "egress_plaintext_bytes",
        "ingress_plaintext_bytes",
        "start",
        "end",
    ]
    .into();
    assert_eq!(fields, documented);
    assert_eq!(record["v"], SCHEMA_VERSION);
    assert_eq!(record["v"], 3);
    assert_eq!(
        (&record["uid"], &record["user"]),
        (&1000.into(), &"dev".into())
    );
    assert_eq!(record["local_addr"], "192.0.2.1");
    assert_eq!(record["local_port"], 50_000);
    assert_eq!(record["egress_datagrams"], Value::Null);
}

#[test]
fn an_unknown_uid_has_no_user_name() {
    let proc = Proc {
        uid: Some(4242),
        ..agent()
    };
    let record: Value = serde_json::from_str(&closed_at_once(&proc)).unwrap();
    assert_eq!(
        (&record["uid"], &record["user"]),
        (&4242.into(), &Value::Null)
    );
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_file_is_created_0640_and_a_looser_one_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/connections.jsonl");
    LogFile::open(&path, None).unwrap();
    assert_eq!(mode(&path), 0o640);
    assert_eq!(mode(path.parent().unwrap()), 0o750);

    let loose = dir.path().join("loose.jsonl");
    fs::write(&loose, "{}\n").unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o666)).unwrap();
    LogFile::open(&loose, None).unwrap();
    assert_eq!(mode(&loose), 0o640);
    assert_eq!(
        fs::read_to_string(&loose).unwrap(),
        "{}\n",
        "kept, appended to"
    );

    // Stricter than 0640: left alone, never loosened.
    let strict = dir.path().join("strict.jsonl");
    fs::write(&strict, "").unwrap();
    fs::set_permissions(&strict, fs::Permissions::from_mode(0o600)).unwrap();
    LogFile::open(&strict, None).unwrap();
    assert_eq!(mode(&strict), 0o600);
}

#[test]
fn reopen_after_a_rename_starts_a_new_file_and_the_old_one_keeps_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("connections.jsonl");
    let mut file = LogFile::open(&path, None).unwrap();
    file.write_line(b"1\n");
    fs::rename(&path, rotated(&path, 1)).unwrap();
    // Until the reopen, lines follow the renamed file.
    file.write_line(b"2\n");
    file.reopen().unwrap();
    file.write_line(b"3\n");
    assert_eq!(fs::read_to_string(rotated(&path, 1)).unwrap(), "1\n2\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "3\n");
    assert_eq!(mode(&path), 0o640);

    // A folder moved away is made again.
    let moved = dir.path().join("moved");
    let nested = dir.path().join("d");
    let mut file = LogFile::open(&nested.join("c.jsonl"), None).unwrap();
    fs::rename(&nested, &moved).unwrap();
    file.reopen().unwrap();
    file.write_line(b"new\n");
    assert_eq!(fs::read_to_string(nested.join("c.jsonl")).unwrap(), "new\n");
    assert_eq!(mode(&nested) & 0o777, 0o750);

    // A reopen that fails (a link now at the path) keeps the old file.
    fs::rename(nested.join("c.jsonl"), moved.join("old")).unwrap();
    std::os::unix::fs::symlink(moved.join("old"), nested.join("c.jsonl")).unwrap();
    assert!(file.reopen().is_err());
    file.write_line(b"kept\n");
    assert_eq!(
        fs::read_to_string(moved.join("old")).unwrap(),
        "new\nkept\n"
    );
}

#[test]
fn links_fifos_and_hard_links_are_refused_and_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "secret\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let hard = dir.path().join("hard.jsonl");
    fs::hard_link(&victim, &hard).unwrap();
    let fifo = dir.path().join("fifo.jsonl");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    for (path, what) in [
        (&link, "a symbolic link"),
        (&hard, "a file with other hard links"),
        (&fifo, "a FIFO"),
    ] {
        let err = LogFile::open(path, None).err().expect("refused");
        let text = err.to_string();
        assert!(
            text.contains(what) && text.contains(&path.display().to_string()),
            "{text}"
        );
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "secret\n");
    assert_eq!(mode(&victim), 0o600);
}

#[test]
fn a_removed_log_is_written_again_at_its_path_by_housekeeping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/connections.jsonl");
    let mut file = LogFile::open(&path, None).unwrap();
    file.write_line(b"1\n");
    file.follow_path();
    fs::remove_dir_all(dir.path().join("logs")).unwrap();
    file.follow_path();
    file.write_line(b"2\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "2\n");
    assert_eq!(mode(&path), 0o640);
    // Replaced by another file: the new one is written.
    fs::rename(&path, dir.path().join("logs/old")).unwrap();
    fs::write(&path, "").unwrap();
    file.follow_path();
    file.write_line(b"3\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "3\n");
    assert_eq!(file.take_dropped(), 0);
}

#[test]
fn rotation_renames_to_dot_1_and_keeps_only_keep_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("connections.jsonl");
    let rotate = Rotation {
        max_bytes: 100,
        keep: 2,
    };
    let mut file = LogFile::open(&path, Some(rotate)).unwrap();
    // 30-byte lines: three fit in 100 bytes, the fourth starts a new file.
    for n in 0..10 {
        file.write_line(format!("{n:028}\n").as_bytes());
    }
    let read = |p: &Path| -> Vec<u64> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    assert_eq!(read(&path), [9]);
    assert_eq!(read(&rotated(&path, 1)), [6, 7, 8]);
    assert_eq!(read(&rotated(&path, 2)), [3, 4, 5]);
    assert!(!rotated(&path, 3).exists(), "only `keep` rotated files");
    assert_eq!(rotated(&path, 2), dir.path().join("connections.jsonl.2"));
    assert_eq!(mode(&path), 0o640);
    // A line longer than max_bytes still goes whole into a file of its own.
    file.write_line(&[b'x'; 150]);
    assert_eq!(fs::metadata(&path).unwrap().len(), 150);
    assert_eq!(read(&rotated(&path, 1)), [9]);
}

fn gzip(text: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text).unwrap();
    gz.finish().unwrap()
}

/// Every line of `files` as text, and the warnings.
fn read_all(files: &[std::path::PathBuf]) -> (Vec<String>, Vec<String>) {
    let (mut lines, mut warnings) = (Vec::new(), Vec::new());
    read::each_line(files, &mut |w| warnings.push(w), &mut |file, n, line| {
        let name = file.file_name().unwrap().to_string_lossy();
        lines.push(format!("{name}:{n}:{}", String::from_utf8_lossy(line)));
    });
    (lines, warnings)
}

#[test]
fn rotated_files_are_found_beside_the_log_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "connections.jsonl",
        "connections.jsonl.1",
        "connections.jsonl.2.gz",
        "connections.jsonl.10",
        "connections.jsonl-20261130",
        "connections.jsonl-20261201.gz",
        "connections.jsonl.3.xz",
        "connections.jsonl.bak",
        "connections.jsonl.1.tmp",
        "other.jsonl",
    ];
    for name in names {
        fs::write(dir.path().join(name), "").unwrap();
    }
    let family = read::family(&dir.path().join("connections.jsonl")).unwrap();
    let names = |paths: &[std::path::PathBuf]| -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&family.files),
        [
            "connections.jsonl-20261130",
            "connections.jsonl-20261201.gz",
            "connections.jsonl.10",
            "connections.jsonl.2.gz",
            "connections.jsonl.1",
            "connections.jsonl",
        ]
    );
    assert_eq!(names(&family.unreadable), ["connections.jsonl.3.xz"]);

    // Just rotated, no new file yet: the rotated ones still make the log.
    fs::remove_file(dir.path().join("connections.jsonl")).unwrap();
    let family = read::family(&dir.path().join("connections.jsonl")).unwrap();
    assert_eq!(family.files.len(), 5);
    let err = read::family(&dir.path().join("absent.jsonl")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn gzip_is_recognised_by_its_bytes_not_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let plain_gz = dir.path().join("log.2.gz");
    let real_gz = dir.path().join("log.1");
    let short = dir.path().join("log");
    fs::write(&plain_gz, "a\nb\n").unwrap();
    fs::write(&real_gz, gzip(b"c\r\nd")).unwrap();
    fs::write(&short, "e").unwrap();
    let (lines, warnings) = read_all(&[plain_gz, real_gz, short]);
    assert_eq!(
        lines,
        [
            "log.2.gz:1:a",
            "log.2.gz:2:b",
            "log.1:1:c",
            "log.1:2:d",
            "log:1:e"
        ]
    );
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn a_truncated_gzip_file_keeps_the_lines_before_the_break_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (1..=2000)
        .map(|n| format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", n * 7919 % 10007))
        .collect();
    let whole = gzip(text.as_bytes());
    let cut = dir.path().join("log.1.gz");
    fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let corrupt = dir.path().join("log.2.gz");
    let mut garbage = whole[..10].to_vec();
    garbage.extend_from_slice(&[0xff; 64]);
    fs::write(&corrupt, garbage).unwrap();
    let after = dir.path().join("log");
    fs::write(&after, "after\n").unwrap();

    let (lines, warnings) = read_all(&[cut.clone(), corrupt, after]);
    let read_before = lines.len() - 1;
    assert!(read_before > 100 && read_before < 2000, "{read_before}");
    // What was read is the start of the file, whole lines only.
    for (n, l) in lines[..read_before].iter().enumerate() {
        assert_eq!(
            *l,
            format!("log.1.gz:{}:{}", n + 1, text.lines().nth(n).unwrap())
        );
    }
    assert_eq!(lines.last().unwrap(), "log:1:after");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!(
            "{}: cannot read past line {read_before} (",
            cut.display()
        )) && warnings[0].ends_with("); the lines before it are counted"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("log.2.gz: cannot read past line 0"),
        "{warnings:?}"
    );
}

//! Unit tests of [`super`]. The .mmdb files under `monitor/src/testdata/geoip/`
//! come from `tests/geoip/make_test_mmdb.py` (its doc string has the command).
use std::io::Write as _;
use std::process::Command;
use std::sync::{Arc, Mutex};

use super::*;

const COUNTRY: &[u8] = include_bytes!("../testdata/geoip/country.mmdb");
const ASN: &[u8] = include_bytes!("../testdata/geoip/asn.mmdb");
const COMBINED: &[u8] = include_bytes!("../testdata/geoip/combined.mmdb");
const COUNTRY_V2: &[u8] = include_bytes!("../testdata/geoip/v2/country.mmdb");
const ASN_V2: &[u8] = include_bytes!("../testdata/geoip/v2/asn.mmdb");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
}

/// Replace the file the way an installer should: a new inode, renamed in.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    write(&tmp, bytes);
    fs::rename(&tmp, path).unwrap();
}

fn pair(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("country.mmdb"), dir.join("asn.mmdb"))
}

/// Runs `f` with a subscriber that records the log; returns the lines.
fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text.lines().map(str::to_string).collect())
}

fn warnings(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.contains("WARN")).collect()
}

#[test]
fn classifies_private_addresses() {
    for a in [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "127.0.0.1",
        "127.8.9.10",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
    ] {
        assert!(is_private(ip(a)), "{a} should be private");
    }
    for a in [
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.200",
        "2001:db8::1",
        "8.8.8.8",
        "100.128.0.1",
        "100.63.255.255",
        "172.32.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "fe00::1",
    ] {
        assert!(!is_private(ip(a)), "{a} should not be private");
    }
}

#[test]
fn labels() {
    let geo = Geo {
        country: "US".into(),
        asn: Some(399358),
        asn_org: None,
        anycast: false,
    };
    assert_eq!(geo.asn_label(), "AS399358");
    assert_eq!(Geo::private().asn_label(), "private");
    assert_eq!(Geo::unknown().asn_label(), "unknown");
    assert_eq!(
        country_code("us").map(|c| c.to_string()).as_deref(),
        Some("US")
    );
    assert_eq!(country_code("u$"), None);
    assert_eq!(country_code("USA"), None);
    assert_eq!(country_code("É1"), None);
}

#[test]
fn sanitizes_org() {
    assert_eq!(
        sanitize_org("Anthropic, PBC").as_deref(),
        Some("Anthropic, PBC")
    );
    assert_eq!(
        sanitize_org("  Evil\u{7}Org\n{dest=\"x\"}\u{202e}  end\r\n").as_deref(),
        Some("Evil Org {dest=\"x\"} end")
    );
    assert_eq!(sanitize_org("\u{0}\t\u{200b}"), None);
    let long = "é".repeat(500);
    let cut = sanitize_org(&long).unwrap();
    assert_eq!(cut.chars().count(), ASN_ORG_MAX_CHARS);
    let words = "ab ".repeat(100);
    assert!(sanitize_org(&words).unwrap().chars().count() <= ASN_ORG_MAX_CHARS);
    assert!(!sanitize_org(&words).unwrap().ends_with(' '));
}

#[test]
fn without_databases_everything_public_is_unknown() {
    let geo = GeoIp::disabled();
    assert_eq!(geo.lookup(ip("203.0.113.5")), Geo::unknown());
    assert_eq!(geo.lookup(ip("10.0.0.1")), Geo::private());
    assert!(!geo.has_country() && !geo.has_asn());
}

#[test]
fn anycast_networks_have_no_country() {
    let dir = tempfile::tempdir().unwrap();
    let (country, asn) = pair(dir.path());
    write(&country, COUNTRY);
    write(&asn, ASN);
    let cfg = GeoipConfig {
        country,
        asn,
        anycast_asns: vec![64501],
        ..GeoipConfig::default()
    };
    let geo = GeoIp::from_config(&cfg);
    // Configured as anycast: the database's country stays, the label says so.
    let de = geo.lookup(ip("198.51.100.77"));
    assert_eq!(
        (de.country.as_str(), de.anycast, de.country_label()),
        ("DE", true, ANYCAST)
    );
    assert_eq!(de.asn_label(), "AS64501");
    let us = geo.lookup(ip("203.0.113.5"));
    assert_eq!((us.anycast, us.country_label()), (false, "US"));
    // Without an ASN nothing is anycast; the built-in list is always there.
    assert!(!geo.lookup(ip("192.0.2.1")).anycast);
    assert!(Anycast::new(&[]).contains(13335) && Anycast::new(&[]).contains(54113));
    assert_eq!(Anycast::builtin_name(54113), Some("Fastly"));
}

#[test]
fn looks_up_generated_databases() {
    let dir = tempfile::tempdir().unwrap();
    let (c, a) = pair(dir.path());
    write(&c, COUNTRY);
    write(&a, ASN);
    let geo = GeoIp::open(Some(&c), Some(&a));
    assert!(geo.has_country() && geo.has_asn());
    let want = |cc: &str, asn: u32, org: &str| Geo {
        country: cc.into(),
        asn: Some(asn),
        asn_org: Some(org.into()),
        anycast: false,
    };
    assert_eq!(
        geo.lookup(ip("203.0.113.5")),
        want("US", 64500, "Example-Net-US")
    );
    assert_eq!(
        geo.lookup(ip("::ffff:203.0.113.9")),
        want("US", 64500, "Example-Net-US")
    );
    assert_eq!(
        geo.lookup(ip("198.51.100.77")),
        want("DE", 64501, "Beispiel-DE")
    );
    assert_eq!(geo.lookup(ip("2001:db8::10")), want("JP", 64502, "Rei-JP"));
    assert_eq!(geo.lookup(ip("2001:db8::10")).asn_label(), "AS64502");
    // Country only.
    let fr = geo.lookup(ip("192.0.2.1"));
    assert_eq!(
        (fr.country.as_str(), fr.asn, fr.asn_label()),
        ("FR", None, UNKNOWN.into())
    );
    // A hostile organisation name arrives sanitised.
    let hostile = geo.lookup(ip("192.0.2.200"));
    assert_eq!(
        (hostile.country.as_str(), hostile.asn),
        (UNKNOWN, Some(64503))
    );
    let org = hostile.asn_org.unwrap();
    assert!(org.starts_with("Hostile Org {dest=\"x\"} xxx"), "{org}");
    assert_eq!(org.chars().count(), ASN_ORG_MAX_CHARS);
    assert!(!org.chars().any(|c| c.is_control() || is_invisible(c)));
    // Not a two-letter code: unknown; the ASN still counts.
    let bad = geo.lookup(ip("2001:db8:ffff::1"));
    assert_eq!((bad.country.as_str(), bad.asn), (UNKNOWN, Some(64504)));
    // Outside every network, and private addresses.
    assert_eq!(geo.lookup(ip("8.8.8.8")), Geo::unknown());
    assert_eq!(geo.lookup(ip("2606:4700::1111")), Geo::unknown());
    assert_eq!(geo.lookup(ip("192.168.0.1")), Geo::private());
    assert_eq!(geo.lookup(ip("fd00::1")), Geo::private());
}

#[test]
fn one_combined_file_answers_both() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("combined.mmdb");
    write(&path, COMBINED);
    for geo in [
        GeoIp::open(Some(&path), None),
        GeoIp::open(None, Some(&path)),
    ] {
        let g = geo.lookup(ip("198.51.100.1"));
        assert_eq!(
            (g.country.as_str(), g.asn_label()),
            ("DE", "AS64501".into())
        );
    }
    // A country-only file plus an ASN file that also has countries: the
    // country file wins for the country, the ASN file for the ASN.
    let c = dir.path().join("v2-country.mmdb");
    write(&c, COUNTRY_V2);
    let geo = GeoIp::open(Some(&c), Some(&path));
    let g = geo.lookup(ip("203.0.113.1"));
    assert_eq!((g.country.as_str(), g.asn), ("NZ", Some(64500)));
    // Where the country file has nothing, the other file's country is used.
    assert_eq!(geo.lookup(ip("198.51.100.1")).country, "DE");
}

#[test]
fn missing_file_is_unknown_and_reported_once_then_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let (c, a) = pair(dir.path());
    let (mut geo, lines) = logged(|| GeoIp::open(Some(&c), Some(&a)));
    let warned = warnings(&lines);
    assert_eq!(warned.len(), 2, "{lines:?}");
    assert!(warned[0].contains(&c.display().to_string()), "{lines:?}");
    assert!(warned[0].contains("not found") && warned[0].contains("cargo xtask setup"));
    assert!(
        warned[0].contains("dest_country stays \"unknown\""),
        "{lines:?}"
    );
    assert_eq!(geo.lookup(ip("203.0.113.5")), Geo::unknown());

    let (changed, lines) = logged(|| geo.reload_if_changed());
    assert!(!changed && lines.is_empty(), "{lines:?}");

    // The files appear later (setup run after start-up).
    replace(&c, COUNTRY);
    replace(&a, ASN);
    let (changed, lines) = logged(|| geo.reload_if_changed());
    assert!(changed, "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("INFO") && lines[0].contains("loaded"),
        "{lines:?}"
    );
    assert_eq!(geo.lookup(ip("203.0.113.5")).country, "US");
    assert_eq!(geo.lookup(ip("203.0.113.5")).asn, Some(64500));
}

#[test]
fn corrupt_file_at_start_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (c, a) = pair(dir.path());
    write(&c, &noise(4096));
    write(&a, &ASN[..ASN.len() / 2]);
    let (geo, lines) = logged(|| GeoIp::open(Some(&c), Some(&a)));
    let warned = warnings(&lines);
    assert_eq!(warned.len(), 2, "{lines:?}");
    assert!(
        warned
            .iter()
            .all(|l| l.contains("not a valid MaxMind DB file")),
        "{lines:?}"
    );
    assert!(
        warned[1].contains("dest_asn stays \"unknown\""),
        "{lines:?}"
    );
    assert_eq!(geo.lookup(ip("203.0.113.5")), Geo::unknown());

    // A directory or an empty file is refused the same way.
    let empty = dir.path().join("empty.mmdb");
    write(&empty, b"");
    let (geo, lines) = logged(|| GeoIp::open(Some(dir.path()), Some(&empty)));
    assert_eq!(warnings(&lines).len(), 2, "{lines:?}");
    assert!(lines[0].contains("not a regular file"), "{lines:?}");
    assert!(!geo.has_country() && !geo.has_asn());
}

#[test]
fn corrupt_replacement_keeps_the_previous_database() {
    let dir = tempfile::tempdir().unwrap();
    let (c, a) = pair(dir.path());
    write(&c, COUNTRY);
    write(&a, ASN);
    let mut geo = GeoIp::open(Some(&c), Some(&a));
    for (what, bad) in [
        ("random bytes", noise(8192)),
        ("truncated copy", COUNTRY[..COUNTRY.len() - 7].to_vec()),
        ("head only", COUNTRY[..COUNTRY.len() / 3].to_vec()),
        ("empty", Vec::new()),
    ] {
        replace(&c, &bad);
        let (changed, lines) = logged(|| geo.reload_if_changed());
        assert!(!changed, "{what}");
        let warned = warnings(&lines);
        assert_eq!(warned.len(), 1, "{what}: {lines:?}");
        assert!(
            warned[0].contains("keeping the database loaded before"),
            "{lines:?}"
        );
        assert!(warned[0].contains(&c.display().to_string()), "{lines:?}");
        assert_eq!(geo.lookup(ip("203.0.113.5")).country, "US", "{what}");
        // Polling again does not repeat the line.
        let (_, lines) = logged(|| geo.reload_if_changed());
        assert!(lines.is_empty(), "{what}: {lines:?}");
    }
    // Removing the file keeps the data too (one line).
    fs::remove_file(&c).unwrap();
    let (_, lines) = logged(|| geo.reload_if_changed());
    assert_eq!(warnings(&lines).len(), 1, "{lines:?}");
    assert_eq!(geo.lookup(ip("203.0.113.5")).country, "US");
    // A good file again is taken.
    replace(&c, COUNTRY_V2);
    assert!(geo.reload_if_changed());
    assert_eq!(geo.lookup(ip("203.0.113.5")).country, "NZ");
}

#[test]
fn hot_reload_picks_up_rewritten_files() {
    let dir = tempfile::tempdir().unwrap();
    let (c, a) = pair(dir.path());
    write(&c, COUNTRY);
    write(&a, ASN);
    let mut geo = GeoIp::open(Some(&c), Some(&a));
    assert!(!geo.reload_if_changed(), "nothing changed yet");
    assert_eq!(geo.lookup(ip("2001:db8::1")).country, "JP");

    // Renamed into place (new inode).
    replace(&c, COUNTRY_V2);
    let (changed, lines) = logged(|| geo.reload_if_changed());
    assert!(changed);
    assert!(lines.iter().any(|l| l.contains("reloaded")), "{lines:?}");
    assert_eq!(geo.lookup(ip("2001:db8::1")).country, "BR");
    assert_eq!(geo.lookup(ip("203.0.113.5")).asn, Some(64500));

    // Rewritten in place (same inode, other size and mtime).
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&a)
        .unwrap();
    f.write_all(ASN_V2).unwrap();
    drop(f);
    assert!(geo.reload_if_changed());
    let g = geo.lookup(ip("203.0.113.5"));
    assert_eq!(
        (g.asn, g.asn_org.as_deref()),
        (Some(64510), Some("Reloaded-NZ"))
    );
    assert!(!geo.reload_if_changed());
}

/// Deterministic junk (no rand crate): an xorshift stream.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The generator still makes files this module reads as the fixtures say.
/// Needs python3 with mmdb-writer (`cargo xtask setup`); skipped outside CI
/// when that is missing, a failure in CI.
#[test]
fn generator_makes_readable_databases() {
    let src = Path::new(file!());
    let src = if src.is_absolute() {
        src.to_path_buf()
    } else {
        // file!() is relative to the workspace root, one above this crate.
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(src)
    };
    // monitor/src/geoip/ -> the workspace root.
    let script = src
        .parent()
        .unwrap()
        .join("../../../tests/geoip/make_test_mmdb.py");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg("--out")
        .arg(dir.path())
        .args([
            "--combined",
            "--net",
            "203.0.113.0/24=US:64500:Example: Net",
        ])
        .args([
            "--net",
            "2001:db8::/32=JP:64502:Rei-JP",
            "--net",
            "192.0.2.0/24=FR",
        ])
        .output();
    let ok = matches!(&out, Ok(o) if o.status.success());
    if !ok {
        let why = match &out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        let msg = format!("cannot run {}: {why}", script.display());
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("skipped (not CI): {msg}");
        return;
    }
    let (c, a) = pair(dir.path());
    let geo = GeoIp::open(Some(&c), Some(&a));
    let g = geo.lookup(ip("203.0.113.1"));
    assert_eq!(
        (g.country.as_str(), g.asn, g.asn_org.as_deref()),
        ("US", Some(64500), Some("Example: Net"))
    );
    assert_eq!(geo.lookup(ip("2001:db8:1::1")).asn_label(), "AS64502");
    let fr = geo.lookup(ip("192.0.2.9"));
    assert_eq!((fr.country.as_str(), fr.asn), ("FR", None));
    let combined = GeoIp::open(Some(&dir.path().join("combined.mmdb")), None);
    assert_eq!(combined.lookup(ip("2001:db8::5")).asn_label(), "AS64502");
    assert_eq!(combined.lookup(ip("2001:db8::5")).country, "JP");
}

#[test]
fn inspect_says_what_a_file_is_or_why_it_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let (country, asn) = pair(dir.path());
    write(&country, COUNTRY);
    let info = inspect(Kind::Country, &country).unwrap();
    assert_eq!(info.size, COUNTRY.len() as u64);
    assert!(!info.database_type.is_empty());
    assert!(info.built > UNIX_EPOCH);

    let missing = inspect(Kind::Asn, &asn).unwrap_err();
    assert_eq!(missing.problem, "not found");
    assert!(missing.fix.contains("[geoip] asn"), "{}", missing.fix);
    write(&asn, &COUNTRY[..100]);
    let bad = inspect(Kind::Asn, &asn).unwrap_err();
    assert!(
        bad.problem.contains("not a valid MaxMind DB file"),
        "{}",
        bad.problem
    );
}

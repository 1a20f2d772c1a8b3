//! The secured exporter: TLS, client certificates and basic authentication
//! from a web-config file (`--web.config.file`), certificates renewed on
//! disk served without a restart, a real Prometheus scraping over HTTPS
//! with a password; the landing page, 404 and 405; stalled clients timed
//! out so that they cannot hold the connections; and the daemon's own
//! metrics (process_*, build_info's revision, the GeoIP databases' age).

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use agentmon_tests::{
    Agentmon, CertFiles, Curl, NETS, Prometheus, TempDir, TestCa, agentmon_bin, connect_from,
    http_get, make_geoip_built, require_root, run_bounded, served_certificate,
};

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse";
/// The test GeoIP databases' build time.
const GEOIP_EPOCH: u64 = 1_767_225_600;
/// The daemon's header-read and TLS handshake timeouts (`monitor/src/web`).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Its connection cap, and its share for one client address.
const MAX_CONNECTIONS: usize = 64;
const PER_ADDRESS: usize = 16;

/// A bcrypt hash of `password` at the lowest cost, to keep tests quick.
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn write_web_config(dir: &Path, server: &CertFiles, extra: &str) -> PathBuf {
    let path = dir.join("web.yml");
    let text = format!(
        "tls_server_config:\n  cert_file: {:?}\n  key_file: {:?}\n{extra}",
        server.cert.display().to_string(),
        server.key.display().to_string()
    );
    fs::write(&path, text).unwrap();
    path
}

/// A config whose GeoIP databases were built at [`GEOIP_EPOCH`].
fn geoip_config(dir: &Path) -> PathBuf {
    let geoip = dir.join("geoip");
    make_geoip_built(&geoip, &NETS, Some(GEOIP_EPOCH));
    let config = dir.join("agentmon.toml");
    let text = format!(
        "[geoip]\ncountry = \"{g}/country.mmdb\"\nasn = \"{g}/asn.mmdb\"\n",
        g = geoip.display()
    );
    fs::write(&config, text).unwrap();
    config
}

fn users() -> String {
    format!("basic_auth_users:\n  {USER}: '{}'\n", hash(PASSWORD))
}

/// agentmon with TLS (a server certificate of a new CA) and a password.
fn start_secured(dir: &Path) -> (TestCa, Agentmon) {
    let ca = TestCa::new(dir, "test-ca");
    let server = ca.server("agentmon-server", 1);
    let web = write_web_config(dir, &server, &users());
    let am = Agentmon::builder()
        .arg("--web.config.file")
        .arg(&web)
        .client(https(&ca, Some(&format!("{USER}:{PASSWORD}"))))
        .start();
    (ca, am)
}

fn https(ca: &TestCa, user: Option<&str>) -> Curl {
    Curl {
        ca: Some(ca.files.cert.clone()),
        user: user.map(str::to_owned),
        client_cert: None,
    }
}

#[test]
fn tls_and_basic_auth_guard_every_path() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("exporter");
    let (ca, am) = start_secured(dir.path());
    let right = format!("{USER}:{PASSWORD}");
    let addr = am.addr();
    // A client that opens TCP and never starts the handshake.
    let mut stalled = TcpStream::connect(addr).unwrap();
    let stalled_at = Instant::now();

    let metrics = am.scrape();
    assert!(metrics.value("agentmon_build_info", &[]).is_some());

    for (curl, why) in [
        (https(&ca, Some(&format!("{USER}:wrong"))), "wrong password"),
        (
            https(&ca, Some(&format!("nobody:{PASSWORD}"))),
            "unknown user",
        ),
        (https(&ca, None), "no credentials"),
    ] {
        for path in ["/metrics", "/healthz", "/"] {
            let r = curl.get(addr, path).unwrap();
            assert_eq!(r.status, 401, "{why} {path}: {r:?}");
            assert_eq!(r.header("www-authenticate"), Some("Basic"), "{why}: {r:?}");
            assert!(!r.body.contains("agentmon_"), "{why}: {r:?}");
        }
    }
    // Plain HTTP to the TLS port gets no answer.
    let plain = http_get(addr, "/metrics", Duration::from_secs(5));
    assert!(
        !plain.as_ref().is_ok_and(|r| r.status == 200),
        "plain HTTP: {plain:?}"
    );

    let curl = https(&ca, Some(&right));
    let landing = curl.get(addr, "/").unwrap();
    assert_eq!(landing.status, 200, "{landing:?}");
    assert!(
        landing
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(landing.body.contains("href=\"/metrics\""), "{landing:?}");
    assert!(landing.body.contains("href=\"/healthz\""), "{landing:?}");
    assert_eq!(curl.get(addr, "/nope").unwrap().status, 404);
    assert_eq!(curl.request("POST", addr, "/metrics").unwrap().status, 405);
    assert_eq!(
        curl.request("DELETE", addr, "/healthz").unwrap().status,
        405
    );

    // The stalled handshake was closed at the timeout, not before.
    stalled
        .set_read_timeout(Some(TIMEOUT + Duration::from_secs(5)))
        .unwrap();
    let read = stalled.read(&mut [0u8; 16]);
    let held = stalled_at.elapsed();
    assert!(
        matches!(read, Ok(0))
            || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "after {held:?}"
    );
    assert!(
        held >= TIMEOUT - Duration::from_millis(500) && held < TIMEOUT + Duration::from_secs(4),
        "a stalled TLS handshake held its connection {held:?}"
    );
}

#[test]
fn the_daemon_exports_its_own_process_revision_and_geoip_age() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("exporter");
    let config = geoip_config(dir.path());
    let am = Agentmon::builder().config(&config).start();
    let m = am.scrape();
    for database in ["country", "asn"] {
        assert_eq!(
            m.value(
                "agentmon_geoip_database_build_timestamp_seconds",
                &[("database", database)]
            ),
            Some(GEOIP_EPOCH as f64),
            "{database}"
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = m.value("process_start_time_seconds", &[]).unwrap();
    assert!(
        started <= now && started > now - 120.0,
        "{started} vs {now}"
    );
    // Whole seconds in the prometheus crate: a young daemon has 0.
    assert!(m.value("process_cpu_seconds_total", &[]).unwrap() >= 0.0);
    assert!(m.value("process_resident_memory_bytes", &[]).unwrap() > 1e6);
    let (open, max) = (
        m.value("process_open_fds", &[]).unwrap(),
        m.value("process_max_fds", &[]).unwrap(),
    );
    assert!(open >= 3.0 && max >= open, "{open} of {max}");

    let series = m.series("agentmon_build_info");
    assert_eq!(series.len(), 1, "{series:?}");
    let labels = &series[0].0;
    let revision = labels.get("revision").expect("a revision label");
    assert!(labels.get("version").is_some() && labels.get("kernel").is_some());
    // Built from this checkout (cargo xtask test builds it first).
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match git {
        Ok(out) if out.status.success() => {
            assert_eq!(revision, String::from_utf8_lossy(&out.stdout).trim());
        }
        _ => assert!(revision == "unknown" || revision.len() == 12, "{revision}"),
    }
}

#[test]
fn a_real_prometheus_scrapes_over_https_with_a_password() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("exporter");
    let (ca, am) = start_secured(dir.path());
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {ca:?}\n    \
             basic_auth:\n      username: {USER}\n      password: {password:?}\n    \
             static_configs:\n      - targets: ['{addr}']\n",
            ca = ca.files.cert.display().to_string(),
            addr = am.addr(),
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}",
        job("secured", PASSWORD),
        job("wrong_password", "guess")
    );
    let prometheus = Prometheus::start(None, &config);
    let up = |job: &str, want: f64| {
        prometheus
            .wait_for(
                &format!("up{{job=\"{job}\"}}"),
                Duration::from_secs(20),
                |s| s.len() == 1 && s[0].value == want,
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", prometheus.log_text()));
    };
    up("secured", 1.0);
    up("wrong_password", 0.0);
    prometheus
        .wait_for(
            "agentmon_build_info{job=\"secured\"}",
            Duration::from_secs(10),
            |s| s.len() == 1,
        )
        .unwrap();
}

/// Each `client_auth_type`, in turn, by editing the web config of one
/// running daemon (so its edits are picked up too): whether a client with
/// no certificate, one of a CA the web config does not name, and one of
/// `client_ca_file` get an answer.
#[test]
fn client_certificates_are_required_and_verified() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("exporter");
    let ca = TestCa::new(dir.path(), "test-ca");
    let server = ca.server("agentmon-server", 1);
    let clients = TestCa::new(dir.path(), "clients-ca");
    let good = clients.client("scraper", 2);
    // Signed by the server CA, which does not sign clients here.
    let stranger = ca.client("stranger", 3);
    let client_ca = format!(
        "  client_ca_file: {:?}\n",
        clients.files.cert.display().to_string()
    );
    let set_mode = |mode: &str, ca_file: bool| {
        let extra = format!(
            "  client_auth_type: {mode}\n{}",
            if ca_file { client_ca.as_str() } else { "" }
        );
        write_web_config(dir.path(), &server, &extra)
    };
    let with = |cert: &CertFiles| Curl {
        client_cert: Some((cert.cert.clone(), cert.key.clone())),
        ..https(&ca, None)
    };
    let web = set_mode("RequireAndVerifyClientCert", true);
    let am = Agentmon::builder()
        .arg("--web.config.file")
        .arg(&web)
        .client(with(&good))
        .start();
    let r = with(&good).get(am.addr(), "/metrics").unwrap();
    assert!(r.body.contains("agentmon_build_info"), "{r:?}");
    // Answered: (no certificate, another CA's, the client CA's).
    for (mode, ca_file, want) in [
        ("RequireAndVerifyClientCert", true, [false, false, true]),
        ("VerifyClientCertIfGiven", true, [true, false, true]),
        ("RequireAnyClientCert", false, [false, true, true]),
        ("RequestClientCert", false, [true, true, true]),
        ("NoClientCert", false, [true, true, true]),
    ] {
        set_mode(mode, ca_file);
        let have = [https(&ca, None), with(&stranger), with(&good)].map(|curl| {
            curl.get(am.addr(), "/healthz")
                .is_ok_and(|r| r.status == 200)
        });
        assert_eq!(have, want, "{mode}");
    }
    assert!(!am.log_text().contains("WARN"), "{}", am.log_text());
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new("exporter");
    let ca = TestCa::new(dir.path(), "test-ca");
    let first = ca.server("agentmon-1", 1001);
    let web = write_web_config(dir.path(), &first, "");
    let am = Agentmon::builder()
        .arg("--web.config.file")
        .arg(&web)
        .client(https(&ca, None))
        .start();
    assert_eq!(
        served_certificate(am.addr()),
        "subject=CN = agentmon-1\nserial=03E9"
    );

    // Renewed as certbot does: new files renamed over the old ones, one
    // at a time. Halfway, the new key does not match the old certificate:
    // the old pair stays in use, with one warning.
    let renewed = ca.server("agentmon-2", 1002);
    fs::rename(&renewed.key, &first.key).unwrap();
    let old = "subject=CN = agentmon-1\nserial=03E9";
    assert_eq!(served_certificate(am.addr()), old);
    assert_eq!(warnings(&am).len(), 1, "{}", am.log_text());
    fs::rename(&renewed.cert, &first.cert).unwrap();
    let want = "subject=CN = agentmon-2\nserial=03EA";
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut served = served_certificate(am.addr());
    while served != want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        served = served_certificate(am.addr());
    }
    assert_eq!(served, want);
    assert_eq!(
        https(&ca, None).get(am.addr(), "/healthz").unwrap().status,
        200
    );

    // A broken renewal keeps the certificate in use, with one warning.
    fs::write(&first.cert, "not a certificate\n").unwrap();
    for _ in 0..3 {
        assert_eq!(served_certificate(am.addr()), want);
    }
    let warnings = warnings(&am);
    assert_eq!(warnings.len(), 2, "{}", am.log_text());
    assert!(warnings[1].contains("cert_file"), "{}", warnings[1]);
}

/// The log lines of web configs that did not load.
fn warnings(am: &Agentmon) -> Vec<String> {
    am.log_text()
        .lines()
        .filter(|l| l.contains("keeping the web settings loaded before"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn stalled_clients_time_out_and_free_their_slots() {
    if !require_root() {
        return;
    }
    let am = Agentmon::start();
    let addr = am.addr();
    let start = Instant::now();
    // The cap's worth of clients, from as many addresses as it takes:
    // half send nothing, half half a header.
    let mut stalled: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|i| {
            let source = Ipv4Addr::new(127, 0, 1, (i / PER_ADDRESS) as u8 + 1);
            let mut s = connect_from(source, addr).unwrap();
            if i % 2 == 1 {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: agentm")
                    .unwrap();
            }
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    // One more, from an address of its own, is closed at once, so a
    // scrape now fails fast...
    let r = http_get(addr, "/metrics", Duration::from_secs(3));
    assert!(r.is_err(), "a scrape past the cap: {r:?}");
    assert!(start.elapsed() < TIMEOUT - Duration::from_secs(2));
    // ... until the timeout closes the stalled ones.
    for s in &mut stalled {
        s.set_read_timeout(Some(TIMEOUT + Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        // A half header may get a 408 answer before the close.
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
    let held = start.elapsed();
    assert!(
        held >= TIMEOUT - Duration::from_secs(1) && held < TIMEOUT + Duration::from_secs(4),
        "the stalled clients were closed after {held:?}"
    );
    assert_eq!(am.get("/healthz").unwrap().status, 200);
    assert!(am.scrape().value("agentmon_build_info", &[]).is_some());
}

/// A bad web config stops the start with exit code 78 (the unit's
/// RestartPreventExitStatus) and one line naming the file and the key.
/// Needs no root: the web config is read before the kernel is touched.
#[test]
fn a_bad_web_config_is_a_config_error() {
    let dir = TempDir::new("exporter");
    let web = dir.path().join("web.yml");
    let run = |text: &str| {
        fs::write(&web, text).unwrap();
        let mut cmd = Command::new(agentmon_bin());
        cmd.args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--pin-dir",
            "none",
            "--state-dir",
            "none",
        ])
        .arg("--web.config.file")
        .arg(&web);
        let out = run_bounded(&mut cmd, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(out.status.code(), Some(78), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&web.display().to_string()), "{stderr}");
        stderr
    };
    let e = run("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  cipher_suites: []\n");
    assert!(e.contains("cipher_suites"), "{e}");
    let e = run("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n");
    assert!(e.contains("missing.crt"), "{e}");
    let e = run("basic_auth_users:\n  alice: hunter2\n");
    assert!(
        e.contains("not a bcrypt hash") && !e.contains("hunter2"),
        "{e}"
    );
}

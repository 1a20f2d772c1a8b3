//! The `Agentmon` guard against a stand-in daemon: start, health wait, scrape,
//! stop, and the failure paths. Needs neither root nor BPF.

use std::{os::unix::process::ExitStatusExt, panic, time::Duration};

use agentmon_tests::{Agentmon, TempDir, wait_until};

const FAKE: &str = env!("CARGO_BIN_EXE_fake-agentmon");

#[test]
fn starts_scrapes_and_stops() {
    let dir = TempDir::new("guard");
    let config = dir.path().join("agentmon.toml");
    std::fs::write(&config, "").unwrap();
    let mut daemon = Agentmon::builder()
        .bin(FAKE)
        .config(&config)
        .args(["--flag", "a \"quoted\" value"])
        .start();
    assert!(daemon.addr().ip().is_loopback());

    let metrics = daemon.scrape();
    assert_eq!(metrics.value("fake_scrapes_total", &[]), Some(1.0));
    assert_eq!(metrics.metric_type("fake_scrapes_total"), Some("counter"));
    let expected_args = format!("--config {} --flag a \"quoted\" value", config.display());
    assert_eq!(
        metrics.value("fake_args_info", &[("args", &expected_args)]),
        Some(1.0),
        "{}",
        metrics.text()
    );
    assert_eq!(
        daemon
            .wait_for_value("fake_scrapes_total", &[], Duration::from_secs(5), |v| v
                >= 3.0)
            .ok(),
        Some(3.0)
    );
    assert_eq!(daemon.get("/nope").unwrap().status, 404);
    assert!(
        daemon.log_text().contains("listening on"),
        "{}",
        daemon.log_text()
    );

    let pid = daemon.pid().unwrap();
    let status = daemon.stop().expect("was running");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "SIGTERM first");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(daemon.stop(), None, "stopping twice is harmless");
}

#[test]
fn wait_for_value_returns_the_last_scrape_on_timeout() {
    let daemon = Agentmon::builder().bin(FAKE).start();
    let last = daemon
        .wait_for_value("fake_scrapes_total", &[], Duration::from_millis(300), |v| {
            v > 1e9
        })
        .expect_err("never that many scrapes");
    assert!(last.text().contains("fake_scrapes_total"));
}

#[test]
fn early_exit_and_unhealthy_daemons_fail_clearly() {
    let early = panic::catch_unwind(|| Agentmon::builder().bin(FAKE).arg("--exit-early").start())
        .expect_err("must panic");
    let message = early.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("exited with exit status: 3"), "{message}");

    let unhealthy = panic::catch_unwind(|| {
        Agentmon::builder()
            .bin(FAKE)
            .arg("--unhealthy")
            .ready_timeout(Duration::from_millis(500))
            .start()
    })
    .expect_err("must panic");
    let message = unhealthy
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("did not answer 200"), "{message}");
    // The unhealthy daemon was stopped by the guard while unwinding.
    assert!(wait_until(Duration::from_secs(5), || !fake_running(
        "--unhealthy"
    )));
}

/// Whether a fake daemon started with `marker` still runs.
fn fake_running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline")).is_ok_and(|cmdline| {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("fake-agentmon") && cmdline.contains(marker)
        })
    })
}

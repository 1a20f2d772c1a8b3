//! `agentmon report --html` opened in headless Chromium as a person would
//! open it: the charts render (each SVG has a size and drawn shapes), the
//! page asks for nothing over the network, logs no error, and a hostile
//! tool name in the log stays text. A full-page screenshot is kept under
//! the target folder (the test prints its path).
//!
//! Needs Debian's chromium and playwright-core (`cargo xtask setup test`);
//! without them the test fails under CI and is skipped elsewhere.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use agentmon_tests::{TempDir, agentmon_bin, in_ci, run_bounded};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Where `cargo xtask setup test` installs playwright-core (xtask/src/setup/npm.rs).
const PLAYWRIGHT_DIR: &str = "/var/lib/agentmon/tools/playwright";
const BROWSER: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether the browser and its driver are here; under CI their absence
/// is a failure.
fn browser_tools() -> bool {
    let missing: Vec<&str> = [
        (CHROMIUM, "chromium (apt-get install chromium)"),
        (
            &format!("{PLAYWRIGHT_DIR}/node_modules/playwright-core/package.json")[..],
            "playwright-core",
        ),
    ]
    .iter()
    .filter(|(path, _)| !Path::new(path).exists())
    .map(|&(_, what)| what)
    .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "missing {}: run `cargo xtask setup test`",
        missing.join(", ")
    );
    assert!(!in_ci(), "{message}; CI must run this test, not skip it");
    eprintln!("skipping: {message}");
    false
}

/// `$CARGO_TARGET_DIR/agentmon-artifacts`, or the workspace's target/.
fn artifacts() -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let dir = target.join("agentmon-artifacts");
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_html_report_renders_its_charts_in_chromium() {
    if !browser_tools() {
        return;
    }
    let tmp = TempDir::new("report-html");
    let log = tmp.path().join("connections.jsonl");
    let fixtures = workspace().join("monitor/src/testdata/report");
    for name in ["connections.jsonl.2", "connections.jsonl.1"] {
        fs::copy(fixtures.join(name), tmp.path().join(name)).unwrap();
    }
    // The fixture's log, and a connection of a tool whose name is markup
    // that would run a script if it were not escaped.
    let mut text = fs::read_to_string(fixtures.join("connections.jsonl")).unwrap();
    let first = text.lines().next().unwrap().to_owned();
    let hostile = first.replace("\"tcp:1\"", "\"tcp:77\"").replace(
        "\"tool\":\"claude-code\"",
        r#""tool":"<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>""#,
    );
    text.push_str(&hostile);
    text.push('\n');
    fs::write(&log, text).unwrap();

    let page = tmp.path().join("report.html");
    let out = run_bounded(
        Command::new(agentmon_bin())
            .arg("report")
            .arg("--log")
            .arg(&log)
            .arg("--html")
            .arg(&page),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "wrote {}: 6 connections between the start of the log and the end of the log: 17,020 bytes egress, 93,030 bytes ingress\n",
            page.display()
        )
    );

    let screenshot = artifacts().join("report.png");
    let _ = fs::remove_file(&screenshot);
    let out = run_bounded(
        Command::new("node")
            .arg(workspace().join("tests/browser/report.mjs"))
            .arg(&page)
            .arg(&screenshot)
            .env("PLAYWRIGHT_DIR", PLAYWRIGHT_DIR)
            .env("CHROMIUM", CHROMIUM),
        BROWSER,
    );
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the browser script's output is not JSON ({e}): {stdout}"));
    println!("screenshot: {}", screenshot.display());
    println!("{}", serde_json::to_string_pretty(&result).unwrap());

    assert_eq!(result["consoleErrors"], serde_json::json!([]), "{result}");
    assert_eq!(result["pageErrors"], serde_json::json!([]), "{result}");
    // Nothing but the page itself: no font, style, script or image fetched.
    let url = result["url"].as_str().unwrap();
    assert_eq!(result["requests"], serde_json::json!([url]), "{result}");
    // The hostile name stayed text: no element made of it, nothing ran.
    assert_eq!(result["images"], 0, "{result}");
    assert_eq!(result["scripts"], 0, "{result}");
    assert_eq!(result["pwned"], false, "{result}");

    let charts = result["charts"].as_array().unwrap();
    let titles: Vec<&str> = charts
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "Egress per tool over time",
            "Top destinations per tool",
            "Bytes by purpose",
            "Bytes by country",
        ]
    );
    for chart in charts {
        let (w, h) = (
            chart["width"].as_f64().unwrap(),
            chart["height"].as_f64().unwrap(),
        );
        assert!(w > 300.0 && h > 150.0, "{chart}");
        // Axes, bars or lines: more than the frame.
        assert!(chart["shapes"].as_u64().unwrap() > 5, "{chart}");
    }
    let svgs = result["svgs"].as_array().unwrap();
    assert!(svgs.len() >= 4, "{result}");
    for svg in svgs {
        assert!(svg["width"].as_f64().unwrap() > 0.0 && svg["height"].as_f64().unwrap() > 0.0);
    }
    // The charts' labels are the log's: destinations and purposes.
    let texts = |i: usize| -> Vec<String> {
        charts[i]["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        texts(1).contains(&"codex · api.openai.com".to_owned()),
        "{:?}",
        texts(1)
    );
    assert!(
        texts(2).contains(&"package-registry".to_owned()),
        "{:?}",
        texts(2)
    );
    assert!(texts(3).contains(&"anycast".to_owned()), "{:?}", texts(3));
    assert!(texts(0).contains(&"codex".to_owned()), "{:?}", texts(0));
    // Rows: 3 tools, 6 destinations, 3 countries, 4 purposes.
    assert_eq!(result["tableRows"], 3 + 6 + 3 + 4, "{result}");
    assert!(
        result["pageWidth"].as_f64() <= result["windowWidth"].as_f64(),
        "the page is wider than the window: {result}"
    );
    let png = fs::read(&screenshot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{}",
        png.len()
    );
}

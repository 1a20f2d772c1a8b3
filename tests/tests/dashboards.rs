//! The Grafana dashboards and Prometheus rules in `dashboards/`, end to end:
//! three agentmon "hosts" (network namespaces with their own address and
//! config), agent traffic on each, and a real Prometheus scraping two and
//! receiving the third's remote writes (a laptop that pushes through
//! Prometheus in agent mode) and evaluating the rules. Every panel's query,
//! run the way Grafana runs it, returns data of the panel's shape, from
//! every machine where the panel is per machine; every recording rule
//! produces series; the alerts this traffic should raise are raised; a
//! laptop whose agent stops is reported; every metric the dashboards and
//! rules name is exported and documented.
//!
//! The dashboards' static conventions and the panel shapes ([`SHAPES`])
//! are checked without root in `dashboard_conventions.rs`.

use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::{ChildStdin, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use agentmon_tests::{
    Agentmon, ChildGuard, Fleet, Internet, JOB, LOOKBACK_SECONDS, Metrics, Prometheus,
    RUNBOOK_BASE, SHAPES, Sample, TEST_PURPOSES, agent_copy, agentmon_metric_names, dashboards,
    dashboards_dir, default_records, label_values_query, panel_queries, require_root, run_bounded,
    shape, substitute,
};
use serde_json::Value;

const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(30);

/// Every built-in tool; each host's config disables all but its own.
const TOOLS: [&str; 16] = [
    "claude-code",
    "codex",
    "gemini-cli",
    "copilot",
    "cursor",
    "aider",
    "opencode",
    "goose",
    "amazon-q",
    "continue",
    "cline",
    "windsurf",
    "qwen-code",
    "crush",
    "amp",
    "auggie",
];

fn only(tool: &str) -> String {
    let others: Vec<String> = TOOLS
        .iter()
        .filter(|t| **t != tool)
        .map(|t| format!("{t:?}"))
        .collect();
    format!("[agents]\ndisable = [{}]\n", others.join(", "))
}

/// Host A watches claude-code; host B watches aider, with a geolocation
/// service in its catalog and a cap of three `dest` values; host C, the
/// laptop that pushes, watches codex, with a cap of two `dest` values.
fn start_fleet() -> Fleet {
    let mut records = default_records();
    records.push("whereami.geo.test=A:198.51.100.40".into());
    let purposes = TEST_PURPOSES;
    // Egress policies: each host's traffic breaks its own (telemetry on A,
    // anything but the model API on B, which is enforced against a network
    // it never reaches, elsewhere.test on C).
    let policy_a = "[[policy.tool]]\nname = \"*\"\ndeny = [ { host = \"telemetry.vendor.test\", name = \"no-telemetry\" } ]\n";
    let policy_b = "[[policy.tool]]\nname = \"*\"\ndefault = \"alert\"\nenforce = true\nallow = [ { host = \"api.model.test\" } ]\ndeny = [ { cidr = \"192.0.2.0/24\", name = \"test-net-1\" } ]\n";
    let policy_c = "[[policy.tool]]\nname = \"*\"\ndeny = [ { domain = \"elsewhere.test\", name = \"not-elsewhere\" } ]\n";
    let config_a = format!("{}{purposes}{policy_a}", only("claude-code"));
    let config_b = format!(
        "[dest]\nmax_per_tool = 3\n\n{}{purposes}\n[[dest.entry]]\nhost = \"whereami.geo.test\"\npurpose = \"geolocation\"\n{policy_b}",
        only("aider")
    );
    let rules: Vec<PathBuf> = ["lists.yml", "fleet.yml", "alerts.yml"]
        .iter()
        .map(|f| dashboards_dir().join("rules").join(f))
        .collect();
    let config_c = format!(
        "[dest]\nmax_per_tool = 2\n\n{}{purposes}{policy_c}",
        only("codex")
    );
    Fleet::start(&records, [&config_a, &config_b, &config_c], &rules)
}

/// Waits until `am` has TLS probes on OpenSSL and sees `tool` through them.
fn wait_attached(am: &Agentmon, tool: &str) {
    let attached = am.wait_for_value(
        "agentmon_uprobes_attached",
        &[("library", "openssl")],
        SETTLE,
        |v| v > 0.0,
    );
    assert!(attached.is_ok(), "no openssl probes:\n{}", am.log_text());
    let coverage = [
        ("tool", tool),
        ("library", "openssl"),
        ("mode", "plaintext"),
    ];
    let covered = am.wait_for_value("agentmon_tls_coverage", &coverage, SETTLE, |v| v == 1.0);
    assert!(
        covered.is_ok(),
        "{tool} not covered: {:?}",
        covered.err().map(|m| m.text().to_owned())
    );
}

/// curl as an agent (`cmd`: the copy, in a host's namespace), reading what
/// to do from stdin: it maps libssl at once and waits.
fn waiting_curl(mut cmd: Command) -> (ChildGuard, ChildStdin) {
    let mut child = cmd
        .arg("-K")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl");
    let stdin = child.stdin.take().expect("curl's stdin");
    (ChildGuard::from_child(child, "curl -K -"), stdin)
}

/// curl copied to `host_dir`/`exe` as agent `tool`, which `am` watches, on
/// a host (`cmd` runs a program in its namespace): a live one (kept, for its
/// TLS coverage), a model request over TLS, then, twice and two scrapes
/// apart so that the counters grow while scraped, a POST to each of `urls`
/// over plain HTTP. Returns what must stay alive.
fn curl_agent(
    host_dir: &Path,
    exe: &str,
    (tool, am): (&str, &Agentmon),
    cmd: impl Fn(&Path) -> Command,
    urls: &[&str],
) -> (ChildGuard, ChildStdin) {
    let curl = host_dir.join(exe);
    agent_copy(Path::new("/usr/bin/curl"), &curl);
    let body = host_dir.join("body");
    fs::write(&body, vec![b'q'; 20_000]).unwrap();
    let idle = waiting_curl(cmd(&curl));
    wait_attached(am, tool);
    model_request(cmd(&curl), &body, (tool, am));
    for _ in 0..2 {
        for url in urls {
            let mut post = cmd(&curl);
            post.args(["-4", "-s", "--data-binary"])
                .arg(format!("@{}", body.display()))
                .arg(url);
            let out = run_bounded(&mut post, RUN);
            assert!(out.status.success(), "{url}: {out:?}");
        }
        thread::sleep(Duration::from_secs(2));
    }
    idle
}

/// Host A: Claude Code, with telemetry over plain HTTP.
fn claude_on_host_a(f: &Fleet) -> (ChildGuard, ChildStdin) {
    curl_agent(
        &f.lab.dir().join("a"),
        ".local/share/claude/versions/9.9.9",
        ("claude-code", &f.a),
        |curl| f.lab.client_cmd(curl, [] as [&str; 0]),
        &["http://telemetry.vendor.test/v1/events"],
    )
}

/// Host C, the laptop that pushes: Codex, with plain HTTP to the model API,
/// to another country and to a third destination, which is past its cap.
fn codex_on_host_c(f: &Fleet) -> (ChildGuard, ChildStdin) {
    curl_agent(
        &f.lab.dir().join("c"),
        ".local/bin/codex",
        ("codex", &f.c),
        |curl| f.host_c.cmd(curl, [] as [&str; 0]),
        &[
            "http://api.model.test/v1/messages",
            "http://far.elsewhere.test/upload",
            "http://api.one.test/v1/messages",
        ],
    )
}

/// A model request over TLS from a waiting curl (`cmd`), with `body`, while
/// another copy of `tool` lives.
fn model_request(cmd: Command, body: &Path, (tool, am): (&str, &Agentmon)) {
    let (worker, mut stdin) = waiting_curl(cmd);
    // Its first byte only once the daemon tracks it: without this wait,
    // host C's TLS request was now and then never counted as a request.
    let tracked = am.wait_for_value("agentmon_agent_processes", &[("tool", tool)], SETTLE, |v| {
        v >= 2.0
    });
    assert!(
        tracked.is_ok(),
        "{tool}'s second process not tracked: {:?}",
        tracked.err().map(|m| m.text().to_owned())
    );
    let config = format!(
        "url = \"https://api.model.test/v1/messages\"\nipv4\ninsecure\nsilent\nheader = \"Expect:\"\ndata-binary = \"@{}\"\n",
        body.display()
    );
    stdin.write_all(config.as_bytes()).unwrap();
    drop(stdin);
    let out = worker.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
}

/// Host B: a live aider (kept), a model request over TLS, then plain HTTP to
/// another country, a geolocation service and a fourth destination, which
/// is past the cap. Returns what must stay alive.
fn aider_on_host_b(f: &Fleet) -> ChildGuard {
    let dir = f.lab.dir().join("b");
    let idle_script = dir.join("idle/bin/aider");
    fs::create_dir_all(idle_script.parent().unwrap()).unwrap();
    fs::write(&idle_script, "import ssl, time\ntime.sleep(600)\n").unwrap();
    let aider = dir.join("venv/bin/aider");
    fs::create_dir_all(aider.parent().unwrap()).unwrap();
    fs::copy(Internet::script("py_client.py"), &aider).unwrap();
    let idle = ChildGuard::spawn(&mut f.host_b.cmd("python3", [&idle_script]));
    wait_attached(&f.b, "aider");
    let go = dir.join("go");
    let mut cmd = f.host_b.cmd("python3", [&aider]);
    cmd.args(["--name", "api.model.test", "--tls", "--port", "443"])
        .args(["--path", "/v1/messages", "--body", "4321", "--wait-file"])
        .arg(&go);
    let run = ChildGuard::spawn(&mut cmd);
    thread::sleep(Duration::from_millis(500));
    fs::write(&go, b"").unwrap();
    let out = run.wait_output(RUN);
    assert!(out.status.success(), "{out:?}");
    for _ in 0..2 {
        for name in ["far.elsewhere.test", "whereami.geo.test", "api.one.test"] {
            let mut cmd = f.host_b.cmd("python3", [&aider]);
            cmd.args(["--name", name, "--port", "80", "--body", "1000"]);
            let out = run_bounded(&mut cmd, RUN);
            assert!(out.status.success(), "{name}: {out:?}");
        }
        thread::sleep(Duration::from_secs(2));
    }
    idle
}

/// Waits until `am` exports `name` with `labels` at a value of at least 1.
fn expect_some(am: &Agentmon, name: &str, labels: &[(&str, &str)]) -> Metrics {
    match am.wait_for_value(name, labels, SETTLE, |v| v >= 1.0) {
        Ok(_) => am.scrape(),
        Err(last) => panic!("{name}{labels:?} never reached 1:\n{}", last.text()),
    }
}

/// Metric families in a scrape: histogram series under their family name.
fn families(m: &Metrics) -> BTreeSet<String> {
    m.names()
        .into_iter()
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| name.strip_suffix(suffix))
                .find(|family| m.metric_type(family) == Some("histogram"))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

/// Sorted label names of every sample, without `__name__`.
fn shapes(samples: &[Sample]) -> BTreeSet<Vec<String>> {
    samples
        .iter()
        .map(|s| s.label_names().into_iter().map(str::to_owned).collect())
        .collect()
}

/// The `instance` values of `samples`.
fn instances(samples: &[Sample]) -> BTreeSet<&str> {
    samples
        .iter()
        .filter_map(|s| s.labels.get("instance").map(String::as_str))
        .collect()
}

/// Runs `expr` until it returns samples with exactly `labels`, and, if
/// those include `instance`, from each of `machines`; `Err` says what it
/// returned instead.
fn check_query(
    p: &Prometheus,
    expr: &str,
    labels: &[&str],
    machines: &[&str],
) -> Result<Vec<Sample>, String> {
    let want: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
    let per_machine = labels.contains(&"instance");
    p.wait_for(expr, SETTLE, |samples| {
        !samples.is_empty()
            && shapes(samples) == BTreeSet::from([want.clone()])
            && (!per_machine || machines.iter().all(|m| instances(samples).contains(m)))
    })
}

#[test]
fn every_panel_query_returns_data_from_three_hosts() {
    if !require_root() {
        return;
    }
    let mut f = start_fleet();
    let _claude = claude_on_host_a(&f);
    let _aider = aider_on_host_b(&f);
    let _codex = codex_on_host_c(&f);
    let (a, b, c) = (f.instance_a(), f.instance_b(), f.instance_c());
    let all = [a.as_str(), b.as_str(), c.as_str()];

    // What each daemon counted: each host only its own tool.
    let model = [
        ("dest", "api.model.test"),
        ("method", "POST"),
        ("purpose", "model-api"),
    ];
    let mut on_a = vec![("tool", "claude-code")];
    on_a.extend(model);
    expect_some(&f.a, "agentmon_http_requests_total", &on_a);
    expect_some(
        &f.a,
        "agentmon_http_request_bytes_count",
        &[("tool", "claude-code")],
    );
    let mut on_b = vec![("tool", "aider")];
    on_b.extend(model);
    expect_some(&f.b, "agentmon_http_requests_total", &on_b);
    expect_some(
        &f.b,
        "agentmon_http_request_bytes_count",
        &[("tool", "aider")],
    );
    let mut on_c = vec![("tool", "codex")];
    on_c.extend(model);
    expect_some(&f.c, "agentmon_http_requests_total", &on_c);
    let scrape_c = expect_some(
        &f.c,
        "agentmon_http_request_bytes_count",
        &[("tool", "codex")],
    );
    expect_some(&f.c, "agentmon_dest_overflow_total", &[("tool", "codex")]);
    let scrape_b = expect_some(&f.b, "agentmon_dest_overflow_total", &[("tool", "aider")]);
    let scrape_a = f.a.scrape();
    let tools = ["claude-code", "aider", "codex"];
    for (m, tool) in [
        (&scrape_a, "claude-code"),
        (&scrape_b, "aider"),
        (&scrape_c, "codex"),
    ] {
        for t in tools {
            assert_eq!(
                m.value("agentmon_egress_bytes_total", &[("tool", t)])
                    .is_some(),
                t == tool,
                "{tool}'s host and {t}"
            );
        }
    }

    // Host C's series arrive named after the laptop, `up` included, not
    // after the loopback address its agent scrapes.
    let p = &f.prometheus;
    let up = format!("up{{job=\"{JOB}\"}} == 1");
    p.wait_for(&up, SETTLE, |s| instances(s) == BTreeSet::from(all))
        .unwrap_or_else(|e| panic!("all three hosts up: {e}"));
    // The last scrape carries the traffic of every host.
    p.wait_for(
        "count by (instance) (agentmon_http_request_bytes_count)",
        SETTLE,
        |s| instances(s) == BTreeSet::from(all),
    )
    .unwrap_or_else(|e| {
        let debug = [
            "count by (instance) ({job=\"agentmon\"})",
            "time() - max by (instance) (timestamp(up))",
            "agentmon_http_request_bytes_count",
        ]
        .map(|q| format!("{q}: {:?}", p.query(q)));
        panic!(
            "every host's requests in Prometheus: {e}\n{}",
            debug.join("\n")
        )
    });

    let mut failures = Vec::new();
    // Template variables, then every panel query as Grafana would send it:
    // "All" is `.*`; the machine dashboard shows one machine at a time.
    let mut checked = 0;
    for (_, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap().to_owned();
        let chosen: Vec<&str> = if uid == "agentmon-machine" {
            all.to_vec()
        } else {
            vec![".*"]
        };
        for instance in chosen {
            let vars = [
                ("instance", instance),
                ("tool", ".*"),
                ("__range", "5m"),
                ("__range_s", "300"),
                ("__rate_interval", "1m"),
            ];
            for var in d["templating"]["list"].as_array().into_iter().flatten() {
                let Some(definition) = var["definition"].as_str() else {
                    continue;
                };
                let name = var["name"].as_str().unwrap();
                let expr = label_values_query(&substitute(definition, &vars)).unwrap();
                match check_query(p, &expr, &[name], &all) {
                    Ok(s) if s.len() >= all.len() || instance != ".*" => {}
                    Ok(s) => failures.push(format!("{uid} ${name}: {} values: {s:?}", s.len())),
                    Err(e) => failures.push(format!("{uid} ${name}: {e}")),
                }
            }
            for q in panel_queries(&d) {
                let expr = substitute(&q.expr, &vars);
                let labels = shape(&uid, &q.panel).unwrap_or_default();
                // The pushed host, at least, on every panel per machine.
                checked += 1;
                if let Err(e) = check_query(p, &expr, labels, &all) {
                    failures.push(format!(
                        "{uid} / {} ({}, instance {instance}): want {labels:?}: {e}",
                        q.panel, q.ref_id
                    ));
                }
            }
        }
    }
    assert!(checked >= SHAPES.len(), "{checked} queries run");

    // Every rule evaluates cleanly, and every recording rule has series.
    let rules = p.api("rules").expect("GET /api/v1/rules");
    let rules: Vec<Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(rules.len() >= 30, "{} rules loaded", rules.len());
    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        if rule["health"] != "ok" {
            failures.push(format!(
                "rule {name}: {} {}",
                rule["health"], rule["lastError"]
            ));
        }
        if rule["type"] == "recording"
            && let Err(e) = p.wait_for(name, SETTLE, |s| !s.is_empty())
        {
            failures.push(format!("recording rule {name} has no series: {e}"));
        }
    }

    // The alerts this traffic raises: telemetry from claude-code on A, which
    // lists.yml lists as telemetry-disabled; a geolocation lookup and a
    // country outside the allowlist (BR) on B, and that country on C. None
    // about agentmon itself.
    for (alert, instance, tool, dest) in [
        (
            "AgentTelemetryWhileDisabled",
            &a,
            "claude-code",
            "telemetry.vendor.test",
        ),
        ("AgentGeolocationLookup", &b, "aider", "whereami.geo.test"),
        (
            "AgentPolicyViolation",
            &a,
            "claude-code",
            "telemetry.vendor.test",
        ),
        (
            "AgentEgressToCountryNotAllowed",
            &b,
            "aider",
            "elsewhere.test",
        ),
        (
            "AgentEgressToCountryNotAllowed",
            &c,
            "codex",
            "elsewhere.test",
        ),
    ] {
        let expr = format!(
            "ALERTS{{alertname=\"{alert}\", instance=\"{instance}\", tool=\"{tool}\", dest=\"{dest}\"}}"
        );
        if let Err(e) = p.wait_for(&expr, SETTLE, |s| !s.is_empty()) {
            failures.push(format!("alert not raised: {e}"));
        }
    }
    match p.query("ALERTS{alertname=~\"Agentmon.*\"}") {
        Ok(s) if s.is_empty() => {}
        other => failures.push(format!("agentmon health alerts: {other:?}")),
    }
    // Runbook links start at the external label `agentmon_runbook_base`.
    let link = format!("{RUNBOOK_BASE}#agenttelemetrywhiledisabled");
    let alerts = p.api("alerts").expect("GET /api/v1/alerts");
    let links: Vec<&str> = alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["annotations"]["runbook_url"].as_str())
        .collect();
    if !links.contains(&link.as_str()) {
        failures.push(format!("no alert links to {link}: {links:?}"));
    }

    // Metric names: every one the dashboards and rules use is exported, and
    // every exported one is in the reference table of dashboards/README.md.
    let mut exported = families(&scrape_a);
    exported.extend(families(&f.b.scrape()));
    exported.extend(families(&f.c.scrape()));
    let mut used = BTreeSet::new();
    for (_, d) in dashboards() {
        used.extend(agentmon_metric_names(&d.to_string()));
    }
    for rule in &rules {
        used.extend(agentmon_metric_names(rule["query"].as_str().unwrap()));
    }
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|family| exported.contains(*family))
            .unwrap_or(name);
        if !exported.contains(family) {
            failures.push(format!("{name} is used but not exported"));
        }
    }
    let readme = fs::read_to_string(dashboards_dir().join("README.md")).unwrap();
    for family in &exported {
        if !readme.contains(&format!("| `{family}` |")) {
            failures.push(format!(
                "{family} is exported but not in dashboards/README.md"
            ));
        }
    }

    stopped_laptop_is_reported(&mut f, &rules, &mut failures);

    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Host C's agent-mode Prometheus stops, cleanly (SIGTERM), just after a
/// good scrape. It sends no staleness marker: the fleet keeps seeing its last
/// `up` (1), never an `up == 0`, until the lookback has passed; then
/// AgentmonStoppedReporting's query names host C, and only it, and the alert
/// is pending. A kill -9 (a laptop shut without warning) sends nothing either.
fn stopped_laptop_is_reported(f: &mut Fleet, rules: &[Value], failures: &mut Vec<String>) {
    let c = f.instance_c();
    let query = rules
        .iter()
        .find(|r| r["name"] == "AgentmonStoppedReporting")
        .and_then(|r| r["query"].as_str())
        .expect("AgentmonStoppedReporting is loaded")
        .to_owned();
    if let Err(e) = after_a_good_scrape(&f.agent_c) {
        failures.push(e);
    }
    let status = f.agent_c.stop();
    let stopped = Instant::now();
    if !status.success() {
        failures.push(format!("host C's agent exited with {status} on SIGTERM"));
    }
    let p = &f.prometheus;
    thread::sleep(Duration::from_secs(3));
    let up = format!("up{{job=\"{JOB}\", instance=\"{c}\"}}");
    match p.query(&up) {
        Ok(s) if s.len() == 1 && s[0].value == 1.0 => {}
        other => failures.push(format!("3 s after the stop, {up}: {other:?}")),
    }
    let lookback = Duration::from_secs(LOOKBACK_SECONDS);
    match p.wait_for(&query, lookback + SETTLE, |s| !s.is_empty()) {
        Ok(s) if instances(&s) == BTreeSet::from([c.as_str()]) => {
            let quiet = stopped.elapsed();
            eprintln!("host C stopped reporting {quiet:?} after its agent stopped");
        }
        other => failures.push(format!("after host C's agent stopped, {query}: {other:?}")),
    }
    let pending = format!(
        "ALERTS{{alertname=\"AgentmonStoppedReporting\", alertstate=\"pending\", instance=\"{c}\"}}"
    );
    if let Err(e) = p.wait_for(&pending, SETTLE, |s| s.len() == 1) {
        failures.push(format!(
            "AgentmonStoppedReporting not pending for host C: {e}"
        ));
    }
    match p.query(&format!("up{{job=\"{JOB}\"}} == 0")) {
        Ok(s) if s.is_empty() => {}
        other => failures.push(format!("an up == 0 arrived: {other:?}")),
    }
}

/// Returns just after `agent` finished a scrape that succeeded, so that its
/// next one (a second later) is not due before the stop. The test's 1 s
/// interval makes the scrape timeout 1 s too (the shipped file's 30 s
/// interval gives 10 s): on the 2 loaded CI cores a scrape of the laptop's
/// agentmon now and then timed out just before the stop, and its honest
/// `up == 0` was then the last sample, not something the stop sent. Such
/// failed scrapes are named on stderr.
fn after_a_good_scrape(agent: &Prometheus) -> Result<(), String> {
    let last = || -> Result<(String, String, String), String> {
        let data = agent.api("targets?state=active")?;
        let target = &data["activeTargets"][0];
        let field = |k: &str| target[k].as_str().unwrap_or_default().to_owned();
        Ok((field("lastScrape"), field("health"), field("lastError")))
    };
    let (first, _, _) = last()?;
    let deadline = Instant::now() + SETTLE;
    let mut seen = first;
    while Instant::now() < deadline {
        let (at, health, error) = last()?;
        if at != seen {
            if health == "up" {
                return Ok(());
            }
            eprintln!("host C's agent: the scrape at {at} failed: {error}");
            seen = at;
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "host C's agent scraped its agentmon without error in no second of {SETTLE:?}: {:?}",
        last()
    ))
}

//! `agentmon top` against the real daemon and kernel programs: `--once`
//! read by an unprivileged user of the socket's group, with every figure
//! equal to what the peers received and sent, a user outside the group
//! refused with the fix; and the live view in a real terminal (tmux):
//! rates and totals, sort, tool selection and filter, freeze, resize, quit.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use agentmon_tests::{
    REMOTE_TCP_V4, World, agentmon_bin, require_root, run_bounded, sum, wait_until, world,
};

const NETPEER: &str = env!("CARGO_BIN_EXE_netpeer");
const RUN: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(15);
/// What the world's servers answer every TCP connection with.
const REPLY: u64 = 321;
/// `nobody` and `nogroup` (Debian's ids).
const NOBODY: &str = "65534";

/// A folder under /run for the socket, which `nobody` can reach (the
/// lab's folder is root's alone); removed at the end.
struct RunDir(PathBuf);

impl RunDir {
    fn new(name: &str) -> Self {
        let dir = PathBuf::from(format!("/run/agentmon-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Self(dir)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("top.sock")
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The socket (for the group `nogroup`) and a policy that the telemetry
/// host violates; its log in a folder of its own (agentmon makes it 0750).
fn top_config(run: &RunDir) -> String {
    format!(
        r#"
[top]
socket = "{socket}"
group = "nogroup"

[policy]
violations_log = "{dir}/log/violations.jsonl"
[[policy.tool]]
name = "claude-code"
deny = [ {{ host = "telemetry.vendor.test", name = "no-telemetry" }} ]
"#,
        socket = run.socket().display(),
        dir = run.0.display()
    )
}

/// The agent's traffic: `conns` connections sending 5,000 bytes each to
/// an address no name is known for, and one HTTPS request to the
/// telemetry host (named by its SNI: `--resolve`, no DNS query).
fn claude_traffic(w: &World, agent: &Path, conns: usize) {
    for _ in 0..conns {
        let args = [
            "tcp",
            "--to",
            &REMOTE_TCP_V4.to_string(),
            "--send",
            "5000",
            "--expect",
            &REPLY.to_string(),
        ];
        let out = run_bounded(&mut w.lab.client_cmd(agent, args), RUN);
        assert!(out.status.success(), "{out:?}");
    }
}

fn telemetry(w: &World, agent: &Path) {
    w.agent_shell(
        agent,
        "curl -4 -sk -o /dev/null --resolve telemetry.vendor.test:443:203.0.113.30 https://telemetry.vendor.test/v1/x",
    );
}

fn top_once(gid: &str, socket: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={gid}"),
        "--clear-groups",
    ])
    .arg(agentmon_bin())
    .args(["top", "--once", "--interval", "0.2", "--socket"])
    .arg(socket)
    .args(extra);
    run_bounded(&mut cmd, RUN)
}

/// The words of the `--once` line of destination `dest`.
fn dest_words(out: &str, dest: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == dest) && !l.starts_with("TOOL"))
        .unwrap_or_else(|| panic!("no line for {dest}:\n{out}"));
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn once_shows_exact_figures_to_the_sockets_group_and_refuses_others_with_the_fix() {
    if !require_root() {
        return;
    }
    let run = RunDir::new("once");
    let w = world(NETPEER, &top_config(&run));
    let agent = w.as_claude(Path::new(NETPEER));
    claude_traffic(&w, &agent, 2);
    telemetry(&w, &agent);
    let tele = w.server_conns("203.0.113.30:443", 1);
    let (tele_in, tele_out) = sum(&tele);
    let ip = [("tool", "claude-code"), ("dest", "ip")];
    w.expect("agentmon_egress_bytes_total", &ip, 10_000.0);
    let tl = [("tool", "claude-code"), ("dest", "telemetry.vendor.test")];
    w.expect("agentmon_egress_bytes_total", &tl, tele_in);
    w.expect("agentmon_policy_violations_total", &tl, 1.0);

    // A member of the socket's group, no root and no capabilities.
    let out = top_once(NOBODY, &run.socket(), &[]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colour off a terminal:\n{text}");
    assert!(text.contains("rates over 0."), "{text}");

    // The destination no name is known for: what the server read and
    // wrote, over two connections.
    let d = dest_words(&text, "ip");
    let n = d.len();
    assert_eq!(d[0], "ip", "no flag: {d:?}");
    assert_eq!(&d[1..4], ["US", "AS64500", "other"], "{d:?}");
    assert_eq!(&d[n - 4..n - 1], ["10000", "642", "2"], "{text}");
    // The telemetry host: flagged as a violation and as telemetry.
    let t = dest_words(&text, "telemetry.vendor.test");
    let n = t.len();
    assert_eq!(t[0], "!T", "{text}");
    assert_eq!(
        &t[n - 4..n - 1],
        [
            (tele_in as u64).to_string(),
            (tele_out as u64).to_string(),
            "1".to_owned()
        ],
        "{text}"
    );
    // The tool's line: its totals, connections and violations.
    let tool = text
        .lines()
        .find(|l| l.starts_with("claude-code "))
        .unwrap_or_else(|| panic!("{text}"));
    let words: Vec<&str> = tool.split_whitespace().collect();
    let sent = (10_000 + tele_in as u64).to_string();
    let received = (642 + tele_out as u64).to_string();
    assert_eq!(
        &words[6..10],
        [sent.as_str(), received.as_str(), "3", "1"],
        "{tool}"
    );
    assert!(text.contains("claude-code: 2 destinations"), "{text}");

    // JSON: the same figures as the exporter, series by series.
    let out = top_once(NOBODY, &run.socket(), &["--json"]);
    assert!(out.status.success(), "{out:?}");
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = w.am.scrape();
    for row in snap["dests"].as_array().unwrap() {
        let labels = [
            ("tool", row["tool"].as_str().unwrap()),
            ("dest", row["dest"].as_str().unwrap()),
        ];
        let metric = |name| m.value(name, &labels).unwrap_or(0.0) as u64;
        assert_eq!(
            row["egress_bytes"],
            metric("agentmon_egress_bytes_total"),
            "{row}"
        );
        assert_eq!(
            row["ingress_bytes"],
            metric("agentmon_ingress_bytes_total"),
            "{row}"
        );
        assert_eq!(
            row["connections"],
            metric("agentmon_connections_total"),
            "{row}"
        );
    }

    standalone_sees_what_starts_after_it(&w, &agent);

    // Outside the group: refused, with what to do.
    let out = top_once("1", &run.socket(), &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("permission denied; join the socket's group"),
        "{err}"
    );
}

/// A tmux server of the test's own (`-L`), killed at the end.
struct Tmux(String);

impl Tmux {
    fn start(cols: u16, rows: u16, command: &str) -> Self {
        let t = Self(format!("agentmon-test-{}", std::process::id()));
        let out = t.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            command,
        ]);
        assert!(out.status.success(), "tmux: {out:?}");
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        run_bounded(Command::new("tmux").args(["-L", &self.0]).args(args), RUN)
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            let out = self.run(&["send-keys", "-t", "top", key]);
            assert!(out.status.success(), "{out:?}");
        }
    }

    fn screen(&self) -> String {
        String::from_utf8(self.run(&["capture-pane", "-p", "-t", "top"]).stdout).unwrap()
    }

    /// Waits until the screen satisfies `ok`; panics with the screen.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let seen = wait_until(SETTLE, || {
            last = self.screen();
            ok(&last)
        });
        assert!(seen, "screen never showed {what}:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The row of the screen that names `word` as a whole word.
/// Names too long for their column keep their end: `…etry.vendor.test`.
fn row_of(screen: &str, word: &str) -> Option<usize> {
    screen.lines().position(|l| {
        l.split_whitespace()
            .any(|w| w == word || w.strip_prefix('…').is_some_and(|end| word.ends_with(end)))
    })
}

fn line_of<'a>(screen: &'a str, word: &str) -> &'a str {
    let row = row_of(screen, word).unwrap_or_else(|| panic!("no {word}:\n{screen}"));
    screen.lines().nth(row).unwrap()
}

const HELP: &str = "q quit  ↑↓ tool  s sort  r rates/totals  / filter  f freeze  ? help";

#[test]
fn the_live_view_sorts_filters_selects_freezes_and_redraws_on_resize_in_a_real_terminal() {
    if !require_root() {
        return;
    }
    let run = RunDir::new("tui");
    let w = world(NETPEER, &top_config(&run));
    let agent = w.as_claude(Path::new(NETPEER));
    claude_traffic(&w, &agent, 2);
    telemetry(&w, &agent);
    // A second tool, with less traffic than claude-code.
    w.aider_tls(100, &[]);
    w.expect(
        "agentmon_egress_bytes_total",
        &[("tool", "claude-code"), ("dest", "ip")],
        10_000.0,
    );

    let command = format!(
        "{} top --interval 0.3 --socket {}",
        agentmon_bin().display(),
        run.socket().display()
    );
    let t = Tmux::start(80, 24, &command);
    // Rates first; with no traffic now every tool ties, so names order
    // them and the first (aider) is selected.
    let s = t.wait("both tools and the help line", |s| {
        row_of(s, "aider").is_some() && row_of(s, "claude-code").is_some()
    });
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 24, "{s}");
    assert!(lines[0].contains("rates  sort: sent"), "{s}");
    assert_eq!(lines[23], HELP, "{s}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{s}");
    assert!(s.contains("aider: "), "aider's destinations below:\n{s}");

    // Totals: tools by bytes sent, claude-code first; up selects it.
    t.keys(&["r"]);
    t.wait("totals", |s| {
        s.lines().next().unwrap_or("").contains("totals")
    });
    t.keys(&["Up"]);
    let s = t.wait("claude-code's destinations", |s| {
        s.contains("claude-code: 2 destinations")
    });
    // The screen, for the test's output (`--nocapture`).
    println!("agentmon top at 80x24, totals:\n{s}");
    assert!(
        row_of(&s, "claude-code") < row_of(&s, "aider"),
        "claude-code sent more:\n{s}"
    );
    // 10,000 bytes to the unnamed address; the telemetry host flagged.
    let ip = line_of(&s, "ip");
    assert!(ip.contains("9.8 KiB") && ip.contains("642 B"), "{s}");
    let tele = line_of(&s, "telemetry.vendor.test");
    assert!(tele.trim_start().starts_with("!T"), "{s}");
    assert!(
        row_of(&s, "ip") < row_of(&s, "telemetry.vendor.test"),
        "by sent:\n{s}"
    );

    // Sort by received: the telemetry host answered more than 642 bytes.
    t.keys(&["s"]);
    let s = t.wait("sort by received", |s| s.contains("sort: received"));
    assert!(
        row_of(&s, "telemetry.vendor.test") < row_of(&s, "ip"),
        "{s}"
    );

    // Filter tools: only aider, and its destinations.
    t.keys(&["/", "a", "i", "d", "Enter"]);
    let s = t.wait("the filter", |s| s.contains("Tools matching \"aid\""));
    assert_eq!(row_of(&s, "claude-code"), None, "{s}");
    assert!(s.contains("aider: "), "{s}");
    t.keys(&["/", "x", "Enter"]);
    t.wait("no match", |s| s.contains("no tool matches \"aidx\""));
    t.keys(&["/", "Escape"]);
    t.wait("the filter cleared", |s| row_of(s, "claude-code").is_some());

    // Freeze: new traffic does not show until unfrozen.
    t.keys(&["Up", "f"]);
    t.wait("frozen", |s| s.contains("FROZEN"));
    claude_traffic(&w, &agent, 1);
    w.expect(
        "agentmon_egress_bytes_total",
        &[("tool", "claude-code"), ("dest", "ip")],
        15_000.0,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let s = t.screen();
    let ip = line_of(&s, "ip");
    assert!(ip.contains("9.8 KiB"), "frozen:\n{s}");
    t.keys(&["f"]);
    t.wait("the new total", |s| {
        !s.contains("FROZEN")
            && s.lines()
                .any(|l| l.starts_with("   ip") && l.contains("14.6 KiB"))
    });

    // Resize: redrawn to the new size, the help line at the bottom.
    let out = t.run(&["resize-window", "-t", "top", "-x", "120", "-y", "40"]);
    assert!(out.status.success(), "{out:?}");
    let s = t.wait("120x40", |s| {
        s.lines().count() == 40 && s.lines().last() == Some(HELP)
    });
    assert!(s.lines().any(|l| l.chars().count() > 100), "{s}");
    let out = t.run(&["resize-window", "-t", "top", "-x", "60", "-y", "12"]);
    assert!(out.status.success(), "{out:?}");
    t.wait("60x12", |s| {
        s.lines().count() == 12 && s.lines().last().is_some_and(|l| l.starts_with("q quit"))
    });

    // q quits: the session ends with its only command.
    t.keys(&["q"]);
    assert!(
        wait_until(SETTLE, || !t
            .run(&["has-session", "-t", "top"])
            .status
            .success()),
        "{}",
        t.screen()
    );
}

/// `top --standalone --once` loads the programs itself (root here): a
/// connection made after they are attached is in its snapshot, exactly.
fn standalone_sees_what_starts_after_it(w: &World, agent: &Path) {
    let err = w.lab.dir().join("standalone.err");
    let mut cmd = Command::new(agentmon_bin());
    cmd.args([
        "top",
        "--standalone",
        "--once",
        "--interval",
        "5",
        "--tool",
        "claude",
    ])
    .env("AGENTMON_LOG", "info")
    .stdout(std::process::Stdio::piped())
    .stderr(fs::File::create(&err).unwrap());
    let child = cmd.spawn().unwrap();
    let attached = wait_until(SETTLE, || {
        fs::read_to_string(&err).is_ok_and(|t| t.contains("reading kernel events"))
    });
    assert!(attached, "{}", fs::read_to_string(&err).unwrap_or_default());
    claude_traffic(w, agent, 1);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        fs::read_to_string(&err).unwrap_or_default()
    );
    let d = dest_words(&text, "ip");
    let n = d.len();
    assert_eq!(&d[n - 4..n - 1], ["5000", "321", "1"], "{text}");
}

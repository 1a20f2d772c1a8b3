//! Precedence, checks at load, the sandbox import, learn and check.

use std::{io::Cursor, path::Path};

use super::{Action, Policy, learn, rule::Target, sandbox};
use crate::config::parse;

const TOOLS: &str = "/etc/agentmon.toml";

fn policy(text: &str) -> Policy {
    parse(text, Path::new(TOOLS)).unwrap().policy
}

fn err(text: &str) -> String {
    parse(text, Path::new(TOOLS)).unwrap_err().to_string()
}

fn to(host: Option<&'static str>, ip: &str, port: u16) -> Target<'static> {
    Target {
        host,
        ip: Some(ip.parse().unwrap()),
        port: Some(port),
        country: Some("US"),
        asn: Some(64500),
        purpose: Some("model-api"),
    }
}

fn verdict(p: &Policy, tool: &str, t: &Target<'_>) -> (Action, String) {
    let v = p.judge(tool, t).expect("judged");
    (v.action, v.rule)
}

const PRECEDENCE: &str = r#"
[[policy.tool]]
name = "*"
deny = [ { country = "KP" }, { cidr = "192.0.2.0/24", port = 25 } ]

[[policy.tool]]
name = "claude-code"
default = "alert"
allow = [
  { domain = "anthropic.com" },
  { host = "api.anthropic.com", port = 443, name = "model" },
  { host = "*.anthropic.com" },
  { cidr = "198.51.100.0/24" },
  { cidr = "198.51.100.128/25", name = "narrow" },
  { purpose = "package-registry" },
]
deny = [ { host = "statsig.anthropic.com" } ]

[[policy.tool]]
name = "codex"
default = "deny"
allow = [ { host = "api.openai.com" } ]
"#;

#[test]
fn the_most_specific_allow_names_the_verdict() {
    let p = policy(PRECEDENCE);
    // Exact host and port over `*.anthropic.com` over the domain.
    assert_eq!(
        verdict(
            &p,
            "claude-code",
            &to(Some("api.anthropic.com"), "203.0.113.1", 443)
        ),
        (Action::Allow, "model".into())
    );
    // Same host, another port: the wildcard is the most specific that matches.
    assert_eq!(
        verdict(
            &p,
            "claude-code",
            &to(Some("api.anthropic.com"), "203.0.113.1", 8443)
        ),
        (Action::Allow, "claude-code:allow:3".into())
    );
    // The apex: only the domain rule (a wildcard does not cover it).
    assert_eq!(
        verdict(
            &p,
            "claude-code",
            &to(Some("anthropic.com"), "203.0.113.1", 443)
        ),
        (Action::Allow, "claude-code:allow:1".into())
    );
    // The longer prefix wins.
    assert_eq!(
        verdict(&p, "claude-code", &to(None, "198.51.100.200", 443)),
        (Action::Allow, "narrow".into())
    );
    assert_eq!(
        verdict(&p, "claude-code", &to(None, "198.51.100.7", 443)),
        (Action::Allow, "claude-code:allow:4".into())
    );
}

#[test]
fn deny_beats_any_allow_and_the_default_takes_the_rest() {
    let p = policy(PRECEDENCE);
    // An exact deny over the wildcard and domain allows.
    assert_eq!(
        verdict(
            &p,
            "claude-code",
            &to(Some("statsig.anthropic.com"), "203.0.113.1", 443)
        ),
        (Action::Deny, "claude-code:deny:1".into())
    );
    // A `*` deny (a country) beats the tool's exact allow.
    let mut t = to(Some("api.anthropic.com"), "203.0.113.1", 443);
    t.country = Some("KP");
    assert_eq!(
        verdict(&p, "claude-code", &t),
        (Action::Deny, "*:deny:1".into())
    );
    // Port-specific deny: only on port 25.
    assert_eq!(
        verdict(&p, "codex", &to(None, "192.0.2.9", 25)),
        (Action::Deny, "*:deny:2".into())
    );
    assert_eq!(
        verdict(&p, "codex", &to(None, "192.0.2.9", 443)),
        (Action::Deny, "codex:default".into())
    );
    // No rule allows: the tool's default.
    assert_eq!(
        verdict(
            &p,
            "claude-code",
            &to(Some("example.org"), "203.0.113.1", 443)
        ),
        (Action::Alert, "claude-code:default".into())
    );
    assert_eq!(
        verdict(&p, "codex", &to(Some("api.openai.com"), "203.0.113.1", 443)).0,
        Action::Allow
    );
    // A tool without its own entry gets the `*` rules, and `allow` by default.
    assert_eq!(
        verdict(
            &p,
            "gemini-cli",
            &to(Some("example.org"), "203.0.113.1", 443)
        ),
        (Action::Allow, "*:default".into())
    );
    // A purpose rule.
    let mut t = to(Some("registry.npmjs.org"), "203.0.113.1", 443);
    t.purpose = Some("package-registry");
    assert_eq!(
        verdict(&p, "claude-code", &t),
        (Action::Allow, "claude-code:allow:6".into())
    );
}

#[test]
fn no_policy_judges_nothing_and_enforcement_is_off_by_default() {
    let p = policy("");
    assert!(
        p.judge("claude-code", &to(None, "203.0.113.1", 443))
            .is_none()
    );
    let p = policy(PRECEDENCE);
    assert!(!p.enforced("claude-code"));
    assert!(!p.enforces_any());
    let p = policy(
        "[[policy.tool]]\nname = \"*\"\nenforce = true\n[[policy.tool]]\nname = \"codex\"\nenforce = false\n",
    );
    assert!(p.enforced("claude-code"));
    assert!(!p.enforced("codex"));
}

#[test]
fn bad_rules_point_at_the_value() {
    assert_eq!(
        err("[[policy.tool]]\nname = \"claude\"\n"),
        "/etc/agentmon.toml:2:8: [[policy.tool]]: unknown tool \"claude\": use a tool of the catalog (`agentmon doctor` lists them) or \"*\" for every tool"
    );
    assert_eq!(
        err("[[policy.tool]]\nname = \"codex\"\ndefault = \"block\"\n"),
        "/etc/agentmon.toml:3:11: [[policy.tool]] \"codex\": unknown default \"block\" (use allow, alert or deny)"
    );
    assert_eq!(
        err(
            "[[policy.tool]]\nname = \"codex\"\nallow = [ { host = \"api.openai.com\" },\n  { cidr = \"10.0.0.1/8\" } ]\n"
        ),
        "/etc/agentmon.toml:4:12: [[policy.tool]] \"codex\" allow rule 2: cidr \"10.0.0.1/8\" has host bits set: write 10.0.0.0/8"
    );
    assert!(err("[[policy.tool]]\nname = \"codex\"\ndeny = [ { country = \"Germany\" } ]\n")
        .starts_with("/etc/agentmon.toml:3:22: [[policy.tool]] \"codex\" deny rule 1: invalid country \"Germany\""));
    assert!(
        err("[[policy.tool]]\nname = \"codex\"\ndeny = [ { hots = \"x.test\" } ]\n")
            .starts_with("/etc/agentmon.toml:3:12: unknown field `hots`")
    );
    assert!(
        err("[[policy.tool]]\nname = \"codex\"\ndeny = [ { } ]\n")
            .contains("a rule needs at least one of")
    );
    assert!(
        err("[[policy.tool]]\nname = \"codex\"\ndeny = [ { host = \"bad host\" } ]\n")
            .contains("invalid host \"bad host\"")
    );
    assert!(
        err("[[policy.tool]]\nname = \"codex\"\ndeny = [ { asn = \"64500\" } ]\n")
            .contains("invalid asn")
    );
    assert!(
        err("[[policy.tool]]\nname = \"codex\"\n[[policy.tool]]\nname = \"codex\"\n")
            .contains("has two entries")
    );
    let e =
        err("[[policy.tool]]\nname = \"codex\"\ndeny = [ { from = \"claude-code-sandbox\" } ]\n");
    assert!(e.contains("put it under `allow`"), "{e}");
    for e in [
        err("[[policy.tool]]\nname = \"x y\"\n"),
        err("[policy]\nviolations_log = 3\n"),
    ] {
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}

#[test]
fn asn_is_a_number_or_as_text() {
    let p = policy(
        "[[policy.tool]]\nname = \"codex\"\ndeny = [ { asn = 64500 }, { asn = \"AS64501\" } ]\n",
    );
    let mut t = to(None, "203.0.113.1", 443);
    assert_eq!(verdict(&p, "codex", &t).0, Action::Deny);
    t.asn = Some(64501);
    assert_eq!(
        verdict(&p, "codex", &t),
        (Action::Deny, "codex:deny:2".into())
    );
    t.asn = Some(1);
    assert_eq!(verdict(&p, "codex", &t).0, Action::Allow);
}

#[test]
fn claude_code_sandbox_allowlists_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r#"{"sandbox": {"enabled": true, "network": {"allowedDomains": ["api.github.com", "*.npmjs.org", "bad host"]}},
            "permissions": {"allow": ["Bash(ls)", "WebFetch(domain:docs.rs)"]}}"#,
    )
    .unwrap();
    let text = format!(
        "[[policy.tool]]\nname = \"claude-code\"\ndefault = \"alert\"\nallow = [ {{ from = \"claude-code-sandbox\", path = {:?} }} ]\n",
        settings.display().to_string()
    );
    let p = policy(&text);
    for (host, action) in [
        ("api.github.com", Action::Allow),
        ("registry.npmjs.org", Action::Allow),
        ("docs.rs", Action::Allow),
        ("npmjs.org", Action::Alert),
        ("example.com", Action::Alert),
    ] {
        assert_eq!(
            verdict(&p, "claude-code", &to(Some(host), "203.0.113.1", 443)).0,
            action,
            "{host}"
        );
    }
    assert_eq!(
        verdict(&p, "claude-code", &to(Some("docs.rs"), "203.0.113.1", 443)).1,
        "claude-code:allow:1"
    );
    // A settings file that is not there is an error at the path.
    let e = err(
        "[[policy.tool]]\nname = \"claude-code\"\nallow = [ { from = \"claude-code-sandbox\", path = \"/nonexistent/settings.json\" } ]\n",
    );
    assert!(e.starts_with("/etc/agentmon.toml:3:50: [[policy.tool]] \"claude-code\" allow rule 1: cannot read Claude Code settings /nonexistent/settings.json"), "{e}");
    let e =
        err("[[policy.tool]]\nname = \"claude-code\"\nallow = [ { from = \"codex-sandbox\" } ]\n");
    assert!(e.contains("unknown allowlist \"codex-sandbox\""), "{e}");
}

#[test]
fn claude_hosts_reads_both_places_once() {
    let v: serde_json::Value = serde_json::from_str(
        r#"{"sandbox": {"network": {"allowedDomains": ["A.example.com"]}}, "permissions": {"allow": ["WebFetch(domain:a.example.com)", "WebFetch(domain:b.example.com)"]}}"#,
    )
    .unwrap();
    assert_eq!(
        sandbox::claude_hosts(&v),
        (
            vec!["a.example.com".to_owned(), "b.example.com".to_owned()],
            false
        )
    );
}

const FIXTURE: &str = include_str!("../testdata/connections.jsonl");

#[test]
fn a_learned_policy_passes_its_own_log_and_flags_anything_new() {
    let (seen, note) = learn::read(Cursor::new(FIXTURE), "connections.jsonl", None);
    assert_eq!(
        note.as_deref(),
        Some(
            "1 line(s) are not connection-log records and were skipped (first: connections.jsonl:5: expected ident at line 1 column 2); give the file `[log] connections` names"
        )
    );
    // Interim and close records of one connection count once.
    assert_eq!(seen.len(), 4);
    let text = learn::learn(&seen, "connections.jsonl");
    insta_like(&text);
    let learned = policy(&text);
    assert_eq!(learn::check(&learned, &seen), Vec::<String>::new());
    // A connection elsewhere is reported.
    let mut other = seen[0].clone();
    other.host = Some("exfil.example.net".into());
    other.id = "tcp:99".into();
    assert_eq!(
        learn::check(&learned, &[other]),
        [
            "alert: tool=claude-code dest=exfil.example.net rule=claude-code:default connections=1 addresses=203.0.113.10:443/tcp"
        ]
    );
}

/// The learned file, as a reviewer reads it.
fn insta_like(text: &str) {
    assert_eq!(
        text,
        r#"# Learned by `agentmon policy learn` from connections.jsonl (4 connections).
# What each tool reached is allowed; anything else raises an alert.
# Review it, then put the [policy] tables into the config file.
[policy]

[[policy.tool]]
name = "claude-code"
default = "alert"
allow = [
  { host = "api.anthropic.com" },  # 2 connection(s), 5120 bytes sent
]

[[policy.tool]]
name = "codex"
default = "alert"
allow = [
  { cidr = "198.51.100.7/32" },  # 1 connection(s), 64 bytes sent
  { host = "api.openai.com" },  # 1 connection(s), 900 bytes sent
]
"#
    );
}

#[test]
fn since_keeps_recent_connections() {
    let since = humantime::parse_rfc3339("2026-11-30T12:00:00Z").unwrap();
    let (seen, _) = learn::read(Cursor::new(FIXTURE), "c", Some(since));
    assert_eq!(
        seen.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["tcp:3"]
    );
}

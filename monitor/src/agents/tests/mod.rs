use std::path::PathBuf;

use super::*;
use crate::origin::unplaced;

mod builtin;
mod elf_note;

const NODE: &str = "/usr/bin/node";

fn proc(exe: &str, argv: &[&str]) -> ProcInfo {
    ProcInfo {
        pid: 100,
        ppid: 1,
        exe: Some(PathBuf::from(exe)),
        exe_ino: None,
        exe_file: None,
        argv: argv.iter().map(|s| (*s).to_owned()).collect(),
        comm: argv
            .first()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or("")
            .chars()
            .take(15)
            .collect(),
        env: Vec::new(),
        uid: None,
    }
}

fn label(catalog: &Catalog, p: &ProcInfo) -> Option<(String, Strength)> {
    catalog
        .match_process(p)
        .map(|m| (catalog.name(m.tool).to_owned(), m.strength))
}

#[track_caller]
fn assert_strong(exe: &str, argv: &[&str], want: &str) {
    let catalog = Catalog::builtin();
    assert_eq!(
        label(&catalog, &proc(exe, argv)),
        Some((want.to_owned(), Strength::Strong)),
        "exe {exe} argv {argv:?}"
    );
}

#[track_caller]
fn assert_none(exe: &str, argv: &[&str]) {
    let catalog = Catalog::builtin();
    assert_eq!(
        label(&catalog, &proc(exe, argv)),
        None,
        "exe {exe} argv {argv:?}"
    );
}

#[test]
fn env_markers_are_weak_and_lose_to_strong_rules() {
    let catalog = Catalog::builtin();
    let mut shell = proc("/usr/bin/bash", &["bash"]);
    shell.env = vec![("CLAUDECODE".to_owned(), "1".to_owned())];
    assert_eq!(
        label(&catalog, &shell),
        Some(("claude-code".to_owned(), Strength::Weak))
    );

    // Gemini started from a Claude Code shell carries CLAUDECODE=1, but its
    // own exe and argv say what it is.
    let mut gemini = proc(
        NODE,
        &[
            "node",
            "/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js",
        ],
    );
    gemini.env = shell.env.clone();
    assert_eq!(
        label(&catalog, &gemini),
        Some(("gemini-cli".to_owned(), Strength::Strong))
    );

    shell.env = vec![("CLAUDECODE".to_owned(), "0".to_owned())];
    assert_eq!(label(&catalog, &shell), None);

    // Without a readable exe a comm marker still corroborates.
    let codex = ProcInfo {
        comm: "codex-x86_64-un".to_owned(),
        ..ProcInfo::default()
    };
    assert_eq!(
        label(&catalog, &codex),
        Some(("codex".to_owned(), Strength::Weak))
    );
}

fn rule(f: impl FnOnce(&mut RuleSpec)) -> RuleSpec {
    let mut spec = RuleSpec::default();
    f(&mut spec);
    spec
}

fn tool(name: &str, rules: Vec<RuleSpec>) -> ToolSpec {
    ToolSpec {
        name: unplaced(name.to_owned()),
        rules: rules.into_iter().map(unplaced).collect(),
    }
}

fn text(s: &str) -> Option<Spanned<String>> {
    Some(unplaced(s.to_owned()))
}

#[test]
fn extra_tools_extend_and_disable_removes() {
    let extra = [
        tool("my-agent", vec![rule(|r| r.exe = text("**/bin/my-agent"))]),
        tool(
            "claude-code",
            vec![rule(|r| r.argv = text("my-claude-fork.js"))],
        ),
    ];
    let catalog = Catalog::new(BUILTIN_CATALOG, &extra, &[unplaced("cursor".to_owned())]).unwrap();
    assert_eq!(catalog.len(), 16);
    assert!(catalog.names().all(|n| n != "cursor"));
    assert_eq!(catalog.names().last(), Some("my-agent"));
    assert_eq!(
        label(&catalog, &proc("/opt/bin/my-agent", &["my-agent"])),
        Some(("my-agent".to_owned(), Strength::Strong))
    );
    assert_eq!(
        label(&catalog, &proc(NODE, &["node", "/x/my-claude-fork.js"])),
        Some(("claude-code".to_owned(), Strength::Strong))
    );
    assert_eq!(
        label(&catalog, &proc("/opt/Cursor/cursor", &["cursor"])),
        None
    );
}

#[test]
fn all_conditions_of_a_rule_must_hold() {
    let extra = [tool(
        "both",
        vec![rule(|r| {
            r.argv0 = text("**/runner");
            r.comm = text("runner");
            r.env = text("MARK");
        })],
    )];
    let catalog = Catalog::new("", &extra, &[]).unwrap();
    assert_eq!(catalog.env_names(), ["MARK"]);
    let mut p = proc("/opt/runner", &["/opt/runner"]);
    assert_eq!(catalog.match_process(&p), None);
    p.env = vec![("MARK".to_owned(), String::new())];
    assert_eq!(
        catalog.match_process(&p),
        Some(Match {
            tool: 0,
            strength: Strength::Strong
        })
    );
    p.comm = "other".to_owned();
    assert_eq!(catalog.match_process(&p), None);
}

#[test]
fn bad_specs_are_errors() {
    let err = |extra: &[ToolSpec], disable: &[&str]| {
        let disable: Vec<_> = disable.iter().map(|s| unplaced((*s).to_owned())).collect();
        Catalog::new(BUILTIN_CATALOG, extra, &disable)
            .unwrap_err()
            .to_string()
    };
    let exe = |g: &str| vec![rule(|r| r.exe = text(g))];

    for bad in ["", "My-Agent", "-x", "a b", "agent\u{e9}", &"a".repeat(64)] {
        assert!(
            err(&[tool(bad, exe("**/x"))], &[]).contains("invalid tool name"),
            "{bad:?}"
        );
    }
    assert!(Catalog::new("", &[tool(&"a".repeat(63), exe("**/x"))], &[]).is_ok());
    assert_eq!(
        err(&[tool("x", vec![RuleSpec::default()])], &[]),
        "tool `x` rule 1: a rule needs at least one of exe, argv, arg, argv0, comm, env"
    );
    assert_eq!(err(&[tool("x", vec![])], &[]), "tool `x` has no rules");
    assert!(
        err(&[tool("x", exe("**/{a,b"))], &[]).starts_with("tool `x` rule 1: invalid exe glob")
    );
    let comm = vec![rule(|r| r.comm = text("a-very-long-command"))];
    assert!(err(&[tool("x", comm)], &[]).contains("invalid comm"));
    let env = vec![rule(|r| r.env = text("=1"))];
    assert!(err(&[tool("x", env)], &[]).contains("invalid env"));
    let argv = vec![rule(|r| r.argv = text(""))];
    assert!(err(&[tool("x", argv)], &[]).contains("invalid argv"));
    assert_eq!(
        err(&[], &["cursr"]),
        "cannot disable unknown tool \"cursr\""
    );
    assert!(
        Catalog::new("[[tool]]\nname = \"x\"\n", &[], &[])
            .unwrap_err()
            .to_string()
            .starts_with("built-in catalog is not valid: missing field `rules`")
    );
    match Catalog::new(BUILTIN_CATALOG, &[tool("y", exe("["))], &[]) {
        Err(CatalogError::BadGlob {
            origin: Origin::Config(0),
            rule: 0,
            field: "exe",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

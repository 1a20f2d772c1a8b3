//! The built-in catalog against real-world process shapes.

use super::*;

#[test]
fn builtin_has_the_expected_tools_in_order() {
    let catalog = Catalog::builtin();
    let names: Vec<&str> = catalog.names().collect();
    assert_eq!(
        names,
        [
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
            "auggie"
        ]
    );
    assert_eq!(catalog.len(), 16);
    assert!(!catalog.is_empty());
    assert!(names.iter().all(|n| valid_tool_name(n)));
    assert_eq!(
        catalog.env_names(),
        [
            "CLAUDECODE",
            "CODEX_MANAGED_BY_NPM",
            "GEMINI_CLI",
            "OPENCODE",
            "QWEN_CODE"
        ]
    );
    assert_eq!(catalog.id("codex"), Some(1));
    assert_eq!(catalog.name(1), "codex");
    assert_eq!(catalog.name(999), "unknown");
}

#[test]
fn claude_code() {
    assert_strong(
        "/tmp/x/.local/share/claude/versions/9.9.9",
        &["2.1.197"],
        "claude-code",
    );
    assert_strong(
        NODE,
        &[
            "node",
            "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js",
        ],
        "claude-code",
    );
    assert_strong(NODE, &["node", "/usr/local/bin/claude"], "claude-code");
    assert_strong(
        "/home/u/.nvm/versions/node/v22.3.0/bin/node",
        &["node", "/home/u/.claude/local/node_modules/.bin/claude"],
        "claude-code",
    );
    assert_strong(
        "/home/u/.npm-global/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe",
        &["claude"],
        "claude-code",
    );
    assert_strong(
        "/usr/lib/node_modules/@anthropic-ai/claude-code-linux-x64/claude",
        &["claude"],
        "claude-code",
    );
}

#[test]
fn codex() {
    assert_strong(
        "/usr/lib/node_modules/@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex-x86_64-unknown-linux-musl",
        &["codex"],
        "codex",
    );
    assert_strong("/home/u/.local/bin/codex", &["codex", "exec"], "codex");
    assert_strong(
        NODE,
        &["node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"],
        "codex",
    );
    assert_strong(
        "/usr/local/bin/codex",
        &["codex-linux-sandbox", "--", "bash"],
        "codex",
    );
}

#[test]
fn gemini_cli() {
    assert_strong(
        NODE,
        &[
            "node",
            "/home/u/.npm-global/lib/node_modules/@google/gemini-cli/bundle/gemini.js",
        ],
        "gemini-cli",
    );
    assert_strong(
        "/usr/bin/nodejs",
        &["node", "/home/u/.npm-global/bin/gemini"],
        "gemini-cli",
    );
}

#[test]
fn copilot() {
    assert_strong(
        NODE,
        &["node", "/usr/lib/node_modules/@github/copilot/index.js"],
        "copilot",
    );
    assert_strong(
        "/usr/lib/node_modules/@github/copilot-linux-x64/copilot",
        &["copilot"],
        "copilot",
    );
    // Its install script, run as a user.
    assert_strong("/home/u/.local/bin/copilot", &["copilot"], "copilot");
    // AWS Copilot CLI's documented place: not GitHub's agent unless the
    // file is a Node single executable (tests/elf_note.rs).
    assert_none("/usr/local/bin/copilot", &["copilot", "app", "init"]);
    assert_strong(
        "/usr/lib/node_modules/@github/copilot-language-server-linux-x64/copilot-language-server",
        &["copilot-language-server", "--stdio"],
        "copilot",
    );
    assert_strong(
        NODE,
        &[
            "node",
            "/usr/lib/node_modules/@github/copilot-language-server/dist/language-server.js",
            "--stdio",
        ],
        "copilot",
    );
}

#[test]
fn cursor() {
    assert_strong(
        "/home/u/.cursor-server/bin/0123abcd/node",
        &[
            "/home/u/.cursor-server/bin/0123abcd/node",
            "out/server-main.js",
        ],
        "cursor",
    );
    assert_strong(
        "/home/u/.local/share/cursor-agent/versions/2025.09.04-fc40cd1/node",
        &["node", "index.js"],
        "cursor",
    );
    assert_strong("/opt/Cursor/cursor", &["/opt/Cursor/cursor"], "cursor");
}

#[test]
fn aider() {
    assert_strong(
        "/usr/bin/python3",
        &["python3", "/home/u/.local/bin/aider"],
        "aider",
    );
    assert_strong(
        "/usr/bin/python3.12",
        &[
            "/home/u/.local/share/uv/tools/aider-chat/bin/python",
            "-m",
            "aider",
        ],
        "aider",
    );
}

#[test]
fn opencode() {
    assert_strong("/home/u/.opencode/bin/opencode", &["opencode"], "opencode");
    assert_strong(
        NODE,
        &["node", "/usr/lib/node_modules/opencode-ai/bin/opencode"],
        "opencode",
    );
    assert_strong(
        "/usr/lib/node_modules/opencode-ai/node_modules/opencode-linux-x64/bin/opencode",
        &["opencode"],
        "opencode",
    );
    // npm's layout: the install script's hard link, exec'd by the bin script.
    assert_strong(
        "/home/u/.npm-global/lib/node_modules/opencode-ai/bin/opencode.exe",
        &["/home/u/.npm-global/lib/node_modules/opencode-ai/bin/opencode.exe"],
        "opencode",
    );
}

#[test]
fn qwen_code() {
    assert_strong(
        NODE,
        &[
            "node",
            "/home/u/.npm-global/lib/node_modules/@qwen-code/qwen-code/cli.js",
        ],
        "qwen-code",
    );
    assert_strong(
        "/usr/bin/nodejs",
        &["node", "/home/u/.npm-global/bin/qwen"],
        "qwen-code",
    );
}

#[test]
fn crush() {
    for exe in [
        "/usr/bin/crush",
        "/home/u/go/bin/crush",
        "/home/linuxbrew/.linuxbrew/Cellar/crush/0.20.0/bin/crush",
        "/home/u/.npm-global/lib/node_modules/@charmland/crush/bin/crush",
    ] {
        assert_strong(exe, &["crush"], "crush");
    }
    assert_none("/usr/bin/crushftp", &["crushftp"]);
    // npm's bin link runs the package's node script, which runs bin/crush.
    assert_strong(
        NODE,
        &["node", "/home/u/.npm-global/bin/crush", "--version"],
        "crush",
    );
}

#[test]
fn amp_and_auggie_from_npm() {
    for (package, bin, tool) in [
        ("@sourcegraph/amp/dist/main.js", "amp", "amp"),
        ("@augmentcode/auggie/augment.mjs", "auggie", "auggie"),
    ] {
        let script = format!("/home/u/.npm-global/lib/node_modules/{package}");
        assert_strong(NODE, &["node", &script], tool);
        let link = format!("/home/u/.npm-global/bin/{bin}");
        assert_strong("/usr/bin/nodejs", &["node", &link], tool);
    }
    // Not a node script: a program called amp is not Amp.
    assert_none("/usr/bin/amp", &["amp"]);
    // @ampcode/cli 0.0.1790142911 (and @sourcegraph/amp of that version,
    // which depends on it): npm's bin link points at a Bun executable.
    let cli = "/home/u/.npm-global/lib/node_modules/@sourcegraph/amp/node_modules/@ampcode/cli";
    assert_strong(
        &format!("{cli}/bin/amp.exe"),
        &["/home/u/.npm-global/bin/amp"],
        "amp",
    );
    assert_strong(
        "/home/u/.npm-global/lib/node_modules/@ampcode/cli-linux-x64/amp",
        &["amp"],
        "amp",
    );
    // Amp's native installer.
    assert_strong("/home/u/.amp/bin/amp", &["amp"], "amp");
    assert_strong(
        "/home/u/.bun/bin/bun",
        &["bun", "/home/u/.amp/bin/amp"],
        "amp",
    );
}

#[test]
fn goose_amazon_q_windsurf() {
    assert_strong("/usr/local/bin/goose", &["goose", "session"], "goose");
    assert_strong("/usr/lib/goose/resources/bin/goosed", &["goosed"], "goose");
    assert_strong("/home/u/.local/bin/q", &["q", "chat"], "amazon-q");
    assert_strong("/home/u/.local/bin/qchat", &["qchat"], "amazon-q");
    assert_strong(
        "/usr/share/windsurf/resources/app/extensions/windsurf/bin/language_server_linux_x64",
        &["language_server_linux_x64"],
        "windsurf",
    );
}

#[test]
fn continue_and_cline() {
    assert_strong(NODE, &["node", "/usr/local/bin/cn"], "continue");
    assert_strong(
        NODE,
        &[
            "node",
            "/usr/lib/node_modules/@continuedev/cli/dist/index.js",
        ],
        "continue",
    );
    assert_strong(
        NODE,
        &["node", "/usr/lib/node_modules/cline/dist/cli.mjs"],
        "cline",
    );
    assert_strong(
        "/usr/lib/node_modules/cline/bin/cline-core",
        &["cline-core"],
        "cline",
    );
    // cline 3.0.65 in a project: node_modules/.bin/cline links to the
    // platform package's binary.
    assert_strong(
        "/home/u/project/node_modules/@cline/cli-linux-x64/bin/cline",
        &["/home/u/project/node_modules/.bin/cline", "--version"],
        "cline",
    );
}

#[test]
fn unrelated_processes_do_not_match() {
    assert_none("/usr/bin/bash", &["bash", "-c", "ls"]);
    assert_none("/usr/bin/node", &["node", "/home/u/project/server.js"]);
    assert_none("/usr/bin/node", &["node", "/home/u/bin/claude-notes.js"]);
    assert_none("/usr/bin/python3", &["python3", "/home/u/aider_notes.py"]);
    assert_none(
        "/usr/bin/python3",
        &["python3", "-m", "pip", "install", "aider-chat"],
    );
    assert_none("/usr/bin/curl", &["curl", "https://api.anthropic.com"]);
    // "q" is a whole file name, not a substring.
    assert_none("/usr/bin/jq", &["jq", "."]);
    assert_none("/usr/bin/qemu-system-x86_64", &["qemu-system-x86_64"]);
    assert_none("/home/u/q/bin/tool", &["tool"]);
    // Reading or installing a package is not running it.
    assert_none(
        "/usr/bin/cat",
        &[
            "cat",
            "/usr/lib/node_modules/@google/gemini-cli/package.json",
        ],
    );
    assert_none(
        NODE,
        &[
            "node",
            "/usr/lib/node_modules/npm/bin/npm-cli.js",
            "install",
            "-g",
            "@google/gemini-cli",
        ],
    );
}

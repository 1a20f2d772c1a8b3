//! The published agents `cargo xtask setup test` installs
//! (xtask/src/setup/agents.rs), for the tests that run them.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

use crate::in_ci;

/// Where the agents are installed: npm's and Volta's prefixes, a project,
/// and the vendors' installers' places, as under a user's home.
pub const AGENTS_HOME: &str = "/var/lib/agentmon/tools/agents/home";

/// `path` under [`AGENTS_HOME`] if it is there. Its absence skips the test,
/// and under CI fails it: CI must run the test, not skip it.
pub fn installed_agent(path: &str) -> Option<PathBuf> {
    let file = Path::new(AGENTS_HOME).join(path);
    if file.exists() {
        return Some(file);
    }
    let message = format!("no {}: run `cargo xtask setup test`", file.display());
    assert!(!in_ci(), "{message}; CI must run this test, not skip it");
    eprintln!("skipping: {message}");
    None
}

/// Runs `cmd` with only `HOME`, `PATH` and a dumb terminal: no variable of
/// the test's own (or of an agent it runs in) reaches the agent.
pub fn agent_env(cmd: &mut Command, home: impl AsRef<OsStr>, path: impl AsRef<OsStr>) {
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", path)
        .env("TERM", "dumb");
}

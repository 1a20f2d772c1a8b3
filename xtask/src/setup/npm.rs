//! Test tools from the npm registry, each installed into its own folder
//! under /var/lib/agentmon/tools at a pinned version.
use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use super::{ALREADY, Step};
use crate::cmd::{self, tool};

/// `npm install --prefix DIR SPEC`, saying so first.
pub(crate) fn install(step: &Step, dir: &Path, spec: &str) -> Result<()> {
    npm_install(step, dir, &[spec], false)
}

/// `npm install [--global] --prefix DIR SPEC...`, saying so first. With
/// `global`, DIR is laid out as npm's global prefix (`lib/node_modules`,
/// `bin/`); without, as a project (`node_modules`, `node_modules/.bin`).
pub(crate) fn npm_install(step: &Step, dir: &Path, specs: &[&str], global: bool) -> Result<()> {
    if cmd::which("npm").is_none() {
        bail!("no npm on PATH; run: apt-get install -y npm");
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let list = specs.join(" ");
    step.starting(&format!("installing {list} (npm) into {}", dir.display()));
    let global_flag = if global { "--global" } else { "--no-save" };
    cmd::run_quiet(
        tool("npm")
            .args([
                "install",
                global_flag,
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .arg("--prefix")
            .arg(dir)
            .args(specs),
        &format!(
            "run `npm install {global_flag} --prefix {} {list}` by hand to see why",
            dir.display()
        ),
    )
}

/// playwright-core: drives Debian's Chromium (not a browser of its own,
/// which it could not download here) for the HTML report's test
/// (tests/browser/report.mjs).
pub(crate) const PLAYWRIGHT_VERSION: &str = "1.65.1";
pub(crate) const PLAYWRIGHT_DIR: &str = "/var/lib/agentmon/tools/playwright";

/// The version of the package installed under `dir`, if any.
fn package_version(dir: &Path, package: &str) -> Option<String> {
    let manifest = dir.join("node_modules").join(package).join("package.json");
    let text = fs::read_to_string(manifest).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

pub fn playwright(step: &Step) -> Result<String> {
    let dir = Path::new(PLAYWRIGHT_DIR);
    let found = package_version(dir, "playwright-core");
    if found.as_deref() == Some(PLAYWRIGHT_VERSION) {
        return Ok(format!(
            "{ALREADY}: playwright-core {PLAYWRIGHT_VERSION} ({})",
            dir.display()
        ));
    }
    if !cmd::is_root() {
        return Ok(format!(
            "skipped, not root (sudo cargo xtask setup test installs playwright-core \
             {PLAYWRIGHT_VERSION} in {}; the HTML report's browser test needs it)",
            dir.display()
        ));
    }
    let start = Instant::now();
    install(step, dir, &format!("playwright-core@{PLAYWRIGHT_VERSION}"))?;
    match package_version(dir, "playwright-core") {
        Some(v) if v == PLAYWRIGHT_VERSION => Ok(format!(
            "installed playwright-core {v} in {} in {}",
            dir.display(),
            crate::secs(start)
        )),
        other => bail!(
            "installed playwright-core@{PLAYWRIGHT_VERSION} but {} holds {other:?}",
            dir.display()
        ),
    }
}

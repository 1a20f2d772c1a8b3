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
    if cmd::which("npm").is_none() {
        bail!("no npm on PATH; run: apt-get install -y npm");
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    step.starting(&format!("installing {spec} (npm) into {}", dir.display()));
    cmd::run_quiet(
        tool("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .arg("--prefix")
            .arg(dir)
            .arg(spec),
        &format!(
            "run `npm install --prefix {} {spec}` by hand to see why",
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

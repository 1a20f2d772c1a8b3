//! The published agent packages of `tests/agents/packages.txt`, for the
//! layout test (`tests/tests/agent_layouts.rs`), installed the ways users
//! install them, under a home folder `AGENTS_DIR/home`:
//! - npm global, into a prefix shaped as nvm makes it
//!   (`.nvm/versions/node/v<V>`), whose `node` is npm's `node` package;
//! - npm local, into a project folder (`project/node_modules/.bin`), which
//!   `npx` runs too;
//! - Volta: each package into its own image (`.volta/tools/image/packages/
//!   <package>`, an npm global prefix, as Volta installs it), its node in
//!   `.volta/tools/image/node/<V>/bin/node`;
//! - the vendors' own installers' places (`tests/agents/installers.txt`),
//!   hard links to the packages' binaries.
use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};

use super::{ALREADY, Step, npm};
use crate::cmd;

pub(crate) const AGENTS_DIR: &str = "/var/lib/agentmon/tools/agents";
/// The nvm-shaped prefix's node, from npm's `node` package.
const NODE_VERSION: &str = "22.23.3";
const PACKAGES: &str = include_str!("../../../tests/agents/packages.txt");
const INSTALLERS: &str = include_str!("../../../tests/agents/installers.txt");

/// The lines of a list that are not empty or comments.
fn lines(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// One line of the installers' list: the package's binary linked where the
/// vendor's installer puts it, and the installer's own link to that.
fn installed_as_the_vendor_does(home: &Path, line: &str) -> Result<()> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [_, binary, place, link] = words[..] else {
        anyhow::bail!("tests/agents/installers.txt: cannot read `{line}`");
    };
    let (binary, place) = (
        home.join("project/node_modules").join(binary),
        home.join(place),
    );
    fs::create_dir_all(place.parent().unwrap())?;
    fs::hard_link(&binary, &place)
        .with_context(|| format!("linking {} to {}", place.display(), binary.display()))?;
    if link != "-" {
        let link = home.join(link);
        fs::create_dir_all(link.parent().unwrap())?;
        std::os::unix::fs::symlink(&place, &link)
            .with_context(|| format!("linking {} to {}", link.display(), place.display()))?;
    }
    Ok(())
}

/// `package@version` for each line of the package list.
fn specs(list: &str) -> Vec<String> {
    lines(list)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some(format!("{}@{}", words.next()?, words.next()?))
        })
        .collect()
}

pub fn install(step: &Step) -> Result<String> {
    let dir = Path::new(AGENTS_DIR);
    let node = format!("node@{NODE_VERSION}");
    let agents = specs(PACKAGES);
    // What an earlier run installed, so a changed list installs afresh.
    let marker = dir.join("installed.txt");
    let want = format!("{node}\n{}\n{INSTALLERS}", agents.join("\n"));
    if fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        return Ok(format!(
            "{ALREADY}: {} agent packages ({})",
            agents.len(),
            dir.display()
        ));
    }
    if !cmd::is_root() {
        return Ok(format!(
            "skipped, not root (sudo cargo xtask setup test installs the agents of \
             tests/agents/packages.txt in {}; the layout test needs them)",
            dir.display()
        ));
    }
    let start = Instant::now();
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let home = dir.join("home");
    let nvm = home.join(format!(".nvm/versions/node/v{NODE_VERSION}"));
    let mut global: Vec<&str> = vec![&node];
    global.extend(agents.iter().map(String::as_str));
    npm::npm_install(step, &nvm, &global, true)?;
    let local: Vec<&str> = agents.iter().map(String::as_str).collect();
    npm::npm_install(step, &home.join("project"), &local, false)?;
    let volta = home.join(".volta/tools/image");
    for spec in &agents {
        let package = spec.rsplit_once('@').map_or(spec.as_str(), |(p, _)| p);
        npm::npm_install(step, &volta.join("packages").join(package), &[spec], true)?;
    }
    // Volta unpacks node's release there; this is the same build.
    let volta_node = volta.join(format!("node/{NODE_VERSION}/bin/node"));
    fs::create_dir_all(volta_node.parent().unwrap())?;
    let node_bin = fs::canonicalize(nvm.join("bin/node"))?;
    fs::hard_link(&node_bin, &volta_node)
        .with_context(|| format!("linking {} to {}", volta_node.display(), node_bin.display()))?;
    for line in lines(INSTALLERS) {
        installed_as_the_vendor_does(&home, line)?;
    }
    fs::write(&marker, want).with_context(|| format!("writing {}", marker.display()))?;
    Ok(format!(
        "installed {} agent packages and node {NODE_VERSION} in {} in {}",
        agents.len(),
        dir.display(),
        crate::secs(start)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_gives_one_spec_per_package_line() {
        let list = "# comment\n\n@openai/codex 0.171.0 codex codex\ncline 3.0.65 cline cline\n";
        assert_eq!(specs(list), ["@openai/codex@0.171.0", "cline@3.0.65"]);
        assert_eq!(specs(PACKAGES).len(), 10);
    }
}

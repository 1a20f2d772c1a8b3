//! `cargo xtask deb`, `install` and `uninstall`: the Debian package, built
//! with cargo-deb from `[package.metadata.deb]` in monitor/Cargo.toml and
//! the files in packaging/. `install` installs that same package with dpkg,
//! so a checkout and a fleet machine get the same files, user and unit.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Result, bail};

use crate::cmd::{self, tool};
use crate::setup::{Purpose, Step};
use crate::tasks::{self, Workspace};

/// The cargo-deb release `cargo xtask deb` installs when it is missing.
const CARGO_DEB_VERSION: &str = "3.8.0";
/// The Debian package's name (`[package.metadata.deb] name`).
const PACKAGE: &str = "agentmon";
/// Where the package's GeoIP files are staged, under the target directory
/// (`target/release/` in the package's asset list).
const GEOIP_STAGE: &str = "release/agentmon-geoip";
/// What goes into the package besides the binary and the GeoIP files: a
/// package older than any of them is rebuilt.
const INPUTS: &[&str] = &[
    "monitor/Cargo.toml",
    "packaging/agentmon.service",
    "packaging/config.toml",
    "packaging/debian/postinst",
    "packaging/debian/prerm",
    "packaging/debian/postrm",
    "packaging/debian/copyright",
    "README.md",
];

/// `cargo xtask deb`: set-up, build, then the .deb; returns its path.
pub fn deb() -> Result<PathBuf> {
    let ws = tasks::build(&[Purpose::Package])?;
    build_deb(&ws)
}

/// The .deb of what `ws` has built: made unless one newer than every input
/// is there already. Installs cargo-deb first if it is missing.
pub fn build_deb(ws: &Workspace) -> Result<PathBuf> {
    let step = |name| Step::of("deb", name, &[Purpose::Package]);
    let geoip = ws.target().join(GEOIP_STAGE);
    let staged = crate::geoip::stage(&geoip, &step("geoip data"))?;
    step("geoip data").done(&staged);
    let deb = deb_path(ws)?;
    let mut inputs: Vec<PathBuf> = INPUTS.iter().map(|p| ws.root().join(p)).collect();
    inputs.push(ws.agentmon());
    inputs.extend(crate::geoip::FILES.iter().map(|f| geoip.join(f)));
    let step = step("package");
    if up_to_date(&deb, &inputs) {
        step.done(&format!(
            "ok (already there, newer than its inputs): {}",
            deb.display()
        ));
        return Ok(deb);
    }
    crate::setup::cargo_tool(
        &Step::of("deb", "cargo-deb", &[Purpose::Package]),
        "cargo-deb",
        "deb",
        CARGO_DEB_VERSION,
    )?;
    let start = Instant::now();
    step.starting(&format!("building {} (cargo deb)", deb.display()));
    cmd::run_quiet(
        crate::cargo()
            .current_dir(ws.root())
            .args(["deb", "-p", "monitor", "--no-build", "--output"])
            .arg(&deb),
        "run `cargo deb -p monitor --no-build` by hand to see why",
    )?;
    let size = fs::metadata(&deb).map_or(0, |m| m.len());
    step.done(&format!(
        "built {} ({:.1} MB) in {}",
        deb.display(),
        size as f64 / 1e6,
        crate::secs(start)
    ));
    Ok(deb)
}

/// `target/debian/agentmon_<version>_<arch>.deb`, the name dpkg tools expect.
fn deb_path(ws: &Workspace) -> Result<PathBuf> {
    let arch = cmd::stdout(
        tool("dpkg").arg("--print-architecture"),
        "building the Debian package needs dpkg (a Debian or Ubuntu machine)",
    )?;
    let version = env!("CARGO_PKG_VERSION");
    Ok(ws
        .target()
        .join("debian")
        .join(format!("{PACKAGE}_{version}_{arch}.deb")))
}

/// Whether `out` exists and is newer than every one of `inputs`.
fn up_to_date(out: &Path, inputs: &[PathBuf]) -> bool {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = mtime(out) else {
        return false;
    };
    inputs
        .iter()
        .all(|i| mtime(i).is_some_and(|t: SystemTime| t <= built))
}

/// `cargo deb --version`, if the subcommand is installed and runs.
/// dpkg as root: directly, or through sudo.
fn dpkg() -> Result<std::process::Command> {
    if cmd::is_root() {
        Ok(tool("dpkg"))
    } else if cmd::which("sudo").is_some() {
        let mut c = tool("sudo");
        c.arg("dpkg");
        Ok(c)
    } else {
        bail!("installing a package needs root and there is no sudo here; run this as root")
    }
}

/// `cargo xtask install`: the package, installed with `dpkg -i`.
pub fn install() -> Result<()> {
    let deb = deb()?;
    println!("install: dpkg -i {}", deb.display());
    cmd::run(
        dpkg()?.arg("-i").arg(&deb),
        "see dpkg's output above; `cargo xtask uninstall` removes a half-installed package",
    )?;
    if Path::new("/run/systemd/system").is_dir() {
        println!(
            "install: agentmon runs as a service: systemctl status agentmon; \
             journalctl -u agentmon; config in /etc/agentmon/config.toml"
        );
    } else {
        println!(
            "install: systemd is not running here, so the service is not started. \
             Start agentmon by hand: sudo /usr/bin/agentmon run --config /etc/agentmon/config.toml"
        );
    }
    Ok(())
}

/// `cargo xtask uninstall`: `dpkg -r` (config and logs stay), or with
/// `purge` `dpkg --purge` (config, logs, user and BPF pins go too).
pub fn uninstall(purge: bool) -> Result<()> {
    let installed = cmd::output(tool("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]))
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "install ok installed", or "deinstall ok config-files" after `dpkg -r`.
    let present =
        installed.ends_with(" installed") || (purge && installed.contains("config-files"));
    if !present {
        println!("uninstall: {PACKAGE} is not installed; nothing to do");
        return Ok(());
    }
    let flag = if purge { "--purge" } else { "-r" };
    println!("uninstall: dpkg {flag} {PACKAGE}");
    cmd::run(dpkg()?.args([flag, PACKAGE]), "see dpkg's output above")?;
    println!(
        "uninstall: the package's GeoIP data in {} went with it; the next \
         `cargo xtask run` fetches it again",
        crate::geoip::DIR
    );
    if !purge {
        println!(
            "uninstall: /etc/agentmon, /var/log/agentmon and the agentmon user stay; \
             `cargo xtask uninstall --purge` removes them"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_older_than_an_input_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        let out = dir.path().join("out.deb");
        fs::write(&input, b"x").unwrap();
        assert!(!up_to_date(&out, std::slice::from_ref(&input)));
        fs::write(&out, b"deb").unwrap();
        assert!(up_to_date(&out, std::slice::from_ref(&input)));
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&input)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!up_to_date(&out, std::slice::from_ref(&input)));
        // A missing input cannot be older: rebuild.
        assert!(!up_to_date(&out, &[dir.path().join("gone")]));
    }

    #[test]
    fn inputs_exist() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for input in INPUTS {
            assert!(root.join(input).is_file(), "{input}");
        }
    }
}

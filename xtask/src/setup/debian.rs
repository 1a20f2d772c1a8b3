//! The Debian packages each purpose needs, and the step that installs the
//! missing ones with apt-get.
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};

use super::{ALREADY, Purpose, Step};
use crate::cmd::{self, tool};

use Purpose::{Bench, Package, Run, Test};

struct DebPackage {
    name: &'static str,
    /// A command it provides: what is checked where dpkg is not the package manager.
    command: &'static str,
    /// Satisfied by any package that puts `command` on PATH (the machine
    /// image ships node and npm from elsewhere than Debian).
    any_provider: bool,
    purposes: &'static [Purpose],
}

const fn deb(
    name: &'static str,
    command: &'static str,
    purposes: &'static [Purpose],
) -> DebPackage {
    DebPackage {
        name,
        command,
        any_provider: false,
        purposes,
    }
}

const fn any(
    name: &'static str,
    command: &'static str,
    purposes: &'static [Purpose],
) -> DebPackage {
    DebPackage {
        any_provider: true,
        ..deb(name, command, purposes)
    }
}

/// Building and running need no Debian package beyond the machine image's
/// (gcc, python3, tar, coreutils) but npm, which fetches the GeoIP data.
const PACKAGES: &[DebPackage] = &[
    any("npm", "npm", &[Run]), // the GeoIP step's `npm pack`
    // The test lab and the bench lab.
    deb("iproute2", "ip", &[Test, Bench]), // `ip netns` for the fake remote hosts
    deb("procps", "ps", &[Test, Bench]),
    any("nodejs", "node", &[Test, Bench]), // node clients and servers
    deb("openssl", "openssl", &[Test, Bench]), // certificates for the TLS servers
    deb("iperf3", "iperf3", &[Test, Bench]), // bulk transfers (the bench, its smoke test)
    // Tests only.
    deb("musl-tools", "musl-gcc", &[Test]), // a static musl client
    deb("clang", "clang", &[Test]),         // aws-lc as clang builds it (an add-on)
    deb("curl", "curl", &[Test]),           // a glibc client
    deb("golang-go", "go", &[Test, Bench]), // a static, stripped Go crypto/tls client
    deb("libssl-dev", "openssl", &[Test, Bench]), // libssl.a: a static, stripped OpenSSL client
    deb("gnutls-bin", "gnutls-cli", &[Test]), // a GnuTLS client
    deb("tmux", "tmux", &[Test]),           // a real terminal for `agentmon top`
    deb("prometheus", "promtool", &[Test]), // dashboards/: rule checks, a real Prometheus
    deb("prometheus-alertmanager", "amtool", &[Test]), // dashboards/: the example route
    deb("systemd", "systemd-analyze", &[Test]), // `systemd-analyze verify` of the unit
    deb("util-linux", "setpriv", &[Test]),  // agentmon with exactly the unit's capabilities
    deb("libcap2-bin", "capsh", &[Test]),   // capability sets in the tests
    deb("adduser", "adduser", &[Test, Package]), // the package's maintainer scripts
    deb("chromium", "chromium", &[Test]),   // the HTML report, opened headless (tests/browser)
    // The bench only.
    deb("bpftrace", "bpftrace", &[Bench]), // the reference monitor
    deb("bpftool", "bpftool", &[Bench]),   // per-program BPF stats, by name
    deb("linux-perf", "perf", &[Bench]),   // a profile of agentmon
    // `cargo deb`: dpkg-shlibdeps works out the package's library dependencies.
    deb("dpkg-dev", "dpkg-shlibdeps", &[Package]),
];

/// Services the packages above start on install (ports 9090 and 9093). The
/// tests run their own Prometheus with its own config, port and storage, so
/// setup stops and disables the ones it installed itself.
const PACKAGE_SERVICES: &[(&str, &str)] = &[
    ("prometheus", "prometheus.service"),
    ("prometheus-alertmanager", "prometheus-alertmanager.service"),
];

fn installed(package: &DebPackage) -> bool {
    if package.any_provider && cmd::which(package.command).is_some() {
        return true;
    }
    match cmd::output(tool("dpkg-query").args(["-W", "-f=${Status}", package.name])) {
        Some(out) => String::from_utf8_lossy(&out.stdout).ends_with("install ok installed"),
        // Not a Debian system: settle for the command being there.
        None => cmd::which(package.command).is_some(),
    }
}

pub fn install(step: &Step) -> Result<String> {
    let wanted: Vec<&DebPackage> = PACKAGES
        .iter()
        .filter(|p| p.purposes.iter().any(|&u| step.wants(u)))
        .collect();
    if wanted.is_empty() {
        return Ok("none needed".to_string());
    }
    let (present, missing): (Vec<&DebPackage>, Vec<&DebPackage>) =
        wanted.into_iter().partition(|p| installed(p));
    if missing.is_empty() {
        let names: Vec<&str> = present.iter().map(|p| p.name).collect();
        return Ok(format!("{ALREADY}: {}", names.join(", ")));
    }
    let missing: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let list = missing.join(" ");
    if cmd::which("apt-get").is_none() {
        bail!("missing {list} and no apt-get here; install the packages that provide them");
    }
    if !cmd::is_root() {
        bail!("missing {list}; run: sudo apt-get install -y {list}");
    }
    let start = Instant::now();
    let fix = format!("run `apt-get update && apt-get install -y {list}` by hand to see why");
    step.starting("updating the package lists (apt-get update)");
    cmd::run_quiet(tool("apt-get").args(["-q", "update"]), &fix)?;
    step.starting(&format!("installing {list} (apt-get install)"));
    cmd::run_quiet(
        tool("apt-get")
            .args(["-q", "-y", "install", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &fix,
    )?;
    let stopped = stop_package_services(&missing);
    Ok(format!(
        "installed {list} in {}{stopped}",
        crate::secs(start)
    ))
}

/// Stops and disables the services of [`PACKAGE_SERVICES`] that came with
/// packages setup just installed (and only under systemd); says which.
fn stop_package_services(installed: &[&str]) -> String {
    if !Path::new("/run/systemd/system").is_dir() {
        return String::new();
    }
    let units: Vec<&str> = PACKAGE_SERVICES
        .iter()
        .filter(|(pkg, _)| installed.contains(pkg))
        .map(|&(_, unit)| unit)
        .collect();
    if units.is_empty() {
        return String::new();
    }
    match cmd::output(tool("systemctl").args(["disable", "--now"]).args(&units)) {
        Some(out) if out.status.success() => {
            format!("; stopped and disabled {} (not used)", units.join(", "))
        }
        _ => format!(
            "; could not stop {} (harmless: the tests use their own ports)",
            units.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(purposes: &[Purpose]) -> Vec<&'static str> {
        let step = Step::new("t", purposes);
        PACKAGES
            .iter()
            .filter(|p| p.purposes.iter().any(|&u| step.wants(u)))
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn running_needs_no_test_or_bench_tool() {
        assert_eq!(names(&[Run]), ["npm"]);
        let test = names(&[Test]);
        for tool in ["prometheus", "systemd", "util-linux", "iperf3", "npm"] {
            assert!(test.contains(&tool), "{tool} missing from {test:?}");
        }
        assert!(!test.contains(&"bpftrace"), "{test:?}");
        let bench = names(&[Bench]);
        assert!(bench.contains(&"linux-perf"), "{bench:?}");
        assert!(!bench.contains(&"prometheus"), "{bench:?}");
    }
}

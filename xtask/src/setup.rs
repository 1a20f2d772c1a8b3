//! `cargo xtask setup`: installs what a fresh machine lacks for a purpose,
//! and nothing else. Building and running agentmon need the nightly
//! toolchain's rust-src, bpf-linker, tracefs and the default GeoIP data; the
//! test and bench tools come only with `cargo xtask test` / `bench`.
//! Each step ends with one line, "ok (already there)" or what it did in how
//! long, and says what it starts before each slow part, so a terminal is
//! never silent for long without a reason.
mod agents;
mod debian;
mod npm;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

use crate::cmd::{self, tool};

/// What the machine is set up for. [`Purpose::Run`] is always included:
/// every task builds agentmon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Purpose {
    /// Build agentmon and run it (`cargo xtask build`, `run`).
    Run,
    /// Run the test suite (`cargo xtask test`).
    Test,
    /// Run the benchmark (`cargo xtask bench`).
    Bench,
    /// Build the Debian package (`cargo xtask deb`, `install`).
    Package,
}

/// One step of a task, as its functions see it: the names for the lines it
/// prints, and the purposes being set up.
pub struct Step<'a> {
    task: &'static str,
    name: &'static str,
    purposes: &'a [Purpose],
}

impl<'a> Step<'a> {
    /// A step of setup itself.
    pub fn new(name: &'static str, purposes: &'a [Purpose]) -> Self {
        Self::of("setup", name, purposes)
    }

    /// A step of another task (its lines start with `task:`).
    pub fn of(task: &'static str, name: &'static str, purposes: &'a [Purpose]) -> Self {
        Self {
            task,
            name,
            purposes,
        }
    }

    /// Whether this setup is for `purpose`.
    pub fn wants(&self, purpose: Purpose) -> bool {
        purpose == Run || self.purposes.contains(&purpose)
    }

    /// Says what is about to start, before a part that takes a while.
    pub fn starting(&self, what: &str) {
        println!("{}: {:<18} {what} ...", self.task, self.name);
        let _ = std::io::stdout().flush();
    }

    /// The step's closing line.
    pub fn done(&self, what: &str) {
        println!("{}: {:<18} {what}", self.task, self.name);
    }
}

type StepFn = fn(&Step) -> Result<String>;

use Purpose::{Bench, Run, Test};

/// Every step, in order, with the purposes it serves.
const STEPS: &[(&str, &[Purpose], StepFn)] = &[
    // Filters its packages by purpose.
    ("debian packages", &[Run], debian::install),
    ("nightly toolchain", &[Run], nightly),
    ("nightly rust-src", &[Run], rust_src),
    ("bpf-linker", &[Run], bpf_linker),
    ("tracefs", &[Run], tracefs),
    ("bpffs", &[Run], bpffs),
    // Filters its packages by purpose.
    ("python packages", &[Run], python_packages),
    ("musl target", &[Test, Bench], musl_target),
    ("bun", &[Test, Bench], bun),
    ("playwright", &[Test], npm::playwright),
    ("agent packages", &[Test], agents::install),
    ("geoip database", &[Run], crate::geoip::install),
];

/// PyPI packages the tests and the GeoIP step import: (module, requirement,
/// purposes). Installed (at these versions) only when the module does not
/// import.
const PY_PACKAGES: &[(&str, &str, &[Purpose])] = &[
    // The GeoIP step's asn.mmdb; the tests' GeoIP databases.
    ("mmdb_writer", "mmdb-writer==0.2.7", &[Run]),
    ("netaddr", "netaddr==1.3.0", &[Run]), // mmdb-writer's dependency
    ("dnslib", "dnslib==0.9.26", &[Test, Bench]), // the labs' DNS server
];

const BPF_LINKER_VERSION: &str = "0.13.0";

/// Installs what `purposes` (and running agentmon) need.
pub fn setup(purposes: &[Purpose]) -> Result<()> {
    for &(name, serves, f) in STEPS {
        let step = Step::new(name, purposes);
        if !serves.iter().any(|&p| step.wants(p)) {
            continue;
        }
        let what = f(&step).with_context(|| format!("setup step `{name}`"))?;
        step.done(&what);
    }
    Ok(())
}

pub(crate) const ALREADY: &str = "ok (already there)";

/// `nightly` or `nightly-<host>` (not a dated `nightly-2026-...`).
fn is_nightly_channel(line: &str) -> bool {
    let name = line.split_whitespace().next().unwrap_or("");
    name == "nightly"
        || name
            .strip_prefix("nightly-")
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
}

fn nightly(step: &Step) -> Result<String> {
    let fix = "install rustup, the Rust toolchain manager";
    let list = cmd::stdout(tool("rustup").args(["toolchain", "list"]), fix)?;
    if list.lines().any(is_nightly_channel) {
        return Ok(ALREADY.to_string());
    }
    let start = Instant::now();
    step.starting("installing the nightly toolchain (rustup, minimal profile), about a minute");
    cmd::run_quiet(
        tool("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]),
        "run `rustup toolchain install nightly --profile minimal` by hand to see why",
    )?;
    Ok(format!("installed nightly in {}", crate::secs(start)))
}

fn nightly_sysroot() -> Result<PathBuf> {
    let s = cmd::stdout(
        tool("rustc").args(["+nightly", "--print", "sysroot"]),
        "run `rustup toolchain install nightly --profile minimal`",
    )?;
    Ok(PathBuf::from(s))
}

fn rust_src(step: &Step) -> Result<String> {
    let library = nightly_sysroot()?.join("lib/rustlib/src/rust/library");
    if library.is_dir() {
        return Ok(ALREADY.to_string());
    }
    let start = Instant::now();
    step.starting("adding rust-src to the nightly toolchain (rustup)");
    cmd::run_quiet(
        tool("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
        "run `rustup component add rust-src --toolchain nightly` by hand to see why",
    )?;
    Ok(format!("installed in {}", crate::secs(start)))
}

/// The stable toolchain's musl target: the tests' and the bench's static
/// rustls client on aws-lc (tests/clients/rustls_awslc), built as Codex's
/// release is.
fn musl_target(step: &Step) -> Result<String> {
    let fix = "install rustup, the Rust toolchain manager";
    let installed = cmd::stdout(tool("rustup").args(["target", "list", "--installed"]), fix)?;
    if installed.lines().any(|l| l.trim() == MUSL) {
        return Ok(ALREADY.to_string());
    }
    let start = Instant::now();
    step.starting("adding the x86_64-unknown-linux-musl target (rustup)");
    cmd::run_quiet(
        tool("rustup").args(["target", "add", MUSL]),
        &format!("run `rustup target add {MUSL}` by hand to see why"),
    )?;
    Ok(format!("installed in {}", crate::secs(start)))
}

pub(crate) const MUSL: &str = "x86_64-unknown-linux-musl";

/// `bpf-linker --version`, run without LD_LIBRARY_PATH (which rustup and
/// `cargo run` set) so that it proves the binary finds libLLVM by itself.
fn bpf_linker_version() -> Option<String> {
    let out = cmd::output(
        tool("bpf-linker")
            .arg("--version")
            .env_remove("LD_LIBRARY_PATH"),
    )?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_wanted_bpf_linker(version: &str) -> bool {
    let wanted = BPF_LINKER_VERSION.rsplit_once('.').map_or("", |(mm, _)| mm);
    version
        .strip_prefix("bpf-linker ")
        .is_some_and(|v| v == wanted || v.starts_with(&format!("{wanted}.")))
}

/// The LLVM major version in a soname like `libLLVM.so.22.1-rust-1.97.0-nightly`.
fn llvm_major(soname: &str) -> Option<u32> {
    let rest = soname.strip_prefix("libLLVM.so.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The prefix whose lib/ links to the nightly's libLLVM. The installed
/// bpf-linker keeps it as its RUNPATH, so it must stay where it is.
fn llvm_prefix() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cmd::home().join(".local/share"))
        .join("agentmon-llvm")
}

fn relink(target: &Path, link: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        fs::remove_file(link).with_context(|| format!("removing {}", link.display()))?;
    }
    symlink(target, link)
        .with_context(|| format!("linking {} -> {}", link.display(), target.display()))
}

fn bpf_linker(step: &Step) -> Result<String> {
    let found = bpf_linker_version();
    if let Some(v) = &found
        && is_wanted_bpf_linker(v)
    {
        return Ok(format!("{ALREADY}: {v}"));
    }

    // bpf-linker links against the nightly's own libLLVM, found by its soname.
    let libdir = nightly_sysroot()?.join("lib");
    let soname = fs::read_dir(&libdir)
        .with_context(|| format!("reading {}", libdir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| {
            format!(
                "no libLLVM.so.* in {}; reinstall it: rustup toolchain install nightly --force",
                libdir.display()
            )
        })?;
    let major = llvm_major(&soname)
        .with_context(|| format!("cannot read the LLVM version from {soname}"))?;
    let prefix = llvm_prefix();
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    let target = libdir.join(&soname);
    relink(&target, &prefix_lib.join("libLLVM.so"))?;
    relink(&target, &prefix_lib.join(&soname))?;

    let start = Instant::now();
    step.starting(&format!(
        "installing {BPF_LINKER_VERSION} with llvm-{major} ({}; cargo install), about two minutes",
        match &found {
            Some(v) => format!("found {v}"),
            None if cmd::which("bpf-linker").is_some() => "the one on PATH does not run".into(),
            None => "none on PATH".to_string(),
        }
    ));
    let feature = format!("llvm-{major}");
    cmd::run_quiet(
        crate::cargo()
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--locked", "--force", "--no-default-features", "--features"])
            .args([feature.as_str(), "-j2"])
            .env("LLVM_PREFIX", &prefix),
        &format!(
            "bpf-linker {BPF_LINKER_VERSION} did not build against {}",
            target.display()
        ),
    )?;
    match bpf_linker_version() {
        Some(v) if is_wanted_bpf_linker(&v) => Ok(format!(
            "installed {v} (llvm-{major}, libLLVM via {}) in {}",
            prefix_lib.display(),
            crate::secs(start)
        )),
        other => bail!(
            "installed bpf-linker but `bpf-linker --version` gives {other:?}; \
             check that {}/bin is first on PATH",
            cmd::cargo_home().display()
        ),
    }
}

/// The (module, requirement) pairs of [`PY_PACKAGES`] that `step` wants.
fn wanted_python(step: &Step) -> Vec<(&'static str, &'static str)> {
    PY_PACKAGES
        .iter()
        .filter(|(_, _, purposes)| purposes.iter().any(|&p| step.wants(p)))
        .map(|&(m, r, _)| (m, r))
        .collect()
}

/// The modules of `wanted` that `python3` cannot import.
fn missing_python_modules(wanted: &[(&'static str, &'static str)]) -> Result<Vec<&'static str>> {
    let modules: Vec<&str> = wanted.iter().map(|&(m, _)| m).collect();
    let check = "import importlib, sys\n\
        for m in sys.argv[1:]:\n\
        \ttry: importlib.import_module(m)\n\
        \texcept Exception: print(m)";
    let out = cmd::stdout(
        tool("python3").args(["-c", check]).args(&modules),
        "the tests need python3 on PATH: apt-get install -y python3 python3-pip",
    )?;
    Ok(modules
        .into_iter()
        .filter(|m| out.lines().any(|l| l.trim() == *m))
        .collect())
}

fn python_packages(step: &Step) -> Result<String> {
    let wanted = wanted_python(step);
    let missing = missing_python_modules(&wanted)?;
    if missing.is_empty() {
        let names: Vec<&str> = wanted
            .iter()
            .filter_map(|(_, r)| r.split("==").next())
            .collect();
        return Ok(format!("{ALREADY}: {}", names.join(", ")));
    }
    let reqs: Vec<&str> = wanted
        .iter()
        .filter(|(m, _)| missing.contains(m))
        .map(|&(_, r)| r)
        .collect();
    let start = Instant::now();
    step.starting(&format!("installing {} (pip)", reqs.join(" ")));
    let pip = |extra: &[&str]| {
        cmd::output(
            tool("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(extra)
                .args(&reqs),
        )
    };
    let fix = format!(
        "run `python3 -m pip install {}` by hand to see why",
        reqs.join(" ")
    );
    let mut out = pip(&[]).with_context(|| format!("cannot run python3 -m pip; {fix}"))?;
    // Debian's own python3 refuses pip outside a venv (PEP 668); the tests
    // run that python3, so the packages go next to it.
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("externally-managed-environment")
    {
        out = pip(&["--break-system-packages"])
            .with_context(|| format!("cannot run python3 -m pip; {fix}"))?;
    }
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named pip") {
            bail!("python3 has no pip; run: apt-get install -y python3-pip");
        }
        eprintln!("{}", err.trim_end());
        bail!("`python3 -m pip install {}` failed; {fix}", reqs.join(" "));
    }
    let still = missing_python_modules(&wanted)?;
    if !still.is_empty() {
        bail!(
            "installed {} but python3 still cannot import {}; check that `python3 -m pip` \
             belongs to the python3 on PATH",
            reqs.join(" "),
            still.join(", ")
        );
    }
    Ok(format!(
        "installed {} in {}",
        reqs.join(" "),
        crate::secs(start)
    ))
}

fn tracefs(_: &Step) -> Result<String> {
    let root = Path::new("/sys/kernel/tracing");
    if root.join("events").is_dir() {
        return Ok(ALREADY.to_string());
    }
    mount(
        "tracefs",
        root,
        "agentmon needs it",
        "the kernel needs CONFIG_TRACING, and a container needs /sys/kernel/tracing",
    )
}

/// Mounts a kernel file system of type `fstype` at `root` (as root only;
/// otherwise says why it is wanted and the command).
fn mount(fstype: &str, root: &Path, why: &str, fix: &str) -> Result<String> {
    if !cmd::is_root() {
        return Ok(format!(
            "skipped, not root ({why}: sudo mount -t {fstype} {fstype} {})",
            root.display()
        ));
    }
    cmd::run_quiet(tool("mount").args(["-t", fstype, fstype]).arg(root), fix)?;
    Ok(format!("mounted at {}", root.display()))
}

/// bpffs at /sys/fs/bpf, where agentmon pins its maps so that a restart
/// goes on counting (systemd mounts it on most hosts; this machine's init
/// does not). Without it agentmon runs, and says a restart starts afresh.
fn bpffs(_: &Step) -> Result<String> {
    let root = Path::new("/sys/fs/bpf");
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mounted = mounts.lines().any(|l| {
        let mut cols = l.split_whitespace().skip(1);
        cols.next() == Some("/sys/fs/bpf") && cols.next() == Some("bpf")
    });
    if mounted {
        return Ok(ALREADY.to_string());
    }
    mount(
        "bpf",
        root,
        "restarts keep counting with it",
        "the kernel needs CONFIG_BPF_SYSCALL, and a container needs /sys/fs/bpf",
    )
}

/// The npm `bun` package: a Bun runtime whose `bun build --compile` makes
/// single-file executables with statically linked, symbol-less BoringSSL,
/// the shape of Claude Code's native binary (monitor/src/tls/boringssl.rs
/// and its tests).
pub(crate) const BUN_VERSION: &str = "1.4.5";
/// Where [`bun`] installs it; `bin/bun` there is the runtime.
pub(crate) const BUN_DIR: &str = "/var/lib/agentmon/tools/bun";

/// `BIN --version`, if it runs.
fn bun_version(bin: &Path) -> Option<String> {
    let out = cmd::output(std::process::Command::new(bin).arg("--version"))?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn bun(step: &Step) -> Result<String> {
    let dir = Path::new(BUN_DIR);
    let link = dir.join("bin/bun");
    if bun_version(&link).as_deref() == Some(BUN_VERSION) {
        return Ok(format!("{ALREADY}: bun {BUN_VERSION} ({})", link.display()));
    }
    if !cmd::is_root() {
        return Ok(format!(
            "skipped, not root (sudo cargo xtask setup test installs bun {BUN_VERSION} in {}; \
             the Bun TLS tests need it)",
            dir.display()
        ));
    }
    let start = Instant::now();
    let spec = format!("bun@{BUN_VERSION}");
    npm::install(step, dir, &spec)?;
    // The package's install script moves the platform binary to bin/bun.exe;
    // where scripts did not run, the platform package still holds it.
    let modules = dir.join("node_modules");
    let found = [
        "bun/bin/bun.exe",
        "@oven/bun-linux-x64/bin/bun",
        "@oven/bun-linux-x64-baseline/bin/bun",
        "@oven/bun-linux-aarch64/bin/bun",
    ]
    .iter()
    .map(|p| modules.join(p))
    .find(|p| bun_version(p).as_deref() == Some(BUN_VERSION))
    .with_context(|| {
        format!(
            "installed {spec} but no bun {BUN_VERSION} binary runs under {}",
            modules.display()
        )
    })?;
    fs::create_dir_all(dir.join("bin"))?;
    relink(&found, &link)?;
    Ok(format!(
        "installed bun {BUN_VERSION} ({} -> {}) in {}",
        link.display(),
        found.display(),
        crate::secs(start)
    ))
}

/// `cargo <subcommand> --version`, when that subcommand is installed.
fn cargo_tool_version(subcommand: &str) -> Option<String> {
    let out = cmd::output(crate::cargo().args([subcommand, "--version"]))?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Installs the cargo plugin `name` (run as `cargo <subcommand>`) at
/// `version` from crates.io, unless that version is there.
pub fn cargo_tool(step: &Step, name: &str, subcommand: &str, version: &str) -> Result<()> {
    let found = cargo_tool_version(subcommand);
    if found
        .as_deref()
        .is_some_and(|v| v.split_whitespace().any(|w| w == version))
    {
        step.done(&format!("{ALREADY}: {}", found.unwrap_or_default()));
        return Ok(());
    }
    let start = Instant::now();
    step.starting(&format!(
        "installing {name} {version} ({}; cargo install --locked), a few minutes",
        found.as_deref().unwrap_or("none installed")
    ));
    cmd::run_quiet(
        crate::cargo()
            .args(["install", name, "--locked", "--version", version])
            .args(["--force", "-j2"]),
        &format!("run `cargo install {name} --locked --version {version}` by hand to see why"),
    )?;
    match cargo_tool_version(subcommand) {
        Some(v) if v.contains(version) => {
            step.done(&format!("installed {v} in {}", crate::secs(start)));
            Ok(())
        }
        other => bail!(
            "installed {name} {version} but `cargo {subcommand} --version` gives {other:?}; \
             check that {}/bin is on PATH",
            cmd::cargo_home().display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_soname() {
        assert_eq!(llvm_major("libLLVM.so.22.1-rust-1.97.0-nightly"), Some(22));
        assert_eq!(llvm_major("libLLVM.so.19"), Some(19));
        assert_eq!(llvm_major("libLLVM-22-rust-1.97.0-nightly.so"), None);
    }

    #[test]
    fn nightly_channel_lines() {
        assert!(is_nightly_channel("nightly-x86_64-unknown-linux-gnu"));
        assert!(is_nightly_channel(
            "nightly-x86_64-unknown-linux-gnu (active)"
        ));
        assert!(!is_nightly_channel(
            "nightly-2026-05-01-x86_64-unknown-linux-gnu"
        ));
        assert!(!is_nightly_channel(
            "stable-x86_64-unknown-linux-gnu (default)"
        ));
    }

    #[test]
    fn bpf_linker_versions() {
        assert!(is_wanted_bpf_linker("bpf-linker 0.13.0"));
        assert!(is_wanted_bpf_linker("bpf-linker 0.13.2"));
        assert!(!is_wanted_bpf_linker("bpf-linker 0.9.14"));
        assert!(!is_wanted_bpf_linker("bpf-linker 0.130.0"));
    }
}

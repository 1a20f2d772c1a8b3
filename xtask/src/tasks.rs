//! `cargo xtask build`, `run` and `test`. Everything is built in the release
//! profile, so `test` and `run` reuse what `build` made. Each sets the
//! machine up for its own purpose only (`crate::setup`).
use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{self, tool};
use crate::setup::Purpose;

/// Where cargo puts things, from `cargo metadata` (honours CARGO_TARGET_DIR
/// and `build.target-dir`).
pub struct Workspace {
    pub root: PathBuf,
    target: PathBuf,
}

impl Workspace {
    pub fn find() -> Result<Self> {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let json = cmd::stdout(
            crate::cargo()
                .args([
                    "metadata",
                    "--format-version",
                    "1",
                    "--no-deps",
                    "--manifest-path",
                ])
                .arg(&manifest),
            "run `cargo metadata --no-deps` by hand to see why",
        )?;
        let field = |key| {
            json_string_field(&json, key)
                .map(PathBuf::from)
                .with_context(|| format!("`cargo metadata` output has no {key}"))
        };
        Ok(Self {
            root: field("workspace_root")?,
            target: field("target_directory")?,
        })
    }

    pub fn agentmon(&self) -> PathBuf {
        self.target.join("release/agentmon")
    }

    pub fn target(&self) -> &std::path::Path {
        &self.target
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

/// The value of the first `"key":"..."` in compact JSON such as cargo's.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c), // \" \\ \/
            },
            c => out.push(c),
        }
    }
}

fn phase(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    f()?;
    println!("{name} done in {}", crate::secs(start));
    Ok(())
}

/// Setup for `purposes`, then a release build of the daemon and the test
/// helpers. (One build for every purpose: building the daemon alone would
/// unify features differently and rebuild it when the tests run.)
pub fn build(purposes: &[Purpose]) -> Result<Workspace> {
    phase("setup", || crate::setup::setup(purposes))?;
    let ws = Workspace::find()?;
    println!(
        "cargo build: agentmon (with its kernel programs) and the test helpers, release; \
         the first build takes minutes, later ones seconds ..."
    );
    phase("cargo build", || {
        cmd::run(
            crate::cargo().current_dir(&ws.root).args([
                "build",
                "--release",
                "-p",
                "monitor",
                "-p",
                "agentmon-tests",
                "--bins",
            ]),
            "see the compiler output above",
        )
    })?;
    Ok(ws)
}

/// Builds, then replaces this process with `agentmon run ARGS` as root.
pub fn run(args: &[OsString]) -> Result<()> {
    let ws = build(&[Purpose::Run])?;
    let bin = ws.agentmon();
    let mut command = if cmd::is_root() {
        tool(&bin)
    } else if cmd::which("sudo").is_some() {
        let mut c = tool("sudo");
        c.arg("-E").arg(&bin);
        c
    } else {
        bail!("agentmon needs root and there is no sudo here; run `cargo xtask run` as root");
    };
    command.arg("run").args(args);
    println!("starting {} run", bin.display());
    let err = command.exec();
    Err(err).with_context(|| format!("cannot start {}", bin.display()))
}

/// Builds, then runs the whole suite serially (root tests share the kernel's
/// tracepoints). Extra args go to the test binaries (e.g. a name filter).
/// The Debian package is built first (unless up to date) for the tests that
/// install it; they find it in AGENTMON_DEB. So are the rustls clients on
/// aws-lc (static, and an add-on) and the client on vendored OpenSSL, in
/// AGENTMON_AWSLC_SAMPLES.
pub fn test(args: &[OsString]) -> Result<()> {
    let ws = build(&[Purpose::Test, Purpose::Package])?;
    let mut deb = None;
    phase("deb", || {
        deb = Some(crate::package::build_deb(&ws)?);
        Ok(())
    })?;
    let mut samples = None;
    phase("clients", || {
        samples = Some(crate::clients::rustls_awslc(&ws)?);
        crate::clients::rustls_awslc_addon(&ws)?;
        crate::clients::openssl_vendored(&ws)?;
        Ok(())
    })?;
    phase("cargo test", || {
        crate::testcount::run(
            crate::cargo()
                .current_dir(&ws.root)
                .args(["test", "--release", "--workspace", "--no-fail-fast"])
                // Only monitor/build.rs builds the kernel crate, for the bpf target.
                .args(["--exclude", "monitor-ebpf"])
                .args(["--", "--test-threads=1"])
                .args(args)
                .env("AGENTMON_BIN", ws.agentmon())
                .envs(deb.as_ref().map(|d| ("AGENTMON_DEB", d)))
                .envs(samples.as_ref().map(|d| ("AGENTMON_AWSLC_SAMPLES", d))),
            "tests failed, see above",
        )
    })?;
    // A short run of every fuzz target from its seeds: a parser that
    // panics on what it was given before fails the suite.
    phase("fuzz", || {
        let short = crate::fuzz::FuzzArgs {
            secs: SHORT_FUZZ_SECS,
            targets: Vec::new(),
        };
        crate::fuzz::fuzz(&ws.root, &short)
    })
}

/// Seconds per fuzz target in `cargo xtask test`.
const SHORT_FUZZ_SECS: u64 = 15;

#[cfg(test)]
mod tests {
    use super::json_string_field;

    #[test]
    fn reads_string_fields() {
        let json =
            r#"{"packages":[],"target_directory":"/w/t \"x\"\\y\u00e9","workspace_root":"/w"}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/w/t \"x\"\\y\u{e9}")
        );
        assert_eq!(
            json_string_field(json, "workspace_root").as_deref(),
            Some("/w")
        );
        assert_eq!(json_string_field(json, "missing"), None);
    }
}

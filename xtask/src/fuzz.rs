//! `cargo xtask fuzz [--secs N] [TARGET ...]`: runs the `cargo fuzz`
//! targets in fuzz/ (libFuzzer, the nightly toolchain), each for N seconds,
//! from the committed seed corpus, and says how many inputs each ran.
//! A crash stops the run with libFuzzer's report and the input's file.
//! `cargo xtask test` runs every target for a few seconds.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    cmd,
    setup::{Purpose, Step},
};

/// Every target, in fuzz/fuzz_targets/.
pub const TARGETS: &[&str] = &[
    "dns",
    "client_hello",
    "tls_records",
    "http1",
    "h2",
    "procfs",
    "elf_scan",
    "config",
    "connlog",
    "exposition",
];

/// The cargo-fuzz release installed when missing.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub secs: u64,
    /// Targets to run [default: all of them].
    pub targets: Vec<String>,
}

pub fn fuzz(root: &Path, args: &FuzzArgs) -> Result<()> {
    for t in &args.targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!(
                "no fuzz target {t:?}; the targets are {}",
                TARGETS.join(", ")
            );
        }
    }
    crate::setup::cargo_tool(
        &Step::of("fuzz", "cargo-fuzz", &[Purpose::Test]),
        "cargo-fuzz",
        "fuzz",
        CARGO_FUZZ_VERSION,
    )?;
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        args.targets.iter().map(String::as_str).collect()
    };
    let start = Instant::now();
    println!(
        "fuzz: building the targets with libFuzzer and AddressSanitizer, minutes the first time ..."
    );
    cmd::run_quiet(
        // All of them: they share the parsers' build, each is small.
        fuzz_cargo(root).arg("build"),
        "run `cd fuzz && AYA_BUILD_SKIP=1 cargo +nightly fuzz build` to see why",
    )?;
    println!("fuzz: built in {}", crate::secs(start));
    for target in targets {
        run(root, target, args.secs)?;
    }
    Ok(())
}

/// `cargo +nightly fuzz` in fuzz/, without the kernel object (the
/// parsers need none).
fn fuzz_cargo(root: &Path) -> std::process::Command {
    let mut cmd = cmd::tool("cargo");
    cmd.current_dir(root.join("fuzz"))
        .args(["+nightly", "fuzz"])
        .env("AYA_BUILD_SKIP", "1")
        .env("CARGO_BUILD_JOBS", "2");
    cmd
}

/// Runs one target; new inputs go to target/fuzz-corpus/, not the tree.
fn run(root: &Path, target: &str, secs: u64) -> Result<()> {
    let seeds = root.join("fuzz/corpus").join(target);
    let work: PathBuf = root.join("target/fuzz-corpus").join(target);
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let start = Instant::now();
    let out = cmd::output(
        fuzz_cargo(root)
            .args(["run", target])
            .arg(&work)
            .arg(&seeds)
            .args(["--", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .arg(format!("-max_total_time={secs}")),
    )
    .context("cannot run `cargo +nightly fuzz`")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("{stderr}");
        bail!(
            "fuzz target {target} failed (above: libFuzzer's report and the input that crashed it)"
        );
    }
    let runs = stat(&stderr, "stat::number_of_executed_units:").unwrap_or(0);
    println!(
        "fuzz: {target:<13} {runs} inputs in {}, no crash",
        crate::secs(start)
    );
    Ok(())
}

/// A number from libFuzzer's final stats (`-print_final_stats=1`).
fn stat(stderr: &str, key: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    /// git keeps no empty folder, and libFuzzer stops at a missing one.
    #[test]
    fn every_target_has_a_committed_seed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for target in super::TARGETS {
            let seeds = root.join("fuzz/corpus").join(target);
            let n = std::fs::read_dir(&seeds).map_or(0, Iterator::count);
            assert!(n > 0, "no seed in {}", seeds.display());
        }
    }

    #[test]
    fn reads_libfuzzers_final_stats() {
        let text =
            "#1000 DONE cov: 12\nstat::number_of_executed_units: 123456\nstat::peak_rss_mb: 80\n";
        assert_eq!(
            super::stat(text, "stat::number_of_executed_units:"),
            Some(123_456)
        );
        assert_eq!(super::stat(text, "stat::missing:"), None);
    }
}

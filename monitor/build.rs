//! Builds the kernel programs (monitor-ebpf) with the nightly toolchain and
//! bpf-linker; the daemon embeds the object. `AYA_BUILD_SKIP=1` skips it.
//! Also sets `AGENTMON_REVISION`, the git revision of the checkout
//! (`agentmon_build_info{revision}`), or `unknown` outside one.
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    revision();
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if std::env::var_os("AYA_BUILD_SKIP").is_some() {
        // The parsers alone (`cargo xtask fuzz`): an empty object, which
        // the kernel loader refuses, so that the crate compiles.
        let out = Path::new(&std::env::var("OUT_DIR")?).join("monitor");
        if !out.exists() {
            std::fs::write(&out, [])?;
        }
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("monitor has no parent folder")?
        .join("monitor-ebpf");
    let root = root.to_str().context("workspace path is not UTF-8")?;
    aya_build::build_ebpf(
        [Package {
            name: "monitor-ebpf",
            root_dir: root,
            no_default_features: false,
            features: &[],
        }],
        Toolchain::default(),
    )
    .context("building the kernel programs (monitor-ebpf) failed; `cargo xtask setup` installs the nightly rust-src and bpf-linker they need")
}

/// `git rev-parse --short=12 HEAD`, rerun only when HEAD moves: when it
/// names another branch, or the branch gets a commit (its ref file, or
/// packed-refs once `git gc` packed it). Git's own paths, so that a linked
/// worktree (HEAD in its own folder, refs in the shared one) works too.
fn revision() {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let revision = git(&["rev-parse", "--short=12", "HEAD"]);
    println!(
        "cargo:rustc-env=AGENTMON_REVISION={}",
        revision.as_deref().unwrap_or("unknown")
    );
    if revision.is_none() {
        return;
    }
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // A path that does not exist would rerun the script on every build.
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

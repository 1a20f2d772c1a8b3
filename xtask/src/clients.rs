//! Test clients built outside the workspace: `tests/clients/rustls_awslc`,
//! rustls on aws-lc, static for musl, as Codex's release is built.

use std::{fs, path::PathBuf};

use anyhow::{Context, Result};

use crate::{cmd, setup::MUSL, tasks::Workspace};

/// Builds the client and puts it, and a stripped copy, in a folder of its
/// own: `rustls_awslc_client` (its symbols tell the tests where aws-lc's
/// functions are) and `rustls_awslc_client.stripped` (what ships).
pub fn rustls_awslc(ws: &Workspace) -> Result<PathBuf> {
    let manifest = ws.root().join("tests/clients/rustls_awslc/Cargo.toml");
    let target = ws.target().join("clients");
    println!("cargo build: the static rustls client on aws-lc (musl); minutes the first time ...");
    cmd::run(
        crate::cargo()
            .args(["build", "--release", "--locked", "--target", MUSL])
            .args([
                "--manifest-path".as_ref(),
                manifest.as_os_str(),
                "--target-dir".as_ref(),
                target.as_os_str(),
            ]),
        "see the compiler output above",
    )?;
    let built = target.join(MUSL).join("release/rustls_awslc_client");
    let dir = target.join("samples");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let copy = dir.join("rustls_awslc_client");
    fs::copy(&built, &copy)
        .with_context(|| format!("cannot copy {} to {}", built.display(), copy.display()))?;
    cmd::run_quiet(
        cmd::tool("strip")
            .arg("-o")
            .arg(dir.join("rustls_awslc_client.stripped"))
            .arg(&copy),
        "install binutils (strip)",
    )?;
    Ok(dir)
}

//! Test clients built outside the workspace: `tests/clients/rustls_awslc`,
//! rustls on aws-lc, static for musl, as Codex's release is built, and as
//! a native add-on whose aws-lc clang compiled, as Copilot CLI's
//! `runtime.node`; `tests/clients/openssl_vendored`, the openssl crate's
//! vendored OpenSSL 3, static for musl, as Codex links it too.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{cmd, setup::MUSL, tasks::Workspace};

/// Builds the client and puts it, and a stripped copy, in a folder of its
/// own: `rustls_awslc_client` (its symbols tell the tests where aws-lc's
/// functions are) and `rustls_awslc_client.stripped` (what ships).
pub fn rustls_awslc(ws: &Workspace) -> Result<PathBuf> {
    println!("cargo build: the static rustls client on aws-lc (musl); minutes the first time ...");
    let built = build(ws, RUSTLS, MUSL, "--bin=rustls_awslc_client", None)?;
    sample(
        ws,
        &built.join("rustls_awslc_client"),
        "rustls_awslc_client",
    )
}

/// The same client as a shared library (`addon.rs`), for glibc, aws-lc
/// compiled by clang, which shares one error call among a function's
/// errors and inlines `EVP_AEAD_CTX_open_gather`: into the samples as
/// `rustls_awslc_addon.node` and its stripped copy.
pub fn rustls_awslc_addon(ws: &Workspace) -> Result<PathBuf> {
    println!("cargo build: the rustls add-on on aws-lc (clang); a minute the first time ...");
    let built = build(ws, RUSTLS, GNU, "--lib", Some("clang"))?;
    let addon = built.join("librustls_awslc_addon.so");
    sample(ws, &addon, "rustls_awslc_addon.node")
}

/// The openssl crate's vendored OpenSSL (openssl-src builds it with the
/// machine's perl and make), static for musl, into the samples as
/// `openssl_vendored_client` and its stripped copy.
pub fn openssl_vendored(ws: &Workspace) -> Result<PathBuf> {
    println!(
        "cargo build: the static client on vendored OpenSSL (musl); minutes the first time ..."
    );
    let built = build(ws, "openssl_vendored", MUSL, "--bins", None)?;
    let client = built.join("openssl_vendored_client");
    sample(ws, &client, "openssl_vendored_client")
}

const RUSTLS: &str = "rustls_awslc";
const GNU: &str = "x86_64-unknown-linux-gnu";

/// Builds `what` of the client crate in `tests/clients/<dir>` for
/// `triple`, its C code by `cc` (else the cc crate's default); the folder
/// it is in.
fn build(ws: &Workspace, dir: &str, triple: &str, what: &str, cc: Option<&str>) -> Result<PathBuf> {
    let manifest = ws.root().join("tests/clients").join(dir).join("Cargo.toml");
    let target = ws.target().join("clients");
    let mut cargo = crate::cargo();
    cargo
        .args(["build", "--release", "--locked", what, "--target", triple])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target);
    if let Some(cc) = cc {
        cargo.env(format!("CC_{}", triple.replace('-', "_")), cc);
    }
    cmd::run(
        &mut cargo,
        "see the compiler output above (clang and musl-gcc are Debian packages the set-up installs; perl and make come with the machine)",
    )?;
    Ok(target.join(triple).join("release"))
}

/// Copies `built` into the samples folder as `name` (its symbols tell the
/// tests where aws-lc's functions are) and `name.stripped` (what ships).
fn sample(ws: &Workspace, built: &Path, name: &str) -> Result<PathBuf> {
    let dir = &ws.target().join("clients/samples");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let copy = dir.join(name);
    fs::copy(built, &copy)
        .with_context(|| format!("cannot copy {} to {}", built.display(), copy.display()))?;
    cmd::run_quiet(
        cmd::tool("strip")
            .arg("-o")
            .arg(dir.join(format!("{name}.stripped")))
            .arg(&copy),
        "install binutils (strip)",
    )?;
    Ok(dir.to_owned())
}

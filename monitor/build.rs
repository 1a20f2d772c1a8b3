//! Builds the kernel programs (monitor-ebpf) with the nightly toolchain and
//! bpf-linker; the daemon embeds the object. `AYA_BUILD_SKIP=1` skips it.
use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
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

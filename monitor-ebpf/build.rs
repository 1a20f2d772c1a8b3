//! Rebuild the kernel programs when bpf-linker changes (aya template habit):
//! cargo cannot see the linker otherwise.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}

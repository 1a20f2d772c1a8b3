//! Executables agentmon scans for TLS probe points: any user can put one
//! on disk and run it as an agent. Bun's BoringSSL by byte patterns,
//! stripped static OpenSSL and aws-lc by their strings, Go by `.gopclntab`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::uprobes::{awslc, boringssl, golang, openssl_stripped};

fuzz_target!(|data: &[u8]| {
    let _ = boringssl::looks_like_bun(data);
    let _ = boringssl::locate(data);
    let _ = openssl_stripped::locate(data);
    let _ = awslc::locate(data);
    let _ = golang::locate(data);
});

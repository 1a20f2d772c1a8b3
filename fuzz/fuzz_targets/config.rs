//! The config file, its policy included: a bad one must be one error with
//! its place, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = monitor::config::parse(text, Path::new("fuzz.toml"));
    }
});

//! The rustls client as a native add-on: a program loads it at run time
//! (`tests/internet/addon_loader.c`, as node loads Copilot CLI's
//! `runtime.node`) and calls `addon_main` with the client's arguments
//! after the add-on's own path.

use std::ffi::{CStr, c_char, c_int};

#[allow(dead_code)] // its `main` is the executable's
#[path = "../../src/bin/rustls_client.rs"]
mod client;

/// # Safety
/// `argv` holds `argc` NUL-terminated strings, as `main`'s does.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn addon_main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args = (1..argc.max(0) as usize)
        // SAFETY: the caller's promise above.
        .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) })
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    c_int::from(client::run(args))
}

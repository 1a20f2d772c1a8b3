//! The first bytes an agent sends on a TCP connection: a TLS ClientHello
//! (SNI, ALPN) or anything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::dest::client_hello;

fuzz_target!(|data: &[u8]| {
    if client_hello::is_tls_client_hello(data) {
        let _ = client_hello::parse_client_hello(data);
    }
    // Also without the cheap check in front.
    let _ = client_hello::parse_client_hello(data);
});

//! DNS answers as agents receive them: one UDP message, a TCP stream of
//! length-prefixed messages, one TCP read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::dest::dns;

fuzz_target!(|data: &[u8]| {
    let _ = dns::parse_response(data);
    let _ = dns::parse_tcp(data);
    let _ = dns::parse_tcp_read(data);
});

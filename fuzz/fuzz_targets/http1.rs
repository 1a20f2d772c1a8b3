//! An HTTP/1 request head as an agent writes it (plain, or to a probed TLS
//! library).
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::dest::http;

fuzz_target!(|data: &[u8]| {
    let _ = http::parse_request(data);
});

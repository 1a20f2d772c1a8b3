//! What agentmon reads from /proc about processes other users own: stat,
//! status, cmdline, environ, and the listening-socket tables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::procfs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = procfs::parse_stat(&text);
    let _ = procfs::parse_status_uid(&text);
    let _ = procfs::parse_listening(&text);
    let _ = procfs::parse_cmdline(data);
    let names = ["ANTHROPIC_BASE_URL".to_owned(), "NODE_OPTIONS".to_owned()];
    let _ = procfs::parse_environ(data, &names);
});

//! agentmon's kernel programs.
//!
//! They watch the process trees of AI coding agents and count every byte
//! those processes move over TCP and UDP. Design rules:
//! - a process that is not tracked costs one `TRACKED` lookup per hook;
//! - bytes are counted in maps and read at scrape time; the ring buffer only
//!   carries discrete events (exec, fork, exit, connection open/close, new
//!   UDP peer);
//! - every program fails open: it never changes what the traced process sees.
#![no_std]
#![no_main]
// The BPF target has no compare-and-swap, so core offers no AtomicU64::fetch_add;
// the intrinsic lowers to the BPF atomic add instruction.
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "atomic add intrinsic, see above")]

mod maps;
mod payload;
mod process;
mod sockets;
mod tcp;
mod tls;
mod udp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

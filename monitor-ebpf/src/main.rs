//! agentmon's kernel programs.
//!
//! They watch the process trees of AI coding agents and count every byte
//! those processes move over TCP and UDP. Design rules:
//! - nothing runs per syscall: byte counts come from the packets of the
//!   sockets tracked processes create, and a packet of any other socket
//!   costs one socket-storage lookup that finds nothing;
//! - bytes are counted in maps and read at scrape time; the ring buffer only
//!   carries discrete events (exec, fork, exit, connection open/close, new
//!   UDP peer, first bytes);
//! - every program fails open: it never changes what the traced process sees.
#![no_std]
#![no_main]
// The BPF target has no compare-and-swap, so core offers no AtomicU64::fetch_add;
// the intrinsic lowers to the BPF atomic add instruction.
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "atomic add intrinsic, see above")]

mod aead;
mod go_tls;
mod maps;
mod owner;
mod packets;
mod payload;
mod policy;
mod process;
mod records;
mod sockops;
mod tcp;
mod tls_calls;
mod udp;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

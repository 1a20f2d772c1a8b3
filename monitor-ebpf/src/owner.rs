//! Which sockets are tracked: the owner of every socket a tracked process
//! creates, kept in the socket itself.

use aya_ebpf::{macros::cgroup_sock, programs::SockContext};
use monitor_common::{
    AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, SockOwner, counter, sock_status,
};

use crate::maps::{SOCKS, bump, current_tgid, tracked};

/// Hook: cgroup `sock_create` on the cgroup2 root, run by socket() for every
/// AF_INET/AF_INET6 socket, in the creating process (so its tgid is known,
/// which no packet hook can tell before 6.10). A socket of a tracked process
/// gets its owner in socket storage; every other socket's packets then stop
/// at one failed lookup. Runs once per socket, never per byte. Allows all.
#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    mark(&ctx);
    1
}

#[inline(always)]
fn mark(ctx: &SockContext) {
    let Some(entry) = tracked(current_tgid()) else {
        return;
    };
    // SAFETY: the verifier checks every field access of bpf_sock.
    let (family, protocol) = unsafe { ((*ctx.sock).family, (*ctx.sock).protocol) };
    if family != u32::from(AF_INET) && family != u32::from(AF_INET6) {
        return;
    }
    if protocol != u32::from(IPPROTO_TCP) && protocol != u32::from(IPPROTO_UDP) {
        return;
    }
    let mut owner = SockOwner {
        tgid: current_tgid(),
        tool: entry.tool,
        proto: protocol as u8,
        status: sock_status::NEW,
        ..SockOwner::default()
    };
    if SOCKS.get(ctx.sock.cast(), Some(&mut owner)).is_null() {
        bump(counter::SOCKS_FULL);
    }
}

//! Egress policy enforcement: connect() and sendmsg() of a tracked process
//! whose tool's policy is enforced are refused (EPERM) when the address is
//! denied: a network of the policy (CIDR, or a country's or an ASN's
//! networks, expanded by the daemon), or an address the same process tree
//! resolved from a denied name.
//!
//! Attached to the cgroup2 root only while some tool's policy is enforced,
//! and never pinned: when agentmon stops (or dies) the links close and
//! everything is allowed again. An untracked process pays one `TRACKED`
//! lookup per connect() (or per sendmsg() with an address) meanwhile.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::cgroup_sock_addr,
    maps::lpm_trie::Key,
    programs::SockAddrContext,
};
use monitor_common::{
    AF_INET, AF_INET6, EventHeader, IPPROTO_TCP, IPPROTO_UDP, POLICY_ALL, PolicyBlockEvent,
    PolicyDeny, PolicyHost, PolicyNet, TOOL_PENDING, kind,
};

use crate::maps::{POLICY_HOSTS, POLICY_NETS, POLICY_TOOLS, emit, tracked};

const ALLOW: i32 = 1;
const REFUSE: i32 = 0;

#[cgroup_sock_addr(connect4)]
pub fn policy_connect4(ctx: SockAddrContext) -> i32 {
    judge(&ctx, false)
}

#[cgroup_sock_addr(connect6)]
pub fn policy_connect6(ctx: SockAddrContext) -> i32 {
    judge(&ctx, true)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn policy_sendmsg4(ctx: SockAddrContext) -> i32 {
    judge(&ctx, false)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn policy_sendmsg6(ctx: SockAddrContext) -> i32 {
    judge(&ctx, true)
}

#[inline(always)]
fn judge(ctx: &SockAddrContext, v6: bool) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let Some(t) = tracked(tgid) else {
        return ALLOW;
    };
    if t.tool == TOOL_PENDING {
        return ALLOW;
    }
    if POLICY_TOOLS.get(t.tool).is_none_or(|on| *on == 0) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    let mut addr = [0u8; 16];
    // SAFETY: checked context fields, read as the verifier allows (u32 loads).
    let (port, proto) = unsafe {
        if v6 {
            for (i, word) in (*sa).user_ip6.iter().enumerate() {
                addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
        } else {
            addr[10] = 0xff;
            addr[11] = 0xff;
            addr[12..].copy_from_slice(&(*sa).user_ip4.to_ne_bytes());
        }
        (u16::from_be((*sa).user_port as u16), (*sa).protocol)
    };
    let host = PolicyHost {
        root_tgid: t.root_tgid,
        addr,
    };
    // The tool's own networks, then those of the policy's `*` entry.
    let own = Key::new(32 + 128, PolicyNet { tool: t.tool, addr });
    let all = Key::new(
        32 + 128,
        PolicyNet {
            tool: POLICY_ALL,
            addr,
        },
    );
    // SAFETY: the value is copied out at once.
    let by_name = unsafe { POLICY_HOSTS.get(host).copied() };
    let deny = by_name
        .filter(|d| covers(d, port))
        .or_else(|| POLICY_NETS.get(&own).copied().filter(|d| covers(d, port)))
        .or_else(|| POLICY_NETS.get(&all).copied().filter(|d| covers(d, port)));
    let Some(deny) = deny else {
        return ALLOW;
    };
    emit(PolicyBlockEvent {
        header: EventHeader {
            kind: kind::POLICY_BLOCK,
            tgid,
            // SAFETY: no preconditions.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
        rule: deny.rule,
        family: if v6 { AF_INET6 } else { AF_INET },
        port,
        proto: if proto == u32::from(IPPROTO_UDP) {
            IPPROTO_UDP
        } else {
            IPPROTO_TCP
        },
        _pad: [0; 6],
        addr,
    });
    REFUSE
}

/// Whether a denial applies to remote `port` (no ports listed: every port).
#[inline(always)]
fn covers(deny: &PolicyDeny, port: u16) -> bool {
    let mut any = true;
    for p in deny.ports {
        if p != 0 {
            any = false;
            if p == port {
                return true;
            }
        }
    }
    any
}

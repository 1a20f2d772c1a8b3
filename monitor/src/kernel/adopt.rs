//! Sockets a tracked process already had when agentmon recognised it (it
//! ran before agentmon started, or it inherited them across the exec that
//! made it an agent). The kernel marks sockets when they are created, so
//! these carry no owner: user space puts one in place through a duplicate
//! of the process's descriptor (`pidfd_getfd`, Linux 5.6, needs
//! CAP_SYS_PTRACE), and their packets count from the next one on.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use monitor_common::{
    AF_INET, AF_INET6, Conn, IPPROTO_TCP, IPPROTO_UDP, SockOwner, TcpSeq, origin, sock_status,
};

use super::Kernel;

/// A TCP connection adopted: its key in `CONNS` and its first value.
pub struct Adopted {
    pub sock: u64,
    pub conn: Conn,
}

/// What adoption did for one process.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sockets: usize,
    /// Descriptors that could not be duplicated (permissions, a race).
    pub failed: usize,
}

/// Gives every unowned TCP and UDP socket of process `pid` the owner
/// (`pid`, `tool`). Connected TCP sockets become watched connections,
/// returned for the traffic table; listening and unconnected ones, and UDP
/// sockets, are watched from their first packet like new ones.
pub fn adopt(kernel: &mut Kernel, pid: u32, tool: u32, now_ns: u64) -> (Vec<Adopted>, Summary) {
    let mut out = Vec::new();
    let mut summary = Summary::default();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (out, summary);
    };
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(_) => return (out, summary),
    };
    for entry in entries.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        let Ok(sock) = pidfd_getfd(&pidfd, fd) else {
            summary.failed += 1;
            continue;
        };
        match adopt_one(kernel, &sock, pid, tool, now_ns) {
            Ok(Some(adopted)) => {
                summary.sockets += 1;
                out.push(adopted);
            }
            Ok(None) => {}
            Err(_) => summary.failed += 1,
        }
    }
    (out, summary)
}

fn adopt_one(
    kernel: &mut Kernel,
    sock: &OwnedFd,
    pid: u32,
    tool: u32,
    now_ns: u64,
) -> io::Result<Option<Adopted>> {
    let family = getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let proto = getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_PROTOCOL)?;
    if family != i32::from(AF_INET) && family != i32::from(AF_INET6) {
        return Ok(None);
    }
    if proto != i32::from(IPPROTO_TCP) && proto != i32::from(IPPROTO_UDP) {
        return Ok(None);
    }
    // Another tracked process holds it too and was here first.
    if kernel.socks.get(sock, 0).is_ok() {
        return Ok(None);
    }
    let cookie = getsockopt_u64(sock, libc::SOL_SOCKET, libc::SO_COOKIE)?;
    let mut owner = SockOwner {
        cookie,
        tgid: pid,
        tool,
        proto: proto as u8,
        status: sock_status::NEW,
        ..SockOwner::default()
    };
    let connected = proto == i32::from(IPPROTO_TCP)
        && getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0;
    let adopted = match (connected, peer(sock), local(sock)) {
        (true, Ok(remote), Ok(local)) => {
            let conn = conn_of(pid, tool, now_ns, remote, local);
            // The connection first, then the owner that points to it.
            kernel
                .conns
                .insert(cookie, conn, 0)
                .map_err(io::Error::other)?;
            owner.status = sock_status::ADOPTED;
            Some(Adopted { sock: cookie, conn })
        }
        _ => None,
    };
    kernel
        .socks
        .insert(sock, owner, 0)
        .map_err(io::Error::other)?;
    Ok(adopted)
}

fn conn_of(pid: u32, tool: u32, now_ns: u64, remote: SocketAddr, local: SocketAddr) -> Conn {
    let (family, raddr, laddr) = match (remote.ip(), local.ip()) {
        (IpAddr::V4(r), IpAddr::V4(l)) => (AF_INET, pad(&r.octets()), pad(&l.octets())),
        (r, l) => (AF_INET6, v6(r), v6(l)),
    };
    Conn {
        tgid: pid,
        tool,
        start_ns: now_ns,
        raddr,
        laddr,
        rport: remote.port(),
        lport: local.port(),
        family,
        origin: origin::FIRST_USE,
        seq: TcpSeq {
            tx_fin: u64::MAX,
            rx_fin: u64::MAX,
            ..TcpSeq::default()
        },
        ..Conn::default()
    }
}

fn pad(octets: &[u8; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(octets);
    out
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall; the result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn pidfd_getfd(pidfd: &OwnedFd, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: as above.
    let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(dup as RawFd) })
}

fn getsockopt_int(sock: &OwnedFd, level: i32, name: i32) -> io::Result<i32> {
    getsockopt::<libc::c_int>(sock, level, name)
}

fn getsockopt_u64(sock: &OwnedFd, level: i32, name: i32) -> io::Result<u64> {
    getsockopt::<u64>(sock, level, name)
}

/// A socket option that is a plain integer of type `T`.
fn getsockopt<T: Default>(sock: &OwnedFd, level: i32, name: i32) -> io::Result<T> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: value and len describe a T we own; T is a plain integer.
    let ret = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

fn peer(sock: &OwnedFd) -> io::Result<SocketAddr> {
    name_of(sock, libc::getpeername)
}

fn local(sock: &OwnedFd) -> io::Result<SocketAddr> {
    name_of(sock, libc::getsockname)
}

type NameFn =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

fn name_of(sock: &OwnedFd, f: NameFn) -> io::Result<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is valid; the kernel fills it.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len describe our buffer.
    if unsafe { f(sock.as_raw_fd(), (&raw mut storage).cast(), &mut len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sin: libc::sockaddr_in = unsafe { *(&raw const storage).cast() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Ok(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { *(&raw const storage).cast() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
        _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
    }
}

//! Joining a network namespace from this process: on a thread, for a client
//! socket, or in a child before it execs. Unlike `ip netns exec`, neither
//! remounts /sys, so a daemon started this way still finds tracefs and
//! cgroup2 where the host mounted them.

use std::{
    fs::File,
    io,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::PathBuf,
    process::Command,
    thread,
};

/// Where `ip netns add NAME` keeps the namespace.
fn netns_file(ns: &str) -> File {
    let path = PathBuf::from("/run/netns").join(ns);
    File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

/// Runs `f` on a thread that joined network namespace `ns`, so the sockets
/// it opens live there. Panics if the namespace cannot be joined; a panic in
/// `f` is passed on.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let file = netns_file(ns);
    thread::scope(|s| {
        let joined = s.spawn(move || {
            // SAFETY: setns on a descriptor we own; it affects this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!("setns into {ns}: {}", io::Error::last_os_error());
            }
            f()
        });
        joined
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Makes the child of `cmd` join network namespace `ns` before it execs.
pub fn spawn_in_netns(cmd: &mut Command, ns: &str) {
    let file = netns_file(ns);
    // SAFETY: the hook runs between fork and exec and only calls setns, which
    // is async-signal-safe. The closure owns the file, so the descriptor is
    // open until the command is dropped.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

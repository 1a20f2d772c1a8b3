//! A two-host test network: a "client" and a "remote" network namespace joined
//! by a veth pair, with documentation addresses only, so test traffic never
//! leaves the machine. Built with iproute2's `ip`; torn down on drop.

use std::{
    ffi::OsStr,
    fs,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::Duration,
};

use crate::{
    process::{TempDir, describe},
    wait_until,
};

/// The client namespace's address on the veth (203.0.113.1/24).
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The client namespace's IPv6 address on the veth (2001:db8::1/64).
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The remote namespace's address on the veth (203.0.113.10/24).
pub const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The remote namespace's IPv6 address on the veth (2001:db8::10/64).
pub const REMOTE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// The port [`NetLab::spawn_servers`] serves TCP on.
pub const TCP_PORT: u16 = 7000;
/// The port [`NetLab::spawn_servers`] serves UDP on.
pub const UDP_PORT: u16 = 7001;
pub const REMOTE_TCP_V4: SocketAddr = SocketAddr::V4(SocketAddrV4::new(REMOTE_V4, TCP_PORT));
pub const REMOTE_TCP_V6: SocketAddr = SocketAddr::V6(SocketAddrV6::new(REMOTE_V6, TCP_PORT, 0, 0));
pub const REMOTE_UDP_V4: SocketAddr = SocketAddr::V4(SocketAddrV4::new(REMOTE_V4, UDP_PORT));
pub const REMOTE_UDP_V6: SocketAddr = SocketAddr::V6(SocketAddrV6::new(REMOTE_V6, UDP_PORT, 0, 0));

/// Veth ends, named inside their own namespaces (they never exist in the
/// initial one, so concurrent labs cannot clash on them).
const CLIENT_IF: &str = "am-c";
const REMOTE_IF: &str = "am-r";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Two network namespaces, `am-<pid>-<n>-c` (client) and `am-<pid>-<n>-r`
/// (remote), joined by a veth pair and with loopback up in both. On drop, every
/// process still inside them is killed and both are deleted.
#[derive(Debug)]
pub struct NetLab {
    client: String,
    remote: String,
    dir: TempDir,
}

impl NetLab {
    #[expect(
        clippy::new_without_default,
        reason = "creating namespaces is not a default value"
    )]
    /// Builds the lab; panics with the reason if `ip` is missing, this process is
    /// not root, or a step fails (whatever was built is removed again).
    pub fn new() -> Self {
        if !crate::is_root() {
            panic!("NetLab needs root (network namespaces and veth pairs); run the test as root");
        }
        match Command::new("ip").arg("-V").output() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!(
                    "NetLab needs `ip` from iproute2, which is not on PATH (apt-get install iproute2)"
                )
            }
            Err(e) => panic!("NetLab: cannot run `ip`: {e}"),
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = format!(
            "am-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (client, remote) = (format!("{base}-c"), format!("{base}-r"));
        // A namespace left by a crashed run whose pid was the same.
        for ns in [&client, &remote] {
            let _ = quiet_ip(&["netns", "del", ns]);
        }
        // From here on, a failing step panics and Drop removes what exists.
        let lab = NetLab {
            client,
            remote,
            dir: TempDir::new("netlab"),
        };
        let (c, r) = (lab.client.as_str(), lab.remote.as_str());
        ip(&["netns", "add", c]);
        ip(&["netns", "add", r]);
        ip(&[
            "-n", c, "link", "add", CLIENT_IF, "type", "veth", "peer", "name", REMOTE_IF, "netns",
            r,
        ]);
        for (ns, dev, v4, v6) in [
            (c, CLIENT_IF, CLIENT_V4, CLIENT_V6),
            (r, REMOTE_IF, REMOTE_V4, REMOTE_V6),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            // nodad: usable at once, instead of "tentative" for a second or two.
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        for (ns, dev) in [(c, CLIENT_IF), (r, REMOTE_IF)] {
            let up = wait_until(Duration::from_secs(5), || {
                quiet_ip(&["-n", ns, "link", "show", dev])
                    .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains("LOWER_UP"))
            });
            assert!(up, "NetLab: {dev} in {ns} did not come up within 5 s");
        }
        lab
    }

    /// The client namespace's name.
    /// Sets the veth pair's MTU at both ends (9000: jumbo frames, more
    /// bytes per packet).
    pub fn set_mtu(&self, mtu: u32) {
        let mtu = mtu.to_string();
        ip(&["-n", &self.client, "link", "set", CLIENT_IF, "mtu", &mtu]);
        ip(&["-n", &self.remote, "link", "set", REMOTE_IF, "mtu", &mtu]);
    }

    pub fn client_ns(&self) -> &str {
        &self.client
    }

    /// The remote namespace's name.
    pub fn remote_ns(&self) -> &str {
        &self.remote
    }

    /// A folder that lives as long as the lab (ready files, server logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ip netns exec <client-ns> program args...`: `ip` execs the program in
    /// place, so the spawned child's pid is the program's own.
    pub fn client_cmd<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        netns_cmd(&self.client, program.as_ref(), args)
    }

    /// `ip netns exec <remote-ns> program args...`.
    pub fn remote_cmd<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        netns_cmd(&self.remote, program.as_ref(), args)
    }

    /// Starts `netpeer serve` in the remote namespace, on TCP [`REMOTE_TCP_V4`] and
    /// [`REMOTE_TCP_V6`] and UDP [`REMOTE_UDP_V4`] and [`REMOTE_UDP_V6`], answering
    /// every TCP request and every datagram with `reply` bytes. Returns once all
    /// sockets are bound (at most 10 s; panics with the server's log otherwise).
    pub fn spawn_servers(&self, netpeer: &Path, reply: usize) -> ServerGuard {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let ready = self.dir().join(format!("servers-{n}.ready"));
        let log = self.dir().join(format!("servers-{n}.log"));
        let reply = reply.to_string();
        let (tcp4, tcp6, udp4, udp6) = (
            REMOTE_TCP_V4.to_string(),
            REMOTE_TCP_V6.to_string(),
            REMOTE_UDP_V4.to_string(),
            REMOTE_UDP_V6.to_string(),
        );
        let args: [&OsStr; 12] = [
            "serve".as_ref(),
            "--tcp".as_ref(),
            tcp4.as_ref(),
            "--tcp".as_ref(),
            tcp6.as_ref(),
            "--udp".as_ref(),
            udp4.as_ref(),
            "--udp".as_ref(),
            udp6.as_ref(),
            "--reply".as_ref(),
            reply.as_ref(),
            "--ready-file".as_ref(),
        ];
        let cmd = self.remote_cmd(netpeer, args.into_iter().chain([ready.as_os_str()]));
        self.spawn_remote("netpeer serve", cmd, &ready, &log)
    }

    /// Starts a server command made with [`NetLab::remote_cmd`], its output
    /// going to `log`, and waits (bounded) until it creates `ready`; panics
    /// with its log otherwise.
    pub fn spawn_remote(
        &self,
        what: &str,
        mut cmd: Command,
        ready: &Path,
        log: &Path,
    ) -> ServerGuard {
        let log_file =
            fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let log_err = log_file.try_clone().expect("clone log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", describe(&cmd)));
        let mut guard = ServerGuard {
            child,
            log: log.to_path_buf(),
        };
        let ready_in_time = wait_until(READY_TIMEOUT, || {
            ready.exists() || matches!(guard.child.try_wait(), Ok(Some(_)))
        });
        if !ready.exists() {
            let state = match guard.child.try_wait() {
                Ok(Some(status)) => format!("exited with {status}"),
                _ if !ready_in_time => format!("was not ready within {READY_TIMEOUT:?}"),
                _ => "failed".to_owned(),
            };
            panic!("{what} {state}; its log:\n{}", guard.log_text());
        }
        guard
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for ns in [&self.client, &self.remote] {
            // Anything a test started in the lab and did not stop.
            if let Some(out) = quiet_ip(&["netns", "pids", ns]) {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<libc::pid_t>() {
                        // SAFETY: kill has no memory-safety preconditions.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        // Deleting a namespace drops its veth end, and with it the peer.
        for ns in [&self.client, &self.remote] {
            if quiet_ip(&["netns", "del", ns]).is_none() {
                thread::sleep(Duration::from_millis(100));
                let _ = quiet_ip(&["netns", "del", ns]);
            }
        }
    }
}

/// The `netpeer serve` process of [`NetLab::spawn_servers`]; killed on drop,
/// and its log printed if the test is failing.
#[derive(Debug)]
pub struct ServerGuard {
    child: Child,
    log: PathBuf,
}

impl ServerGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the servers wrote so far (errors, and one line when ready).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- server log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

fn netns_cmd<I, S>(ns: &str, program: &OsStr, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program).args(args);
    cmd
}

/// Runs `ip args...`, panicking with its stderr on failure.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run ip {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "NetLab: `ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip args...`; its output if it succeeded.
pub(crate) fn quiet_ip(args: &[&str]) -> Option<Output> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
}

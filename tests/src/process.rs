//! Tidy processes and folders: everything here is killed or removed on drop.

use std::{
    env, fmt, fs,
    io::{self, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    sync::mpsc::{self, Receiver},
    thread,
    time::{Duration, Instant},
};

/// A fresh folder under the system temp dir, removed (with its content) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/agentmon-<prefix>-<pid>-<n>`; panics if it cannot.
    pub fn new(prefix: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path =
                env::temp_dir().join(format!("agentmon-{prefix}-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                // Left behind by an earlier process with the same pid.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create temp dir {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A child process that is killed (SIGKILL) and reaped on drop.
///
/// [`ChildGuard::spawn`] pipes stdout and stderr; read them with
/// [`ChildGuard::wait_output`].
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin from /dev/null and stdout/stderr piped.
    pub fn spawn(cmd: &mut Command) -> Self {
        let what = describe(cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        ChildGuard {
            child: Some(child),
            what,
        }
    }

    /// Guards an already spawned child.
    pub fn from_child(child: Child, what: impl Into<String>) -> Self {
        ChildGuard {
            child: Some(child),
            what: what.into(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child().id()
    }

    pub fn child(&self) -> &Child {
        self.child.as_ref().expect("child present until drop")
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Waits at most `timeout` for the child to exit and returns its status and
    /// everything it wrote. Panics, after killing it, if it does not exit in time.
    pub fn wait_output(mut self, timeout: Duration) -> Output {
        let mut child = self.child.take().expect("child present until drop");
        let stdout = child.stdout.take().map(reader);
        let stderr = child.stderr.take().map(reader);
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => break None,
                Err(e) => panic!("wait for {}: {e}", self.what),
            }
        };
        let status = status.unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (collect(&stdout), collect(&stderr));
            panic!(
                "{} did not finish within {timeout:?}; stdout:\n{}\nstderr:\n{}",
                self.what,
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            )
        });
        Output {
            status,
            stdout: collect(&stdout),
            stderr: collect(&stderr),
        }
    }

    /// Kills the child now and reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let _ = child.kill();
        child.wait().ok()
    }
}

impl fmt::Debug for ChildGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildGuard")
            .field("what", &self.what)
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a pipe to EOF on its own thread, so a chatty child never blocks on a
/// full pipe.
fn reader(mut pipe: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// What a reader got. Bounded: a grandchild that inherited the pipe and lives on
/// would otherwise keep it open, and the caller waiting, forever.
fn collect(rx: &Option<Receiver<Vec<u8>>>) -> Vec<u8> {
    rx.as_ref()
        .and_then(|rx| rx.recv_timeout(Duration::from_secs(5)).ok())
        .unwrap_or_default()
}

/// Runs `cmd` to completion, bounded by `timeout` (the child is killed and the
/// call panics past it), and returns its output whatever its exit status.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    ChildGuard::spawn(cmd).wait_output(timeout)
}

/// A command line, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// What a `netpeer tcp` or `netpeer udp` run reported: its
/// `sent=<bytes> received=<bytes>` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCounts {
    pub sent: u64,
    pub received: u64,
}

impl PeerCounts {
    /// Parses the last `sent=… received=…` line of `stdout`.
    pub fn parse(stdout: &str) -> Option<Self> {
        stdout.lines().rev().find_map(|line| {
            let mut sent = None;
            let mut received = None;
            for field in line.split_whitespace() {
                match field.split_once('=') {
                    Some(("sent", v)) => sent = v.parse().ok(),
                    Some(("received", v)) => received = v.parse().ok(),
                    _ => return None,
                }
            }
            Some(PeerCounts {
                sent: sent?,
                received: received?,
            })
        })
    }

    /// The counts of a netpeer run that must have succeeded; panics with the
    /// run's full output otherwise.
    pub fn from_output(output: &Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "netpeer failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        Self::parse(&stdout).unwrap_or_else(|| {
            panic!("no `sent= received=` line in netpeer's output:\n{stdout}\nstderr:\n{stderr}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_counts_parse() {
        assert_eq!(
            PeerCounts::parse("sent=100000 received=4321\n"),
            Some(PeerCounts {
                sent: 100000,
                received: 4321
            })
        );
        assert_eq!(
            PeerCounts::parse("noise\nsent=1 received=2"),
            Some(PeerCounts {
                sent: 1,
                received: 2
            })
        );
        assert_eq!(PeerCounts::parse("sent=1"), None);
        assert_eq!(PeerCounts::parse("sent=x received=2"), None);
    }

    #[test]
    fn run_bounded_collects_output() {
        let out = run_bounded(
            Command::new("sh").args(["-c", "echo hi; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"hi\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    #[should_panic(expected = "did not finish within")]
    fn run_bounded_kills_on_timeout() {
        run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(200));
    }

    #[test]
    fn temp_dir_is_removed_on_drop() {
        let dir = TempDir::new("unit");
        let path = dir.path().to_path_buf();
        fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}

//! The daemon under test: started with a private listen port, awaited until
//! healthy, scraped over plain HTTP, stopped on drop.

use std::{
    env,
    ffi::{OsStr, OsString},
    fs,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{
    curl::Curl,
    http::{HttpResponse, http_get},
    metrics::Metrics,
    netns::{in_netns, spawn_in_netns},
    process::{TempDir, describe},
};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The daemon binary: `$AGENTMON_BIN`, which `cargo xtask test` sets. Panics if
/// it is unset.
pub fn agentmon_bin() -> PathBuf {
    match env::var_os("AGENTMON_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "AGENTMON_BIN is not set: run the tests through `cargo xtask test`, which builds agentmon and \
             sets AGENTMON_BIN"
        ),
    }
}

/// Options for [`Agentmon`]; see [`Agentmon::builder`].
#[derive(Debug, Clone)]
pub struct AgentmonBuilder {
    bin: Option<PathBuf>,
    config: Option<PathBuf>,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    ready_timeout: Duration,
    listen: Option<SocketAddr>,
    netns: Option<String>,
    wrapper: Vec<OsString>,
    pin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    journal: bool,
    client: Option<Curl>,
}

impl AgentmonBuilder {
    /// Tells the daemon its stderr is the journal, as systemd does: with
    /// `JOURNAL_STREAM` naming the device and inode of its log file.
    pub fn as_journal(mut self) -> Self {
        self.journal = true;
        self
    }

    /// Runs the daemon through `wrapper` (a command and its arguments, the
    /// daemon's path and arguments following), e.g. `setpriv ...`.
    pub fn under<I, S>(mut self, wrapper: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = wrapper.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Listens on `addr` instead of a free port on 127.0.0.1.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Runs the daemon in network namespace `ns` (only the network one: the
    /// kernel hooks stay machine-wide), as one "host" of several. The guard
    /// reaches its listen address from inside `ns`.
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_owned());
        self
    }

    /// Runs this executable instead of `$AGENTMON_BIN` (for testing the guard
    /// itself against a stand-in).
    pub fn bin(mut self, path: impl AsRef<Path>) -> Self {
        self.bin = Some(path.as_ref().to_path_buf());
        self
    }

    /// Pins the kernel maps in `dir` (`--pin-dir`), which the caller removes;
    /// by default each daemon gets a fresh one, removed on drop.
    pub fn pin_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.pin_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Saves its state in `dir` (`--state-dir`); by default a fresh one.
    pub fn state_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.state_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Reaches the exporter with curl so (HTTPS, a password) rather than
    /// plain HTTP: for a daemon started with `--web.config.file`.
    pub fn client(mut self, client: Curl) -> Self {
        self.client = Some(client);
        self
    }

    /// Adds `--config PATH`.
    pub fn config(mut self, path: impl AsRef<Path>) -> Self {
        self.config = Some(path.as_ref().to_path_buf());
        self
    }

    /// Adds one argument after `run --listen ADDR [--config PATH]`.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments after `run --listen ADDR [--config PATH]`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the daemon (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// How long to wait for `/healthz` to answer 200 (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Starts `$AGENTMON_BIN run --listen 127.0.0.1:<free port> [--config PATH]
    /// [args...]` (or the [`AgentmonBuilder::listen`] address), its stdout and stderr going to a log file, and waits until
    /// `GET /healthz` answers 200. Panics, printing the daemon's log, if it exits
    /// or does not become healthy in time.
    pub fn start(self) -> Agentmon {
        let bin = self.bin.clone().unwrap_or_else(agentmon_bin);
        let addr = self
            .listen
            .unwrap_or_else(|| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port())));
        let dir = TempDir::new("daemon");
        let log = dir.path().join("agentmon.log");
        let log_file =
            fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let log_err = log_file.try_clone().expect("clone log file handle");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut c = Command::new(program);
                c.args(wrapper_args).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        if self.journal {
            cmd.env("JOURNAL_STREAM", journal_stream(&log_file));
        }
        cmd.arg("run").arg("--listen").arg(addr.to_string());
        // Each daemon counts afresh unless the test asks to resume: its own
        // pins and state, never the machine's.
        let own_pins = self.pin_dir.is_none();
        let pin_dir = self.pin_dir.clone().unwrap_or_else(fresh_pin_dir);
        let state_dir = self
            .state_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("state"));
        cmd.arg("--pin-dir").arg(&pin_dir);
        cmd.arg("--state-dir").arg(&state_dir);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        if let Some(ns) = &self.netns {
            spawn_in_netns(&mut cmd, ns);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", describe(&cmd)));
        // Guard first: if waiting panics, Drop stops the daemon and prints its log.
        let mut daemon = Agentmon {
            child: Some(child),
            addr,
            netns: self.netns.clone(),
            log,
            own_pins: own_pins.then_some(pin_dir),
            client: self.client.clone(),
            _dir: dir,
        };
        daemon.wait_healthy(self.ready_timeout, &describe(&cmd));
        daemon
    }
}

/// A running agentmon daemon. On drop it gets SIGTERM, then SIGKILL after 10 s;
/// if the test is panicking, its log is printed to stderr.
#[derive(Debug)]
pub struct Agentmon {
    child: Option<Child>,
    addr: SocketAddr,
    netns: Option<String>,
    log: PathBuf,
    /// The pin directory made for this daemon alone, removed on drop.
    own_pins: Option<PathBuf>,
    client: Option<Curl>,
    // Holds the log; declared last so it is removed after Drop printed the log.
    _dir: TempDir,
}

impl Agentmon {
    /// Starts the daemon with no config and no extra arguments.
    pub fn start() -> Self {
        Self::builder().start()
    }

    pub fn builder() -> AgentmonBuilder {
        AgentmonBuilder {
            bin: None,
            config: None,
            args: Vec::new(),
            envs: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            listen: None,
            netns: None,
            wrapper: Vec::new(),
            pin_dir: None,
            state_dir: None,
            journal: false,
            client: None,
        }
    }

    /// The address the exporter listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `GET path` on the exporter (from its network namespace, if it has one).
    pub fn get(&self, path: &str) -> std::io::Result<HttpResponse> {
        if let Some(client) = &self.client {
            return client.get(self.addr, path).map_err(std::io::Error::other);
        }
        match &self.netns {
            Some(ns) => in_netns(ns, || http_get(self.addr, path, HTTP_TIMEOUT)),
            None => http_get(self.addr, path, HTTP_TIMEOUT),
        }
    }

    /// Scrapes and parses `/metrics`; panics if the scrape fails, is not a 200,
    /// or does not parse.
    pub fn scrape(&self) -> Metrics {
        let response = self
            .get("/metrics")
            .unwrap_or_else(|e| panic!("GET http://{}/metrics: {e}", self.addr));
        assert_eq!(
            response.status, 200,
            "GET /metrics answered {}: {}",
            response.status, response.body
        );
        Metrics::parse(&response.body)
            .unwrap_or_else(|e| panic!("{e}; the scrape:\n{}", response.body))
    }

    /// Scrapes until `value(name, labels)` exists and satisfies `accept`, for at
    /// most `timeout`. `Ok(value)` when it did; otherwise `Err` with the last
    /// scrape, for the assertion message.
    pub fn wait_for_value(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
        accept: impl Fn(f64) -> bool,
    ) -> Result<f64, Metrics> {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.scrape();
            match metrics.value(name, labels) {
                Some(v) if accept(v) => return Ok(v),
                _ if Instant::now() >= deadline => return Err(metrics),
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Waits (up to 15 s) until `name{labels}` equals `want`, then returns
    /// the scrape; panics with the last value and the exposition otherwise.
    pub fn expect(&self, name: &str, labels: &[(&str, &str)], want: f64) -> Metrics {
        match self.wait_for_value(name, labels, Duration::from_secs(15), |v| v == want) {
            Ok(_) => self.scrape(),
            Err(last) => panic!(
                "{name}{labels:?}: want {want}, have {:?}\n{}",
                last.value(name, labels),
                last.text()
            ),
        }
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log.display()))
    }

    /// Sends SIGHUP, as `systemctl reload` and logrotate do.
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Stops the daemon (SIGSTOP): its kernel programs go on, their events
    /// wait in the ring buffer until [`Agentmon::resume`].
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| libc::pid_t::try_from(c.id()).ok())
            .expect("agentmon is running");
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // reaped yet, so the pid is still ours.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            sent,
            0,
            "kill -{signal} {pid}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after 10 s) and returns how it
    /// exited, for tests of a clean shutdown.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        terminate(&mut child, STOP_GRACE)
    }

    /// Kills the daemon with SIGKILL, as a crash or `kill -9` would: its
    /// pinned programs go on counting.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_healthy(&mut self, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{what} exited with {status} before /healthz answered");
            }
            if self.get("/healthz").is_ok_and(|r| r.status == 200) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: GET http://{}/healthz did not answer 200 within {timeout:?}",
                    self.addr
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agentmon {
    fn drop(&mut self) {
        self.stop();
        if let Some(pins) = &self.own_pins {
            // Unpinning detaches whatever a killed daemon left attached.
            let _ = fs::remove_dir_all(pins);
        }
        if thread::panicking() {
            eprintln!(
                "--- agentmon log ({}) ---\n{}--- end of agentmon log ---",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// `JOURNAL_STREAM`'s value for a stream: `<device>:<inode>`
/// (systemd.exec(5)).
pub fn journal_stream(file: &fs::File) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let meta = file.metadata().expect("stat the log file");
    format!("{}:{}", meta.dev(), meta.ino())
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; reaps the child.
fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the child is not reaped
        // yet, so the pid is still ours.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

/// A pin directory no other daemon uses, on bpffs (mounted if it is not).
fn fresh_pin_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    crate::ensure_bpffs();
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(remove_stale_pins);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!(
        "/sys/fs/bpf/agentmon-test-{}-{n}",
        std::process::id()
    ))
}

/// Removes the pins of test runs that were killed before they could: their
/// programs stay attached (and run for every packet) while pinned.
fn remove_stale_pins() {
    let Ok(entries) = fs::read_dir("/sys/fs/bpf") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("agentmon-test-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_prefers_sigterm() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let status = terminate(&mut child, Duration::from_secs(5)).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn terminate_falls_back_to_sigkill() {
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        thread::sleep(Duration::from_millis(200)); // let the trap be set
        let status = terminate(&mut child, Duration::from_millis(300)).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}

//! `netpeer`: the traffic tool of agentmon's integration tests.
//!
//! It plays both ends: the "remote" servers inside a test network namespace, and
//! the agent-like client whose traffic agentmon must attribute. Tests copy this
//! executable to agent-looking paths (`~/.local/share/claude/versions/9.9.9`), so
//! nothing here depends on argv[0].
//!
//! ```text
//! netpeer serve --tcp ADDR:PORT [--tcp ...] [--udp ADDR:PORT ...] --reply N --ready-file PATH
//! netpeer tcp --to ADDR:PORT --send N [--expect M] [--chunk K]
//!             [--hold-file PATH --send-after N2] [--children]
//!             [--fd N] [--hand-over PROGRAM ARGS...]
//! netpeer udp --to ADDR:PORT --count C --size S [--expect-size R] [--connected]
//! netpeer exec-child -- CMD ARGS...
//! ```
//!
//! Addresses are socket-address literals only (`203.0.113.10:7000`,
//! `[2001:db8::10]:7000`): no name resolution, so a test's traffic goes exactly
//! where the test says and nowhere else.

use std::{
    env,
    ffi::OsString,
    fs,
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    thread,
    time::{Duration, Instant},
};

/// How long the client waits for a hold file before giving up.
const HOLD_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on any single blocking read or write of the TCP client, so a broken test
/// cannot hang forever.
const TCP_IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the UDP client waits for each reply.
const UDP_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_CHUNK: usize = 16384;
/// Byte every payload is made of; the content does not matter, only the counts.
const FILL: u8 = b'x';

/// A failure: the message, and whether it was a usage error (exit 2) or a
/// failed exchange (exit 1).
struct Failure {
    usage: bool,
    message: String,
}

type Result<T> = std::result::Result<T, Failure>;

fn usage(message: impl Into<String>) -> Failure {
    Failure {
        usage: true,
        message: message.into(),
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        usage: false,
        message: message.into(),
    }
}

fn io_fail(what: &str, err: io::Error) -> Failure {
    fail(format!("{what}: {err}"))
}

fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let result = match args.first().and_then(|a| a.to_str()) {
        Some("tcp") => Tcp::parse(&args[1..]).and_then(Tcp::run),
        Some("udp") => Udp::parse(&args[1..]).and_then(Udp::run),
        Some("serve") => Serve::parse(&args[1..]).and_then(Serve::run),
        Some("exec-child") => exec_child(&args[1..]),
        Some(other) => Err(usage(format!("unknown subcommand {other:?}"))),
        None => Err(usage("missing subcommand")),
    };
    match result {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("netpeer: {}", failure.message);
            if failure.usage {
                eprintln!("usage: netpeer serve|tcp|udp|exec-child ... (see the source's header)");
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Hand-rolled flag reader: `--flag VALUE` pairs and bare switches.
struct Args<'a> {
    rest: std::slice::Iter<'a, OsString>,
}

impl<'a> Args<'a> {
    fn new(args: &'a [OsString]) -> Self {
        Args { rest: args.iter() }
    }

    fn next_flag(&mut self) -> Result<Option<&'a str>> {
        match self.rest.next() {
            None => Ok(None),
            Some(flag) => flag
                .to_str()
                .map(Some)
                .ok_or_else(|| usage(format!("unexpected argument {flag:?}"))),
        }
    }

    fn value(&mut self, flag: &str) -> Result<&'a OsString> {
        self.rest
            .next()
            .ok_or_else(|| usage(format!("{flag} needs a value")))
    }

    fn string(&mut self, flag: &str) -> Result<&'a str> {
        let value = self.value(flag)?;
        value
            .to_str()
            .ok_or_else(|| usage(format!("{flag}: not UTF-8: {value:?}")))
    }

    fn number(&mut self, flag: &str) -> Result<usize> {
        let value = self.string(flag)?;
        value
            .parse()
            .map_err(|_| usage(format!("{flag}: not a number: {value:?}")))
    }

    /// A socket-address literal; never a host name, so never a DNS query.
    fn addr(&mut self, flag: &str) -> Result<SocketAddr> {
        let value = self.string(flag)?;
        value.parse().map_err(|_| {
            usage(format!(
                "{flag}: not ADDR:PORT (IPv6 as [ADDR]:PORT): {value:?}"
            ))
        })
    }

    fn path(&mut self, flag: &str) -> Result<PathBuf> {
        Ok(PathBuf::from(self.value(flag)?))
    }
}

fn required<T>(value: Option<T>, flag: &str) -> Result<T> {
    value.ok_or_else(|| usage(format!("{flag} is required")))
}

// ---------------------------------------------------------------- tcp client

struct Tcp {
    to: SocketAddr,
    send: usize,
    expect: Option<usize>,
    chunk: usize,
    hold: Option<(PathBuf, usize)>,
    children: bool,
    /// Use this inherited, connected socket instead of connecting.
    fd: Option<i32>,
    /// After the first send, exec this program with the socket (and
    /// `--fd N` appended to its arguments): a socket passed across exec.
    hand_over: Option<Vec<OsString>>,
}

impl Tcp {
    fn parse(args: &[OsString]) -> Result<Self> {
        let mut a = Args::new(args);
        let (mut to, mut send, mut expect, mut chunk) = (None, None, None, DEFAULT_CHUNK);
        let (mut hold_file, mut send_after, mut children) = (None, None, false);
        let (mut fd, mut hand_over) = (None, None);
        while let Some(flag) = a.next_flag()? {
            match flag {
                "--fd" => fd = Some(a.number(flag)? as i32),
                "--hand-over" => {
                    hand_over = Some(a.rest.by_ref().cloned().collect::<Vec<_>>());
                }
                "--to" => to = Some(a.addr(flag)?),
                "--send" => send = Some(a.number(flag)?),
                "--expect" => expect = Some(a.number(flag)?),
                "--chunk" => chunk = a.number(flag)?,
                "--hold-file" => hold_file = Some(a.path(flag)?),
                "--send-after" => send_after = Some(a.number(flag)?),
                "--children" => children = true,
                other => return Err(usage(format!("tcp: unknown flag {other:?}"))),
            }
        }
        if chunk == 0 {
            return Err(usage("--chunk must be at least 1"));
        }
        let hold = match (hold_file, send_after) {
            (Some(path), Some(n)) => Some((path, n)),
            (None, None) => None,
            _ => return Err(usage("--hold-file and --send-after go together")),
        };
        Ok(Tcp {
            to: required(to, "--to")?,
            send: required(send, "--send")?,
            expect,
            chunk,
            hold,
            children,
            fd,
            hand_over,
        })
    }

    fn run(self) -> Result<ExitCode> {
        if self.children {
            // Fork without exec: the child keeps this image, comm and exe, which is
            // the case a process tracker must handle besides fork+exec (for that,
            // see `exec-child`).
            return fork_and_wait(|| self.exchange());
        }
        self.exchange()
    }

    fn exchange(&self) -> Result<ExitCode> {
        // Connect first, before anything else: tests check that a connection made
        // in the first instant of a process's life is attributed.
        let mut stream = match self.fd {
            // SAFETY: the test hands over a connected TCP socket it owns no more.
            Some(fd) => unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) },
            None => TcpStream::connect(self.to)
                .map_err(|e| io_fail(&format!("connect {}", self.to), e))?,
        };
        stream
            .set_write_timeout(Some(TCP_IO_TIMEOUT))
            .map_err(|e| io_fail("set timeout", e))?;
        stream
            .set_read_timeout(Some(TCP_IO_TIMEOUT))
            .map_err(|e| io_fail("set timeout", e))?;
        let buf = vec![FILL; self.chunk];
        let mut sent = send_all(&mut stream, self.send, &buf)?;
        if let Some(program) = &self.hand_over {
            return Err(hand_over(&stream, program));
        }
        if let Some((path, more)) = &self.hold {
            wait_for_file(path)?;
            sent += send_all(&mut stream, *more, &buf)?;
        }
        stream
            .shutdown(Shutdown::Write)
            .map_err(|e| io_fail("shutdown(write)", e))?;
        let received = drain(&mut stream).map_err(|e| io_fail("read reply", e))?;
        println!("sent={sent} received={received}");
        match self.expect {
            Some(expected) if expected != received => Err(fail(format!(
                "tcp {}: expected {expected} bytes back, received {received}",
                self.to
            ))),
            _ => Ok(ExitCode::SUCCESS),
        }
    }
}

/// Execs `program` (with its arguments) keeping `stream` open across the
/// exec, and tells it which fd it is. Returns only on failure.
fn hand_over(stream: &TcpStream, program: &[OsString]) -> Failure {
    use std::os::{fd::AsRawFd, unix::process::CommandExt};
    let Some((path, args)) = program.split_first() else {
        return usage("--hand-over needs PROGRAM [ARGS...]");
    };
    let fd = stream.as_raw_fd();
    // What this process sent is acknowledged before the other takes over:
    // tests count it for this process's tool.
    if let Err(e) = wait_acknowledged(fd) {
        return e;
    }
    // SAFETY: clearing FD_CLOEXEC on a descriptor this process owns.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return io_fail("fcntl(F_SETFD)", io::Error::last_os_error());
    }
    let err = Command::new(path)
        .args(args)
        .args(["--fd", &fd.to_string()])
        .exec();
    io_fail(&format!("exec {path:?}"), err)
}

/// Waits until the peer acknowledged every byte written to TCP socket `fd`
/// (SIOCOUTQ: bytes not yet acknowledged, on a TCP socket).
fn wait_acknowledged(fd: std::os::fd::RawFd) -> Result<()> {
    let deadline = Instant::now() + TCP_IO_TIMEOUT;
    loop {
        let mut unacked: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer.
        if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unacked) } != 0 {
            return Err(io_fail("ioctl(SIOCOUTQ)", io::Error::last_os_error()));
        }
        if unacked == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "{unacked} bytes not acknowledged within {TCP_IO_TIMEOUT:?}"
            )));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn send_all(stream: &mut TcpStream, total: usize, buf: &[u8]) -> Result<usize> {
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len());
        stream
            .write_all(&buf[..n])
            .map_err(|e| io_fail("send", e))?;
        left -= n;
    }
    Ok(total)
}

/// Reads until EOF and returns the byte count.
fn drain(stream: &mut TcpStream) -> io::Result<usize> {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn wait_for_file(path: &Path) -> Result<()> {
    let deadline = Instant::now() + HOLD_TIMEOUT;
    while !path.exists() {
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "hold file {} did not appear within {HOLD_TIMEOUT:?}",
                path.display()
            )));
        }
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Runs `work` in a forked child (no exec) and exits with the child's status.
fn fork_and_wait(work: impl FnOnce() -> Result<ExitCode>) -> Result<ExitCode> {
    // Flush before forking so buffered output is not written twice.
    io::stdout()
        .flush()
        .map_err(|e| io_fail("flush stdout", e))?;
    // SAFETY: netpeer's client is single-threaded, so the child may run any code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io_fail("fork", io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = match work() {
            Ok(code) if code == ExitCode::SUCCESS => 0,
            Ok(_) => 1,
            Err(failure) => {
                eprintln!("netpeer (forked child): {}", failure.message);
                1
            }
        };
        // Flush stdout ourselves: `_exit` skips Rust's clean-up.
        let _ = io::stdout().flush();
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    loop {
        // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(io_fail("waitpid", err));
        }
    }
    Ok(exit_code_of(status))
}

fn exit_code_of(status: libc::c_int) -> ExitCode {
    if libc::WIFEXITED(status) {
        ExitCode::from(libc::WEXITSTATUS(status) as u8)
    } else {
        // Shell convention for a child killed by a signal.
        ExitCode::from((128 + libc::WTERMSIG(status)) as u8)
    }
}

// ---------------------------------------------------------------- udp client

struct Udp {
    to: SocketAddr,
    count: usize,
    size: usize,
    expect_size: Option<usize>,
    connected: bool,
}

impl Udp {
    fn parse(args: &[OsString]) -> Result<Self> {
        let mut a = Args::new(args);
        let (mut to, mut count, mut size, mut expect_size, mut connected) =
            (None, None, None, None, false);
        while let Some(flag) = a.next_flag()? {
            match flag {
                "--to" => to = Some(a.addr(flag)?),
                "--count" => count = Some(a.number(flag)?),
                "--size" => size = Some(a.number(flag)?),
                "--expect-size" => expect_size = Some(a.number(flag)?),
                "--connected" => connected = true,
                other => return Err(usage(format!("udp: unknown flag {other:?}"))),
            }
        }
        Ok(Udp {
            to: required(to, "--to")?,
            count: required(count, "--count")?,
            size: required(size, "--size")?,
            expect_size,
            connected,
        })
    }

    fn run(self) -> Result<ExitCode> {
        let any: SocketAddr = if self.to.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal address");
        let socket = UdpSocket::bind(any).map_err(|e| io_fail("bind", e))?;
        socket
            .set_read_timeout(Some(UDP_REPLY_TIMEOUT))
            .map_err(|e| io_fail("set timeout", e))?;
        if self.connected {
            socket
                .connect(self.to)
                .map_err(|e| io_fail(&format!("connect {}", self.to), e))?;
        }
        let payload = vec![FILL; self.size];
        let mut reply = vec![0u8; 65536];
        let (mut sent, mut received) = (0, 0);
        // One datagram, one reply, in lock step: nothing queues up, so nothing is
        // dropped and the counts are exact.
        for i in 0..self.count {
            let n = if self.connected {
                socket.send(&payload)
            } else {
                socket.send_to(&payload, self.to)
            }
            .map_err(|e| io_fail(&format!("send datagram {i} to {}", self.to), e))?;
            sent += n;
            let (got, from) = socket.recv_from(&mut reply).map_err(|e| {
                fail(format!(
                    "no reply to datagram {i} from {} within {UDP_REPLY_TIMEOUT:?}: {e}",
                    self.to
                ))
            })?;
            if from != self.to {
                return Err(fail(format!(
                    "reply to datagram {i} came from {from}, not {}",
                    self.to
                )));
            }
            if let Some(expected) = self.expect_size
                && got != expected
            {
                println!("sent={sent} received={}", received + got);
                return Err(fail(format!(
                    "reply to datagram {i} was {got} bytes, expected {expected}"
                )));
            }
            received += got;
        }
        println!("sent={sent} received={received}");
        Ok(ExitCode::SUCCESS)
    }
}

// ---------------------------------------------------------------- servers

struct Serve {
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    reply: usize,
    ready_file: PathBuf,
}

impl Serve {
    fn parse(args: &[OsString]) -> Result<Self> {
        let mut a = Args::new(args);
        let (mut tcp, mut udp, mut reply, mut ready_file) = (Vec::new(), Vec::new(), None, None);
        while let Some(flag) = a.next_flag()? {
            match flag {
                "--tcp" => tcp.push(a.addr(flag)?),
                "--udp" => udp.push(a.addr(flag)?),
                "--reply" => reply = Some(a.number(flag)?),
                "--ready-file" => ready_file = Some(a.path(flag)?),
                other => return Err(usage(format!("serve: unknown flag {other:?}"))),
            }
        }
        if tcp.is_empty() && udp.is_empty() {
            return Err(usage("serve needs at least one --tcp or --udp address"));
        }
        Ok(Serve {
            tcp,
            udp,
            reply: required(reply, "--reply")?,
            ready_file: required(ready_file, "--ready-file")?,
        })
    }

    fn run(self) -> Result<ExitCode> {
        // Bind everything before announcing readiness, so a test that saw the
        // ready file can connect at once.
        let listeners = self
            .tcp
            .iter()
            .map(|addr| {
                TcpListener::bind(addr).map_err(|e| io_fail(&format!("bind tcp {addr}"), e))
            })
            .collect::<Result<Vec<_>>>()?;
        let sockets = self
            .udp
            .iter()
            .map(|addr| UdpSocket::bind(addr).map_err(|e| io_fail(&format!("bind udp {addr}"), e)))
            .collect::<Result<Vec<_>>>()?;
        let reply = self.reply;
        let mut threads = Vec::new();
        for listener in listeners {
            threads.push(thread::spawn(move || serve_tcp(listener, reply)));
        }
        for socket in sockets {
            threads.push(thread::spawn(move || serve_udp(socket, reply)));
        }
        fs::write(&self.ready_file, b"ready\n").map_err(|e| {
            io_fail(
                &format!("write ready file {}", self.ready_file.display()),
                e,
            )
        })?;
        eprintln!(
            "netpeer serve: ready (tcp {:?}, udp {:?}, reply {reply})",
            self.tcp, self.udp
        );
        // The accept and receive loops never return; runs until killed.
        for t in threads {
            let _ = t.join();
        }
        Err(fail("all server threads stopped"))
    }
}

fn serve_tcp(listener: TcpListener, reply: usize) {
    let local = listener.local_addr().ok();
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                thread::spawn(move || {
                    if let Err(e) = answer_tcp(stream, reply) {
                        eprintln!("netpeer serve: tcp {local:?}: {e}");
                    }
                });
            }
            Err(e) => eprintln!("netpeer serve: accept on {local:?}: {e}"),
        }
    }
}

/// Reads the request to EOF, then writes exactly `reply` bytes and closes.
fn answer_tcp(mut stream: TcpStream, reply: usize) -> io::Result<()> {
    stream.set_read_timeout(Some(TCP_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(TCP_IO_TIMEOUT))?;
    drain(&mut stream)?;
    let buf = vec![FILL; reply.min(65536)];
    let mut left = reply;
    while left > 0 {
        let n = left.min(buf.len());
        stream.write_all(&buf[..n])?;
        left -= n;
    }
    stream.shutdown(Shutdown::Write)
}

/// Answers every datagram with one datagram of exactly `reply` bytes.
fn serve_udp(socket: UdpSocket, reply: usize) {
    let local = socket.local_addr().ok();
    let mut buf = vec![0u8; 65536];
    let answer = vec![FILL; reply];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((_, from)) => {
                if let Err(e) = socket.send_to(&answer, from) {
                    eprintln!("netpeer serve: udp {local:?} reply to {from}: {e}");
                }
            }
            Err(e) => eprintln!("netpeer serve: udp {local:?} receive: {e}"),
        }
    }
}

// ---------------------------------------------------------------- exec-child

/// `exec-child -- CMD ARGS...`: fork+exec CMD, wait, and exit with its status, so
/// a test can check that an agent's child is attributed to the agent.
fn exec_child(args: &[OsString]) -> Result<ExitCode> {
    let rest = match args.first() {
        Some(sep) if sep == "--" => &args[1..],
        _ => args,
    };
    let (cmd, cmd_args) = rest
        .split_first()
        .ok_or_else(|| usage("exec-child needs -- CMD [ARGS...]"))?;
    let status = Command::new(cmd)
        .args(cmd_args)
        .status()
        .map_err(|e| io_fail(&format!("spawn {cmd:?}"), e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal) as u8),
        (None, None) => ExitCode::FAILURE,
    })
}

//! `loadgen`: the purpose-built load clients and sink of `cargo xtask bench`,
//! for the loads iperf3 does not make: many small sends on one connection,
//! connection churn at a fixed or the highest rate, many connections (and
//! processes) held open, connections to many named hosts, and one cheap
//! syscall in a tight loop (what an untracked process pays per call).
//!
//! ```text
//! loadgen sink  --listen ADDR:PORT --ready-file PATH [--close-after N] [--threads T]
//! loadgen msgs  --to ADDR:PORT --size N --secs S [--nagle]
//! loadgen churn --to ADDR:PORT --secs S [--rate R] [--threads T] [--send N] [--count N]
//! loadgen hold  --to ADDR:PORT --conns N [--procs P] [--send N] --ready-file PATH --stop-file PATH
//! loadgen names --to ADDR:PORT --hosts N
//! loadgen getppid|devnull|pipe|unix --secs S
//! ```
//!
//! Every client prints one line of `key=value` figures when it is done
//! (`sends=`, `conns=`, `ops=`, `bytes=` (payload bytes sent), `secs=`,
//! `errors=`, `ns_per_op=`).
//! Any subcommand takes `--tag VALUE`, which is ignored: the bench uses it to
//! put an agent's marker (such as `/node_modules/@google/gemini-cli/`) into
//! argv. The bench copies this executable to agent-looking paths, so nothing
//! here depends on argv[0]. Addresses are socket-address literals only: no
//! name resolution, traffic goes exactly where the bench says.

use std::{
    collections::HashMap,
    env,
    ffi::OsString,
    fs,
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    thread,
    time::{Duration, Instant},
};

/// Bound on any blocking read or write, so a broken run cannot hang.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `hold` waits for its stop file at most.
const HOLD_LIMIT: Duration = Duration::from_secs(600);
const FILL: u8 = b'x';

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<OsString> = env::args_os().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().and_then(|a| a.to_str()) {
        Some("sink") => Flags::parse(rest).and_then(|f| sink(&f)),
        Some("msgs") => Flags::parse(rest).and_then(|f| msgs(&f)),
        Some("churn") => Flags::parse(rest).and_then(|f| churn(&f)),
        Some("hold") => Flags::parse(rest).and_then(|f| hold(&f)),
        Some("names") => Flags::parse(rest).and_then(|f| names(&f)),
        Some(op @ ("getppid" | "devnull" | "pipe" | "unix")) => {
            Flags::parse(rest).and_then(|f| micro(&f, op))
        }
        _ => Err(
            "usage: loadgen sink|msgs|churn|hold|names|getppid|devnull|pipe|unix ... \
             (see the source's header)"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--flag VALUE` pairs and the bare switch `--nagle`.
#[derive(Default)]
struct Flags {
    values: HashMap<String, String>,
    nagle: bool,
}

impl Flags {
    fn parse(args: &[OsString]) -> Result<Self> {
        let mut flags = Flags::default();
        let mut it = args.iter().map(|a| a.to_string_lossy().into_owned());
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--nagle" => flags.nagle = true,
                f if f.starts_with("--") => {
                    let value = it.next().ok_or(format!("{f} needs a value"))?;
                    flags.values.insert(f[2..].to_owned(), value);
                }
                other => return Err(format!("unexpected argument {other:?}")),
            }
        }
        Ok(flags)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn req(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or(format!("--{name} is required"))
    }

    fn num(&self, name: &str, default: Option<u64>) -> Result<u64> {
        match (self.get(name), default) {
            (Some(v), _) => v
                .parse()
                .map_err(|_| format!("--{name}: not a number: {v:?}")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("--{name} is required")),
        }
    }

    fn secs(&self) -> Result<Duration> {
        let v = self.req("secs")?;
        v.parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && *s < 3600.0)
            .map(Duration::from_secs_f64)
            .ok_or(format!("--secs: not a duration in seconds: {v:?}"))
    }

    /// A socket-address literal; never a host name, so never a DNS query.
    fn addr(&self, name: &str) -> Result<SocketAddr> {
        let v = self.req(name)?;
        v.parse()
            .map_err(|_| format!("--{name}: not ADDR:PORT (IPv6 as [ADDR]:PORT): {v:?}"))
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        self.req(name).map(PathBuf::from)
    }
}

fn connect(to: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(to).map_err(|e| format!("connect {to}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("set timeouts: {e}"))?;
    Ok(s)
}

/// Reads until EOF; returns the byte count.
fn drain(stream: &mut TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------- msgs

/// One connection, `size`-byte writes as fast as they go for `secs`
/// (TCP_NODELAY unless `--nagle`, so each write is a segment, as an agent's
/// small RPCs and stream events are).
fn msgs(f: &Flags) -> Result<()> {
    let (to, secs) = (f.addr("to")?, f.secs()?);
    let size = usize::try_from(f.num("size", Some(64))?).map_err(|e| e.to_string())?;
    if size == 0 {
        return Err("--size must be at least 1".into());
    }
    let mut stream = connect(to)?;
    stream
        .set_nodelay(!f.nagle)
        .map_err(|e| format!("nodelay: {e}"))?;
    let buf = vec![FILL; size];
    let start = Instant::now();
    let mut sends: u64 = 0;
    loop {
        for _ in 0..256 {
            stream
                .write_all(&buf)
                .map_err(|e| format!("send {sends}: {e}"))?;
        }
        sends += 256;
        if start.elapsed() >= secs {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    drain(&mut stream).map_err(|e| format!("read reply: {e}"))?;
    println!(
        "sends={sends} bytes={} secs={elapsed:.6}",
        sends * size as u64
    );
    Ok(())
}

// ---------------------------------------------------------------- churn

/// Short connections from `threads` threads for `secs`: connect, send
/// `send` bytes, read to EOF (the sink closes first, so this side keeps no
/// TIME_WAIT and can churn on), close. With `--rate R` the starts are paced
/// to R per second in all; without, as fast as they go.
fn churn(f: &Flags) -> Result<()> {
    let (to, secs) = (f.addr("to")?, f.secs()?);
    let threads = f.num("threads", Some(2))?.max(1);
    let rate = f.num("rate", Some(0))?;
    // At most this many connections in all (0: as many as `secs` allow).
    let count = f.num("count", Some(0))?;
    let started = Arc::new(AtomicU64::new(0));
    let send = usize::try_from(f.num("send", Some(64))?).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let end = start + secs;
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let started = started.clone();
            thread::spawn(move || {
                // Each thread paces itself to its share of the rate.
                let interval =
                    (rate > 0).then(|| Duration::from_secs_f64(threads as f64 / rate as f64));
                let buf = vec![FILL; send];
                let (mut conns, mut errors) = (0u64, 0u64);
                let mut next = start;
                loop {
                    let now = Instant::now();
                    if now >= end || (count > 0 && started.fetch_add(1, Relaxed) >= count) {
                        break;
                    }
                    if let Some(interval) = interval {
                        if next > now {
                            thread::sleep(next - now);
                        }
                        next += interval;
                    }
                    match one_short_connection(to, &buf) {
                        Ok(()) => conns += 1,
                        Err(_) => errors += 1,
                    }
                }
                (conns, errors)
            })
        })
        .collect();
    let (mut conns, mut errors) = (0, 0);
    for w in workers {
        let (c, e) = w.join().map_err(|_| "a churn thread panicked")?;
        conns += c;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "conns={conns} bytes={} secs={elapsed:.6} errors={errors}",
        conns * send as u64
    );
    Ok(())
}

fn one_short_connection(to: SocketAddr, payload: &[u8]) -> Result<()> {
    let mut s = connect(to)?;
    s.write_all(payload).map_err(|e| e.to_string())?;
    drain(&mut s).map_err(|e| e.to_string())?;
    Ok(())
}

// ---------------------------------------------------------------- hold

/// Opens `conns` connections in each of `procs` processes (this one and
/// `procs - 1` forked children, which an agent's tree tracks), sends `send`
/// bytes on each, creates the ready file, and keeps them all open until the
/// stop file exists.
fn hold(f: &Flags) -> Result<()> {
    let to = f.addr("to")?;
    let conns = f.num("conns", None)?;
    let procs = f.num("procs", Some(1))?.max(1);
    let send = usize::try_from(f.num("send", Some(100))?).map_err(|e| e.to_string())?;
    let (ready, stop) = (f.path("ready-file")?, f.path("stop-file")?);
    let (rx, tx) = pipe()?;
    let mut children = Vec::new();
    for _ in 1..procs {
        // SAFETY: this process is single-threaded here, so the child may run any code.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", io::Error::last_os_error()));
        }
        if pid == 0 {
            drop(rx);
            let code = match open_and_send(to, conns, send) {
                Ok(held) => {
                    let _ = (&tx).write_all(b"r");
                    drop(tx);
                    // Hold until the parent ends us.
                    loop {
                        // SAFETY: pause has no preconditions.
                        unsafe { libc::pause() };
                        let _ = &held;
                    }
                }
                Err(e) => {
                    eprintln!("loadgen hold (child): {e}");
                    1
                }
            };
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        children.push(pid);
    }
    drop(tx);
    let result = (|| -> Result<()> {
        let held = open_and_send(to, conns, send)?;
        let mut rx = rx;
        let mut got = vec![0u8; children.len()];
        rx.read_exact(&mut got)
            .map_err(|e| format!("a child did not get its connections open: {e}"))?;
        fs::write(&ready, b"ready\n").map_err(|e| format!("write {}: {e}", ready.display()))?;
        wait_for_file(&stop, HOLD_LIMIT)?;
        drop(held);
        Ok(())
    })();
    for &pid in &children {
        // SAFETY: kill and waitpid on children this process forked.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    result?;
    let total = conns * procs;
    println!("conns={total} bytes={}", total * send as u64);
    Ok(())
}

fn open_and_send(to: SocketAddr, conns: u64, send: usize) -> Result<Vec<TcpStream>> {
    let buf = vec![FILL; send];
    (0..conns)
        .map(|i| {
            let mut s = connect(to)?;
            s.write_all(&buf)
                .map_err(|e| format!("send on connection {i}: {e}"))?;
            Ok(s)
        })
        .collect()
}

/// A pipe as (read end, write end) files.
fn pipe() -> Result<(fs::File, fs::File)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (fs::File::from_raw_fd(fds[0]), fs::File::from_raw_fd(fds[1])) })
}

fn wait_for_file(path: &Path, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() >= deadline {
            return Err(format!(
                "{} did not appear within {limit:?}",
                path.display()
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

// ---------------------------------------------------------------- names

/// One plain-HTTP connection per host `h.d<i>.test` (i < hosts): a GET whose
/// Host header names the connection, so each is a distinct `dest`.
fn names(f: &Flags) -> Result<()> {
    let to = f.addr("to")?;
    let hosts = f.num("hosts", None)?;
    let mut bytes = 0u64;
    for i in 0..hosts {
        let head = format!("GET / HTTP/1.1\r\nHost: h.d{i}.test\r\nConnection: close\r\n\r\n");
        let mut s = connect(to)?;
        s.write_all(head.as_bytes())
            .map_err(|e| format!("send to host {i}: {e}"))?;
        s.shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        drain(&mut s).map_err(|e| format!("read: {e}"))?;
        bytes += head.len() as u64;
    }
    println!("conns={hosts} bytes={bytes}");
    Ok(())
}

// ---------------------------------------------------------------- micro

/// One cheap operation in a tight loop for `secs`, by a process agentmon
/// does not track: what its always-on hooks cost everyone else, per call.
/// `getppid` hits no hook of agentmon's (but still takes the traced-syscall
/// path while any syscall tracepoint is on); `devnull` is one write(2) of 64
/// bytes; `pipe` and `unix` a 64-byte write and read back on one thread
/// (no wake-ups or context switches to drown the hooks' cost), through a
/// pipe and an AF_UNIX stream socketpair (send/recv: sendto and recvfrom).
fn micro(f: &Flags, op: &str) -> Result<()> {
    let secs = f.secs()?;
    let mut buf = [FILL; 64];
    match op {
        "getppid" => spin(secs, || {
            // SAFETY: getppid has no preconditions. glibc does not cache it.
            std::hint::black_box(unsafe { libc::getppid() });
            Ok(())
        }),
        "devnull" => {
            let null = fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map_err(|e| format!("open /dev/null: {e}"))?;
            let fd = null.as_raw_fd();
            // SAFETY: writes from a buffer we own to a descriptor we own.
            spin(secs, || {
                full(unsafe { libc::write(fd, buf.as_ptr().cast(), 64) }, "write")
            })
        }
        "pipe" => {
            let (rx, tx) = pipe()?;
            let (r, w) = (rx.as_raw_fd(), tx.as_raw_fd());
            spin(secs, || {
                // SAFETY: as above; the read fills a buffer we own.
                full(unsafe { libc::write(w, buf.as_ptr().cast(), 64) }, "write")?;
                full(
                    unsafe { libc::read(r, buf.as_mut_ptr().cast(), 64) },
                    "read",
                )
            })
        }
        _ => {
            let (a, b) = socketpair()?;
            let (a, b) = (a.as_raw_fd(), b.as_raw_fd());
            spin(secs, || {
                // SAFETY: as above.
                full(unsafe { libc::send(a, buf.as_ptr().cast(), 64, 0) }, "send")?;
                full(
                    unsafe { libc::recv(b, buf.as_mut_ptr().cast(), 64, 0) },
                    "recv",
                )
            })
        }
    }
}

/// Runs `op` in batches of 256 (one clock read per batch) until `secs` have
/// passed, then prints `ops= secs= ns_per_op=`.
fn spin(secs: Duration, mut op: impl FnMut() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    let mut ops: u64 = 0;
    while start.elapsed() < secs {
        for _ in 0..256 {
            op()?;
        }
        ops += 256;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "ops={ops} secs={elapsed:.6} ns_per_op={:.1}",
        elapsed * 1e9 / ops as f64
    );
    Ok(())
}

/// A read or write that had to move all 64 bytes at once (a pipe or socket
/// with room and data always does).
fn full(ret: isize, what: &str) -> Result<()> {
    match ret {
        64 => Ok(()),
        n if n < 0 => Err(format!("{what}: {}", io::Error::last_os_error())),
        n => Err(format!("{what}: {n} bytes, not 64")),
    }
}

/// An AF_UNIX stream socketpair.
fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two descriptors.
    check(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        },
        "socketpair",
    )?;
    // SAFETY: socketpair returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// ---------------------------------------------------------------- sink

/// Accepts and reads everything on `listen`, from `threads` threads with one
/// SO_REUSEPORT listener and one epoll each (so it holds 10,000 connections
/// without 10,000 threads). A connection is closed at EOF, or, with
/// `--close-after N`, once N bytes have come (the sink closes first).
fn sink(f: &Flags) -> Result<()> {
    let listen = f.addr("listen")?;
    let ready = f.path("ready-file")?;
    let close_after = f.num("close-after", Some(0))?;
    let threads = f.num("threads", Some(2))?.max(1);
    let listeners = (0..threads)
        .map(|_| reuseport_listener(listen))
        .collect::<Result<Vec<_>>>()?;
    let workers: Vec<_> = listeners
        .into_iter()
        .map(|l| thread::spawn(move || serve(l, close_after)))
        .collect();
    fs::write(&ready, b"ready\n").map_err(|e| format!("write {}: {e}", ready.display()))?;
    for w in workers {
        match w.join() {
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) => {}
            Err(_) => return Err("a sink thread panicked".into()),
        }
    }
    Ok(())
}

fn check(ret: libc::c_int, what: &str) -> Result<libc::c_int> {
    if ret < 0 {
        Err(format!("{what}: {}", io::Error::last_os_error()))
    } else {
        Ok(ret)
    }
}

fn reuseport_listener(addr: SocketAddr) -> Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the result is checked and then owned.
    let fd = check(
        unsafe {
            libc::socket(
                family,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        },
        "socket",
    )?;
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: setsockopt with a valid pointer to an int of the given size.
        check(
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&one as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            },
            "setsockopt",
        )?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    check(
        unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&storage as *const libc::sockaddr_storage).cast(),
                len,
            )
        },
        &format!("bind {addr}"),
    )?;
    // SAFETY: listen on a bound socket we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), 4096) }, "listen")?;
    Ok(fd)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The epoll loop of one sink thread. Level-triggered: every readable
/// connection is read until it would block.
fn serve(listener: OwnedFd, close_after: u64) -> Result<()> {
    // SAFETY: epoll_create1 has no preconditions; the result is checked and owned.
    let ep = unsafe {
        OwnedFd::from_raw_fd(check(
            libc::epoll_create1(libc::EPOLL_CLOEXEC),
            "epoll_create1",
        )?)
    };
    let lfd = listener.as_raw_fd();
    add(ep.as_raw_fd(), lfd)?;
    // Bytes read so far per open connection (the connections are owned here).
    let mut open: HashMap<RawFd, (OwnedFd, u64)> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: `events` is a valid buffer of the given length.
        let n = unsafe {
            libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, -1)
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {err}"));
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd == lfd {
                accept_all(ep.as_raw_fd(), lfd, &mut open);
                continue;
            }
            let Some((_, seen)) = open.get_mut(&fd) else {
                continue;
            };
            let done = loop {
                // SAFETY: reading into a buffer we own, from a descriptor we own.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    *seen += r as u64;
                    if close_after > 0 && *seen >= close_after {
                        break true;
                    }
                    continue;
                }
                let would_block =
                    r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock;
                break !would_block;
            };
            if done {
                // Dropping the descriptor closes it, which also leaves the epoll set.
                open.remove(&fd);
            }
        }
    }
}

fn accept_all(ep: RawFd, lfd: RawFd, open: &mut HashMap<RawFd, (OwnedFd, u64)>) {
    loop {
        // SAFETY: accept4 on our listener; peer address not wanted.
        let fd = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            // EAGAIN (all taken), or a connection that died in the queue.
            return;
        }
        // SAFETY: a fresh descriptor from accept4 that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        if add(ep, fd).is_ok() {
            open.insert(fd, (owned, 0));
        }
    }
}

fn add(ep: RawFd, fd: RawFd) -> Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: fd as u64,
    };
    // SAFETY: registering a descriptor we own with a valid event.
    check(
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) },
        "epoll_ctl",
    )
    .map(drop)
}

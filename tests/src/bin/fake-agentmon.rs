//! A stand-in for the daemon, so the `Agentmon` guard can be tested without root
//! or BPF: `fake-agentmon run --listen ADDR [ARGS...]` serves `/healthz` and a
//! small `/metrics` on ADDR until killed, and logs its arguments to stderr.
//! With `--unhealthy` it answers `/healthz` with 503; with `--exit-early` it
//! exits at once with status 3.

use std::{
    env,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::ExitCode,
};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    eprintln!("fake-agentmon: args {args:?}");
    let addr: SocketAddr = match args.as_slice() {
        [run, listen, addr, ..] if run == "run" && listen == "--listen" => match addr.parse() {
            Ok(addr) => addr,
            Err(_) => return bad(&args),
        },
        _ => return bad(&args),
    };
    let extra = &args[3..];
    if extra.iter().any(|a| a == "--exit-early") {
        eprintln!("fake-agentmon: exiting early as asked");
        return ExitCode::from(3);
    }
    let healthy = !extra.iter().any(|a| a == "--unhealthy");
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fake-agentmon: bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("fake-agentmon: listening on {addr}");
    let mut scrapes = 0u64;
    for stream in listener.incoming().flatten() {
        let _ = answer(stream, healthy, &mut scrapes, extra);
    }
    ExitCode::SUCCESS
}

fn bad(args: &[String]) -> ExitCode {
    eprintln!("fake-agentmon: expected `run --listen ADDR ...`, got {args:?}");
    ExitCode::from(2)
}

fn answer(
    mut stream: TcpStream,
    healthy: bool,
    scrapes: &mut u64,
    extra: &[String],
) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/healthz" if healthy => ("200 OK", "ok\n".to_owned()),
        "/healthz" => ("503 Service Unavailable", "starting\n".to_owned()),
        "/metrics" => {
            *scrapes += 1;
            let args = extra
                .join(" ")
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let body = format!(
                "# HELP fake_scrapes_total Scrapes served.\n# TYPE fake_scrapes_total counter\n\
                 fake_scrapes_total {scrapes}\nfake_args_info{{args=\"{args}\"}} 1\n"
            );
            ("200 OK", body)
        }
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    // Chunked, to exercise the client's decoder as a real server may.
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes())
}

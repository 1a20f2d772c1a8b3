//! `openssl_vendored_client`: an HTTPS client of agentmon's tests on the
//! openssl crate with its vendored OpenSSL 3 (a recent one: `SSL_write_ex`
//! reaches `ssl_write_internal` with the `flags` argument OpenSSL 3.3
//! added), as Codex's release binary links it. Connects to an address
//! literal with SNI `NAME`, POSTs `BODY` bytes over HTTP/1.1 and reads the
//! reply to EOF; with `GO`, only once that file exists. Prints
//! `sent=N received=M`. It accepts any server certificate: the test
//! internet's are self-signed.
//!
//! ```text
//! openssl_vendored_client ADDR:PORT NAME PATH BODY [GO]
//! ```

use std::{env, net::TcpStream, path::Path, process::ExitCode, thread, time::Duration};

#[path = "../http1.rs"]
mod http1;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("openssl_vendored_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<String, String> {
    let (addr, name, path, body, go) = match args {
        [addr, name, path, body] => (addr, name, path, body, None),
        [addr, name, path, body, go] => (addr, name, path, body, Some(go)),
        _ => return Err("usage: openssl_vendored_client ADDR:PORT NAME PATH BODY [GO]".into()),
    };
    let size: usize = body.parse().map_err(|e| format!("{body}: {e}"))?;
    while go.is_some_and(|go| !Path::new(go).exists()) {
        thread::sleep(Duration::from_millis(10));
    }
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    builder.set_verify(SslVerifyMode::NONE);
    let sock = TcpStream::connect(addr.as_str()).map_err(|e| format!("connect {addr}: {e}"))?;
    let mut tls = builder
        .build()
        .connect(name, sock)
        .map_err(|e| format!("handshake: {e}"))?;
    http1::post(&mut tls, name, path, size)
}

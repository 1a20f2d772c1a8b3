//! `rustls_client`: an HTTPS client of agentmon's tests on rustls, the TLS
//! stack of Codex's and Copilot CLI's native code. Connects to an address
//! literal with SNI `NAME`, POSTs `BODY` bytes over HTTP/1.1 and reads the
//! reply to EOF. With `GO`, it connects only once that file exists (after
//! agentmon has probed it).
//!
//! As `h2`, POSTs `BODY` bytes to each `PATH` (`PATH:BODY`, at most
//! 16384) over HTTP/2 on one connection, one after the other, each reply
//! read whole; the frames and their header blocks (HPACK literals, no
//! Huffman) are written here. Prints `sent=N received=M`, plaintext bytes.
//!
//! As `bench`, the TLS client of `cargo xtask bench` (tls_client.go's
//! arguments and output): POSTs of `REQUEST_BYTES` on one keep-alive
//! connection to `api.bench.test`, one at a time, for `SECS` seconds, each
//! reply read whole; prints `requests=N secs=T bytes=B`.
//!
//! ```text
//! rustls_client ADDR:PORT NAME PATH BODY [GO]
//! rustls_client h2 ADDR:PORT NAME GO PATH:BODY...
//! rustls_client bench ADDR PORT SECS REQUEST_BYTES REPLY_BODY_BYTES [GO]
//! ```
//!
//! It accepts any server certificate: the test internet's are self-signed.
//!
//! Built here on ring; `tests/clients/rustls_awslc` builds the same source
//! on aws-lc (rustls's default provider, as in Codex), static for musl, and
//! as a native add-on built by clang, as Copilot CLI's `runtime.node`.

use std::{
    env,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::ExitCode,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

#[path = "../../clients/http1.rs"]
mod http1;

use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

const USAGE: &str = "usage: rustls_client ADDR:PORT NAME PATH BODY [GO]\n       rustls_client h2 ADDR:PORT NAME GO PATH:BODY...\n       rustls_client bench ADDR PORT SECS REQUEST_BYTES REPLY_BODY_BYTES [GO]";

fn main() -> ExitCode {
    ExitCode::from(run(env::args().skip(1).collect()))
}

/// Runs the client with `args`; its exit status. Also the entry of the
/// add-on build (`tests/clients/rustls_awslc/addon.rs`).
pub fn run(args: Vec<String>) -> u8 {
    let result = match args.split_first() {
        Some((mode, rest)) if mode == "bench" => bench(rest),
        Some((mode, rest)) if mode == "h2" => h2(rest),
        _ => one_request(&args),
    };
    match result {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(None) => {
            eprintln!("{USAGE}");
            2
        }
        Err(Some(e)) => {
            eprintln!("rustls_client: {e}");
            1
        }
    }
}

/// `None`: the arguments are wrong.
type Outcome = Result<String, Option<String>>;

fn one_request(args: &[String]) -> Outcome {
    let (addr, name, path, body, go) = match args {
        [addr, name, path, body] => (addr, name, path, body, None),
        [addr, name, path, body, go] => (addr, name, path, body, Some(go)),
        _ => return Err(None),
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let size: usize = body.parse().map_err(|e| format!("{body}: {e}"))?;
    wait_for(go);
    let mut tls = connect(addr, name, &[])?;
    Ok(http1::post(&mut tls, name, path, size)?)
}

fn bench(args: &[String]) -> Outcome {
    let (ip, port, secs, size, reply_body, go) = match args {
        [ip, port, secs, size, reply, rest @ ..] if rest.len() <= 1 => {
            (ip, port, secs, size, reply, rest.first())
        }
        _ => return Err(None),
    };
    let number = |s: &String| s.parse::<usize>().map_err(|e| Some(format!("{s}: {e}")));
    let secs: f64 = secs.parse().map_err(|e| format!("{secs}: {e}"))?;
    let (size, reply_body) = (number(size)?, number(reply_body)?);
    let head = |n: usize| {
        format!("POST /v1/messages HTTP/1.1\r\nHost: api.bench.test\r\nContent-Length: {n}\r\n\r\n")
    };
    let mut body = size.saturating_sub(head(0).len());
    body -= body.to_string().len() - 1;
    let mut request = head(body).into_bytes();
    request.resize(request.len() + body, b'q');
    if request.len() != size {
        return Err(Some(format!(
            "request is {} bytes, not {size}",
            request.len()
        )));
    }
    let reply_head = format!("HTTP/1.1 200 OK\r\nContent-Length: {reply_body}\r\n\r\n");
    let mut reply = vec![0; reply_head.len() + reply_body];
    let addr: SocketAddr = format!("{ip}:{port}")
        .parse()
        .map_err(|e| format!("{ip}:{port}: {e}"))?;
    wait_for(go);
    let mut tls = connect(addr, "api.bench.test", &[])?;
    let start = Instant::now();
    let mut n = 0usize;
    loop {
        tls.write_all(&request).map_err(|e| format!("write: {e}"))?;
        tls.read_exact(&mut reply)
            .map_err(|e| format!("read: {e}"))?;
        n += 1;
        if n.is_multiple_of(16) && start.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    Ok(format!(
        "requests={n} secs={:.6} bytes={}",
        start.elapsed().as_secs_f64(),
        n * request.len()
    ))
}

fn h2(args: &[String]) -> Outcome {
    let [addr, name, go, posts @ ..] = args else {
        return Err(None);
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut requests = Vec::new();
    for post in posts {
        let (path, size) = post.rsplit_once(':').ok_or(None)?;
        let size: usize = size.parse().map_err(|e| format!("{post}: {e}"))?;
        if size > 16384 {
            return Err(None);
        }
        requests.push((path, size));
    }
    wait_for(Some(go));
    let mut tls = connect(addr, name, &[b"h2"])?;
    // The preface and an empty SETTINGS frame go with the first request.
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    let (mut sent, mut received) = (0, 0);
    for (i, (path, size)) in requests.into_iter().enumerate() {
        let stream = 2 * i as u32 + 1;
        let mut block = Vec::new();
        for (field, value) in [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", path),
            (":authority", name),
            ("content-length", &size.to_string()),
        ] {
            // A literal without indexing, new name, no Huffman.
            block.push(0);
            for s in [field, value] {
                block.push(u8::try_from(s.len()).map_err(|_| format!("{s}: too long"))?);
                block.extend(s.as_bytes());
            }
        }
        out.extend(frame(HEADERS, END_HEADERS, stream, &block));
        out.extend(frame(DATA, END_STREAM, stream, &vec![b'r'; size]));
        tls.write_all(&out).map_err(|e| format!("write: {e}"))?;
        sent += out.len();
        out.clear();
        // Frames until this stream ends; the server's SETTINGS acknowledged.
        loop {
            let mut head = [0u8; 9];
            tls.read_exact(&mut head)
                .map_err(|e| format!("read: {e}"))?;
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0; len];
            tls.read_exact(&mut payload)
                .map_err(|e| format!("read: {e}"))?;
            received += 9 + len;
            let (kind, flags) = (head[3], head[4]);
            let on = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            if kind == SETTINGS && flags & ACK == 0 {
                let ack = frame(SETTINGS, ACK, 0, &[]);
                tls.write_all(&ack).map_err(|e| format!("write: {e}"))?;
                sent += ack.len();
            }
            if on == stream && matches!(kind, DATA | HEADERS) && flags & END_STREAM != 0 {
                break;
            }
        }
    }
    Ok(format!("sent={sent} received={received}"))
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const END_STREAM: u8 = 1;
const ACK: u8 = 1;
const END_HEADERS: u8 = 4;

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// Returns once `go` exists (at once without one).
fn wait_for(go: Option<&String>) {
    while go.is_some_and(|go| !Path::new(go).exists()) {
        thread::sleep(Duration::from_millis(10));
    }
}

/// A TLS connection to `addr`, offering the `alpn` protocols.
fn connect(
    addr: SocketAddr,
    name: &str,
    alpn: &[&[u8]],
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    #[cfg(feature = "aws-lc")]
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(not(feature = "aws-lc"))]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let server = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::new(config), server).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    // As reqwest (Codex's HTTP client) sets it by default.
    sock.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(StreamOwned::new(conn, sock))
}

/// Accepts every certificate, but checks the handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

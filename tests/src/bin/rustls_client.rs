//! `rustls_client`: an HTTPS client of agentmon's tests on rustls, the TLS
//! stack of Codex's and Copilot CLI's native code, for which agentmon has no
//! probe. Connects to an address literal with SNI `NAME`, POSTs `BODY`
//! bytes over HTTP/1.1 and reads the reply to EOF.
//!
//! ```text
//! rustls_client ADDR:PORT NAME PATH BODY
//! ```
//!
//! It accepts any server certificate: the test internet's are self-signed.
//!
//! Built here on ring; `tests/clients/rustls_awslc` builds the same source
//! on aws-lc (rustls's default provider, as in Codex), static for musl.

use std::{
    env,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::ExitCode,
    sync::Arc,
};

use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let [addr, name, path, body] = args.as_slice() else {
        eprintln!("usage: rustls_client ADDR:PORT NAME PATH BODY");
        return ExitCode::from(2);
    };
    match run(addr, name, path, body) {
        Ok((sent, received)) => {
            println!("sent={sent} received={received}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rustls_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: &str, name: &str, path: &str, body: &str) -> Result<(usize, usize), String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let size: usize = body.parse().map_err(|e| format!("{body}: {e}"))?;
    #[cfg(feature = "aws-lc")]
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(not(feature = "aws-lc"))]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let server = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let conn = ClientConnection::new(Arc::new(config), server).map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let mut tls = StreamOwned::new(conn, sock);
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {name}\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + size, b'r');
    tls.write_all(&request).map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    match tls.read_to_end(&mut reply) {
        Ok(_) => {}
        // The test server closes without a close_notify.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    Ok((request.len(), reply.len()))
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

//! The test clients' one request (`tests/src/bin/rustls_client.rs`,
//! `tests/clients/openssl_vendored`): a POST of `size` bytes over
//! HTTP/1.1 on a TLS stream, the reply read to EOF.

use std::io::{ErrorKind, Read, Write};

/// Sends the request and reads the reply; `sent=N received=M`, in
/// plaintext bytes.
pub fn post(
    tls: &mut (impl Read + Write),
    name: &str,
    path: &str,
    size: usize,
) -> Result<String, String> {
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
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    Ok(format!("sent={} received={}", request.len(), reply.len()))
}

//! HTTPS and basic authentication for the secured exporter's tests: `curl`
//! (which `cargo xtask setup test` installs) with the options a test picks.

use std::{net::SocketAddr, path::PathBuf, process::Command, time::Duration};

use crate::{
    http::{HttpResponse, parse_response},
    process::run_bounded,
};

/// How a request reaches the exporter.
#[derive(Debug, Clone, Default)]
pub struct Curl {
    /// `https://`, trusting this CA; `None`: plain `http://`.
    pub ca: Option<PathBuf>,
    /// `user:password` for basic authentication.
    pub user: Option<String>,
    /// A client certificate and its key.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Curl {
    pub fn get(&self, addr: SocketAddr, path: &str) -> Result<HttpResponse, String> {
        self.request("GET", addr, path)
    }

    /// `method path`; `Err` with curl's message when no HTTP answer came
    /// (refused handshake, connection closed).
    pub fn request(
        &self,
        method: &str,
        addr: SocketAddr,
        path: &str,
    ) -> Result<HttpResponse, String> {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-i", "--max-time", "10", "-X", method]);
        if let Some(ca) = &self.ca {
            cmd.arg("--cacert").arg(ca);
        }
        if let Some(user) = &self.user {
            cmd.arg("-u").arg(user);
        }
        if let Some((cert, key)) = &self.client_cert {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        cmd.arg(format!("{scheme}://{addr}{path}"));
        let out = run_bounded(&mut cmd, Duration::from_secs(20));
        if !out.status.success() {
            return Err(format!(
                "curl {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        parse_response(&out.stdout)
    }
}

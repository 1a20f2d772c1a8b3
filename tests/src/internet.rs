//! A test internet on top of a [`NetLab`]: named hosts with documentation
//! addresses in the remote namespace, a DNS server the client namespace uses
//! (through `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` mounts over
//! /etc/resolv.conf), and HTTP/HTTPS servers that count every connection's
//! raw bytes on their side.

use std::{
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::netlab::{NetLab, ServerGuard, ip};
use crate::pki::CertFiles;
use crate::process::run_bounded;

/// The model API host (TLS on 443, HTTP on 80).
pub const MODEL_V4: &str = "203.0.113.20";
pub const MODEL_V6: &str = "2001:db8::20";
/// The telemetry host, reached through a CNAME.
pub const TELEMETRY_V4: &str = "203.0.113.30";
/// A host in another network and country.
pub const FAR_V4: &str = "198.51.100.40";
/// The DNS server.
pub const DNS_V4: &str = "203.0.113.53";

/// Bytes of every HTTP reply body.
pub const REPLY_BODY: usize = 2048;

/// The names the DNS server knows, as `--record` arguments.
pub fn default_records() -> Vec<String> {
    let mut records: Vec<String> = [
        format!("api.model.test=A:{MODEL_V4}"),
        format!("api.model.test=AAAA:{MODEL_V6}"),
        "telemetry.vendor.test=CNAME:edge.vendor-cdn.test".into(),
        format!("edge.vendor-cdn.test=A:{TELEMETRY_V4}"),
        format!("far.elsewhere.test=A:{FAR_V4}"),
        // The lab's netpeer sink (203.0.113.10:7000), for DNS-only naming.
        "sink.model.test=A:203.0.113.10".into(),
    ]
    .into();
    // Distinct registrable domains for the label-cap test.
    for n in ["one", "two", "three", "four", "five"] {
        records.push(format!("api.{n}.test=A:{MODEL_V4}"));
    }
    records
}

/// One connection as the web server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConn {
    pub local: String,
    pub peer: IpAddr,
    pub tls: bool,
    pub sni: Option<String>,
    pub raw_in: u64,
    pub raw_out: u64,
    /// Application bytes: the request read, the response written.
    pub plain_in: u64,
    pub plain_out: u64,
    /// (plaintext in, out) of each request on a TLS connection, in order.
    pub requests: Vec<(u64, u64)>,
}

/// How long the web server takes to answer a TLS ClientHello: a model API
/// a round trip or two across the internet. Attaching a process's first
/// probes takes 18 to 32 ms here (see the README's known limits); a server
/// that answers within 20 ms was beaten by them in one run in three to six.
pub const HANDSHAKE_DELAY_MS: u64 = 50;

pub struct Internet {
    netns_dir: PathBuf,
    web_log: PathBuf,
    _dns: ServerGuard,
    _web: ServerGuard,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("internet")
        .join(name)
}

impl Internet {
    /// Builds the internet in `lab` with the DNS `records`.
    pub fn start(lab: &NetLab, records: &[String]) -> Self {
        let (c, r) = (lab.client_ns(), lab.remote_ns());
        for addr in [MODEL_V4, TELEMETRY_V4, DNS_V4] {
            ip(&["-n", r, "addr", "add", &format!("{addr}/24"), "dev", "am-r"]);
        }
        ip(&[
            "-n",
            r,
            "addr",
            "add",
            &format!("{MODEL_V6}/64"),
            "dev",
            "am-r",
            "nodad",
        ]);
        // Another network: routed through the remote host.
        ip(&[
            "-n",
            r,
            "addr",
            "add",
            &format!("{FAR_V4}/24"),
            "dev",
            "am-r",
        ]);
        ip(&[
            "-n",
            c,
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "203.0.113.10",
        ]);

        let netns_dir = Path::new("/etc/netns").join(c);
        fs::create_dir_all(&netns_dir).expect("create /etc/netns/<ns>");
        fs::write(
            netns_dir.join("resolv.conf"),
            format!("nameserver {DNS_V4}\n"),
        )
        .expect("write resolv.conf");

        let dir = lab.dir();
        let (cert, key) = self_signed_cert(dir, "api.model.test")
            .unwrap_or_else(|e| panic!("{e} (cargo xtask setup test installs openssl)"));

        let ready = dir.join("dns.ready");
        let mut cmd = lab.remote_cmd("python3", [script("dns_server.py")]);
        cmd.args(["--listen", DNS_V4, "--ready"]).arg(&ready);
        for record in records {
            cmd.args(["--record", record]);
        }
        let dns = lab.spawn_remote("dns_server.py", cmd, &ready, &dir.join("dns.log"));

        let (ready, web_log) = (dir.join("web.ready"), dir.join("web.jsonl"));
        let mut cmd = lab.remote_cmd("python3", [script("web_server.py")]);
        cmd.arg("--cert").arg(&cert).arg("--key").arg(&key);
        cmd.args(["--reply", &REPLY_BODY.to_string()]);
        // As a remote API would: nothing any sooner than this after connect.
        cmd.args(["--handshake-delay-ms", &HANDSHAKE_DELAY_MS.to_string()]);
        cmd.arg("--log").arg(&web_log).arg("--ready").arg(&ready);
        for host in [MODEL_V4, TELEMETRY_V4, FAR_V4, &format!("[{MODEL_V6}]")] {
            cmd.args([
                "--tls",
                &format!("{host}:443"),
                "--plain",
                &format!("{host}:80"),
            ]);
        }
        let web = lab.spawn_remote("web_server.py", cmd, &ready, &dir.join("web.log"));
        Internet {
            netns_dir,
            web_log,
            _dns: dns,
            _web: web,
        }
    }

    /// Every connection the web server has finished, in order.
    pub fn server_conns(&self) -> Vec<ServerConn> {
        read_conns(&self.web_log)
    }

    /// Another HTTPS server on `addr`:443 in the remote namespace, with the
    /// certificate `cert` (rustls wants one a CA signed for the host's
    /// name, not the self-signed one of the others).
    pub fn serve_tls(lab: &NetLab, addr: &str, cert: &CertFiles) -> WebServer {
        let r = lab.remote_ns();
        ip(&["-n", r, "addr", "add", &format!("{addr}/24"), "dev", "am-r"]);
        let dir = lab.dir();
        let (ready, log) = (
            dir.join(format!("web-{addr}.ready")),
            dir.join(format!("web-{addr}.jsonl")),
        );
        let mut cmd = lab.remote_cmd("python3", [script("web_server.py")]);
        cmd.arg("--cert")
            .arg(&cert.cert)
            .arg("--key")
            .arg(&cert.key);
        cmd.args(["--reply", &REPLY_BODY.to_string()]);
        cmd.args(["--handshake-delay-ms", &HANDSHAKE_DELAY_MS.to_string()]);
        cmd.args(["--tls", &format!("{addr}:443")]);
        cmd.arg("--log").arg(&log).arg("--ready").arg(&ready);
        let guard = lab.spawn_remote(
            "web_server.py",
            cmd,
            &ready,
            &dir.join(format!("web-{addr}.log")),
        );
        WebServer { log, _guard: guard }
    }

    /// Path of a client script in tests/internet.
    pub fn script(name: &str) -> PathBuf {
        script(name)
    }

    /// go_client.go built at `out`, static and stripped (`-s -w`), as Go
    /// agents (and AWS Copilot CLI) ship.
    pub fn go_client(out: &Path) -> PathBuf {
        let mut build = Command::new("go");
        build
            .args(["build", "-ldflags=-s -w", "-o"])
            .arg(out)
            .arg(script("go_client.go"))
            .env("CGO_ENABLED", "0")
            // Shared by runs: std's crypto/tls builds once per machine.
            .env(
                "GOCACHE",
                std::env::temp_dir().join("agentmon-tests-gocache"),
            )
            .env("HOME", out.parent().unwrap_or(Path::new("/")));
        let built = run_bounded(&mut build, Duration::from_secs(300));
        assert!(built.status.success(), "go build: {built:?}");
        out.to_path_buf()
    }
}

/// A web server [`Internet::serve_tls`] started; stops when dropped.
pub struct WebServer {
    log: PathBuf,
    _guard: ServerGuard,
}

impl WebServer {
    /// Every connection it has finished, in order.
    pub fn conns(&self) -> Vec<ServerConn> {
        read_conns(&self.log)
    }
}

/// Every connection a web server logged to `log`, in order.
fn read_conns(log: &Path) -> Vec<ServerConn> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("web server log line");
            ServerConn {
                local: v["local"].as_str().unwrap_or_default().to_owned(),
                peer: v["peer"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .expect("peer address"),
                tls: v["tls"].as_bool().unwrap_or_default(),
                sni: v["sni"].as_str().map(str::to_owned),
                raw_in: v["raw_in"].as_u64().unwrap_or_default(),
                raw_out: v["raw_out"].as_u64().unwrap_or_default(),
                plain_in: v["plain_in"].as_u64().unwrap_or_default(),
                plain_out: v["plain_out"].as_u64().unwrap_or_default(),
                requests: v["requests"]
                    .as_array()
                    .map(|all| {
                        all.iter()
                            .map(|r| (r[0].as_u64().unwrap_or(0), r[1].as_u64().unwrap_or(0)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

impl Drop for Internet {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.netns_dir);
    }
}

/// Writes a self-signed P-256 certificate for `cn` and its key to `dir`
/// (`cert.pem`, `key.pem`) with openssl; returns (certificate, key).
pub fn self_signed_cert(dir: &Path, cn: &str) -> Result<(PathBuf, PathBuf), String> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((cert, key))
}

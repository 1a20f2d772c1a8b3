//! A real Prometheus for the dashboard and rule tests: Debian's `prometheus`
//! (which `cargo xtask setup test` installs) with a config, a TSDB folder and a
//! listen address of its own, so it never meets the package's system service
//! (port 9090 in the initial network namespace). A server, or an agent
//! (agent mode: it scrapes and remote-writes only). Stopped on drop.

use std::{
    collections::BTreeMap,
    fs,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    agentmon::free_port,
    http::{HttpResponse, http_get},
    netns::{in_netns, spawn_in_netns},
    process::{ChildGuard, TempDir, describe},
};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// A clean stop flushes what remote write has not sent yet.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One sample of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Every label, `__name__` included when the result keeps it.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The label names, without `__name__`.
    pub fn label_names(&self) -> Vec<&str> {
        self.labels
            .keys()
            .map(String::as_str)
            .filter(|&k| k != "__name__")
            .collect()
    }
}

/// How to run a [`Prometheus`] beyond its config; the default is a server on
/// loopback.
#[derive(Debug, Clone, Default)]
pub struct PrometheusOpts {
    /// Agent mode, with `${VAR}` expanded in external labels
    /// (`--enable-feature=agent,expand-external-labels`).
    pub agent: bool,
    /// In a namespace, listen on all its addresses (0.0.0.0:9090), not only
    /// loopback: for remote writes from another namespace.
    pub listen_all: bool,
    /// More flags, e.g. `--web.enable-remote-write-receiver`.
    pub args: Vec<String>,
    /// Environment variables, e.g. `HOSTNAME` for the external labels.
    pub env: Vec<(String, String)>,
}

pub struct Prometheus {
    addr: SocketAddr,
    netns: Option<String>,
    log: PathBuf,
    child: ChildGuard,
    // Declared last: removed after the child is gone.
    dir: TempDir,
}

impl Prometheus {
    /// Starts `prometheus` with `config` (YAML) on 127.0.0.1: in network
    /// namespace `netns` on port 9090 (the namespace is ours alone), else on
    /// a free port. Waits until `/-/ready` answers 200; panics with the log if
    /// it exits or is not ready within 30 s.
    pub fn start(netns: Option<&str>, config: &str) -> Self {
        Self::start_with(netns, config, &PrometheusOpts::default())
    }

    /// [`Prometheus::start`], run as `opts` says.
    pub fn start_with(netns: Option<&str>, config: &str, opts: &PrometheusOpts) -> Self {
        let dir = TempDir::new("prometheus");
        let config_file = dir.path().join("prometheus.yml");
        fs::write(&config_file, config).expect("write prometheus.yml");
        let port = if netns.is_some() { 9090 } else { free_port() };
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let listen = match (netns, opts.listen_all) {
            (Some(_), true) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)),
            _ => addr,
        };
        let log = dir.path().join("prometheus.log");
        let log_file = fs::File::create(&log).expect("create prometheus.log");
        let data = dir.path().join("data");
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config_file.display()));
        if opts.agent {
            cmd.arg("--enable-feature=agent,expand-external-labels")
                .arg(format!("--storage.agent.path={}", data.display()));
        } else {
            cmd.arg(format!("--storage.tsdb.path={}", data.display()));
        }
        cmd.arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .args(&opts.args)
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log file handle"))
            .stderr(log_file);
        if let Some(ns) = netns {
            spawn_in_netns(&mut cmd, ns);
        }
        let what = describe(&cmd);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("start {what}: {e} (`cargo xtask setup test` installs Debian's prometheus)")
        });
        let mut prometheus = Prometheus {
            addr,
            netns: netns.map(str::to_owned),
            log,
            child: ChildGuard::from_child(child, what.clone()),
            dir,
        };
        prometheus.wait_ready(&what);
        prometheus
    }

    fn wait_ready(&mut self, what: &str) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.child_mut().try_wait() {
                panic!("{what} exited with {status}; its log:\n{}", self.log_text());
            }
            if self.get("/-/ready").is_ok_and(|r| r.status == 200) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what} was not ready within {READY_TIMEOUT:?}; its log:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The folder holding the config and the TSDB.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops it cleanly (SIGTERM) and waits for it to exit, at most 30 s.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill has no memory-safety preconditions; the child is
        // ours and not yet reaped, so the pid is still its own.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.child_mut().try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
                other => panic!(
                    "prometheus did not stop on SIGTERM: {other:?}; its log:\n{}",
                    self.log_text()
                ),
            }
        }
    }

    /// What Prometheus logged so far (warnings and errors).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> std::io::Result<HttpResponse> {
        match &self.netns {
            Some(ns) => in_netns(ns, || http_get(self.addr, path, HTTP_TIMEOUT)),
            None => http_get(self.addr, path, HTTP_TIMEOUT),
        }
    }

    /// `GET /api/v1/<path>`: the response's `data`, or the API's error.
    pub fn api(&self, path: &str) -> Result<Value, String> {
        let response = self
            .get(&format!("/api/v1/{path}"))
            .map_err(|e| format!("GET /api/v1/{path}: {e}"))?;
        let body: Value = serde_json::from_str(&response.body)
            .map_err(|e| format!("GET /api/v1/{path}: {e}: {}", response.body))?;
        if body["status"] != "success" {
            return Err(format!(
                "{} ({}): {}",
                body["errorType"], response.status, body["error"]
            ));
        }
        Ok(body["data"].clone())
    }

    /// Evaluates `expr` now; its samples, or the API's error (a bad query).
    pub fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api(&format!("query?query={}", url_encode(expr)))?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .map(|r| r.iter().map(sample).collect())
                .unwrap_or_default()),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value_of(&data["result"]),
            }]),
            other => Err(format!("{expr}: result type {other:?}, want a vector")),
        }
    }

    /// Queries `expr` until `accept` holds for its samples, for at most
    /// `timeout`. `Ok` with them when it did; `Err` with the last result.
    pub fn wait_for(
        &self,
        expr: &str,
        timeout: Duration,
        accept: impl Fn(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.query(expr);
            match &last {
                Ok(samples) if accept(samples) => return last,
                _ if Instant::now() >= deadline => {
                    return Err(format!("{expr} after {timeout:?}: {last:?}"));
                }
                _ => thread::sleep(Duration::from_millis(250)),
            }
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.child.kill();
        if thread::panicking() {
            eprintln!(
                "--- prometheus log ({}) ---\n{}--- end of prometheus log ---",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

fn sample(v: &Value) -> Sample {
    let labels = v["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Sample {
        labels,
        value: value_of(&v["value"]),
    }
}

/// The value of a `[timestamp, "value"]` pair.
fn value_of(pair: &Value) -> f64 {
    pair[1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_only_unreserved_characters() {
        assert_eq!(
            url_encode(r#"sum by (tool) (x{a=~"b|c"}[5m])"#),
            "sum%20by%20%28tool%29%20%28x%7Ba%3D~%22b%7Cc%22%7D%5B5m%5D%29"
        );
        assert_eq!(url_encode("a_b-c.d~"), "a_b-c.d~");
    }

    #[test]
    fn samples_from_the_api() {
        let v: Value = serde_json::from_str(
            r#"{"metric":{"__name__":"up","instance":"h:1"},"value":[1.5,"1"]}"#,
        )
        .unwrap();
        let s = sample(&v);
        assert_eq!(s.value, 1.0);
        assert_eq!(s.label_names(), ["instance"]);
    }
}

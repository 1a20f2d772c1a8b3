//! The web-config file (`--web.config.file`): the YAML format that
//! Prometheus exporters share (prometheus/exporter-toolkit), so that one
//! file and one habit serve every exporter on a host:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt        # relative paths: to this file's folder
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
//!   client_ca_file: clients-ca.crt
//! basic_auth_users:
//!   prometheus: $2b$10$...       # bcrypt hash
//! ```
//!
//! Pure: parsing and checking only; `tls.rs` reads the files it names.
//! Strict like the daemon's TOML: an unknown key (the toolkit's
//! `cipher_suites`, `http_server_config`, a typo) is an error that names it,
//! rather than a setting silently not applied to a security boundary.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: ClientAuth,
    client_ca_file: Option<PathBuf>,
}

/// Whether and how clients present certificates; the names and meanings
/// of Go's `tls.ClientAuthType`, as the toolkit spells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    NoClientCert,
    /// Asked for, not required, not verified.
    RequestClientCert,
    /// Required, not verified.
    RequireAnyClientCert,
    /// Not required; verified against `client_ca_file` when given.
    VerifyClientCertIfGiven,
    /// Required and verified against `client_ca_file`.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Whether certificates are checked against `client_ca_file`.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Whether a handshake without a certificate fails.
    pub fn requires(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// The checked settings, paths made absolute against the file's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebConfig {
    pub tls: Option<TlsConfig>,
    /// User name to bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Every file it reads, for the watcher.
    pub fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert_file.as_path(), self.key_file.as_path()];
        files.extend(self.client_ca_file.as_deref());
        files
    }
}

/// A web-config problem: the file and what to change. A bad file at start
/// stops the daemon with exit code 78 (see `exit.rs`).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "web config {}: {}", self.path.display(), self.message)
    }
}

/// Parses and checks web-config `text`; `path` names the file in errors
/// and is where relative paths start.
pub fn parse(text: &str, path: &Path) -> Result<WebConfig, ConfigError> {
    let fail = |message: String| ConfigError {
        path: path.to_owned(),
        message,
    };
    // An empty file is a valid YAML null: nothing configured.
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_norway::from_str(text).map_err(|e| {
            fail(format!(
                "{e}; README \"Secured exporter\" lists the keys agentmon reads"
            ))
        })?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let tls = match file.tls_server_config {
        None => None,
        Some(t) => Some(tls(t, base).map_err(fail)?),
    };
    let users = file.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if user.is_empty() || user.contains(':') {
            return Err(fail(format!(
                "basic_auth_users: user name {user:?} cannot be empty or contain ':'"
            )));
        }
        if !is_bcrypt(hash) {
            // The hash itself stays out of the message: it is a secret too.
            return Err(fail(format!(
                "basic_auth_users: the password of {user:?} is not a bcrypt hash \
                 ($2a$, $2b$ or $2y$, 60 characters); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
            )));
        }
    }
    Ok(WebConfig { tls, users })
}

fn tls(t: TlsFile, base: &Path) -> Result<TlsConfig, String> {
    let (Some(cert), Some(key)) = (t.cert_file, t.key_file) else {
        return Err(
            "tls_server_config needs both cert_file and key_file (PEM files); \
             remove tls_server_config to serve plain HTTP"
                .into(),
        );
    };
    match (t.client_auth_type.verifies(), &t.client_ca_file) {
        (true, None) => {
            return Err(format!(
                "client_auth_type {:?} needs client_ca_file, the CA that signs client certificates",
                t.client_auth_type
            ));
        }
        (false, Some(_)) => {
            return Err(format!(
                "client_ca_file is set but client_auth_type {:?} does not verify client \
                 certificates; set client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven",
                t.client_auth_type
            ));
        }
        _ => {}
    }
    Ok(TlsConfig {
        cert_file: base.join(cert),
        key_file: base.join(key),
        client_auth: t.client_auth_type,
        client_ca_file: t.client_ca_file.map(|p| base.join(p)),
    })
}

/// `$2a$`, `$2b$`, `$2x$` or `$2y$`, a two-digit cost from 04 to 31, `$`,
/// then 53 characters of bcrypt's base64 (salt and hash).
fn is_bcrypt(hash: &str) -> bool {
    let b = hash.as_bytes();
    if b.len() != 60 || !matches!(&b[..4], b"$2a$" | b"$2b$" | b"$2x$" | b"$2y$") || b[6] != b'$' {
        return false;
    }
    let cost = std::str::from_utf8(&b[4..6])
        .ok()
        .and_then(|c| c.parse::<u32>().ok());
    cost.is_some_and(|c| (4..=31).contains(&c))
        && b[7..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    // bcrypt of "secret", cost 4 (made by the `bcrypt` crate).
    const HASH: &str = "$2b$04$Rq0lbusLCKMM7wiJLQuyzOcyjKjB7r/m7Guq7rzAtBlr4SEKMt4hq";

    fn parse_at(text: &str) -> Result<WebConfig, ConfigError> {
        parse(text, Path::new("/etc/agentmon/web.yml"))
    }

    #[test]
    fn empty_file_configures_nothing() {
        assert_eq!(parse_at("").unwrap(), WebConfig::default());
        assert_eq!(parse_at("# nothing\n").unwrap(), WebConfig::default());
    }

    #[test]
    fn full_file_with_relative_paths() {
        let text = format!(
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: /keys/server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
             basic_auth_users:\n  prometheus: '{HASH}'\n"
        );
        let web = parse_at(&text).unwrap();
        let tls = web.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/agentmon/tls/server.crt"));
        assert_eq!(tls.key_file, Path::new("/keys/server.key"));
        assert_eq!(
            tls.client_ca_file.unwrap(),
            Path::new("/etc/agentmon/ca.crt")
        );
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
        assert_eq!(web.users["prometheus"], HASH);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e =
            parse_at("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: []\n")
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("web config /etc/agentmon/web.yml: "), "{e}");
        assert!(e.contains("cipher_suites"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let e = parse_at("http_server_config:\n  http2: false\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("http_server_config"), "{e}");
    }

    #[test]
    fn unknown_client_auth_type_is_an_error() {
        let e = parse_at(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Always\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Always"), "{e}");
    }

    #[test]
    fn tls_needs_cert_and_key() {
        let e = parse_at("tls_server_config:\n  cert_file: a\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs both cert_file and key_file"), "{e}");
    }

    #[test]
    fn verifying_needs_a_ca_and_a_ca_needs_verifying() {
        let e = parse_at(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: VerifyClientCertIfGiven\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs client_ca_file"), "{e}");
        let e =
            parse_at("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("does not verify"), "{e}");
        // Requiring any certificate verifies none, so needs no CA.
        let web = parse_at(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
        )
        .unwrap();
        assert!(web.tls.unwrap().client_auth.requires());
    }

    #[test]
    fn passwords_must_be_bcrypt_hashes_and_stay_out_of_errors() {
        let e = parse_at("basic_auth_users:\n  alice: plaintext-password\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"alice\" is not a bcrypt hash"), "{e}");
        assert!(!e.contains("plaintext-password"), "{e}");
        let e = parse_at(&format!("basic_auth_users:\n  'a:b': '{HASH}'\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be empty or contain ':'"), "{e}");
    }

    #[test]
    fn bcrypt_shapes() {
        assert!(is_bcrypt(HASH));
        assert!(is_bcrypt(&HASH.replace("$2b$", "$2y$")));
        assert!(!is_bcrypt(&HASH.replace("$04$", "$03$")));
        assert!(!is_bcrypt(&HASH.replace("$04$", "$32$")));
        assert!(!is_bcrypt(&HASH[..59]));
        assert!(!is_bcrypt(&HASH.replace('/', "!")));
        assert!(!is_bcrypt("$1$abc"));
    }
}

//! The web config as loaded, re-read when it or a file it names changes,
//! so that a certificate renewed on disk (certbot, cert-manager, a cron
//! job) is served without a restart.
//!
//! Looked at on each new connection: a `stat` of up to four files, a few
//! microseconds, and a renewed certificate is served from the very next
//! connection rather than after a polling period. A change that does not
//! load keeps the settings in use and logs one warning until the files
//! change again.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::auth::Users;
use super::config::{self, ConfigError, WebConfig};
use super::tls;
use crate::geoip::FileId;

/// What a connection is served with.
pub struct Settings {
    /// `None`: plain HTTP.
    pub tls: Option<TlsAcceptor>,
    /// `None`: no authentication.
    pub users: Option<Arc<Users>>,
}

impl Settings {
    /// No web config: plain HTTP, no authentication.
    pub fn plain() -> Settings {
        Settings {
            tls: None,
            users: None,
        }
    }
}

/// A web-config file and what it last loaded to.
pub struct Watched {
    path: PathBuf,
    settings: Arc<Settings>,
    /// The files the settings came from: the web config first.
    files: Vec<PathBuf>,
    /// Their identities when last looked at.
    seen: Vec<Option<FileId>>,
}

impl Watched {
    /// Loads the file and what it names; an error stops the daemon's start.
    pub fn load(path: &Path) -> Result<Watched, ConfigError> {
        let (settings, files, seen) = load(path)?;
        info!(
            path = %path.display(),
            tls = settings.tls.is_some(),
            basic_auth = settings.users.is_some(),
            "web config loaded"
        );
        Ok(Watched {
            path: path.to_owned(),
            settings: Arc::new(settings),
            files,
            seen,
        })
    }

    /// The settings, reloaded first if a file changed since the last look.
    pub fn current(&mut self) -> Arc<Settings> {
        let now = identities(&self.files);
        if now != self.seen {
            match load(&self.path) {
                Ok((settings, files, seen)) => {
                    info!(path = %self.path.display(), "web config reloaded");
                    self.settings = Arc::new(settings);
                    self.files = files;
                    self.seen = seen;
                }
                Err(e) => {
                    warn!("{e}; keeping the web settings loaded before");
                    // Warned once: the next change is looked at again.
                    self.seen = now;
                }
            }
        }
        self.settings.clone()
    }
}

type Loaded = (Settings, Vec<PathBuf>, Vec<Option<FileId>>);

fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let fail = |message: String| ConfigError {
        path: path.to_owned(),
        message,
    };
    // Identities before reading: a file replaced in between is seen as
    // changed at the next look and read again.
    let seen_config = identity(path);
    let text = fs::read_to_string(path).map_err(|e| {
        fail(format!(
            "cannot read it: {e}; check the --web.config.file path"
        ))
    })?;
    let WebConfig { tls, users } = config::parse(&text, path)?;
    let mut files = vec![path.to_owned()];
    if let Some(tls) = &tls {
        files.extend(tls.files().into_iter().map(Path::to_path_buf));
    }
    let mut seen = vec![seen_config];
    seen.extend(identities(&files[1..]));
    let acceptor = match &tls {
        Some(tls) => Some(TlsAcceptor::from(
            tls::server_config(tls).map_err(|e| fail(format!("tls_server_config: {e}")))?,
        )),
        None => None,
    };
    let settings = Settings {
        tls: acceptor,
        users: (!users.is_empty()).then(|| Arc::new(Users::new(users))),
    };
    Ok((settings, files, seen))
}

/// What `stat` tells of each file's content (`None`: cannot be read): a
/// rename into place changes the inode, an edit in place mtime and size,
/// a chmod ctime.
fn identities(files: &[PathBuf]) -> Vec<Option<FileId>> {
    files.iter().map(|f| identity(f)).collect()
}

fn identity(path: &Path) -> Option<FileId> {
    fs::metadata(path).ok().map(|m| FileId::of(&m))
}

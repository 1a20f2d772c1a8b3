//! The local, read-only endpoint `agentmon top` reads: a unix socket that
//! answers every connection with one JSON snapshot and closes it. agentmon
//! never reads from it, so there is nothing a client can ask or change;
//! who may connect is the socket file's group (mode 0660).

use std::{
    io::{self, Read as _},
    os::unix::{
        fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _},
        net::{UnixListener, UnixStream},
    },
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use tokio::{io::AsyncWriteExt as _, sync::Semaphore};
use tracing::{info, warn};

use super::{config::TopConfig, snapshot::Snapshot};

/// What can hand out snapshots: the daemon's state.
pub trait Snapshots: Send + 'static {
    fn snapshot(&mut self) -> Snapshot;
}

/// Readers served at once; more wait in the listen queue.
const READERS: usize = 4;
/// A reader that takes longer than this to take its snapshot is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The socket file's mode: owner and group read and write (connecting
/// needs write permission on the file).
const MODE: u32 = 0o660;

/// Binds the configured socket. A failure is one warning and no socket:
/// `top` is a convenience, the exporter goes on.
pub fn bind(config: &TopConfig) -> Option<UnixListener> {
    let path = config.socket()?;
    match try_bind(path, config.group.as_deref()) {
        Ok(listener) => {
            info!(socket = %path.display(), "serving snapshots for `agentmon top`");
            Some(listener)
        }
        Err(e) => {
            warn!(socket = %path.display(),
                "no socket for `agentmon top`: {e:#}; fix it or set `[top] socket`");
            None
        }
    }
}

fn try_bind(path: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Searchable by all: the socket's own mode decides who connects.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    // A socket left by an earlier run is replaced; anything else at the
    // path (a file, a symlink someone planted) is not touched.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => anyhow::bail!("{} exists and is not a socket", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    // Made, given its group and mode in a folder only agentmon can enter,
    // then renamed into place: no chown or chmod ever goes through a path
    // someone else could swap for a link meanwhile.
    let private = path.with_file_name(format!(".agentmon-top-{}", std::process::id()));
    match std::fs::remove_dir_all(&private) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("cannot create {}", private.display()))?;
    let made = private.join("top.sock");
    let bound = bind_private(&made, group).and_then(|listener| {
        std::fs::rename(&made, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_dir_all(&private);
    let listener = bound?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn bind_private(made: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
    let listener = UnixListener::bind(made)?;
    if let Some(name) = group {
        let gid = nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .with_context(|| format!("group {name:?} does not exist (`[top] group`)"))?
            .gid;
        std::os::unix::fs::chown(made, None, Some(gid.as_raw())).with_context(|| {
            format!("cannot give the socket to group {name:?}: is agentmon a member?")
        })?;
    }
    std::fs::set_permissions(made, std::fs::Permissions::from_mode(MODE))?;
    Ok(listener)
}

/// Answers connections with snapshots until the runtime stops.
pub async fn serve<S: Snapshots>(listener: UnixListener, state: Arc<Mutex<S>>) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("no socket for `agentmon top`: {e}");
            return;
        }
    };
    let readers = Arc::new(Semaphore::new(READERS));
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors, say: try again later, not in a
                // tight loop.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = readers.clone().acquire_owned().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let snapshot = state.lock().unwrap_or_else(|e| e.into_inner()).snapshot();
            let mut text = serde_json::to_vec(&snapshot).unwrap_or_default();
            text.push(b'\n');
            let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&text)).await;
            drop(permit);
        });
    }
}

/// Reads one snapshot from the daemon's socket.
pub fn fetch(path: &Path) -> anyhow::Result<Snapshot> {
    let mut stream =
        UnixStream::connect(path).map_err(|e| anyhow::anyhow!(connect_error(path, &e)))?;
    stream.set_read_timeout(Some(WRITE_TIMEOUT))?;
    let mut text = Vec::new();
    stream
        .read_to_end(&mut text)
        .with_context(|| format!("cannot read a snapshot from {}", path.display()))?;
    let snapshot: Snapshot = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} sent no snapshot this agentmon understands",
            path.display()
        )
    })?;
    anyhow::ensure!(
        snapshot.v == super::snapshot::VERSION,
        "{} sent snapshot version {}, this agentmon reads {}: run the same version as the daemon",
        path.display(),
        snapshot.v,
        super::snapshot::VERSION
    );
    Ok(snapshot)
}

/// What went wrong, and what to do about it.
fn connect_error(path: &Path, e: &io::Error) -> String {
    let p = path.display();
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "cannot read {p}: permission denied; join the socket's group (`sudo adduser $USER agentmon`, then log in again), or run `sudo agentmon top`"
        ),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => format!(
            "cannot read {p}: {e}; is agentmon running (`systemctl status agentmon`)? Or give its socket with --socket, or run `sudo agentmon top --standalone`"
        ),
        _ => format!("cannot read {p}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_made_0660_in_place_and_nothing_else_at_its_path_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("top.sock");
        let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        let listener = try_bind(&path, None).unwrap();
        assert!(meta(&path).file_type().is_socket());
        assert_eq!(meta(&path).permissions().mode() & 0o777, MODE);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the private folder is gone");
        drop(listener);
        // An earlier run's socket is replaced.
        try_bind(&path, None).unwrap();

        // A link someone planted, and a file: refused, left as they are.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "x").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for planted in [&link, &victim] {
            let e = try_bind(planted, None).unwrap_err().to_string();
            assert!(e.contains("is not a socket"), "{e}");
        }
        assert!(meta(&link).file_type().is_symlink());
        assert_eq!(meta(&victim).permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "x");
    }
}

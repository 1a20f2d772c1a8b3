//! Telling systemd how the service is doing (`Type=notify`): ready once the
//! programs are attached and /metrics serves, reloading, stopping, and
//! watchdog pings while the daemon's state is responsive. Outside systemd
//! (no NOTIFY_SOCKET) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

fn notify(states: &[NotifyState]) {
    // Never fatal: a service manager that stopped listening is not ours to fix.
    if let Err(e) = sd_notify::notify(false, states) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// Programs attached and /metrics listening.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// SIGHUP received: reloading the config, catalogs and logs.
pub fn reloading() {
    let Ok(now) = NotifyState::monotonic_usec_now() else {
        return;
    };
    notify(&[NotifyState::Reloading, now]);
}

/// A reload finished (or was refused, keeping the old config).
pub fn reloaded(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// The interval at which to ping the watchdog (half of `WatchdogSec=`), if
/// systemd asked for pings.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2))
}

/// One watchdog ping; the caller sends it only after it could take the
/// daemon's state lock, so a wedged daemon stops pinging and gets restarted.
pub fn ping() {
    notify(&[NotifyState::Watchdog]);
}

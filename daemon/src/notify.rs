//! systemd's notify protocol (`Type=notify`): READY, STATUS, RELOADING, STOPPING and the watchdog.
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is not set (not started by systemd), so the daemon
//! calls them unconditionally. A failed send is logged, never fatal: the audio matters more than the
//! service manager's view of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};
use sd_notify::NotifyState;

use crate::backend::{BackendState, BackendStats};

/// Set while sends fail, so a broken socket is logged once, not on every status update.
static FAILING: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState<'_>]) {
    match sd_notify::notify(states) {
        Ok(()) => {
            if FAILING.swap(false, Ordering::Relaxed) {
                tracing::info!("systemd notify works again");
            }
        }
        Err(e) => {
            if !FAILING.swap(true, Ordering::Relaxed) {
                let what = states.first().map(|s| s.to_string()).unwrap_or_default();
                tracing::warn!("systemd notify ({what}) failed: {e}; further failures are not logged");
            }
        }
    }
}

/// Start-up (or a reload) is complete: `READY=1` with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A free-form status line (`systemctl status` shows it): load, xruns, backend state.
pub fn status(s: &str) {
    send(&[NotifyState::Status(s)]);
}

/// A reload (SIGHUP) has begun; call [`ready`] when it is done. Carries `MONOTONIC_USEC`, which systemd
/// 253 and newer require with `RELOADING=1` (older versions ignore it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown has begun.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// The watchdog thread; dropping it stops the pings (and joins the thread).
pub struct WatchdogThread {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
    interval: Duration,
}

impl WatchdogThread {
    /// Time between checks (half of `WatchdogSec=`).
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

impl Drop for WatchdogThread {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the thread at once.
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Pings `WATCHDOG=1` every half of `WATCHDOG_USEC` from its own thread, but only when `alive()`
/// returns true at that moment, so systemd restarts a daemon whose RT thread has stalled. Returns
/// `None` when no watchdog is configured (`WATCHDOG_USEC` unset, or `WATCHDOG_PID` names another
/// process). `alive` is called on the watchdog thread, once per interval; a change between alive and
/// not alive is logged once.
pub fn spawn_watchdog(alive: Box<dyn FnMut() -> bool + Send>) -> Option<WatchdogThread> {
    let period = sd_notify::watchdog_enabled()?;
    let interval = period / 2;
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    let mut alive = alive;
    let spawned = std::thread::Builder::new().name("ballast-watchdog".into()).spawn(move || {
        let mut was_alive = true;
        loop {
            let now_alive = alive();
            if now_alive {
                send(&[NotifyState::Watchdog]);
            }
            if now_alive != was_alive {
                if now_alive {
                    tracing::info!("audio thread cycling again; watchdog pings resumed");
                } else {
                    tracing::error!(
                        "audio thread not cycling: withholding watchdog pings (systemd restarts ballastd after {} ms)",
                        period.as_millis()
                    );
                }
                was_alive = now_alive;
            }
            match rx.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => continue,
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    });
    match spawned {
        Ok(handle) => Some(WatchdogThread { stop: Some(tx), handle: Some(handle), interval }),
        Err(e) => {
            tracing::error!("cannot start the watchdog thread: {e}");
            None
        }
    }
}

/// The `alive` check for [`spawn_watchdog`] the daemon uses: true when the backend's RT cycle counter
/// advanced since the previous call, or when the backend is knowingly not cycling (starting, or retrying
/// a lost server/device). A backend `Running` whose counter stands still is stuck.
pub fn backend_alive(stats: Arc<BackendStats>) -> Box<dyn FnMut() -> bool + Send> {
    let mut last = stats.cycles();
    Box::new(move || {
        let now = stats.cycles();
        let advanced = now != last;
        last = now;
        advanced || matches!(stats.state(), BackendState::Starting | BackendState::Retrying)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_alive_follows_the_heartbeat() {
        let stats = Arc::new(BackendStats::default());
        let mut alive = backend_alive(stats.clone());
        stats.set_state(BackendState::Starting);
        assert!(alive(), "starting: not cycling yet, knowingly");
        stats.set_state(BackendState::Running);
        assert!(!alive(), "running without a cycle: stuck");
        stats.tick();
        assert!(alive());
        assert!(!alive(), "no cycle since the last check");
        stats.set_state(BackendState::Retrying);
        assert!(alive(), "retrying a lost server");
        stats.set_state(BackendState::Stopped);
        assert!(!alive());
    }
}

//! Real processes for daemon tests: a `ballastd` child, stopped by its guard's `Drop` even when the test
//! panics; the JACK server and bus guards, polling and scratch dirs come from `ballast-testsupport`.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use ballast_testsupport::{wait_for, Bus, Jackd};

/// A scratch directory under the target dir, emptied first.
pub fn scratch(tag: &str) -> PathBuf {
    ballast_testsupport::scratch_in(env!("CARGO_TARGET_TMPDIR"), tag)
}

/// A `ballastd` child with its stderr (the log) going to a file the test can read while it runs.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `ballastd ARGS` with `env` on top of a clean XDG environment rooted at `home`.
    pub fn start(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let log = home.join(format!("ballastd-{}.log", rand_tag()));
        let file = fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ballastd"));
        cmd.args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("JACK_NO_START_SERVER", "1")
            // No test talks to a real session bus; a test that wants D-Bus passes its private bus.
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/ballast-test-bus")
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env_remove("STATE_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon { child: cmd.spawn().expect("ballastd starts"), log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle` (counting from occurrence `after`), returns it.
    pub fn wait_log(&self, needle: &str, after: usize) -> String {
        wait_for(Duration::from_secs(20), &format!("log line {needle:?} (#{})", after + 1), || {
            self.log_text().lines().filter(|l| l.contains(needle)).nth(after).map(str::to_string)
        })
        .to_string()
    }

    pub fn count_log(&self, needle: &str) -> usize {
        self.log_text().lines().filter(|l| l.contains(needle)).count()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < timeout, "ballastd did not exit within {timeout:?}; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_tag() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) as u128
}

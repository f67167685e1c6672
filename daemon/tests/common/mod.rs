//! Real processes for daemon tests: a named JACK dummy server and a `ballastd` child, each stopped by
//! its guard's `Drop` even when the test panics.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A scratch directory under the target dir, emptied first.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `jackd -n NAME -d dummy -r 48000 -p 256`, stopped with SIGTERM on drop.
///
/// JACK2 keeps its servers in a registry in /dev/shm with eight places, and a server killed with
/// SIGKILL keeps its place until a server of the same name starts again. So servers are stopped
/// gracefully, and a test that kills one on purpose restarts it under the same name.
pub struct Jackd {
    pub name: String,
    child: Child,
}

impl Jackd {
    pub fn start(name: &str) -> Jackd {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("jackd-{name}.log"));
        let mut child = Command::new("jackd")
            .args(["-n", name, "-d", "dummy", "-r", "48000", "-p", "256"])
            .env("JACK_NO_START_SERVER", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("jackd runs (install jackd2: scripts/install-deps.sh)");
        // A server that cannot start says why on stderr and exits at once; report that, not a timeout.
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(Some(status)) = child.try_wait() {
            let why = fs::read_to_string(&log).unwrap_or_default();
            panic!("jackd -n {name} exited at once ({status}): {}", why.trim());
        }
        let j = Jackd { name: name.to_string(), child };
        wait_for(Duration::from_secs(20), "jackd to accept clients", || j.ports().map(|_| ()));
        j
    }

    /// `jack_lsp` on this server: every port name, or `None` when the server does not answer.
    pub fn ports(&self) -> Option<Vec<String>> {
        let out = Command::new("jack_lsp")
            .env("JACK_DEFAULT_SERVER", &self.name)
            .env("JACK_NO_START_SERVER", "1")
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect())
    }

    /// Waits until every port in `names` exists.
    pub fn wait_ports(&self, names: &[&str]) {
        wait_for(Duration::from_secs(20), &format!("ports {names:?}"), || {
            let ports = self.ports()?;
            names.iter().all(|n| ports.iter().any(|p| p == n)).then_some(())
        });
    }

    /// SIGKILL, as a crash would. Start the next server under the same name (see above).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Jackd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// A private `dbus-daemon --session`, stopped on drop.
pub struct Bus {
    pub address: String,
    pid: i32,
}

impl Bus {
    pub fn start() -> Bus {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon runs (install dbus: scripts/install-deps.sh)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines.next().unwrap().unwrap();
        let pid: i32 = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let _ = child.wait();
        Bus { address, pid }
    }

    /// `busctl --user ARGS` on this bus: (success, stdout, stderr).
    pub fn busctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("busctl")
            // `--` so that negative numbers among the arguments are not taken for options.
            .args(["--user", "--"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGTERM);
    }
}

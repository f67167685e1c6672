//! The real processes ballast's tests and benches run against, each stopped by its guard's `Drop` even
//! when a test panics: a named JACK dummy server ([`Jackd`]), a private `dbus-daemon --session`
//! ([`Bus`]), any child stopped with SIGTERM ([`Child`]); plus [`wait_for`] (poll, never a fixed sleep)
//! and [`scratch_in`] (an emptied directory). Dev-only: used as a dev-dependency by `ballastd`,
//! `ballastctl` and the root package.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `DIR/TAG-PID`, emptied first. Tests pass `env!("CARGO_TARGET_TMPDIR")` (set only when compiling
/// integration tests and benches, so it cannot be read here).
pub fn scratch_in(dir: impl AsRef<Path>, tag: &str) -> PathBuf {
    let dir = dir.as_ref().join(format!("{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `f` every 20 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(pid: u32) {
    // SAFETY: kill(2) of a process this harness started; no memory is involved.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}

/// A child process, stopped with SIGTERM (SIGKILL after 10 s) when dropped.
pub struct Child(pub std::process::Child);

impl Child {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
        cmd.spawn().map(Child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGTERM, then its exit status (SIGKILL after 10 s).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(s)) = self.0.try_wait() {
            return Some(s);
        }
        sigterm(self.0.id());
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        self.0.wait().ok()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `jackd -n NAME -d dummy -r 48000 -p FRAMES`, stopped with SIGTERM on drop.
///
/// JACK2 keeps its servers in a registry in /dev/shm with eight places, and a server killed with
/// SIGKILL keeps its place until a server of the same name starts again. So servers are stopped
/// gracefully, and a test that kills one on purpose restarts it under the same name.
pub struct Jackd {
    pub name: String,
    child: Child,
}

impl Jackd {
    /// At 256 frames (the dummy driver's timer is steady there: no xruns).
    pub fn start(name: &str) -> Jackd {
        Jackd::with_frames(name, 256)
    }

    /// Its stderr goes to `jackd-NAME.log` in the temp dir, and is quoted if it exits at once.
    pub fn with_frames(name: &str, frames: usize) -> Jackd {
        let log = std::env::temp_dir().join(format!("jackd-{name}.log"));
        let child = Child::spawn(
            Command::new("jackd")
                .args(["-n", name, "-d", "dummy", "-r", "48000", "-p", &frames.to_string()])
                .env("JACK_NO_START_SERVER", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).unwrap()),
        )
        .expect("jackd runs (install jackd2: scripts/install-deps.sh)");
        let mut j = Jackd { name: name.to_string(), child };
        // A server that cannot start says why on stderr and exits at once; report that, not a timeout.
        std::thread::sleep(Duration::from_millis(100));
        if !j.child.alive() {
            let why = fs::read_to_string(&log).unwrap_or_default();
            panic!("jackd -n {name} exited at once: {}", why.trim());
        }
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
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }
}

/// A private `dbus-daemon --session` (it forks: stopped by pid on drop).
pub struct Bus {
    pub address: String,
    pid: u32,
}

impl Bus {
    pub fn start() -> Bus {
        let mut child = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon runs (install dbus: scripts/install-deps.sh)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let address = lines.next().unwrap().unwrap();
        let pid = lines.next().unwrap().unwrap().trim().parse().unwrap();
        let _ = child.wait();
        Bus { address, pid }
    }

    /// `busctl --user ARGS` on this bus: (success, stdout, stderr).
    pub fn busctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("busctl")
            .arg("--user")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    /// `dbus-send --print-reply` to the daemon, which names the error of a failed call: (success,
    /// stdout and stderr together).
    pub fn dbus_send(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("dbus-send")
            .args(["--session", "--print-reply", "--dest=org.ballast.Daemon1"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        sigterm(self.pid);
    }
}

/// The `ballastd` binary in `out_dir` (the caller's profile output directory: where its
/// `CARGO_BIN_EXE_…` binaries are, or its bench's `current_exe()` one level up), built first with `cargo
/// build --profile PROFILE` so it is never stale (a no-op when it is current). Building with the caller's
/// own profile matters: another one would overwrite the binary other suites use with a differently
/// optimised one.
pub fn ballastd_binary(profile: &str, out_dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "--profile", profile, "-p", "ballastd", "--bin", "ballastd"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --profile {profile} -p ballastd failed");
    let bin = out_dir.join("ballastd");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

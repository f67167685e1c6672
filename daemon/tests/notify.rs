//! systemd notify against a real notify socket: a `UnixDatagram` bound here plays systemd, a child
//! process (this test binary re-executed) plays the daemon, and the datagrams it sends are checked.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ballastd::notify;

/// Selects the child mode (see [`notify_child`]); its value is the control directory.
const CHILD_ENV: &str = "BALLAST_NOTIFY_CHILD";
/// Generous: the machine may be loaded; these bound waits for things that normally take milliseconds.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Child mode: with `BALLAST_NOTIFY_CHILD=DIR` set, goes through a daemon's notify life. The watchdog's
/// `alive` is "the file DIR/alive exists"; it runs until DIR/run is gone. Without the variable (a normal
/// test run) it returns at once.
#[test]
fn notify_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else { return };
    notify::ready("up");
    notify::status("load 3.0%, 0 xruns");
    notify::reloading();
    notify::ready("reloaded");
    let flag = dir.join("alive");
    let watchdog = notify::spawn_watchdog(Box::new(move || flag.exists()));
    let line = match &watchdog {
        Some(w) => format!("watchdog={}ms", w.interval().as_millis()),
        None => "watchdog=off".to_string(),
    };
    notify::status(&line);
    println!("\n{line}");
    let start = Instant::now();
    while dir.join("run").exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(watchdog);
    notify::stopping();
}

/// A notify socket and a control directory, removed on drop.
struct Systemd {
    dir: PathBuf,
    socket_path: PathBuf,
    rx: mpsc::Receiver<(Instant, String)>,
}

impl Systemd {
    fn new(name: &str) -> Systemd {
        // Under /tmp: a socket path must fit in 108 bytes.
        let dir = std::env::temp_dir().join(format!("ballast-notify-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let socket_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                if tx.send((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned())).is_err() {
                    break;
                }
            }
        });
        Systemd { dir, socket_path, rx }
    }

    fn child(&self) -> Command {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["notify_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &self.dir)
            .env("NOTIFY_SOCKET", &self.socket_path)
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// The next datagram, within [`TIMEOUT`].
    fn next(&self) -> (Instant, String) {
        self.rx.recv_timeout(TIMEOUT).expect("no notification within the timeout")
    }

    /// Datagrams until one equals `want`; returns those before it.
    fn until(&self, want: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let (_, msg) = self.next();
            if msg == want {
                return before;
            }
            before.push(msg);
        }
    }

    /// Waits until `n` watchdog pings arrived; fails on anything else.
    fn pings(&self, n: usize) {
        for _ in 0..n {
            let (_, msg) = self.next();
            assert_eq!(msg, "WATCHDOG=1\n");
        }
    }

    /// Everything received within `d`.
    fn during(&self, d: Duration) -> Vec<String> {
        let end = Instant::now() + d;
        let mut got = Vec::new();
        while let Ok((_, msg)) = self.rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            got.push(msg);
        }
        got
    }

    fn touch(&self, name: &str) {
        fs::write(self.dir.join(name), b"").unwrap();
    }

    fn remove(&self, name: &str) {
        fs::remove_file(self.dir.join(name)).unwrap();
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The fixed start of every child's life: READY with status, STATUS, RELOADING with the monotonic time,
/// READY again, then the watchdog's state.
fn expect_start(sd: &Systemd, watchdog: &str) {
    assert_eq!(sd.next().1, "READY=1\nSTATUS=up\n");
    assert_eq!(sd.next().1, "STATUS=load 3.0%, 0 xruns\n");
    let reloading = sd.next().1;
    let usec = reloading.strip_prefix("RELOADING=1\nMONOTONIC_USEC=").and_then(|r| r.strip_suffix('\n'));
    assert!(usec.is_some_and(|u| u.parse::<u64>().is_ok()), "{reloading:?}");
    assert_eq!(sd.next().1, "READY=1\nSTATUS=reloaded\n");
    // The watchdog thread may ping before the child reports it.
    let after_spawn = sd.until(&format!("STATUS={watchdog}\n"));
    assert!(after_spawn.iter().all(|m| m == "WATCHDOG=1\n"), "{after_spawn:?}");
}

fn assert_exit_0(out: Output) {
    assert!(out.status.success(), "child failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

#[test]
fn watchdog_pings_only_while_alive() {
    let sd = Systemd::new("alive");
    sd.touch("run");
    sd.touch("alive");
    // WatchdogSec=200ms: a ping every 100 ms.
    let child = sd.child().env("WATCHDOG_USEC", "200000").spawn().unwrap();
    expect_start(&sd, "watchdog=100ms");

    sd.pings(3);
    // Not alive: at most a ping already decided on before the flag went may still arrive; after that
    // (10 intervals of grace, for a loaded machine) none for 10 more intervals.
    sd.remove("alive");
    let grace = sd.during(Duration::from_millis(1000));
    assert!(grace.iter().all(|m| m == "WATCHDOG=1\n") && grace.len() <= 1, "{grace:?}");
    let quiet = sd.during(Duration::from_millis(1000));
    assert!(quiet.is_empty(), "pings while not alive: {quiet:?}");

    // Alive again: pings resume.
    let resumed = Instant::now();
    sd.touch("alive");
    sd.pings(3);
    eprintln!("3 pings {} ms after alive again", resumed.elapsed().as_millis());

    sd.remove("run");
    let before_stop = sd.until("STOPPING=1\n");
    assert!(before_stop.iter().all(|m| m == "WATCHDOG=1\n"), "{before_stop:?}");
    let out = child.wait_with_output().unwrap();
    assert_exit_0(out);
    // The watchdog thread was dropped before STOPPING: nothing follows.
    assert!(sd.during(Duration::from_millis(300)).is_empty());
}

#[test]
fn no_watchdog_without_watchdog_usec() {
    let sd = Systemd::new("nowd");
    let out = sd.child().output().unwrap();
    expect_start(&sd, "watchdog=off");
    assert_eq!(sd.next().1, "STOPPING=1\n");
    assert_exit_0(out);
}

#[test]
fn no_watchdog_for_another_pid() {
    // systemd sets WATCHDOG_PID to the main process; a process that inherited the variables is not it.
    let sd = Systemd::new("otherpid");
    let out = sd.child().env("WATCHDOG_USEC", "200000").env("WATCHDOG_PID", "1").output().unwrap();
    expect_start(&sd, "watchdog=off");
    assert_eq!(sd.next().1, "STOPPING=1\n");
    assert_exit_0(out);
}

#[test]
fn silent_without_notify_socket() {
    let sd = Systemd::new("nosocket");
    let out = sd.child().env_remove("NOTIFY_SOCKET").env("WATCHDOG_USEC", "200000").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_exit_0(out);
    // The watchdog thread runs (its pings are no-ops), nothing reaches the socket, nothing is logged.
    assert!(stdout.lines().any(|l| l == "watchdog=100ms"), "{stdout}");
    assert!(!stderr.contains("notify"), "{stderr}");
    assert!(sd.during(Duration::from_millis(300)).is_empty());
    assert!(Path::new(&sd.socket_path).exists());
}

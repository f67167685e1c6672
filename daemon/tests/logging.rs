//! Log output of `logging::init`, seen from outside: a child process (this test binary re-executed)
//! logs a few lines, and its stderr (a pipe, a file the journal variable names, a terminal) is checked.

use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

/// Selects the child mode (see [`logging_child`]).
const CHILD_ENV: &str = "BALLAST_LOGGING_CHILD";

/// Child mode: with `BALLAST_LOGGING_CHILD` set, initialises logging (twice: it must be safe) and logs one
/// line per level. Without the variable (a normal test run) it returns at once.
#[test]
fn logging_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    ballastd::logging::init();
    ballastd::logging::init();
    tracing::debug!("debug-line");
    tracing::info!("info-line");
    tracing::warn!("warn-line");
}

fn child() -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["logging_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env_remove("RUST_LOG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null());
    c
}

/// The child's stderr through a pipe, with `RUST_LOG` set to `rust_log` (or unset).
fn piped(rust_log: Option<&str>) -> String {
    let mut c = child();
    if let Some(v) = rust_log {
        c.env("RUST_LOG", v);
    }
    let out = c.stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stderr).unwrap()
}

/// A line starts with an RFC 3339 timestamp (`2026-11-25T16:35:42.123456Z`).
fn timestamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

#[test]
fn plain_lines_on_a_pipe() {
    let err = piped(None);
    assert!(!err.contains('\x1b'), "ANSI escapes on a pipe: {err:?}");
    assert!(err.contains("info-line") && err.contains("warn-line"), "default level info: {err}");
    assert!(!err.contains("debug-line"), "{err}");
    assert_eq!(err.lines().count(), 2, "init twice must not double the lines: {err}");
    assert!(err.lines().all(timestamped), "not under journald: timestamps expected: {err}");
    assert!(err.lines().any(|l| l.contains("INFO") && l.contains("info-line")), "{err}");
}

#[test]
fn rust_log_selects_levels() {
    let warn = piped(Some("warn"));
    assert!(!warn.contains("info-line") && warn.contains("warn-line"), "RUST_LOG=warn: {warn}");
    let debug = piped(Some("debug"));
    assert!(debug.contains("debug-line") && debug.contains("info-line"), "RUST_LOG=debug: {debug}");
    // A per-target directive: this binary's events are at target `logging`.
    let targeted = piped(Some("off,logging=warn"));
    assert!(!targeted.contains("info-line") && targeted.contains("warn-line"), "{targeted}");
}

#[test]
fn invalid_rust_log_is_reported_and_info_used() {
    let err = piped(Some("ballastd=loud"));
    assert!(err.contains("RUST_LOG") && err.contains("invalid"), "{err}");
    assert!(err.contains("info-line") && !err.contains("debug-line"), "{err}");
}

#[test]
fn under_the_journal_no_timestamps() {
    // systemd connects stderr to the journal and names that stream in JOURNAL_STREAM (device:inode).
    // Here a file stands in for the stream; this machine has no journald socket, so the journald layer
    // cannot be built and lines go to stderr without timestamps (the journal adds its own).
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("logging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stderr.log");
    let file = File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let status = child()
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(Stdio::from(file))
        .status()
        .unwrap();
    assert!(status.success());
    let err = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        assert!(err.is_empty(), "with journald reachable the lines go to the journal: {err}");
    } else {
        assert!(err.contains("info-line") && err.contains("warn-line"), "{err}");
        assert!(!err.lines().any(timestamped), "timestamps under the journal: {err}");
        assert!(!err.contains('\x1b'), "{err}");
    }

    // A JOURNAL_STREAM inherited by a process whose stderr goes elsewhere is not the journal.
    let out = child().env("JOURNAL_STREAM", "1:2").stderr(Stdio::piped()).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.lines().count() == 2 && err.lines().all(timestamped), "{err}");
}

#[test]
fn colours_on_a_terminal_unless_no_color() {
    let run = |no_color: bool| -> String {
        let (mut master_fd, mut slave_fd) = (-1, -1);
        // SAFETY: openpty writes two new descriptors into the pointed-to ints; the name, termios and
        // winsize pointers may be null.
        let rc = unsafe {
            libc::openpty(&mut master_fd, &mut slave_fd, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        for fd in [master_fd, slave_fd] {
            // Another test's child must not inherit the terminal (the master read below would wait for
            // it to exit).
            // SAFETY: fcntl(F_SETFD) only sets a flag on a descriptor openpty just gave us.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: openpty returned these two descriptors; each is owned exactly once from here on.
        let (mut master, slave) = unsafe { (File::from_raw_fd(master_fd), OwnedFd::from_raw_fd(slave_fd)) };
        let mut c = child();
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let mut proc = c.stderr(Stdio::from(slave)).spawn().unwrap();
        // The child holds the only other copy of the terminal's slave side: reading the master ends
        // with EIO once it exits.
        drop(c);
        let mut out = Vec::new();
        let _ = master.read_to_end(&mut out);
        assert!(proc.wait().unwrap().success());
        String::from_utf8_lossy(&out).into_owned()
    };
    let coloured = run(false);
    assert!(coloured.contains("info-line") && coloured.contains('\x1b'), "{coloured:?}");
    let plain = run(true);
    assert!(plain.contains("info-line") && !plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}

//! Log output: journald when systemd connected stderr to the journal, else plain lines on stderr.
//!
//! - Under systemd (`JOURNAL_STREAM` names stderr): the journald layer, with levels as journal
//!   priorities and fields as journal fields. When the journal socket cannot be reached, lines on
//!   stderr without timestamps (the journal adds its own).
//! - Elsewhere: lines on stderr with timestamps; ANSI colours only when stderr is a terminal and
//!   `NO_COLOR` is not set.
//! - `RUST_LOG` selects what is logged (tracing-subscriber's `EnvFilter` syntax: `warn`,
//!   `ballastd=debug`…); the default is `info`. An invalid `RUST_LOG` is reported and `info` used.
//!
//! Nothing here runs on the RT thread; the RT thread never logs.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once: only the first call installs one.
pub fn init() {
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Err(_) => (EnvFilter::new("info"), None),
        Ok(s) => match EnvFilter::try_new(&s) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("RUST_LOG={s:?} is invalid ({e}); logging at info"))),
        },
    };

    let journal = stderr_is_journal();
    let journald = if journal {
        tracing_journald::layer().ok().map(|l| l.with_syslog_identifier("ballastd".into()))
    } else {
        None
    };
    let ansi = !journal && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Two slots because a layer's type differs with and without time; at most one is filled.
    let timed = (journald.is_none() && !journal)
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi));
    let untimed = (journald.is_none() && journal)
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).without_time());
    let installed = tracing_subscriber::registry().with(filter).with(journald).with(timed).with(untimed).try_init();
    if installed.is_ok() {
        if let Some(msg) = bad_filter {
            tracing::warn!("{msg}");
        }
    }
}

/// True when stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` is `DEV:INODE` of
/// that stream, and a child process may inherit the variable with stderr redirected elsewhere, so it
/// is compared with stderr itself (as `systemd.exec(5)` recommends).
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().map(std::fs::File::from);
    match stderr.and_then(|f| f.metadata()) {
        Ok(m) => m.dev() == dev && m.ino() == ino,
        Err(_) => false,
    }
}

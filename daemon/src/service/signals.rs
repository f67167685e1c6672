//! Signals as messages: SIGINT/SIGTERM/SIGHUP are blocked in every thread (the mask is inherited, so
//! [`block`] must run before any other thread starts: JACK's, zbus's, ours) and taken synchronously
//! with `sigwait` on one thread, which turns them into [`Signal`]s for the control thread. Nothing runs
//! in async-signal context, so the handlers may log, allocate and take locks.

use nix::sys::signal::{SigSet, Signal as NixSignal};

/// What a signal asks of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: stop cleanly, flush state, exit 0.
    Stop(&'static str),
    /// SIGHUP: re-read the config and apply the difference.
    Reload,
}

fn set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(NixSignal::SIGINT);
    set.add(NixSignal::SIGTERM);
    set.add(NixSignal::SIGHUP);
    set
}

/// Blocks the daemon's signals in the calling thread and every thread it starts afterwards.
pub fn block() -> nix::Result<()> {
    set().thread_block()
}

/// Waits for the next signal (blocking); call only after [`block`].
pub fn wait() -> nix::Result<Signal> {
    Ok(match set().wait()? {
        NixSignal::SIGHUP => Signal::Reload,
        NixSignal::SIGINT => Signal::Stop("SIGINT"),
        _ => Signal::Stop("SIGTERM"),
    })
}

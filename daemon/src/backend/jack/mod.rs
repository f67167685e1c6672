//! The JACK backend: a JACK client whose process callback runs the [`Engine`], kept alive across
//! server restarts by a supervisor thread.
//!
//! - [`start`] fails only for invalid options. An unreachable server is retried with exponential
//!   backoff (from 250 ms up to [`JackOptions::retry_max`]), logged once per outage.
//! - On every (re)connect: ports registered, auto-connect rules applied, connections our ports had
//!   before restored, [`BackendEvent::Running`] sent. On loss: [`BackendEvent::Lost`] once.
//! - The same engine (graph, parameters, node state) runs across reconnects: it lives in a cell that
//!   outlives any one client (see `cell.rs` for why and how).
//! - Block-size and sample-rate changes become [`BackendEvent::BlockSize`] / [`BackendEvent::SampleRate`];
//!   latency set by [`Backend::set_latency`] is reported through JACK's latency callback.
//! - MIDI input ports are registered so other clients can connect to them; their events are not
//!   routed into the engine yet.
//! - libjack keeps per-process state for the one server it talks to: a process running this backend
//!   should not hold other JACK clients of another (or a dead) server. libjack's own messages go to
//!   `tracing` at debug level (target `libjack`), not to stderr.
//!
//! ```text
//!  JackBackend ──Msg──► supervisor thread ──open/register/connect/close──► JACK server
//!                          ▲        │ BackendEvent                          │
//!  JACK notification ──Msg─┘        ▼                                       ▼
//!  thread (notify.rs)          control thread           process callback (rt.rs) ──► EngineCell
//! ```

mod cell;
mod glob;
mod latency;
mod links;
mod notify;
mod rt;
mod supervisor;

use std::collections::HashSet;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;

use self::cell::EngineCell;
use self::links::{Links, OwnPort, AUDIO_TYPE, MIDI_TYPE};
use self::notify::Msg;
use self::supervisor::Supervisor;
use super::{Backend, BackendError, BackendEvent, BackendState, BackendStats};
use crate::engine::Engine;
use crate::graph::compile::MAX_CHANNELS;

/// What the JACK backend needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct JackOptions {
    pub client_name: String,
    /// JACK server to connect to (None: the default / `$JACK_DEFAULT_SERVER`).
    pub server_name: Option<String>,
    /// Our audio input port names, in channel order (= the graph's inputs).
    pub audio_in: Vec<String>,
    /// Our audio output port names, in channel order (= the graph's outputs).
    pub audio_out: Vec<String>,
    /// MIDI input ports: registered; events not yet routed.
    pub midi_in: Vec<String>,
    /// Auto-connect rules: for each of OUR ports, glob patterns (`*`, `?`) over full JACK port names
    /// (`"system:playback_*"`). Our outputs connect to matching input ports; our inputs from matching
    /// output ports (of the same type; never our own). Applied on start, on reconnect, and to each port
    /// that appears later.
    pub connect: Vec<ConnectRule>,
    /// Longest wait between reconnect attempts (backoff doubles from 250 ms up to this).
    pub retry_max: Duration,
}

/// Auto-connect patterns for one of our ports (its short name, as in [`JackOptions`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectRule {
    pub port: String,
    pub patterns: Vec<String>,
}

/// The running JACK backend. Dropping it stops it (like [`Backend::stop`], discarding the engine).
pub struct JackBackend {
    stats: Arc<BackendStats>,
    graph_latency: Arc<AtomicU32>,
    tx: Sender<Msg>,
    thread: Option<JoinHandle<Option<Engine>>>,
}

/// Longest client name JACK accepts (`jack_client_name_size() - 1` in jack2).
const CLIENT_NAME_MAX: usize = 63;
/// Longest full port name JACK accepts (`jack_port_name_size() - 1` in jack2).
const PORT_NAME_MAX: usize = 255;

/// Starts the backend: checks the options, then connects (or keeps trying) on a supervisor thread.
/// `Err` only for options no server could accept; an unreachable server is not an error.
pub fn start(opts: JackOptions, engine: Engine, events: Sender<BackendEvent>) -> Result<JackBackend, BackendError> {
    validate(&opts)?;
    let stats = Arc::new(BackendStats::default());
    stats.set_state(BackendState::Starting);
    let engine_stats = engine.stats().clone();
    let graph_latency = Arc::new(AtomicU32::new(engine.latency_samples().min(u32::MAX as usize) as u32));
    let (tx, rx) = crossbeam_channel::unbounded();

    let mut ports = Vec::new();
    let mut own = |names: &[String], is_output: bool, port_type: &'static str| {
        ports.extend(names.iter().map(|n| OwnPort { short: n.clone(), is_output, port_type }));
    };
    own(&opts.audio_in, false, AUDIO_TYPE);
    own(&opts.audio_out, true, AUDIO_TYPE);
    own(&opts.midi_in, false, MIDI_TYPE);
    let links = Links::new(ports, opts.connect.clone(), events.clone());

    let supervisor = Supervisor {
        opts,
        cell: Arc::new(EngineCell::new(engine)),
        stats: stats.clone(),
        engine_stats,
        events,
        rx,
        tx: tx.clone(),
        graph_latency: graph_latency.clone(),
        links,
        generation: 0,
    };
    let thread = std::thread::Builder::new()
        .name("ballast-jack".into())
        .spawn(move || supervisor.run())
        .map_err(|e| BackendError(format!("could not start the JACK supervisor thread: {e}")))?;
    Ok(JackBackend { stats, graph_latency, tx, thread: Some(thread) })
}

fn validate(opts: &JackOptions) -> Result<(), BackendError> {
    let err = |m: String| Err(BackendError(m));
    let name = &opts.client_name;
    if name.is_empty() || name.contains(':') || name.contains('\0') || name.len() > CLIENT_NAME_MAX {
        return err(format!(
            "JACK client name '{name}' is not usable: it must be 1 to {CLIENT_NAME_MAX} bytes, without ':'"
        ));
    }
    if let Some(server) = &opts.server_name {
        if server.is_empty() || server.contains('\0') {
            return err(format!("JACK server name '{server}' is not usable"));
        }
    }
    for (what, list) in [("audio inputs", &opts.audio_in), ("audio outputs", &opts.audio_out)] {
        if list.len() > MAX_CHANNELS {
            return err(format!("{} {what}; the engine takes at most {MAX_CHANNELS}", list.len()));
        }
    }
    let mut seen = HashSet::new();
    for port in opts.audio_in.iter().chain(&opts.audio_out).chain(&opts.midi_in) {
        if port.is_empty() || port.contains(':') || port.contains('\0') || name.len() + 1 + port.len() > PORT_NAME_MAX {
            return err(format!("JACK port name '{port}' is not usable: it must be non-empty, without ':'"));
        }
        if !seen.insert(port.as_str()) {
            return err(format!("JACK port name '{port}' is used twice"));
        }
    }
    for rule in &opts.connect {
        if !seen.contains(rule.port.as_str()) {
            return err(format!("auto-connect rule for '{}', which is not one of our ports", rule.port));
        }
        if rule.patterns.iter().any(|p| p.is_empty()) {
            return err(format!("auto-connect rule for '{}' has an empty pattern", rule.port));
        }
    }
    if opts.retry_max.is_zero() {
        return err("retry_max must be longer than zero".to_string());
    }
    Ok(())
}

impl JackBackend {
    fn shut(&mut self) -> Option<Engine> {
        let thread = self.thread.take()?;
        let _ = self.tx.send(Msg::Stop);
        thread.join().ok().flatten()
    }
}

impl Backend for JackBackend {
    fn name(&self) -> &'static str {
        "jack"
    }

    fn stats(&self) -> Arc<BackendStats> {
        self.stats.clone()
    }

    fn set_latency(&self, frames: usize) {
        self.graph_latency.store(frames.min(u32::MAX as usize) as u32, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Latency);
    }

    fn stop(mut self: Box<Self>) -> Option<Engine> {
        self.shut()
    }
}

impl Drop for JackBackend {
    fn drop(&mut self) {
        drop(self.shut());
    }
}

/// Opens a JACK client without starting a server, on the named server or the default one. libjack is
/// loaded at run time: without it this returns `Err`, never panics.
///
/// libjack keeps per-process state for the server it talks to: one process should be a client of one
/// server at a time (close clients of a dead server before opening one on its successor).
pub fn open_client(name: &str, server: Option<&str>) -> Result<(::jack::Client, ::jack::ClientStatus), String> {
    use ::jack::jack_sys as j;
    let Some(server) = server else {
        if j::library().is_ok() {
            quiet_libjack();
        }
        return ::jack::Client::new(name, ::jack::ClientOptions::NO_START_SERVER).map_err(|e| e.to_string());
    };
    let lib = j::library().map_err(|e| format!("libjack not available: {e}"))?;
    quiet_libjack();
    let c_name = CString::new(name).map_err(|_| "client name contains NUL".to_string())?;
    let c_server = CString::new(server).map_err(|_| "server name contains NUL".to_string())?;
    // `jack_client_open` is variadic (the server name follows the status pointer when JackServerName
    // is set); jack-sys declares it without the `...`, so the symbol is taken with the C signature.
    type OpenFn = unsafe extern "C" fn(
        *const libc::c_char,
        j::jack_options_t,
        *mut j::jack_status_t,
        ...
    ) -> *mut j::jack_client_t;
    // SAFETY: the symbol is libjack's `jack_client_open`, whose C prototype is `OpenFn`.
    let open: OpenFn = *unsafe { lib.get::<OpenFn>(b"jack_client_open\0") }.map_err(|e| e.to_string())?;
    let mut status: j::jack_status_t = 0;
    // SAFETY: valid NUL-terminated strings and status pointer, alive for the call; with JackServerName
    // set, libjack reads exactly one variadic `const char *`.
    let raw =
        unsafe { open(c_name.as_ptr(), j::JackNoStartServer | j::JackServerName, &mut status, c_server.as_ptr()) };
    let status = ::jack::ClientStatus::from_bits_truncate(status);
    if raw.is_null() {
        if status.contains(::jack::ClientStatus::SERVER_FAILED) {
            return Err("cannot connect to the server".to_string());
        }
        return Err(format!("could not open a JACK client ({status:?})"));
    }
    // SAFETY: `raw` is a freshly opened client that nothing else owns; `Client` closes it on drop.
    Ok((unsafe { ::jack::Client::from_raw(raw) }, status))
}

/// libjack prints to stderr on every failed connection attempt ("Cannot connect to server socket");
/// retrying would flood the log. Its messages go to `tracing` at debug level (target `libjack`)
/// instead; what matters reaches the log through the supervisor, once per transition. Must run only
/// once libjack is loaded.
fn quiet_libjack() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| ::jack::set_logger(::jack::LoggerType::Custom { info: libjack_message, error: libjack_message }));
}

unsafe extern "C" fn libjack_message(msg: *const libc::c_char) {
    if msg.is_null() {
        return;
    }
    // SAFETY: libjack passes a NUL-terminated string that stays valid for the call.
    let msg = unsafe { std::ffi::CStr::from_ptr(msg) };
    tracing::debug!(target: "libjack", "{}", msg.to_string_lossy());
}

/// Wraps every process-callback body (tests: `assert_no_alloc`). Set at most once per process, before
/// starting a backend; reading it costs the RT side one atomic load.
pub type ProcessGuard = fn(&mut dyn FnMut());

static PROCESS_GUARD: OnceLock<ProcessGuard> = OnceLock::new();

/// Installs a [`ProcessGuard`]. Returns `false` if one was already installed.
pub fn set_process_guard(guard: ProcessGuard) -> bool {
    PROCESS_GUARD.set(guard).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> JackOptions {
        JackOptions {
            client_name: "ballast".into(),
            server_name: None,
            audio_in: vec!["in_1".into(), "in_2".into()],
            audio_out: vec!["out_1".into(), "out_2".into()],
            midi_in: vec!["midi".into()],
            connect: vec![ConnectRule { port: "out_1".into(), patterns: vec!["system:playback_1".into()] }],
            retry_max: Duration::from_secs(2),
        }
    }

    #[test]
    fn validation() {
        assert!(validate(&opts()).is_ok());
        let bad = [
            JackOptions { client_name: "".into(), ..opts() },
            JackOptions { client_name: "a:b".into(), ..opts() },
            JackOptions { client_name: "x".repeat(64), ..opts() },
            JackOptions { audio_in: vec!["in_1".into(), "in_1".into()], ..opts() },
            JackOptions { midi_in: vec!["out_1".into()], ..opts() },
            JackOptions { audio_out: vec!["a:b".into()], ..opts() },
            JackOptions { audio_out: (0..17).map(|i| format!("o{i}")).collect(), ..opts() },
            JackOptions { connect: vec![ConnectRule { port: "nope".into(), patterns: vec!["*".into()] }], ..opts() },
            JackOptions { connect: vec![ConnectRule { port: "out_1".into(), patterns: vec!["".into()] }], ..opts() },
            JackOptions { retry_max: Duration::ZERO, ..opts() },
            JackOptions { server_name: Some("".into()), ..opts() },
        ];
        for b in bad {
            assert!(validate(&b).is_err(), "{b:?} passed");
        }
    }
}

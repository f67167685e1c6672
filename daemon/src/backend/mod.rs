//! Audio backends: what drives [`Engine::process`](crate::engine::Engine::process) in real time.
//!
//! A backend owns the RT thread (JACK's process callback, or its own SCHED_FIFO thread for ALSA) and
//! the engine running on it. It never touches the [`Controller`](crate::engine::Controller): everything
//! it has to say goes to the control thread as [`BackendEvent`]s over a crossbeam channel, and
//! everything the control thread has to say to it goes through [`Backend`]'s methods. Counters that
//! other threads read at their own pace (xruns, DSP load, the RT heartbeat the watchdog checks) are
//! atomics in [`BackendStats`].
//!
//! ```text
//!  control thread ──set_latency/stop──► backend supervisor ──► RT thread: engine.process
//!        ▲                                   │                       │
//!        └────────── BackendEvent ◄──────────┘     BackendStats ◄────┘ (atomics)
//! ```

pub mod alsa;
pub mod jack;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What a backend tells the control thread. Sent from non-RT threads only (JACK's notification
/// thread, a backend's supervisor thread), never from the RT callback.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendEvent {
    /// Audio is running (first start, or after the device/server came back). The control thread
    /// compares the rate with the engine's and calls `Controller::set_sample_rate` when it differs.
    Running { sample_rate: u32, block_size: usize },
    /// The server or device went away; the backend keeps retrying with backoff on its own. Sent once
    /// per transition, not once per retry.
    Lost { reason: String },
    /// The block size changed while running (the engine splits long blocks itself; nothing to do but
    /// report it).
    BlockSize(usize),
    /// The sample rate changed while running: the control thread re-prepares the graph.
    SampleRate(u32),
    /// A failure the user should see, that the backend has handled (e.g. a port it could not connect).
    Warning(String),
}

/// Where a backend is, as an atomic for the watchdog and status readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BackendState {
    Starting = 0,
    Running = 1,
    /// Waiting for the server/device to come back (retrying with backoff).
    Retrying = 2,
    Stopped = 3,
}

/// Counters a backend keeps; read by any thread at any rate.
#[derive(Debug, Default)]
pub struct BackendStats {
    state: AtomicU32,
    /// RT cycles run (the watchdog's heartbeat).
    cycles: AtomicU64,
    xruns: AtomicU64,
    /// DSP load in percent, as f32 bits (JACK's `cpu_load`, or busy time / period for ALSA).
    dsp_load: AtomicU32,
    sample_rate: AtomicU32,
    block_size: AtomicU32,
    /// Set once mlockall succeeded.
    memory_locked: AtomicBool,
}

impl BackendStats {
    pub fn state(&self) -> BackendState {
        match self.state.load(Ordering::Relaxed) {
            0 => BackendState::Starting,
            1 => BackendState::Running,
            2 => BackendState::Retrying,
            _ => BackendState::Stopped,
        }
    }
    pub fn set_state(&self, s: BackendState) {
        self.state.store(s as u32, Ordering::Relaxed);
    }
    /// Called once per RT cycle (RT-safe: one relaxed atomic add).
    #[inline]
    pub fn tick(&self) {
        self.cycles.fetch_add(1, Ordering::Relaxed);
    }
    pub fn cycles(&self) -> u64 {
        self.cycles.load(Ordering::Relaxed)
    }
    /// RT-safe.
    #[inline]
    pub fn count_xrun(&self) {
        self.xruns.fetch_add(1, Ordering::Relaxed);
    }
    pub fn xruns(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
    }
    pub fn set_dsp_load(&self, percent: f32) {
        self.dsp_load.store(percent.to_bits(), Ordering::Relaxed);
    }
    pub fn dsp_load(&self) -> f32 {
        f32::from_bits(self.dsp_load.load(Ordering::Relaxed))
    }
    pub fn set_format(&self, sample_rate: u32, block_size: usize) {
        self.sample_rate.store(sample_rate, Ordering::Relaxed);
        self.block_size.store(block_size as u32, Ordering::Relaxed);
    }
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate.load(Ordering::Relaxed)
    }
    pub fn block_size(&self) -> usize {
        self.block_size.load(Ordering::Relaxed) as usize
    }
    pub fn set_memory_locked(&self, on: bool) {
        self.memory_locked.store(on, Ordering::Relaxed);
    }
    pub fn memory_locked(&self) -> bool {
        self.memory_locked.load(Ordering::Relaxed)
    }
}

/// A running backend, as the control thread holds it.
pub trait Backend: Send {
    /// `"jack"` or `"alsa"`.
    fn name(&self) -> &'static str;
    /// Shared counters (clone the `Arc` to read them from another thread).
    fn stats(&self) -> std::sync::Arc<BackendStats>;
    /// The graph's total latency changed (the control thread knows it after every apply); JACK
    /// reports it through its latency callback, ALSA ignores it.
    fn set_latency(&self, frames: usize);
    /// Stops audio and joins the backend's threads. Returns the engine when it could be recovered
    /// (so a caller may reuse it); dropping it here, off the RT thread, is also fine.
    fn stop(self: Box<Self>) -> Option<crate::engine::Engine>;
}

/// Why a backend could not be started at all (retryable losses are events, not errors).
#[derive(Debug)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BackendError {}

//! The ALSA backend, for machines without a JACK server: its own audio thread (SCHED_FIFO when
//! permitted) reads a period from capture, runs the [`Engine`], writes the period to playback.
//!
//! ```text
//!  control thread ── start/stop ──► supervisor thread ("ballast-alsa": opens, logs, sends events,
//!        ▲                            │  reopens with backoff)
//!        └──── BackendEvent ◄─────────┤ spawns, joins
//!                                     ▼
//!                    audio thread ("ballast-alsa-rt"): readi → engine.process → writei
//! ```
//!
//! - Hardware parameters are negotiated once per open: interleaved read/write access, FLOAT if the
//!   device takes it (else S32, else S16, converted through buffers allocated before the loop), the
//!   graph's channel counts exactly, the rate, period and periods nearest to what was asked
//!   ([`AlsaBackend::format`] reports what the device gave). At [`start`], a device that cannot run
//!   at the engine's rate is an error (the engine was prepared for it); after a reconnect, a device
//!   that imposes another rate is reported as [`BackendEvent::SampleRate`] and audio runs on.
//! - Playback is primed with a buffer of silence and both streams started together (linked when the
//!   device allows), so output lags the engine by [`AlsaFormat::prime_frames`].
//! - An xrun (EPIPE) or a suspend (ESTRPIPE) is counted in [`BackendStats`], recovered with
//!   `snd_pcm_recover` on the stream that failed, both streams re-prepared, playback re-primed with
//!   silence, and the loop goes on: the engine sees no gap, only the device does.
//!   (A suspend makes `snd_pcm_recover` wait for the device to resume: the machine is suspending.)
//! - Any other error (ENODEV when a USB interface is unplugged, a failed recovery) ends the session:
//!   [`BackendEvent::Lost`] with ALSA's text, then reopen attempts with backoff (0.1 s doubling to
//!   5 s), then [`BackendEvent::Running`] when the device is back. Logged once per transition.
//! - A session is announced ([`BackendEvent::Running`], state Running, the log line) once its loop
//!   has run 4 buffers, the first one included: a device that opens but fails at once stays in
//!   Retrying with its backoff growing, instead of flapping between Running and Lost.
//! - The audio thread blocks in ALSA's read/write (blocking mode): a device that stops delivering
//!   without an error would hold it (and `stop`) until it does.
//! - [`Backend::stop`] sets a flag the loop checks every period, joins both threads, drops the PCMs
//!   (which flushes plugins such as `file`) off the audio thread and returns the engine.

mod device;
mod rt;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use tracing::{debug, error, info, warn};

pub use device::{AlsaFormat, SampleFormat};

use self::device::Session;
use self::rt::{Buffers, Outcome, Shared};
use crate::backend::{Backend, BackendError, BackendEvent, BackendState, BackendStats};
use crate::engine::Engine;
use crate::graph::compile::MAX_CHANNELS;

/// How to run the ALSA backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlsaOptions {
    /// ALSA PCM for playback ("hw:0", "plughw:1,0", "default", a PCM defined in an asoundrc, …).
    pub device: String,
    /// PCM for capture; None = same as `device`. Only opened when `inputs > 0`.
    pub capture_device: Option<String>,
    pub sample_rate: u32,
    /// Frames per period (= the engine block) and number of periods in the buffer.
    pub period: usize,
    pub periods: u32,
    /// The graph's input channels (0: no capture).
    pub inputs: usize,
    /// The graph's output channels.
    pub outputs: usize,
    /// SCHED_FIFO priority for the audio thread (warn and run SCHED_OTHER if not permitted; 0 or less:
    /// SCHED_OTHER without trying).
    pub rt_priority: i32,
}

/// Wraps every cycle of the audio loop. [`start`] runs the cycle as it is; tests pass a guard that
/// runs it under `assert_no_alloc` to prove the loop allocates nothing. A plain `fn` pointer and a
/// `&mut dyn FnMut`: calling it allocates nothing either.
pub type RtGuard = fn(&mut dyn FnMut());

fn unguarded(cycle: &mut dyn FnMut()) {
    cycle()
}

/// The running ALSA backend.
pub struct AlsaBackend {
    shared: Arc<Shared>,
    format: Arc<Mutex<AlsaFormat>>,
    supervisor: Option<JoinHandle<Option<Engine>>>,
}

/// Opens the device(s) (errors here are reported, not retried: a wrong device name or an impossible
/// format is a configuration error), then starts audio on its own thread. `engine` must have been
/// made for `opts.sample_rate`; it runs blocks of the period the device gave.
pub fn start(opts: AlsaOptions, engine: Engine, events: Sender<BackendEvent>) -> Result<AlsaBackend, BackendError> {
    start_guarded(opts, engine, events, unguarded)
}

/// [`start`] with every cycle of the audio loop wrapped in `guard` (see [`RtGuard`]).
pub fn start_guarded(
    opts: AlsaOptions,
    engine: Engine,
    events: Sender<BackendEvent>,
    guard: RtGuard,
) -> Result<AlsaBackend, BackendError> {
    if opts.outputs == 0 {
        return Err(BackendError("the ALSA backend needs at least one output channel".into()));
    }
    if opts.inputs > MAX_CHANNELS || opts.outputs > MAX_CHANNELS {
        return Err(BackendError(format!(
            "the ALSA backend handles at most {MAX_CHANNELS} channels each way ({} in, {} out asked)",
            opts.inputs, opts.outputs
        )));
    }
    if opts.period == 0 || opts.periods < 2 || opts.sample_rate == 0 {
        return Err(BackendError(format!(
            "ALSA: period {} frames, {} periods at {} Hz: need a period of at least 1 frame, 2 periods or more \
             and a sample rate",
            opts.period, opts.periods, opts.sample_rate
        )));
    }
    let shared = Arc::new(Shared::default());
    shared.stats.set_state(BackendState::Starting);
    let session = device::open(&opts, opts.sample_rate).map_err(BackendError)?;
    if session.format.sample_rate != opts.sample_rate {
        return Err(BackendError(format!(
            "ALSA device \"{}\" cannot run at {} Hz (the nearest rate it offers is {} Hz) and the engine is \
             prepared for {} Hz: set sample_rate = {}, or use a plug device (\"plughw:…\") that resamples",
            opts.device, opts.sample_rate, session.format.sample_rate, opts.sample_rate, session.format.sample_rate
        )));
    }
    let format = Arc::new(Mutex::new(session.format.clone()));
    let sup = Supervisor {
        opts,
        shared: shared.clone(),
        format: format.clone(),
        events,
        guard,
        rate: session.format.sample_rate,
        priority_warned: false,
    };
    let supervisor = std::thread::Builder::new()
        .name("ballast-alsa".into())
        .spawn(move || sup.run(session, engine))
        .map_err(|e| BackendError(format!("cannot start the ALSA supervisor thread: {e}")))?;
    Ok(AlsaBackend { shared, format, supervisor: Some(supervisor) })
}

impl AlsaBackend {
    /// What the device gave at the last (re)open: rate, period, periods, formats, priming.
    pub fn format(&self) -> AlsaFormat {
        self.format.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Test hook: the next playback write reports `errno` instead of writing, and the loop handles it
    /// exactly as if ALSA had returned it (`libc::EPIPE`: an xrun, recovered in place;
    /// `libc::ENODEV`: the device is lost, reopened with backoff). The machines the tests run on
    /// have no sound card, and no ALSA plugin without one paces time, so no real underrun can be
    /// provoked there; recovery itself runs for real on the real PCM.
    pub fn inject_write_error(&self, errno: i32) {
        self.shared.inject.store(errno, Ordering::Relaxed);
    }

    fn shutdown(&mut self) -> Option<Engine> {
        let handle = self.supervisor.take()?;
        self.shared.stop.store(true, Ordering::Release);
        handle.thread().unpark();
        match handle.join() {
            Ok(engine) => engine,
            Err(_) => {
                error!("the ALSA supervisor thread panicked; the engine is lost");
                None
            }
        }
    }
}

impl Backend for AlsaBackend {
    fn name(&self) -> &'static str {
        "alsa"
    }

    fn stats(&self) -> Arc<BackendStats> {
        self.shared.stats.clone()
    }

    /// ALSA has no latency reporting to feed.
    fn set_latency(&self, _frames: usize) {}

    fn stop(mut self: Box<Self>) -> Option<Engine> {
        self.shutdown()
    }
}

impl Drop for AlsaBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A session counts as running (and is announced) once the loop has run this many buffers: a device
/// that opens but fails at once (a `file` plugin whose directory is gone, a half-gone USB device)
/// stays "retrying" instead of flapping between Running and Lost.
const CONFIRM_BUFFERS: u64 = 4;
/// Reopen backoff: first delay, and the most it grows to.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The non-RT side of the backend: runs sessions, logs, sends events, reopens.
struct Supervisor {
    opts: AlsaOptions,
    shared: Arc<Shared>,
    format: Arc<Mutex<AlsaFormat>>,
    events: Sender<BackendEvent>,
    guard: RtGuard,
    /// The rate the engine runs at as far as this backend knows (the last one announced).
    rate: u32,
    priority_warned: bool,
}

/// What the audio thread hands back when its loop ends.
type Returned = (Session, Engine, Outcome);

impl Supervisor {
    fn run(mut self, mut session: Session, mut engine: Engine) -> Option<Engine> {
        let stats = self.shared.stats.clone();
        // Between a Lost event and the next Running one.
        let mut retrying = false;
        let mut backoff = BACKOFF_FIRST;
        loop {
            let f = session.format.clone();
            let (back, outcome, confirmed) = match self.run_session(session, engine, &mut |sup: &mut Self| {
                *sup.format.lock().unwrap_or_else(|p| p.into_inner()) = f.clone();
                stats.set_format(f.sample_rate, f.period);
                stats.set_state(BackendState::Running);
                if retrying {
                    info!("ALSA device \"{}\" is back", sup.opts.device);
                }
                info!(
                    device = %sup.opts.device,
                    "ALSA running: {} Hz, {} periods of {} frames, playback {}{}{}",
                    f.sample_rate,
                    f.periods,
                    f.period,
                    f.playback_format.name(),
                    f.capture_format.map(|c| format!(", capture {}", c.name())).unwrap_or_default(),
                    if f.linked { ", linked" } else { "" }
                );
                if f.sample_rate != sup.rate {
                    warn!("ALSA device \"{}\" runs at {} Hz now, not {} Hz", sup.opts.device, f.sample_rate, sup.rate);
                    sup.rate = f.sample_rate;
                    let _ = sup.events.send(BackendEvent::SampleRate(sup.rate));
                }
                let _ = sup.events.send(BackendEvent::Running { sample_rate: f.sample_rate, block_size: f.period });
            }) {
                Some((s, e, o, c)) => ((s, e), o, c),
                None => {
                    stats.set_state(BackendState::Stopped);
                    let _ = self.events.send(BackendEvent::Lost { reason: "the ALSA audio thread failed".into() });
                    return None;
                }
            };
            engine = back.1;
            close(back.0);
            if confirmed {
                retrying = false;
                backoff = BACKOFF_FIRST;
            }
            match outcome {
                Outcome::Stopped => {
                    stats.set_state(BackendState::Stopped);
                    return Some(engine);
                }
                Outcome::Lost(e) => {
                    let reason = format!("ALSA device \"{}\": {e}", self.opts.device);
                    if retrying {
                        debug!("ALSA device failed again right after reopening: {reason}");
                    } else {
                        warn!("{reason}; audio stopped, retrying until the device is back");
                        retrying = true;
                        stats.set_state(BackendState::Retrying);
                        let _ = self.events.send(BackendEvent::Lost { reason });
                    }
                    match self.reopen(&mut backoff) {
                        Some(s) => session = s,
                        None => {
                            stats.set_state(BackendState::Stopped);
                            return Some(engine);
                        }
                    }
                }
            }
        }
    }

    /// Runs one session on a fresh audio thread and waits for it, calling `on_confirmed` once the loop
    /// has run [`CONFIRM_BUFFERS`] buffers. Returns what the thread gave back and whether it was
    /// confirmed; `None` if the thread could not be started or panicked (the engine went with it).
    fn run_session(
        &mut self,
        session: Session,
        mut engine: Engine,
        on_confirmed: &mut dyn FnMut(&mut Self),
    ) -> Option<(Session, Engine, Outcome, bool)> {
        let mut bufs = Buffers::new(&session, self.opts.inputs, self.opts.outputs);
        let confirm_at = self.shared.stats.cycles() + CONFIRM_BUFFERS * session.format.periods as u64;
        let shared = self.shared.clone();
        let guard = self.guard;
        let supervisor = std::thread::current();
        let spawned = std::thread::Builder::new().name("ballast-alsa-rt".into()).spawn(move || {
            let outcome = rt::run(&session, &mut engine, &mut bufs, &shared, guard);
            supervisor.unpark();
            (session, engine, outcome)
        });
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                error!("cannot start the ALSA audio thread: {e}");
                return None;
            }
        };
        self.set_priority(&handle);
        let mut confirmed = false;
        while !handle.is_finished() {
            if !confirmed && self.shared.stats.cycles() >= confirm_at {
                confirmed = true;
                on_confirmed(self);
            }
            // Woken by the audio thread when it ends, and by `stop`.
            std::thread::park_timeout(Duration::from_millis(20));
        }
        match handle.join() {
            Ok((s, e, o)) => Some((s, e, o, confirmed)),
            Err(_) => {
                error!("the ALSA audio thread panicked");
                None
            }
        }
    }

    /// SCHED_FIFO at `rt_priority` for the audio thread; a warning (once) where not permitted.
    fn set_priority(&mut self, handle: &JoinHandle<Returned>) {
        use std::os::unix::thread::JoinHandleExt;
        let prio = self.opts.rt_priority;
        if prio <= 0 {
            return;
        }
        let param = libc::sched_param { sched_priority: prio };
        // SAFETY: the pthread_t comes from a JoinHandle that is alive (not joined, not detached), so it
        // names a valid thread; `param` is a valid sched_param for the duration of the call.
        let rc = unsafe { libc::pthread_setschedparam(handle.as_pthread_t(), libc::SCHED_FIFO, &param) };
        if rc == 0 {
            debug!("ALSA audio thread at SCHED_FIFO priority {prio}");
        } else if !self.priority_warned {
            self.priority_warned = true;
            warn!(
                "cannot run the ALSA audio thread at SCHED_FIFO priority {prio} ({}); running at normal \
                 priority, expect xruns under load (grant rtprio: LimitRTPRIO= in the unit, or \
                 /etc/security/limits.d)",
                std::io::Error::from_raw_os_error(rc)
            );
        }
    }

    /// Reopens with backoff until it works (`Some`) or stop is asked (`None`). `backoff` doubles with each
    /// attempt (up to [`BACKOFF_MAX`]) and is kept across sessions that fail before they are confirmed.
    /// Failures are logged at debug level only: the loss itself was logged once.
    fn reopen(&self, backoff: &mut Duration) -> Option<Session> {
        let mut last_error = String::new();
        loop {
            let deadline = Instant::now() + *backoff;
            loop {
                if self.shared.stop.load(Ordering::Acquire) {
                    return None;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            *backoff = (*backoff * 2).min(BACKOFF_MAX);
            match device::open(&self.opts, self.rate) {
                Ok(s) => return Some(s),
                Err(e) => {
                    if e != last_error {
                        debug!("ALSA reopen failed: {e}");
                        last_error = e;
                    }
                }
            }
        }
    }
}

/// Stops and closes a session's PCMs (off the audio thread). `drop` rather than `drain`: stopping
/// must be quick; plugins that buffer (`file`) flush what they hold on drop.
fn close(session: Session) {
    if let Some(c) = &session.capture {
        let _ = c.drop();
    }
    let _ = session.playback.drop();
    drop(session);
}

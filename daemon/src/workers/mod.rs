//! Inference workers: a small pool of ordinary threads (default one, `[models] workers`) that own the
//! loaded models, take [`Job`]s over a bounded crossbeam channel and send [`Event`]s back to the control
//! thread's `select!` loop. Nothing here ever runs on, or talks to, the RT thread: ONNX Runtime
//! allocates, locks and spawns inside `run`, and a session (with its arenas) is dropped on the worker
//! that made it.
//!
//! ```text
//!  control thread ──(JobId, Job)──► worker 1..N: models loaded at start (health reported),
//!        ▲                                       jobs run one at a time per worker
//!        └──────── Event::Health / Event::Done ◄─┘
//! ```
//!
//! A job kind is one variant of [`Job`] and one of [`Output`], and a function the worker calls with
//! its [`Models`]; the live note generator of issue 7 adds itself the same way.

mod audio;
mod estimate;
mod models;

use std::panic::AssertUnwindSafe;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tracing::{debug, info, warn};

pub use audio::{read_pair, AudioPair, MAX_SECONDS};
pub use estimate::{EstimateJob, EstimateOutput};
pub use models::{
    estimator_candidates, locate_estimator, Health, ModelKind, Models, ESTIMATOR_FILE, SYSTEM_MODEL_DIRS,
};

use crate::config::ModelsSettings;

/// Jobs waiting for a worker, beyond which [`Pool::submit`] refuses with [`Busy`]: a client that asks
/// for more than this at once is told to wait instead of piling up work behind a slow model.
pub const QUEUE: usize = 4;

/// A job's number, unique for the pool's lifetime.
pub type JobId = u64;

/// Work for a worker.
#[derive(Clone, Debug, PartialEq)]
pub enum Job {
    /// Compressor settings from a (dry, wet) pair of files.
    Estimate(EstimateJob),
}

/// Why a job failed.
#[derive(Clone, Debug, PartialEq)]
pub enum JobError {
    /// The model the job needs is not loaded; the reason says where it was looked for.
    ModelUnavailable(String),
    /// The job's input cannot be used (unreadable file, files that do not match, too short).
    Input(String),
    /// Anything else (an inference error, a panic inside the job).
    Failed(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::ModelUnavailable(m) | JobError::Input(m) | JobError::Failed(m) => f.write_str(m),
        }
    }
}

/// A job's result, by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Estimate(Result<EstimateOutput, JobError>),
}

/// A finished job.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    pub id: JobId,
    pub output: Output,
    /// From the worker taking the job to its result.
    pub elapsed: Duration,
    /// Which worker ran it (1-based, as in its thread name).
    pub worker: usize,
}

/// What workers tell the control thread.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A model's health changed (at start, after loading).
    Health {
        model: ModelKind,
        health: Health,
    },
    Done(Done),
}

/// The queue is full (see [`QUEUE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// The running workers. Dropping the pool closes the job channel and joins the workers (each finishes
/// the job it holds).
pub struct Pool {
    jobs: Option<Sender<(JobId, Job)>>,
    threads: Vec<JoinHandle<()>>,
    next: JobId,
}

impl Pool {
    /// Starts `settings.workers` threads named `ballast-infer-N` (15 bytes: Linux keeps no more of a
    /// thread's name). Each loads its models before taking
    /// jobs and reports their health on the returned receiver. Threads inherit the caller's signal mask:
    /// start the pool after the daemon blocked its signals.
    pub fn start(settings: &ModelsSettings) -> std::io::Result<(Pool, Receiver<Event>)> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(QUEUE);
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        let mut threads = Vec::with_capacity(settings.workers);
        for index in 1..=settings.workers.max(1) {
            let (jobs, events, settings) = (jobs_rx.clone(), events_tx.clone(), settings.clone());
            let t = std::thread::Builder::new()
                .name(format!("ballast-infer-{index}"))
                .spawn(move || worker(index, &settings, &jobs, &events))?;
            threads.push(t);
        }
        Ok((Pool { jobs: Some(jobs_tx), threads, next: 1 }, events_rx))
    }

    /// Queues `job`; its result comes back as [`Event::Done`] with the returned id. Never blocks.
    pub fn submit(&mut self, job: Job) -> Result<JobId, Busy> {
        let id = self.next;
        let tx = self.jobs.as_ref().ok_or(Busy)?;
        match tx.try_send((id, job)) {
            Ok(()) => {
                self.next += 1;
                Ok(id)
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Worker threads running.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(index: usize, settings: &ModelsSettings, jobs: &Receiver<(JobId, Job)>, events: &Sender<Event>) {
    lower_priority();
    let t0 = Instant::now();
    // A panic while loading (inside ONNX Runtime's bindings) must still leave a health report and a
    // worker that answers every job, not one that silently died with jobs queued behind it.
    let mut models = std::panic::catch_unwind(AssertUnwindSafe(|| Models::load(settings)))
        .unwrap_or_else(|p| Models::failed(&format!("loading the models failed: {}", panic_text(&*p))));
    for (model, health) in models.health() {
        match &health {
            Health::Ready { path, runtime } => {
                info!("worker {index}: {model} model {} loaded ({runtime}) in {:.0?}", path.display(), t0.elapsed())
            }
            Health::Unavailable { reason } => warn!("worker {index}: {model} model unavailable: {reason}"),
            Health::Loading => {}
        }
        let _ = events.send(Event::Health { model, health });
    }
    for (id, job) in jobs.iter() {
        let start = Instant::now();
        // A panic inside ONNX Runtime's bindings or a job must not leave a client waiting forever, nor
        // take the worker (and every later job) with it.
        let output = std::panic::catch_unwind(AssertUnwindSafe(|| run(&mut models, &job)))
            .unwrap_or_else(|p| failed(&job, format!("the worker failed on this job: {}", panic_text(&*p))));
        debug!(id, worker = index, "job done in {:?}", start.elapsed());
        if events.send(Event::Done(Done { id, output, elapsed: start.elapsed(), worker: index })).is_err() {
            break;
        }
    }
    // `models` (the ONNX Runtime sessions) is dropped here, on this thread.
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn run(models: &mut Models, job: &Job) -> Output {
    match job {
        Job::Estimate(j) => Output::Estimate(estimate::run(models, j)),
    }
}

fn failed(job: &Job, why: String) -> Output {
    match job {
        Job::Estimate(_) => Output::Estimate(Err(JobError::Failed(why))),
    }
}

/// Workers yield to everything else the daemon runs (the audio thread is SCHED_FIFO anyway; this keeps
/// the control thread and the JACK server's own helpers ahead of a long inference).
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id only changes this thread's
    // nice value (Linux keeps one per thread) and reports failure through its return value.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
    if r != 0 {
        debug!("cannot lower the worker's priority: {}", std::io::Error::last_os_error());
    }
}

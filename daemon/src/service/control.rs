//! The control thread: the one owner of the [`Controller`] (the single producer of the engine's command
//! ring), the backend handle and the state file. Signals and backend events arrive as messages; a
//! one-second tick keeps systemd's status line and the problem counters current.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tracing::{debug, error, info, warn};

use super::signals::Signal;
use super::state_writer::StateWriter;
use super::{describe, load_config, report_errors, Loaded};
use crate::backend::{self, Backend, BackendEvent, BackendState, BackendStats};
use crate::config::{Backend as BackendKind, Config};
use crate::control_api::{
    Answer, Answerer, ApiError, BandSettings, Estimated, LearnTarget, ModelStatus, Request, StatusInfo,
};
use crate::dbus::{self, BusKind, DbusHandle, Reply, ServeError};
use crate::engine::{self, Controller, EngineConfig, ReclaimerThread};
use crate::graph::GraphSpec;
use crate::notify;
use crate::paths;
use crate::presets::PresetStore;
use crate::state::{LoadOutcome, SavedState, StateStore};
use crate::workers::{self, EstimateJob, Health, Job, JobError, JobId, ModelKind, Output};

/// Engine blocks this long run in one schedule pass; JACK periods up to it are not split.
const MAX_BLOCK: usize = 2048;
/// How often systemd's STATUS line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How long the reclaimer sleeps between sweeps of the return ring.
const RECLAIM_EVERY: Duration = Duration::from_millis(50);

/// Counters whose increase is a problem worth a log line, as last seen.
#[derive(Default)]
struct Seen {
    nonfinite: Vec<(String, u64)>,
    ring_full: u64,
    return_full: u64,
    leaked: u64,
}

/// Where the D-Bus service goes (`None`: no D-Bus at all).
#[derive(Clone, Debug)]
pub struct DbusOptions {
    pub bus: BusKind,
    /// `--replace`: take the name over from a running ballastd.
    pub replace: bool,
}

/// The running daemon, as the control thread holds it.
pub struct Service {
    cli_config: Option<PathBuf>,
    config: Config,
    digest: String,
    config_name: String,
    controller: Controller,
    backend: Option<Box<dyn Backend>>,
    stats: Arc<BackendStats>,
    events: Receiver<BackendEvent>,
    /// Saves snapshots off this thread (`None` once stopped).
    state_writer: Option<StateWriter>,
    sample_rate: u32,
    _reclaimer: ReclaimerThread,
    watchdog: Option<notify::WatchdogThread>,
    /// Advanced every tick: the watchdog pings only while the control thread is alive too.
    heartbeat: Arc<AtomicU64>,
    seen: Seen,
    last_status: Instant,
    started: Instant,
    /// The D-Bus service and the requests its handlers send here (None when the bus is unreachable).
    dbus: Option<DbusHandle>,
    requests: Receiver<(Request, Sender<Reply>)>,
    presets: PresetStore,
    /// Why the loop must end without a signal (another daemon took the bus name).
    stop_reason: Option<String>,
    /// A client's change not yet in the state file (saved once the request queue is empty).
    state_dirty: bool,
    /// The inference workers (None when their threads could not start) and what they report.
    workers: Option<workers::Pool>,
    worker_events: Receiver<workers::Event>,
    models: HashMap<ModelKind, Health>,
    /// Model requests on a worker, answered when their result arrives (the loop keeps serving others).
    pending: HashMap<JobId, Pending>,
}

/// A model request waiting for its worker.
struct Pending {
    reply: Sender<Reply>,
    /// `Learn`'s node, as it was when the request arrived; `None` for `Estimate`.
    target: Option<LearnTarget>,
    since: Instant,
}

impl Service {
    /// Builds the engine, restores state, applies the graph and starts the backend.
    pub fn start(
        cli_config: Option<PathBuf>,
        loaded: Loaded,
        memory_locked: bool,
        dbus_opts: Option<DbusOptions>,
    ) -> Result<Self, String> {
        let Loaded { config, digest, name } = loaded;
        let store = StateStore::new(paths::state_dir());
        let (graph, bypassed) = restore(&store, &config, &digest, &name);

        let sample_rate = config.engine.sample_rate_hz;
        let (mut controller, engine, reclaimer) = engine::new(EngineConfig {
            sample_rate: sample_rate as f64,
            max_block: MAX_BLOCK.max(config.engine.block_size),
            ..EngineConfig::default()
        });
        let report = match controller.apply(&graph) {
            Ok(r) => r,
            // A restored graph that no longer compiles: the config's own graph is the safe fallback.
            Err(e) if graph != config.graph => {
                warn!("the restored graph cannot run ({e}); starting from the config instead");
                controller.apply(&config.graph).map_err(|e| format!("the graph cannot run: {e}"))?
            }
            Err(e) => return Err(format!("the graph cannot run: {e}")),
        };
        for name in &bypassed {
            if let Err(e) = controller.bypass(name, true) {
                warn!("cannot restore the bypass of node {name}: {e}");
            }
        }
        info!(
            "graph ready: {} nodes, latency {} samples ({:.2} ms)",
            controller.spec().nodes.len(),
            report.latency_samples,
            report.latency_samples as f64 * 1e3 / sample_rate as f64
        );
        let reclaimer = reclaimer.spawn(RECLAIM_EVERY).map_err(|e| format!("cannot start the reclaimer: {e}"))?;

        // D-Bus before the backend: a second daemon is refused before it touches JACK or the device.
        // Requests that arrive before the control loop runs wait in the channel.
        let (req_tx, requests) = dbus::request_channel();
        let dbus = match dbus_opts {
            None => None,
            Some(o) => match dbus::serve(o.bus.clone(), o.replace, req_tx) {
                Ok(h) => Some(h),
                Err(e @ ServeError::NameTaken { .. }) => return Err(e.to_string()),
                Err(e) => {
                    warn!("{e}; audio runs without D-Bus control (SIGHUP still reloads the config)");
                    None
                }
            },
        };

        // Workers load ONNX Runtime and the models on their own threads: a slow or failing load delays
        // nothing here, and the audio starts whatever the models' health.
        let (workers, worker_events) = match workers::Pool::start(&config.models) {
            Ok((pool, events)) => (Some(pool), events),
            Err(e) => {
                warn!("cannot start the inference workers: {e}; model features are unavailable");
                (None, crossbeam_channel::never())
            }
        };
        let models = ModelKind::ALL
            .iter()
            .map(|&m| {
                let h = if workers.is_some() {
                    Health::Loading
                } else {
                    Health::Unavailable { reason: "the inference worker threads could not start".into() }
                };
                (m, h)
            })
            .collect();

        let (events_tx, events) = crossbeam_channel::unbounded();
        let backend = start_backend(&config, engine, events_tx)?;
        backend.set_latency(report.latency_samples);
        let stats = backend.stats();
        stats.set_memory_locked(memory_locked);

        let heartbeat = Arc::new(AtomicU64::new(0));
        let watchdog = notify::spawn_watchdog(alive_check(stats.clone(), heartbeat.clone()));
        notify::ready(&format!("{} backend starting, {} nodes", backend.name(), controller.spec().nodes.len()));

        let mut service = Service {
            cli_config,
            config,
            digest,
            config_name: name,
            controller,
            backend: Some(backend),
            stats,
            events,
            state_writer: Some(
                StateWriter::spawn(store).map_err(|e| format!("cannot start the state writer thread: {e}"))?,
            ),
            sample_rate,
            _reclaimer: reclaimer,
            watchdog,
            heartbeat,
            seen: Seen::default(),
            last_status: Instant::now(),
            started: Instant::now(),
            dbus,
            requests,
            presets: PresetStore::new(paths::state_dir().join("presets")),
            stop_reason: None,
            state_dirty: false,
            workers,
            worker_events,
            models,
            pending: HashMap::new(),
        };
        service.save_state();
        Ok(service)
    }

    /// The control loop; returns the process's exit status.
    pub fn run(mut self, signals: Receiver<Signal>) -> ExitCode {
        let ticker = crossbeam_channel::tick(Duration::from_secs(1));
        let events = self.events.clone();
        let requests = self.requests.clone();
        let worker_events = self.worker_events.clone();
        while self.stop_reason.is_none() {
            crossbeam_channel::select! {
                recv(requests) -> msg => {
                    if let Ok((req, reply)) = msg {
                        if let Some(answer) = self.dispatch(req, &reply) {
                            // A client that gave up waiting is no error of ours.
                            let _ = reply.send(answer);
                        }
                        // The fsync'd save comes after the reply, so no client waits for the disk, and
                        // once per burst of changes rather than once per change.
                        if self.state_dirty && self.requests.is_empty() {
                            self.save_state();
                        }
                    }
                }
                recv(signals) -> sig => match sig {
                    Ok(Signal::Reload) => self.reload(),
                    Ok(Signal::Stop(name)) => {
                        info!("{name} received: stopping");
                        break;
                    }
                    Err(_) => break,
                },
                recv(events) -> ev => {
                    if let Ok(ev) = ev {
                        self.on_backend(ev);
                    }
                }
                recv(worker_events) -> ev => {
                    if let Ok(ev) = ev {
                        self.on_worker(ev);
                        if self.state_dirty && self.requests.is_empty() {
                            self.save_state();
                        }
                    }
                }
                recv(ticker) -> _ => self.tick(),
            }
        }
        if let Some(why) = &self.stop_reason {
            info!("{why}: stopping");
        }
        self.shutdown()
    }

    /// A request that a worker answers goes to the pool and its reply waits in `pending` (`None`
    /// returned); every other one is answered now.
    fn dispatch(&mut self, req: Request, reply: &Sender<Reply>) -> Option<Reply> {
        let (job, target) = match req {
            Request::Learn { node, dry, wet } => {
                let status = self.status_info();
                let target = match (Answerer { controller: &mut self.controller, status, presets: &self.presets })
                    .learn_target(&node)
                {
                    Ok(t) => t,
                    Err(e) => return Some(Err(e)),
                };
                let job = EstimateJob { dry: dry.into(), wet: wet.into(), crossovers_hz: target.crossovers_hz.clone() };
                (job, Some(target))
            }
            Request::Estimate { dry, wet, crossovers_hz } => {
                if let Err(why) = check_crossovers(&crossovers_hz) {
                    return Some(Err(ApiError::InvalidInput(why)));
                }
                (EstimateJob { dry: dry.into(), wet: wet.into(), crossovers_hz }, None)
            }
            other => return Some(self.answer(other)),
        };
        if let Some(Health::Unavailable { reason }) = self.models.get(&ModelKind::Estimator) {
            return Some(Err(ApiError::ModelUnavailable(format!("the estimator is unavailable: {reason}"))));
        }
        let Some(pool) = self.workers.as_mut() else {
            return Some(Err(ApiError::ModelUnavailable("the inference worker threads could not start".into())));
        };
        match pool.submit(Job::Estimate(job)) {
            Ok(id) => {
                self.pending.insert(id, Pending { reply: reply.clone(), target, since: Instant::now() });
                None
            }
            Err(workers::Busy) => Some(Err(ApiError::Busy(format!(
                "{} estimates are queued already; try again when one is done",
                workers::QUEUE
            )))),
        }
    }

    /// A worker's report: a model's health, or a finished job whose client is waiting.
    fn on_worker(&mut self, ev: workers::Event) {
        match ev {
            workers::Event::Health { model, health } => {
                self.models.insert(model, health);
            }
            workers::Event::Done(done) => {
                let Some(p) = self.pending.remove(&done.id) else { return };
                let Output::Estimate(result) = done.output;
                let answer = self.finish_estimate(result, p.target.as_ref(), done.elapsed);
                match (&answer, &p.target) {
                    (Ok(Answer::Estimated(e)), Some(t)) => info!(
                        "learn {}: {} band(s) estimated from {:.1} s of audio and applied; worker {:.1} ms, request {:.1} ms",
                        t.node,
                        e.bands.len(),
                        e.seconds,
                        e.worker_ms,
                        p.since.elapsed().as_secs_f64() * 1e3
                    ),
                    (Ok(Answer::Estimated(e)), None) => info!(
                        "estimate: {} band(s) from {:.1} s of audio; worker {:.1} ms, request {:.1} ms",
                        e.bands.len(),
                        e.seconds,
                        e.worker_ms,
                        p.since.elapsed().as_secs_f64() * 1e3
                    ),
                    (Err(e), _) => warn!("estimate failed: {e}"),
                    _ => {}
                }
                let _ = p.reply.send(answer);
            }
        }
    }

    fn finish_estimate(
        &mut self,
        result: Result<workers::EstimateOutput, JobError>,
        target: Option<&LearnTarget>,
        elapsed: Duration,
    ) -> Reply {
        let out = result.map_err(|e| match e {
            JobError::ModelUnavailable(m) => ApiError::ModelUnavailable(format!("the estimator is unavailable: {m}")),
            JobError::Input(m) => ApiError::InvalidInput(m),
            JobError::Failed(m) => ApiError::Failed(m),
        })?;
        let bands: Vec<BandSettings> = out
            .bands
            .iter()
            .map(|b| BandSettings {
                threshold_db: b.threshold_db as f64,
                ratio: b.ratio as f64,
                attack_ms: b.attack_ms as f64,
                release_ms: b.release_ms as f64,
                makeup_db: b.makeup_db as f64,
                knee_db: b.knee_db as f64,
            })
            .collect();
        let applied = match target {
            Some(t) => {
                let status = self.status_info();
                let applied = Answerer { controller: &mut self.controller, status, presets: &self.presets }
                    .apply_estimate(t, &bands)?;
                if let Some(b) = &self.backend {
                    b.set_latency(self.controller.latency_samples());
                }
                self.state_dirty = true;
                applied
            }
            None => Vec::new(),
        };
        Ok(Answer::Estimated(Estimated {
            bands,
            applied,
            seconds: out.seconds,
            worker_ms: elapsed.as_secs_f64() * 1e3,
        }))
    }

    fn model_status(&self) -> Vec<ModelStatus> {
        ModelKind::ALL
            .iter()
            .map(|m| {
                let h = self.models.get(m).cloned().unwrap_or(Health::Loading);
                ModelStatus { name: m.name().to_string(), state: h.state().to_string(), detail: h.detail() }
            })
            .collect()
    }

    /// One D-Bus request, answered over the controller; a change that worked marks the state for saving.
    fn answer(&mut self, req: Request) -> Reply {
        let changes = matches!(
            req,
            Request::Set { .. } | Request::Bypass { .. } | Request::Commit { .. } | Request::PresetLoad { .. }
        );
        let status = self.status_info();
        let answer = Answerer { controller: &mut self.controller, status, presets: &self.presets }.answer(req);
        let answer = match answer {
            Ok(Answer::Status(mut st)) => {
                st.models = self.model_status();
                Ok(Answer::Status(st))
            }
            Ok(Answer::Reload) => {
                notify::reloading();
                let r = self.reload_config();
                notify::ready(&self.status_line());
                r
            }
            other => other,
        };
        if changes && answer.is_ok() {
            if let Some(b) = &self.backend {
                b.set_latency(self.controller.latency_samples());
            }
            self.state_dirty = true;
        }
        answer
    }

    fn status_info(&self) -> StatusInfo {
        let b = &self.stats;
        let name = self.backend.as_ref().map_or("none", |b| b.name());
        let block = b.block_size();
        StatusInfo {
            backend: name.to_string(),
            sample_rate_hz: if b.sample_rate() > 0 { b.sample_rate() } else { self.sample_rate },
            block_size: block as u32,
            // What the device adds: one period for JACK's own cycle, the primed buffer for ALSA.
            backend_latency_samples: match name {
                "alsa" => (block * self.config.engine.periods as usize) as u64,
                _ => block as u64,
            },
            dsp_load_percent: b.dsp_load() as f64,
            xruns: b.xruns(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    fn on_backend(&mut self, ev: BackendEvent) {
        match ev {
            BackendEvent::Running { sample_rate, block_size } => {
                debug!(sample_rate, block_size, "backend running");
                self.follow_rate(sample_rate);
                self.update_status();
            }
            BackendEvent::SampleRate(rate) => self.follow_rate(rate),
            BackendEvent::BlockSize(frames) => info!("block size now {frames} frames"),
            BackendEvent::Lost { reason } => {
                notify::status(&format!("waiting for the audio backend: {reason}"));
            }
            BackendEvent::Warning(w) => warn!("{w}"),
        }
    }

    /// The backend runs at `rate`: re-prepare the graph when the engine was made for another.
    fn follow_rate(&mut self, rate: u32) {
        if rate == self.sample_rate || rate == 0 {
            return;
        }
        match self.controller.set_sample_rate(rate as f64) {
            Ok(report) => {
                info!(
                    "sample rate {} Hz -> {rate} Hz: graph re-prepared (node state reset), latency {} samples",
                    self.sample_rate, report.latency_samples
                );
                self.sample_rate = rate;
                if let Some(b) = &self.backend {
                    b.set_latency(report.latency_samples);
                }
            }
            Err(e) => error!("cannot re-prepare the graph for {rate} Hz: {e}"),
        }
    }

    /// SIGHUP: re-read the config; apply the difference, or keep everything when it is invalid.
    fn reload(&mut self) {
        notify::reloading();
        if self.reload_config().is_ok() {
            if let Some(d) = &self.dbus {
                d.graph_changed();
            }
        }
        notify::ready(&self.status_line());
    }

    /// Re-reads the config (SIGHUP or a client's `Reload`). Everything is logged; the answer tells a
    /// client what happened.
    fn reload_config(&mut self) -> Reply {
        let loc = super::reload_location(self.cli_config.as_deref());
        info!("reloading {}", describe(&loc));
        match load_config(&loc) {
            Err(errors) => {
                report_errors(&errors);
                let errs: Vec<String> = errors
                    .diagnostics
                    .iter()
                    .filter(|d| d.severity == crate::config::Severity::Error)
                    .map(|d| d.to_string())
                    .collect();
                error!("reload rejected: {} error(s); the running graph is untouched", errs.len());
                Err(ApiError::InvalidGraph(format!(
                    "reload rejected, the running graph is untouched: {}",
                    errs.join("; ")
                )))
            }
            Ok(loaded) => self.apply_reload(loaded),
        }
    }

    fn apply_reload(&mut self, loaded: Loaded) -> Reply {
        let Loaded { config, digest, name } = loaded;
        for w in &config.warnings {
            warn!("{w}");
        }
        let (old, new) = (&self.config.ports, &config.ports);
        if old.audio_in != new.audio_in || old.audio_out != new.audio_out {
            let why = format!(
                "reload rejected: [ports] audio_in/audio_out changed ({:?} -> {:?}, {:?} -> {:?}); \
                 changing the daemon's ports needs a restart; the running graph is untouched",
                old.audio_in, new.audio_in, old.audio_out, new.audio_out
            );
            error!("{why}");
            return Err(ApiError::InvalidGraph(why));
        }
        let restart_only = restart_only_changes(&self.config, &config);
        if !restart_only.is_empty() {
            warn!("{} changed; that takes effect at the next restart", restart_only.join(", "));
        }
        match self.controller.apply(&config.graph) {
            Ok(r) => {
                info!(
                    "reloaded {name}: {} nodes kept (state intact), {} added, {} removed, {} parameter changes; \
                     latency {} samples",
                    r.kept, r.inserted, r.removed, r.params_sent, r.latency_samples
                );
                if let Some(b) = &self.backend {
                    b.set_latency(r.latency_samples);
                }
                // Settings that need a restart stay as they run, so the next reload warns again.
                let mut running = config;
                if !restart_only.is_empty() {
                    running.engine = self.config.engine.clone();
                    running.ports = self.config.ports.clone();
                    running.models = self.config.models.clone();
                }
                self.config = running;
                self.digest = digest;
                self.config_name = name;
                self.save_state();
                Ok(Answer::Applied {
                    kept: r.kept,
                    inserted: r.inserted,
                    removed: r.removed,
                    latency_samples: r.latency_samples as u64,
                })
            }
            Err(e) => {
                error!("reload rejected: {e}; the running graph is untouched");
                Err(ApiError::InvalidGraph(format!("reload rejected, the running graph is untouched: {e}")))
            }
        }
    }

    /// Once a second: heartbeat, problem counters, and every few seconds the status line.
    fn tick(&mut self) {
        self.heartbeat.fetch_add(1, Ordering::Relaxed);
        self.report_problems();
        if let Some(d) = &self.dbus {
            d.xruns(self.stats.xruns());
            if d.name_lost() {
                self.stop_reason = Some(format!("another ballastd took over {} (--replace)", dbus::BUS_NAME));
            }
        }
        if self.last_status.elapsed() >= STATUS_EVERY {
            self.last_status = Instant::now();
            self.update_status();
        }
    }

    fn report_problems(&mut self) {
        for node in &self.controller.spec().nodes {
            let Some(m) = self.controller.meters(&node.name) else { continue };
            let now = m.nonfinite_resets();
            match self.seen.nonfinite.iter_mut().find(|(n, _)| *n == node.name) {
                Some((_, last)) if *last == now => {}
                Some((_, last)) => {
                    warn!("node {} produced NaN/Inf: reset ({} times in all)", node.name, now);
                    *last = now;
                }
                None if now > 0 => {
                    warn!("node {} produced NaN/Inf: reset ({} times in all)", node.name, now);
                    self.seen.nonfinite.push((node.name.clone(), now));
                }
                None => self.seen.nonfinite.push((node.name.clone(), now)),
            }
        }
        let s = self.controller.stats();
        for (what, now, last) in [
            ("command ring full (a change was refused; retry)", s.ring_full, &mut self.seen.ring_full),
            ("return ring full (retired objects waited a block)", s.return_full, &mut self.seen.return_full),
            ("retired objects leaked by the RT side", s.leaked, &mut self.seen.leaked),
        ] {
            if now > *last {
                warn!("{what}: {} more ({} in all)", now - *last, now);
                *last = now;
            }
        }
    }

    fn status_line(&self) -> String {
        let b = &self.stats;
        match b.state() {
            BackendState::Running => format!(
                "{} {} Hz/{} frames, DSP load {:.1}%, xruns {}, {} nodes",
                self.backend.as_ref().map_or("?", |b| b.name()),
                b.sample_rate(),
                b.block_size(),
                b.dsp_load(),
                b.xruns(),
                self.controller.spec().nodes.len()
            ),
            BackendState::Retrying => "waiting for the audio backend (retrying)".to_string(),
            BackendState::Starting => "starting the audio backend".to_string(),
            BackendState::Stopped => "stopped".to_string(),
        }
    }

    fn update_status(&self) {
        notify::status(&self.status_line());
    }

    /// Writes the running graph (with every run-time change) to the state file.
    fn save_state(&mut self) {
        self.state_dirty = false;
        let state = SavedState {
            config_digest: self.digest.clone(),
            graph: self.controller.current_spec(),
            bypassed: self.controller.bypassed(),
        };
        if let Some(w) = &self.state_writer {
            w.save(state);
        }
    }

    fn shutdown(mut self) -> ExitCode {
        notify::stopping();
        self.watchdog = None;
        // No new requests while the audio stops; the bus name is released for a successor.
        self.dbus = None;
        // Clients still waiting for an estimate are told, not left to time out.
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(ApiError::Failed("the daemon is stopping".into())));
        }
        // Joins the workers (each finishes the job it holds); their sessions are dropped there.
        self.workers = None;
        if let Some(b) = self.backend.take() {
            let name = b.name();
            // The engine comes back here, off the RT thread, and is dropped with its nodes.
            drop(b.stop());
            info!("{name} backend stopped");
        }
        self.save_state();
        // Everything queued reaches the disk before the process exits.
        if let Some(w) = self.state_writer.take() {
            w.finish();
        }
        info!("stopped");
        ExitCode::SUCCESS
    }
}

/// The graph to start with: the saved state when it was made from this very config, else the config's.
fn restore(store: &StateStore, config: &Config, digest: &str, name: &str) -> (GraphSpec, Vec<String>) {
    match store.load() {
        LoadOutcome::Loaded(s) if s.config_digest == digest => {
            info!("restored run-time state from {}", store.path().display());
            (s.graph, s.bypassed)
        }
        LoadOutcome::Loaded(_) => {
            info!("{name} changed since the state in {} was saved; starting from the config", store.path().display());
            (config.graph.clone(), Vec::new())
        }
        LoadOutcome::SetAside { moved_to, reason } => {
            warn!(
                "state file {} is unusable ({reason}); moved it to {}; starting from the config",
                store.path().display(),
                moved_to.display()
            );
            (config.graph.clone(), Vec::new())
        }
        LoadOutcome::Failed { reason } => {
            warn!("state file {} is unusable ({reason}); starting from the config", store.path().display());
            (config.graph.clone(), Vec::new())
        }
        LoadOutcome::None => (config.graph.clone(), Vec::new()),
    }
}

/// `Estimate`'s split frequencies: as a multiband takes them (20 Hz..20 kHz, rising, at most 5).
fn check_crossovers(hz: &[f64]) -> Result<(), String> {
    const RANGE: std::ops::RangeInclusive<f64> = 20.0..=20_000.0;
    if hz.len() > 5 {
        return Err(format!("{} crossovers; at most 5 (6 bands)", hz.len()));
    }
    if let Some(bad) = hz.iter().find(|f| !RANGE.contains(*f)) {
        return Err(format!("crossover {bad} Hz is out of range 20..20000 Hz"));
    }
    if let Some(w) = hz.windows(2).find(|w| w[1] <= w[0]) {
        return Err(format!("crossovers must rise: {} Hz then {} Hz", w[0], w[1]));
    }
    Ok(())
}

/// Settings a reload cannot change on a running backend.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.engine, &new.engine);
    let mut out = Vec::new();
    if a.backend != b.backend {
        out.push("[engine] backend");
    }
    if a.client_name != b.client_name {
        out.push("[engine] client_name");
    }
    if a.jack_server != b.jack_server {
        out.push("[engine] jack_server");
    }
    if (a.sample_rate_hz, a.block_size, &a.device, &a.capture_device, a.periods, a.rt_priority)
        != (b.sample_rate_hz, b.block_size, &b.device, &b.capture_device, b.periods, b.rt_priority)
        && a.backend == BackendKind::Alsa
    {
        out.push("[engine] ALSA settings");
    }
    if old.ports.midi_in != new.ports.midi_in {
        out.push("[ports] midi_in");
    }
    if old.ports.connect != new.ports.connect {
        out.push("[ports.connect]");
    }
    if old.models != new.models {
        out.push("[models]");
    }
    out
}

fn start_backend(
    config: &Config,
    engine: engine::Engine,
    events: Sender<BackendEvent>,
) -> Result<Box<dyn Backend>, String> {
    let e = &config.engine;
    match e.backend {
        BackendKind::Jack => {
            let opts = backend::jack::JackOptions {
                client_name: e.client_name.clone(),
                server_name: e.jack_server.clone(),
                audio_in: config.ports.audio_in.clone(),
                audio_out: config.ports.audio_out.clone(),
                midi_in: config.ports.midi_in.clone(),
                connect: config
                    .ports
                    .connect
                    .iter()
                    .map(|(port, patterns)| backend::jack::ConnectRule {
                        port: port.clone(),
                        patterns: patterns.clone(),
                    })
                    .collect(),
                retry_max: Duration::from_secs(5),
            };
            let b = backend::jack::start(opts, engine, events).map_err(|e| format!("JACK backend: {e}"))?;
            Ok(Box::new(b))
        }
        BackendKind::Alsa => {
            let opts = backend::alsa::AlsaOptions {
                device: e.device.clone(),
                capture_device: e.capture_device.clone(),
                sample_rate: e.sample_rate_hz,
                period: e.block_size,
                periods: e.periods,
                inputs: config.ports.audio_in.len(),
                outputs: config.ports.audio_out.len(),
                rt_priority: e.rt_priority,
            };
            let b = backend::alsa::start(opts, engine, events).map_err(|e| format!("ALSA backend: {e}"))?;
            Ok(Box::new(b))
        }
        BackendKind::Offline => Err("backend = \"offline\" is for `ballastd render`; \
             to run the daemon, set [engine] backend = \"jack\" or \"alsa\""
            .to_string()),
    }
}

/// The watchdog's test: the control thread is ticking, and the RT side is cycling or the backend is
/// knowingly waiting for its server/device (a daemon waiting for JACK is healthy, not hung).
fn alive_check(stats: Arc<BackendStats>, heartbeat: Arc<AtomicU64>) -> Box<dyn FnMut() -> bool + Send> {
    let mut last_cycles = u64::MAX;
    let mut last_beat = u64::MAX;
    Box::new(move || {
        let cycles = stats.cycles();
        let beat = heartbeat.load(Ordering::Relaxed);
        let rt_ok = cycles != last_cycles || matches!(stats.state(), BackendState::Retrying | BackendState::Starting);
        let control_ok = beat != last_beat;
        last_cycles = cycles;
        last_beat = beat;
        rt_ok && control_ok
    })
}

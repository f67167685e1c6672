//! The supervisor thread: owns the JACK client's life. Connects (and keeps trying, with backoff),
//! turns notifications into [`BackendEvent`]s and connection changes, samples the DSP load, logs
//! xruns at a bounded rate, and on stop deactivates and hands the engine back.
//!
//! Everything that talks to the server (open, register, connect, recompute latencies, close) happens
//! here, never on JACK's own threads.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::jack::{AsyncClient, AudioIn, AudioOut, MidiIn};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tracing::{debug, info, warn};

use super::cell::EngineCell;
use super::latency::{self, LatencyContext};
use super::links::Links;
use super::notify::{LostFlag, Msg, Notifier};
use super::rt::RtHandler;
use super::{open_client, JackOptions};
use crate::backend::{BackendEvent, BackendState, BackendStats};
use crate::engine::{Engine, EngineStats};

/// First wait between connection attempts; doubles up to `retry_max`.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// How often the supervisor looks at the lost flag, the DSP load and pending disconnects.
const TICK: Duration = Duration::from_millis(100);
const LOAD_EVERY: Duration = Duration::from_millis(500);
const XRUN_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long stopping waits for a process callback to let go of the engine.
const ENGINE_WAIT: Duration = Duration::from_millis(500);

pub(crate) struct Supervisor {
    pub(crate) opts: JackOptions,
    pub(crate) cell: Arc<EngineCell>,
    pub(crate) stats: Arc<BackendStats>,
    pub(crate) engine_stats: Arc<EngineStats>,
    pub(crate) events: Sender<BackendEvent>,
    pub(crate) rx: Receiver<Msg>,
    pub(crate) tx: Sender<Msg>,
    pub(crate) graph_latency: Arc<AtomicU32>,
    pub(crate) links: Links,
    pub(crate) generation: u64,
}

/// One connected client. Field order is drop order: the client is closed before the latency
/// context its callback points at is freed.
struct Session {
    client: AsyncClient<Notifier, RtHandler>,
    latency: Box<LatencyContext>,
    lost: Arc<LostFlag>,
    name: String,
    sample_rate: u32,
    block_size: usize,
    generation: u64,
}

impl Supervisor {
    pub(crate) fn run(mut self) -> Option<Engine> {
        let mut session: Option<Session> = None;
        let mut backoff = MIN_BACKOFF;
        // Whether "not reachable"/"lost" was already said for the current outage.
        let mut outage_logged = false;
        let mut next_load = Instant::now();
        // Connection bookkeeping runs once per tick, not once per message (a patchbay can send many).
        let mut next_links = Instant::now();
        let mut xrun_mark = (Instant::now(), self.stats.xruns());
        let server = self.server_label();
        loop {
            let Some(s) = session.as_mut() else {
                match self.connect() {
                    Ok(s) => {
                        info!(
                            "connected to JACK server {server} as {} at {} Hz, {} frames",
                            s.name, s.sample_rate, s.block_size
                        );
                        self.stats.set_state(BackendState::Running);
                        let _ = self
                            .events
                            .send(BackendEvent::Running { sample_rate: s.sample_rate, block_size: s.block_size });
                        backoff = MIN_BACKOFF;
                        outage_logged = false;
                        xrun_mark = (Instant::now(), self.stats.xruns());
                        session = Some(s);
                    }
                    Err(e) => {
                        if !outage_logged {
                            warn!("JACK server {server} not reachable ({e}); retrying");
                            outage_logged = true;
                        } else {
                            debug!("JACK server {server} still not reachable: {e}");
                        }
                        self.stats.set_state(BackendState::Retrying);
                        if self.stop_requested_within(backoff) {
                            break;
                        }
                        backoff = (backoff * 2).min(self.opts.retry_max.max(MIN_BACKOFF));
                    }
                }
                continue;
            };

            match self.rx.recv_timeout(TICK) {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(msg) => self.handle(s, msg),
                Err(RecvTimeoutError::Timeout) => {}
            }

            if s.lost.is_lost() {
                let reason = s.lost.reason();
                warn!("lost JACK server {server}: {reason}; retrying");
                self.stats.set_state(BackendState::Retrying);
                let _ = self.events.send(BackendEvent::Lost { reason });
                outage_logged = true;
                // Closing the dead client now, before any new one opens: libjack keeps per-process
                // state that a new client of a restarted server must not share with a stale one.
                drop(session.take());
                self.links.settle(None);
                continue;
            }

            let now = Instant::now();
            if now >= next_load {
                self.stats.set_dsp_load(s.client.as_client().cpu_load());
                next_load = now + LOAD_EVERY;
            }
            if now.duration_since(xrun_mark.0) >= XRUN_LOG_EVERY {
                let xruns = self.stats.xruns();
                if xruns > xrun_mark.1 {
                    warn!(
                        "{} xruns in the last {} s, DSP load {:.1}%",
                        xruns - xrun_mark.1,
                        now.duration_since(xrun_mark.0).as_secs(),
                        self.stats.dsp_load()
                    );
                }
                xrun_mark = (now, xruns);
            }
            if now >= next_links {
                self.links.settle(Some(s.client.as_client()));
                self.links.retry(s.client.as_client(), &s.name);
                next_links = now + TICK;
            }
        }
        self.finish(session)
    }

    fn server_label(&self) -> String {
        match &self.opts.server_name {
            Some(n) => format!("'{n}'"),
            None => "(default)".to_string(),
        }
    }

    /// Waits `d`, returning early with `true` on a stop request. Other messages (stale notices,
    /// latency) need nothing while no client exists: the latency value is read from its atomic when
    /// the next client connects.
    fn stop_requested_within(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.rx.recv_timeout(left) {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return true,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    fn connect(&mut self) -> Result<Session, String> {
        let (client, _status) = open_client(&self.opts.client_name, self.opts.server_name.as_deref())?;
        let name = client.name().to_string();
        if name != self.opts.client_name {
            warn!("JACK client name '{}' is taken; running as '{name}'", self.opts.client_name);
        }
        let register_err = |e: ::jack::Error| format!("could not register a port: {e}");
        let mut inputs = Vec::with_capacity(self.opts.audio_in.len());
        for p in &self.opts.audio_in {
            inputs.push(client.register_port(p, AudioIn::default()).map_err(register_err)?);
        }
        let mut outputs = Vec::with_capacity(self.opts.audio_out.len());
        for p in &self.opts.audio_out {
            outputs.push(client.register_port(p, AudioOut::default()).map_err(register_err)?);
        }
        let mut midi = Vec::with_capacity(self.opts.midi_in.len());
        for p in &self.opts.midi_in {
            midi.push(client.register_port(p, MidiIn::default()).map_err(register_err)?);
        }

        self.generation += 1;
        let generation = self.generation;
        let latency = Box::new(LatencyContext {
            inputs: inputs.iter().map(|p| p.raw()).collect(),
            outputs: outputs.iter().map(|p| p.raw()).collect(),
            graph_frames: self.graph_latency.clone(),
        });
        // SAFETY: the client is open and not yet active; the boxed context lives in the `Session`,
        // which drops (closes) the client before it.
        if !unsafe { latency::register(client.raw(), &latency) } {
            warn!("could not register the JACK latency callback; port latencies will read 0");
        }

        let sample_rate = client.sample_rate();
        let block_size = client.buffer_size() as usize;
        self.stats.set_format(sample_rate, block_size);
        let lost = Arc::new(LostFlag::default());
        let notifier = Notifier {
            notices: self.tx.clone(),
            generation,
            stats: self.stats.clone(),
            engine_stats: self.engine_stats.clone(),
            lost: lost.clone(),
            own_prefix: format!("{name}:"),
        };
        let rt = RtHandler {
            inputs,
            outputs,
            _midi: midi,
            engine: self.cell.clone(),
            stats: self.stats.clone(),
            notices: self.tx.clone(),
            generation,
        };
        let client = client.activate_async(notifier, rt).map_err(|e| format!("could not activate: {e}"))?;
        self.links.apply_all(client.as_client(), &name);
        Ok(Session { client, latency, lost, name, sample_rate, block_size, generation })
    }

    fn handle(&mut self, s: &mut Session, msg: Msg) {
        match msg {
            Msg::Stop => {}
            Msg::Latency => {
                // SAFETY: a valid, active client; called from this (non-callback) thread as JACK asks.
                unsafe { ::jack::jack_sys::jack_recompute_total_latencies(s.client.as_client().raw()) };
            }
            // JACK also reports the current values once at activation: only changes are news.
            Msg::BlockSize { generation, frames } if generation == s.generation && frames != s.block_size => {
                info!("JACK block size changed from {} to {frames} frames", s.block_size);
                s.block_size = frames;
                self.stats.set_format(s.sample_rate, frames);
                let _ = self.events.send(BackendEvent::BlockSize(frames));
            }
            Msg::SampleRate { generation, rate } if generation == s.generation && rate != s.sample_rate => {
                info!("JACK sample rate changed from {} to {rate} Hz", s.sample_rate);
                s.sample_rate = rate;
                self.stats.set_format(rate, s.block_size);
                let _ = self.events.send(BackendEvent::SampleRate(rate));
            }
            Msg::PortAppeared { generation, name, is_input, port_type } if generation == s.generation => {
                self.links.port_appeared(s.client.as_client(), &s.name, &name, is_input, &port_type);
            }
            Msg::Connection { generation, source, destination, connected } if generation == s.generation => {
                self.links.connection(&s.name, &source, &destination, connected);
            }
            // Unchanged values, or from a client already given up.
            _ => {}
        }
    }

    /// Deactivates and closes the client, then takes the engine out of the cell.
    fn finish(self, session: Option<Session>) -> Option<Engine> {
        if let Some(s) = session {
            let Session { client, latency, .. } = s;
            match client.deactivate() {
                Ok((client, notifier, rt)) => {
                    drop(rt);
                    drop(notifier);
                    drop(client);
                }
                Err(e) => debug!("JACK client deactivation: {e}"),
            }
            drop(latency);
        }
        let engine = self.cell.lock(ENGINE_WAIT).and_then(|mut g| g.engine().take());
        if engine.is_none() {
            warn!("the engine could not be recovered from the JACK process callback");
        }
        self.stats.set_state(BackendState::Stopped);
        info!("JACK backend stopped");
        engine
    }
}

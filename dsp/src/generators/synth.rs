//! The `synth` node: a 16-voice polyphonic synthesizer driven by sample-timed note events.
//!
//! Each voice is a [`BlepOscillator`] times an [`Adsr`] whose peak is the note's velocity. Events carry
//! an absolute time on the node's sample clock (counted from `prepare` / `reset`), so a note starts
//! on its exact sample whatever the block size. Events are queued in a bounded, preallocated queue
//! kept in time order; [`Synth::push_event`] is RT-safe and hands the event back when the queue is full
//! (like `rtrb`). An event whose time has already passed when its block starts plays at the start of
//! that block and is counted as late (meter `late_events`).
//!
//! Voice allocation, for a note-on:
//! 1. a voice already sounding this note (held or releasing) is retriggered;
//! 2. else the lowest-numbered idle voice starts the note, at oscillator phase 0;
//! 3. else a voice is stolen: the quietest releasing voice (ties: the one released first), and only
//!    when no voice is releasing, the oldest held voice (earliest note-on).
//!
//! A retriggered or stolen voice keeps its oscillator phase and starts its attack from the envelope
//! level it has, so the output stays continuous (the pitch changes, the waveform value does not jump:
//! for a sine the largest step is the one the waveform itself makes). A note-on with velocity 0 is a
//! note-off (the MIDI convention).

use super::envelope::{Adsr, AdsrTimes, Stage};
use super::oscillator::{BlepOscillator, Waveform};
use super::{block_len, fan_out, LEVEL_MIN_DB, LEVEL_SMOOTHING, WAVEFORM_UNIT};
use crate::level::db_to_gain;
use crate::param::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;
use crate::smoother::Smoother;

/// Number of voices.
pub const VOICES: usize = 16;
/// Capacity of the event queue.
pub const EVENT_CAPACITY: usize = 512;

/// A timed note event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoteEvent {
    /// Sample clock of the node, counted from `prepare` / `reset`.
    pub time: u64,
    pub kind: NoteKind,
}

/// What a [`NoteEvent`] does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoteKind {
    /// Starts `note` (MIDI number, A4 = 69 = 440 Hz) at `velocity` (0–1, linear peak amplitude).
    On { note: u8, velocity: f32 },
    /// Releases `note`.
    Off { note: u8 },
    /// Releases every voice.
    AllOff,
}

/// Fixed-capacity event queue in time order (stable for equal times). A ring buffer: popping the
/// earliest event is O(1); inserting is O(events later than it), i.e. O(1) for events pushed in order.
struct EventQueue {
    buf: Vec<NoteEvent>,
    head: usize,
    len: usize,
}

impl EventQueue {
    fn new(capacity: usize) -> Self {
        Self { buf: vec![NoteEvent { time: 0, kind: NoteKind::AllOff }; capacity.max(1)], head: 0, len: 0 }
    }

    #[inline]
    fn slot(&self, i: usize) -> usize {
        (self.head + i) % self.buf.len()
    }

    fn push(&mut self, ev: NoteEvent) -> Result<(), NoteEvent> {
        if self.len == self.buf.len() {
            return Err(ev);
        }
        let mut i = self.len;
        while i > 0 {
            let prev = self.buf[self.slot(i - 1)];
            if prev.time <= ev.time {
                break;
            }
            let dst = self.slot(i);
            self.buf[dst] = prev;
            i -= 1;
        }
        let dst = self.slot(i);
        self.buf[dst] = ev;
        self.len += 1;
        Ok(())
    }

    fn front(&self) -> Option<NoteEvent> {
        (self.len > 0).then(|| self.buf[self.head])
    }

    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % self.buf.len();
            self.len -= 1;
        }
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Voice {
    osc: BlepOscillator,
    env: Adsr,
    note: u8,
    /// Order of the note-on (higher is newer) and of the release.
    started: u64,
    released: u64,
}

/// What one voice is doing, for tests and displays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VoiceInfo {
    pub note: u8,
    pub stage: Stage,
    pub level: f32,
}

const P_WAVEFORM: ParamId = ParamId(0);
const P_ATTACK: ParamId = ParamId(1);
const P_DECAY: ParamId = ParamId(2);
const P_SUSTAIN: ParamId = ParamId(3);
const P_RELEASE: ParamId = ParamId(4);
const P_LEVEL: ParamId = ParamId(5);

const fn time_param(
    id: ParamId,
    key: &'static str,
    name: &'static str,
    default: f32,
    doc: &'static str,
) -> ParamDescriptor {
    ParamDescriptor {
        id,
        key,
        name,
        unit: Unit::Ms,
        min: 0.0,
        max: 10_000.0,
        default,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc,
    }
}

static SYNTH_PARAMS: [ParamDescriptor; 6] = [
    ParamDescriptor {
        id: P_WAVEFORM,
        key: "waveform",
        name: "Waveform",
        unit: WAVEFORM_UNIT,
        min: 0.0,
        max: 3.0,
        default: 1.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Oscillator waveform of every voice (sine, saw, square, triangle); switches at once.",
    },
    time_param(
        P_ATTACK,
        "attack_ms",
        "Attack",
        5.0,
        "Time from note-on (or the level a retriggered voice had) to the peak; applies to the next attack.",
    ),
    time_param(
        P_DECAY,
        "decay_ms",
        "Decay",
        100.0,
        "Time from the peak to the sustain level; applies to the next decay.",
    ),
    ParamDescriptor {
        id: P_SUSTAIN,
        key: "sustain_db",
        name: "Sustain",
        unit: Unit::Db,
        min: -100.0,
        max: 0.0,
        default: -6.0,
        scale: Scale::Linear,
        smoothing: Smoothing::Linear { ms: 20.0 },
        doc: "Level held while a note is down, relative to the note's peak (velocity).",
    },
    time_param(
        P_RELEASE,
        "release_ms",
        "Release",
        200.0,
        "Time from note-off to silence; applies to the next release.",
    ),
    ParamDescriptor {
        id: P_LEVEL,
        key: "level_db",
        name: "Level",
        unit: Unit::Db,
        min: LEVEL_MIN_DB,
        max: 0.0,
        default: -12.0,
        scale: Scale::Linear,
        smoothing: LEVEL_SMOOTHING,
        doc: "Output gain in dB; one voice at velocity 1 peaks at this level (voices add up).",
    },
];

static SYNTH_METERS: [MeterDescriptor; 2] = [
    MeterDescriptor { key: "voices_active", name: "Active voices", unit: Unit::Scalar, per_band: false },
    MeterDescriptor { key: "late_events", name: "Late events", unit: Unit::Scalar, per_band: false },
];

/// Descriptor of the `synth` kind.
pub static SYNTH_DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "synth",
    doc: "16-voice polyphonic synth (band-limited oscillators, ADSR) driven by sample-timed note events.",
    params: &SYNTH_PARAMS,
    band_params: &[],
    meters: &SYNTH_METERS,
};

/// The `synth` node.
pub struct Synth {
    channels: usize,
    sample_rate: f64,
    wave: Waveform,
    attack_ms: f32,
    decay_ms: f32,
    sustain_db: f32,
    release_ms: f32,
    level_db: f32,
    times: AdsrTimes,
    sustain: Smoother,
    gain: Smoother,
    voices: [Voice; VOICES],
    queue: EventQueue,
    /// Per-block buffers of the smoothed sustain level and gain, and of one voice's envelope.
    sustain_buf: Vec<f32>,
    gain_buf: Vec<f32>,
    env_buf: Vec<f32>,
    clock: u64,
    serial: u64,
    late: u64,
}

impl Synth {
    /// A synth with `channels` identical outputs, at the descriptor's defaults. Allocates the event queue.
    pub fn new(channels: usize) -> Self {
        let d = |i: usize| SYNTH_PARAMS[i].default;
        let mut s = Self {
            channels,
            sample_rate: 48_000.0,
            wave: Waveform::from_index(d(0)),
            attack_ms: d(1),
            decay_ms: d(2),
            sustain_db: d(3),
            release_ms: d(4),
            level_db: d(5),
            times: AdsrTimes::default(),
            sustain: Smoother::new(SYNTH_PARAMS[3].smoothing, db_to_gain(d(3))),
            gain: Smoother::new(LEVEL_SMOOTHING, db_to_gain(d(5))),
            voices: [Voice::default(); VOICES],
            queue: EventQueue::new(EVENT_CAPACITY),
            sustain_buf: vec![0.0; 256],
            gain_buf: vec![0.0; 256],
            env_buf: vec![0.0; 256],
            clock: 0,
            serial: 0,
            late: 0,
        };
        s.update_times();
        s
    }

    /// Queues an event. RT-safe (no allocation); returns the event back when the queue is full.
    pub fn push_event(&mut self, ev: NoteEvent) -> Result<(), NoteEvent> {
        self.queue.push(ev)
    }

    /// The node's sample clock: samples rendered since `prepare` / `reset`.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Events that were applied after their time (at the start of a later block).
    pub fn late_events(&self) -> u64 {
        self.late
    }

    /// Events waiting in the queue.
    pub fn queued_events(&self) -> usize {
        self.queue.len
    }

    /// Number of voices not idle.
    pub fn active_voices(&self) -> usize {
        self.voices.iter().filter(|v| !v.env.is_idle()).count()
    }

    /// What voice `index` is doing; `None` when it is idle or out of range.
    pub fn voice(&self, index: usize) -> Option<VoiceInfo> {
        let v = self.voices.get(index)?;
        (!v.env.is_idle()).then(|| VoiceInfo { note: v.note, stage: v.env.stage(), level: v.env.level() })
    }

    fn update_times(&mut self) {
        let samples = |ms: f32| (ms as f64 * 1e-3 * self.sample_rate).round() as u32;
        self.times = AdsrTimes {
            attack: samples(self.attack_ms),
            decay: samples(self.decay_ms),
            release: samples(self.release_ms),
        };
    }

    /// Equal temperament, A4 (69) = 440 Hz.
    fn note_inc(&self, note: u8) -> f64 {
        let n = note.min(127) as f64;
        440.0 * ((n - 69.0) / 12.0).exp2() / self.sample_rate
    }

    fn note_on(&mut self, note: u8, velocity: f32) {
        let velocity = if velocity.is_finite() { velocity.min(1.0) } else { 0.0 };
        if velocity <= 0.0 {
            self.note_off(note);
            return;
        }
        let idx = self.pick_voice(note);
        self.serial += 1;
        let inc = self.note_inc(note);
        let times = self.times;
        let v = &mut self.voices[idx];
        if v.env.is_idle() {
            v.osc.set_phase(0.0);
        }
        v.osc.set_inc(inc);
        v.note = note;
        v.started = self.serial;
        v.env.trigger(&times, velocity);
    }

    /// The voice a note-on goes to (see the module doc for the policy).
    fn pick_voice(&self, note: u8) -> usize {
        let voices = &self.voices;
        if let Some(i) = voices.iter().position(|v| !v.env.is_idle() && v.note == note) {
            return i;
        }
        if let Some(i) = voices.iter().position(|v| v.env.is_idle()) {
            return i;
        }
        let mut best: Option<usize> = None;
        for (i, v) in voices.iter().enumerate() {
            if v.env.stage() != Stage::Release {
                continue;
            }
            best = match best {
                Some(b) => {
                    let bv = &voices[b];
                    let quieter =
                        v.env.level() < bv.env.level() || (v.env.level() == bv.env.level() && v.released < bv.released);
                    Some(if quieter { i } else { b })
                }
                None => Some(i),
            };
        }
        if let Some(b) = best {
            return b;
        }
        let mut oldest = 0;
        for (i, v) in voices.iter().enumerate() {
            if v.started < voices[oldest].started {
                oldest = i;
            }
        }
        oldest
    }

    fn note_off(&mut self, note: u8) {
        let times = self.times;
        for v in self.voices.iter_mut() {
            if v.note == note && !matches!(v.env.stage(), Stage::Idle | Stage::Release) {
                self.serial += 1;
                v.released = self.serial;
                v.env.release(&times);
            }
        }
    }

    fn all_off(&mut self) {
        let times = self.times;
        for v in self.voices.iter_mut() {
            if !matches!(v.env.stage(), Stage::Idle | Stage::Release) {
                self.serial += 1;
                v.released = self.serial;
                v.env.release(&times);
            }
        }
    }

    /// Applies every event whose time has come (or passed: counted late).
    fn apply_due_events(&mut self) {
        while let Some(ev) = self.queue.front() {
            if ev.time > self.clock {
                break;
            }
            if ev.time < self.clock {
                self.late += 1;
            }
            self.queue.pop();
            match ev.kind {
                NoteKind::On { note, velocity } => self.note_on(note, velocity),
                NoteKind::Off { note } => self.note_off(note),
                NoteKind::AllOff => self.all_off(),
            }
        }
    }

    /// Renders one event-free segment (at most the scratch length) into `out`.
    fn render(&mut self, out: &mut [f32]) {
        let m = out.len();
        let sus = &mut self.sustain_buf[..m];
        self.sustain.next_block(sus);
        let gains = &mut self.gain_buf[..m];
        self.gain.next_block(gains);
        out.fill(0.0);
        let times = self.times;
        let env = &mut self.env_buf[..m];
        for v in self.voices.iter_mut() {
            if v.env.is_idle() {
                continue;
            }
            // Envelope first (runs of straight lines), then the oscillator over the samples it covers.
            let live = v.env.fill(&times, sus, env);
            macro_rules! run {
                ($wave:expr) => {
                    for (y, &e) in out[..live].iter_mut().zip(env[..live].iter()) {
                        *y += v.osc.next($wave, 0.5) as f32 * e;
                    }
                };
            }
            match self.wave {
                Waveform::Sine => run!(Waveform::Sine),
                Waveform::Saw => run!(Waveform::Saw),
                Waveform::Square => run!(Waveform::Square),
                Waveform::Triangle => run!(Waveform::Triangle),
            }
        }
        for (y, &g) in out.iter_mut().zip(gains.iter()) {
            // `+ 0.0` turns −0 into +0, so a voice that fell silent mid-segment (adding ±0) cannot make
            // the output depend on where the segment was cut.
            *y = *y * g + 0.0;
        }
    }
}

impl Processor for Synth {
    fn descriptor(&self) -> &'static KindDescriptor {
        &SYNTH_DESCRIPTOR
    }

    fn prepare(&mut self, sample_rate: f64, max_block: usize) {
        self.sample_rate = sample_rate;
        let len = max_block.max(1);
        self.sustain_buf = vec![0.0; len];
        self.gain_buf = vec![0.0; len];
        self.env_buf = vec![0.0; len];
        self.sustain.prepare(sample_rate);
        self.gain.prepare(sample_rate);
        self.update_times();
        // Events queued before `prepare` stay: their times count from this point.
        self.voices = [Voice::default(); VOICES];
        self.clock = 0;
        self.serial = 0;
        self.late = 0;
    }

    /// Silences every voice, clears the event queue and restarts the clock at 0.
    fn reset(&mut self) {
        self.voices = [Voice::default(); VOICES];
        self.queue.clear();
        self.sustain.reset(self.sustain.target());
        self.gain.reset(self.gain.target());
        self.clock = 0;
        self.serial = 0;
        self.late = 0;
    }

    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = SYNTH_DESCRIPTOR.validate(id, value)?;
        match id {
            P_WAVEFORM => self.wave = Waveform::from_index(v),
            P_ATTACK => self.attack_ms = v,
            P_DECAY => self.decay_ms = v,
            P_RELEASE => self.release_ms = v,
            P_SUSTAIN => {
                self.sustain_db = v;
                self.sustain.set_target(db_to_gain(v));
            }
            P_LEVEL => {
                self.level_db = v;
                self.gain.set_target(db_to_gain(v));
            }
            _ => return Err(ParamError::UnknownParam(id)),
        }
        self.update_times();
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        match id {
            P_WAVEFORM => Some(self.wave.index()),
            P_ATTACK => Some(self.attack_ms),
            P_DECAY => Some(self.decay_ms),
            P_SUSTAIN => Some(self.sustain_db),
            P_RELEASE => Some(self.release_ms),
            P_LEVEL => Some(self.level_db),
            _ => None,
        }
    }

    fn channels(&self) -> (usize, usize) {
        (0, self.channels)
    }

    fn meter(&self, index: usize, _band: usize) -> f32 {
        match index {
            0 => self.active_voices() as f32,
            1 => self.late as f32,
            _ => f32::NAN,
        }
    }

    fn process(&mut self, _inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let n = block_len(outputs);
        let Some(first) = outputs.first_mut() else { return };
        let scratch = self.sustain_buf.len().min(self.gain_buf.len()).min(self.env_buf.len());
        let mut pos = 0;
        while pos < n {
            self.apply_due_events();
            let mut seg = (n - pos).min(scratch);
            if let Some(ev) = self.queue.front() {
                // After apply_due_events the next event lies in the future: cut the segment there.
                let until = ev.time.saturating_sub(self.clock).max(1);
                seg = seg.min(usize::try_from(until).unwrap_or(usize::MAX));
            }
            self.render(&mut first[pos..pos + seg]);
            self.clock += seg as u64;
            pos += seg;
        }
        for v in self.voices.iter_mut() {
            if !v.env.level().is_finite() {
                *v = Voice::default();
            }
        }
        fan_out(outputs);
    }
}

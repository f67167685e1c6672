//! The `sweep` node: an exponential (logarithmic) sine sweep for impulse-response measurement.
//!
//! A. Farina, "Simultaneous measurement of impulse response and distortion with a swept-sine
//! technique", 108th AES Convention, 2000, preprint 5093:
//! `x(t) = sin(2π f1 L (e^{t/L} − 1))` with `L = T / ln(f2 / f1)`, so the instantaneous frequency is
//! `f(t) = f1 e^{t/L}`, from `f1` at `t = 0` to `f2` at `t = T`.
//!
//! The phase is accumulated in f64 with the exact per-sample increment of that formula:
//! `Δφ[n] = φ(n+1) − φ(n) = f1 L (r − 1) rⁿ` cycles, `r = e^{1/(L fs)}`, so each increment is the
//! previous one times `r` (no `exp` per sample, and no drift beyond f64 rounding: ~1e-10 relative
//! after 10⁶ samples). Both ends are faded over 2 ms with a raised cosine, as Farina recommends, so
//! the start and the wrap of a repeating sweep do not click.

use super::{block_len, fan_out, LEVEL_MIN_DB, LEVEL_SMOOTHING};
use crate::level::db_to_gain;
use crate::param::{KindDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;
use crate::smoother::Smoother;

const P_START: ParamId = ParamId(0);
const P_END: ParamId = ParamId(1);
const P_DURATION: ParamId = ParamId(2);
const P_LEVEL: ParamId = ParamId(3);
const P_REPEAT: ParamId = ParamId(4);

/// Length of the raised-cosine fades at either end of the sweep (at most a quarter of the sweep).
const FADE_MS: f64 = 2.0;
/// Frequencies are held below this fraction of the sample rate.
const MAX_FREQ_FRACTION: f64 = 0.49;

static SWEEP_PARAMS: [ParamDescriptor; 5] = [
    ParamDescriptor {
        id: P_START,
        key: "start_hz",
        name: "Start frequency",
        unit: Unit::Hz,
        min: 1.0,
        max: 96_000.0,
        default: 20.0,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc: "Frequency at the start of the sweep; a change restarts the sweep.",
    },
    ParamDescriptor {
        id: P_END,
        key: "end_hz",
        name: "End frequency",
        unit: Unit::Hz,
        min: 1.0,
        max: 96_000.0,
        default: 20_000.0,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc: "Frequency at the end of the sweep (below start sweeps down; held below 0.49 fs); a change restarts the sweep.",
    },
    ParamDescriptor {
        id: P_DURATION,
        key: "duration_s",
        name: "Duration",
        unit: Unit::Seconds,
        min: 0.01,
        max: 3_600.0,
        default: 10.0,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc: "Length of one sweep; a change restarts the sweep.",
    },
    ParamDescriptor {
        id: P_LEVEL,
        key: "level_db",
        name: "Level",
        unit: Unit::Db,
        min: LEVEL_MIN_DB,
        max: 0.0,
        default: -20.0,
        scale: Scale::Linear,
        smoothing: LEVEL_SMOOTHING,
        doc: "Peak level of the sweep in dBFS.",
    },
    ParamDescriptor {
        id: P_REPEAT,
        key: "repeat",
        name: "Repeat",
        unit: Unit::Bool,
        min: 0.0,
        max: 1.0,
        default: 1.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Start the next sweep right after one ends (otherwise stay silent after one sweep).",
    },
];

/// Descriptor of the `sweep` kind.
pub static SWEEP_DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "sweep",
    doc: "Exponential sine sweep (Farina 2000), once or repeating.",
    params: &SWEEP_PARAMS,
    band_params: &[],
    meters: &[],
};

/// The `sweep` node.
pub struct Sweep {
    channels: usize,
    sample_rate: f64,
    start_hz: f32,
    end_hz: f32,
    duration_s: f32,
    level_db: f32,
    repeat: bool,
    gain: Smoother,
    /// Samples into the current sweep.
    pos: u64,
    /// Samples in one sweep.
    total: u64,
    /// Samples in each end fade.
    fade: u64,
    /// Phase in cycles, `[0, 1)`.
    phase: f64,
    /// Phase increment of the current sample, and its first value and per-sample ratio.
    inc: f64,
    inc0: f64,
    ratio: f64,
    finished: bool,
}

impl Sweep {
    /// A sweep node with `channels` identical outputs, at the descriptor's defaults.
    pub fn new(channels: usize) -> Self {
        let d = |i: usize| SWEEP_PARAMS[i].default;
        let mut s = Self {
            channels,
            sample_rate: 48_000.0,
            start_hz: d(0),
            end_hz: d(1),
            duration_s: d(2),
            level_db: d(3),
            repeat: d(4) >= 1.0,
            gain: Smoother::new(LEVEL_SMOOTHING, db_to_gain(d(3))),
            pos: 0,
            total: 1,
            fade: 0,
            phase: 0.0,
            inc: 0.0,
            inc0: 0.0,
            ratio: 1.0,
            finished: false,
        };
        s.configure();
        s
    }

    /// Frequency `f1 e^{t/L}` the sweep has at `t` seconds after its start, for the current parameters
    /// (the frequencies as held below Nyquist).
    pub fn instantaneous_freq_hz(&self, t: f64) -> f64 {
        let (f1, f2) = self.freqs();
        let t_total = self.total as f64 / self.sample_rate;
        f1 * (f2 / f1).powf(t / t_total)
    }

    /// Start and end frequency, held below `0.49 fs`.
    fn freqs(&self) -> (f64, f64) {
        let max = MAX_FREQ_FRACTION * self.sample_rate;
        ((self.start_hz as f64).min(max), (self.end_hz as f64).min(max))
    }

    /// Recomputes the sweep's constants and restarts it. RT-safe: a few `exp`/`ln`, no allocation.
    fn configure(&mut self) {
        let sr = self.sample_rate;
        let (f1, f2) = self.freqs();
        self.total = ((self.duration_s as f64 * sr).round() as u64).max(1);
        let t_total = self.total as f64 / sr;
        let ln_ratio = (f2 / f1).ln();
        if ln_ratio.abs() < 1e-12 {
            // f1 = f2: L is infinite and the sweep is a steady tone.
            self.ratio = 1.0;
            self.inc0 = f1 / sr;
        } else {
            let l = t_total / ln_ratio;
            let x = 1.0 / (l * sr);
            self.ratio = x.exp();
            // φ(1) − φ(0) = f1 L (e^{1/(L fs)} − 1); exp_m1 keeps it exact when the ratio is near 1.
            self.inc0 = f1 * l * x.exp_m1();
        }
        self.fade = ((FADE_MS * 1e-3 * sr).round() as u64).min(self.total / 4);
        self.restart();
    }

    fn restart(&mut self) {
        self.pos = 0;
        self.phase = 0.0;
        self.inc = self.inc0;
        self.finished = false;
    }

    /// Raised-cosine fade gain at position `pos` of the sweep.
    #[inline(always)]
    fn fade_gain(&self, pos: u64) -> f64 {
        let from_end = self.total - 1 - pos.min(self.total - 1);
        let k = pos.min(from_end);
        if k >= self.fade {
            1.0
        } else {
            0.5 - 0.5 * (std::f64::consts::PI * k as f64 / self.fade as f64).cos()
        }
    }
}

impl Processor for Sweep {
    fn descriptor(&self) -> &'static KindDescriptor {
        &SWEEP_DESCRIPTOR
    }

    fn prepare(&mut self, sample_rate: f64, _max_block: usize) {
        self.sample_rate = sample_rate;
        self.gain.prepare(sample_rate);
        self.configure();
    }

    fn reset(&mut self) {
        self.gain.reset(self.gain.target());
        self.restart();
    }

    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = SWEEP_DESCRIPTOR.validate(id, value)?;
        match id {
            P_START => {
                self.start_hz = v;
                self.configure();
            }
            P_END => {
                self.end_hz = v;
                self.configure();
            }
            P_DURATION => {
                self.duration_s = v;
                self.configure();
            }
            P_LEVEL => {
                self.level_db = v;
                self.gain.set_target(db_to_gain(v));
            }
            P_REPEAT => {
                self.repeat = v >= 1.0;
                if self.repeat && self.finished {
                    self.restart();
                }
            }
            _ => return Err(ParamError::UnknownParam(id)),
        }
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        match id {
            P_START => Some(self.start_hz),
            P_END => Some(self.end_hz),
            P_DURATION => Some(self.duration_s),
            P_LEVEL => Some(self.level_db),
            P_REPEAT => Some(if self.repeat { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    fn channels(&self) -> (usize, usize) {
        (0, self.channels)
    }

    fn process(&mut self, _inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let n = block_len(outputs);
        let Some(first) = outputs.first_mut() else { return };
        for y in first[..n].iter_mut() {
            let g = self.gain.next() as f64;
            if self.finished {
                *y = 0.0;
                continue;
            }
            let v = (std::f64::consts::TAU * self.phase).sin() * self.fade_gain(self.pos);
            *y = (v * g) as f32;
            self.phase += self.inc;
            self.phase -= self.phase.floor();
            self.inc *= self.ratio;
            self.pos += 1;
            if self.pos >= self.total {
                if self.repeat {
                    self.restart();
                } else {
                    self.finished = true;
                }
            }
        }
        if !(self.phase.is_finite() && self.inc.is_finite()) {
            self.restart();
        }
        fan_out(outputs);
    }
}

//! True-peak lookahead limiter, node kind `"limiter"`.
//!
//! # Structure
//! All channels share one gain (linked), so the stereo image never shifts. Per sample `n`:
//!
//! 1. Drive: `x = input · input_gain` (smoothed); non-finite samples become 0, finite ones are clamped
//!    to ±1e18 so no later product overflows.
//! 2. Detection: every channel's driven sample goes through a [`TruePeak`] (ITU-R BS.1770-4 Annex 2
//!    polyphase interpolator, 4× below 96 kHz, 2× above). `P[n]` is the largest oversampled magnitude
//!    over channels among the points that push `n` completes; each of those points is a weighted sum of
//!    driven samples `n − 12 ..= n` (its *support*, `S = 13` samples at every rate).
//!    The required gain is `r[n] = min(1, c' / P[n])` with `c' = ceiling · 10^(−margin/20)`.
//! 3. Hold: `h[j] = min r[j ..= j + B + 11]`, a sliding minimum over `B + S − 1` values
//!    ([`SlidingMin`], O(1) amortised, preallocated).
//! 4. Release: `h'[j] ≤ h[j]` ([`Release`], program dependent), so the release can only lower the gain.
//! 5. Attack ramp: `g[k] = (1/B) Σ_{i<B} h'[k − i]`, a box filter (moving average).
//! 6. Output: `y[k] = g[k] · x[k]`, i.e. the driven input delayed by `D = B + 11` samples — the
//!    latency. `D` is the lookahead (`lookahead_ms`, at least [`MIN_RAMP`]` + 11` samples).
//!
//! This is the min-filter + box-filter lookahead limiter (the structure of Fons Adriaensen's `peaklim`
//! in x42 dpl.lv2, whose hold and smoothing stages play the same roles; see also S. Giannoulis,
//! M. Massberg, J. D. Reiss, "Digital Dynamic Range Compressor Design — A Tutorial and Analysis",
//! JAES 60(6), 2012, for the lookahead / peak-hold arguments), with the detector moved to the
//! oversampled domain and the hold widened by the interpolator's support.
//!
//! # The bound
//! Every oversampled output point `m` completed at push `n` is `y_m = Σ_{j ∈ W} a_j g[j] x[j]` over its
//! support `W = n − 12 ..= n` with the interpolator's taps `a_j`.
//!
//! (a) *Every gain in the support is at or below the point's required gain.* For `k ∈ W`, each term
//! `h'[k − i]` (`0 ≤ i < B`) of the box is `≤ h[k − i] = min r[k − i ..= k − i + B + 11]`, a window that
//! contains `n` (because `k − i ≤ k ≤ n` and `k − i + B + 11 ≥ k + 12 ≥ n`). So every term, hence the
//! mean `g[k]`, is `≤ r[n]`. The same holds for the phase-0 points (the samples themselves), so also
//! `g[j] |x[j]| ≤ c'` for all `j` within ±6 samples of any loud sample.
//!
//! (b) *Where the gain is constant over the support the bound is exact:* `y_m = g · x_m` and
//! `|y_m| ≤ r[n] · P[n] ≤ c'`. This covers every point whose support lies in a held stretch — the
//! loudest part of every event, since the hold keeps the gain flat for 12 samples around it.
//!
//! (c) *Where the gain moves inside the support* (during an attack ramp or a release), write
//! `g[j] = g_t + δ_j` with `g_t` the gain interpolated at the point's position `t`. Then
//! `y_m = g_t x_m + Σ a_j δ_j x[j]`, the first term is `≤ c'` by (a), and the second is bounded by
//! `E = Σ |a_j| |δ_j| |x[j]|`. The box filter makes `g` piecewise linear with slope
//! `|h'[k] − h'[k − B]| / B`; the release adds slopes of at most `(1 − a_fast)` per sample. With
//! `|δ_j| ≤ s |j − t|` and `|x[j]| ≤ c' / g[j]` from (a), `E ≤ c' · Σ |a_j| |j − t| · s / g[j]`.
//! For the taps of the 4× BS.1770 interpolator `Σ |a_j| |j − t| ≤ 1.95` (midpoint phase, the largest).
//! The relative slope `s / g` of a ramp that starts at the ceiling is at most `1 / B` at its start
//! and only grows as the gain falls *below* the requirement of the samples it multiplies, which lowers
//! `|x[j]| g[j]` in proportion; so the excess is largest at the start of a full-depth ramp on a signal
//! at the ceiling, `E ≲ c' · 0.98 / B` (half the support lies on the ramp). With `B ≥ 60` (48 kHz,
//! 1.5 ms) that is ≤ 0.14 dB in the adversarial worst case and far smaller on real signals, where the
//! terms of `E` have mixed signs. [`MARGIN_DB`] covers that: it is the documented safety margin.
//! The release slope is a few orders smaller (`s ≤ 1 − a_fast ≈ 1e-3` per sample at 48 kHz with the
//! shortest release), contributing < 0.02 dB.
//!
//! The tests measure the output's true peak independently (a fresh BS.1770 4× detector and a 16×
//! windowed-sinc interpolation around the worst points) on every worst case and on randomised input.
//!
//! # Parameter changes
//! - `ceiling_dbtp`: applies to input from the next sample on; the hold and ramp smooth it (a lower
//!   ceiling ramps the gain down over the lookahead; a higher one releases). Output reaches the new
//!   ceiling `latency_samples()` later, consistent with the input it belongs to.
//! - `input_gain_db`: log-ramped over 20 ms, before detection, so the bound never depends on it.
//! - `release_ms`: recomputes the release coefficients at once (it only shapes the gain's recovery).
//! - `lookahead_ms`: changes the latency, which the engine compensates for when it (re)builds a graph;
//!   so the new value is stored at once (and [`Processor::param`] returns it) but takes effect on the
//!   next [`Processor::reset`] or [`Processor::prepare`]. Until then [`Processor::latency_samples`]
//!   keeps reporting the active lookahead. Buffers are sized in `prepare` for the maximum (5 ms), so
//!   the switch never allocates, and because it happens at a reset (silence in the delay line) it
//!   cannot click.

mod min_queue;
mod release;

pub use min_queue::SlidingMin;
pub use release::{Release, ReleaseMode};

use crate::level::{db_to_gain, gain_to_db};
use crate::param::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;
use crate::smoother::Smoother;
use crate::true_peak::TruePeak;

/// Safety margin below the ceiling that the required gain aims at, in dB; covers the term `E` of the
/// bound (module documentation) and f32 rounding in the gain path.
pub const MARGIN_DB: f32 = 0.05;

/// Shortest attack ramp (box length) in samples, whatever the lookahead; with the support this makes
/// the shortest latency `MIN_RAMP + 11` samples (at 8 kHz that is longer than 1.5 ms).
pub const MIN_RAMP: usize = 60;

/// Samples of the interpolator's support minus one (13 taps per phase at every rate).
const SUPPORT_EXTRA: usize = 12;

/// Largest lookahead the buffers are sized for.
const MAX_LOOKAHEAD_MS: f64 = 5.0;

/// Driven samples are clamped to this magnitude so no product overflows (≈ +360 dBFS).
const MAX_ABS: f32 = 1e18;

pub const CEILING_DBTP: ParamId = ParamId(0);
pub const LOOKAHEAD_MS: ParamId = ParamId(1);
pub const RELEASE_MS: ParamId = ParamId(2);
pub const INPUT_GAIN_DB: ParamId = ParamId(3);

/// Meter indices.
pub const METER_GAIN_REDUCTION: usize = 0;
pub const METER_OUTPUT_TRUE_PEAK: usize = 1;

const PARAMS: &[ParamDescriptor] = &[
    ParamDescriptor {
        id: CEILING_DBTP,
        key: "ceiling_dbtp",
        name: "Ceiling",
        unit: Unit::Dbtp,
        min: -20.0,
        max: 0.0,
        default: -1.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Highest true peak (BS.1770-4, 4x oversampled) the output may reach; changes ramp through the lookahead.",
    },
    ParamDescriptor {
        id: LOOKAHEAD_MS,
        key: "lookahead_ms",
        name: "Lookahead",
        unit: Unit::Ms,
        min: 0.5,
        max: MAX_LOOKAHEAD_MS as f32,
        default: 1.5,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc: "Delay the limiter looks ahead by (its latency); takes effect at the next reset, at least 71 samples.",
    },
    ParamDescriptor {
        id: RELEASE_MS,
        key: "release_ms",
        name: "Release",
        unit: Unit::Ms,
        min: 10.0,
        max: 2000.0,
        default: 200.0,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc: "Recovery time constant for sustained gain reduction; short transients recover twenty times faster.",
    },
    ParamDescriptor {
        id: INPUT_GAIN_DB,
        key: "input_gain_db",
        name: "Input gain",
        unit: Unit::Db,
        min: -24.0,
        max: 36.0,
        default: 0.0,
        scale: Scale::Linear,
        smoothing: Smoothing::Logarithmic { ms: 20.0 },
        doc: "Drive into the limiter, applied before detection.",
    },
];

const METERS: &[MeterDescriptor] = &[
    MeterDescriptor { key: "gain_reduction_db", name: "Gain reduction", unit: Unit::Db, per_band: false },
    MeterDescriptor { key: "output_true_peak_dbtp", name: "Output true peak", unit: Unit::Dbtp, per_band: false },
];

/// The `"limiter"` kind.
pub static DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "limiter",
    doc: "True-peak lookahead limiter: the output's BS.1770-4 true peak never exceeds the ceiling.",
    params: PARAMS,
    band_params: &[],
    meters: METERS,
};

/// The true-peak limiter; see the module documentation.
pub struct Limiter {
    channels: usize,
    sample_rate: f64,
    max_block: usize,

    ceiling_dbtp: f32,
    /// Linear target of the required gain: ceiling less the margin.
    target: f32,
    lookahead_ms: f32,
    release_ms: f32,
    input_gain_db: f32,
    drive: Smoother,

    /// Box length `B` in effect (the lookahead is `B + 11`).
    ramp: usize,
    detectors: Vec<TruePeak>,
    out_detectors: Vec<TruePeak>,
    hold: SlidingMin,
    release: Release,
    /// Ring of the last `ramp` released gains and their running sum (re-summed each lap so rounding
    /// cannot drift).
    box_ring: Vec<f32>,
    box_pos: usize,
    box_sum: f64,
    /// Per-channel delay lines of the driven input, `capacity` long.
    delay: Vec<Vec<f32>>,
    delay_pos: usize,

    meter_gr_db: f32,
    meter_tp_dbtp: f32,
}

impl Limiter {
    /// A limiter for `channels` linked channels, with the program-dependent release.
    pub fn new(channels: usize) -> Self {
        Self::with_release_mode(channels, ReleaseMode::ProgramDependent)
    }

    /// A limiter with a chosen release behaviour ([`ReleaseMode::Single`] exists for comparison).
    pub fn with_release_mode(channels: usize, mode: ReleaseMode) -> Self {
        let channels = channels.max(1);
        let mut l = Self {
            channels,
            sample_rate: 48_000.0,
            max_block: 0,
            ceiling_dbtp: -1.0,
            target: 1.0,
            lookahead_ms: 1.5,
            release_ms: 200.0,
            input_gain_db: 0.0,
            drive: Smoother::new(Smoothing::Logarithmic { ms: 20.0 }, 1.0),
            ramp: MIN_RAMP,
            detectors: Vec::new(),
            out_detectors: Vec::new(),
            hold: SlidingMin::new(1),
            release: Release::new(mode),
            box_ring: Vec::new(),
            box_pos: 0,
            box_sum: 0.0,
            delay: Vec::new(),
            delay_pos: 0,
            meter_gr_db: 0.0,
            meter_tp_dbtp: f32::NEG_INFINITY,
        };
        l.update_target();
        l.prepare(48_000.0, 1024);
        l
    }

    fn update_target(&mut self) {
        self.target = db_to_gain(self.ceiling_dbtp - MARGIN_DB);
    }

    /// Box length for a lookahead, in samples.
    fn ramp_for(&self, lookahead_ms: f64) -> usize {
        let total = (lookahead_ms * 1e-3 * self.sample_rate).round() as usize;
        total.saturating_sub(SUPPORT_EXTRA - 1).max(MIN_RAMP)
    }

    /// Applies the stored lookahead and clears all signal state.
    fn restart(&mut self) {
        self.ramp = self.ramp_for(self.lookahead_ms as f64).min(self.box_ring.len());
        self.hold.reset(self.ramp + SUPPORT_EXTRA);
        self.release.reset();
        for d in self.detectors.iter_mut().chain(self.out_detectors.iter_mut()) {
            d.reset();
        }
        self.box_ring.fill(1.0);
        self.box_pos = 0;
        self.box_sum = self.ramp as f64;
        for d in &mut self.delay {
            d.fill(0.0);
        }
        self.delay_pos = 0;
        self.drive.reset(self.drive.target());
        self.meter_gr_db = 0.0;
        self.meter_tp_dbtp = f32::NEG_INFINITY;
    }
}

impl Processor for Limiter {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn prepare(&mut self, sample_rate: f64, max_block: usize) {
        self.sample_rate = sample_rate;
        self.max_block = max_block;
        let max_ramp = self.ramp_for(MAX_LOOKAHEAD_MS);
        self.detectors = (0..self.channels).map(|_| TruePeak::new(sample_rate)).collect();
        self.out_detectors = self.detectors.clone();
        self.hold = SlidingMin::new(max_ramp + SUPPORT_EXTRA);
        self.release.set_time(self.release_ms as f64, sample_rate);
        self.box_ring = vec![1.0; max_ramp];
        self.delay = vec![vec![0.0; max_ramp + SUPPORT_EXTRA]; self.channels];
        self.drive.prepare(sample_rate);
        self.drive.reset(db_to_gain(self.input_gain_db));
        self.restart();
    }

    fn reset(&mut self) {
        self.restart();
    }

    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = DESCRIPTOR.validate(id, value)?;
        match id {
            CEILING_DBTP => {
                self.ceiling_dbtp = v;
                self.update_target();
            }
            LOOKAHEAD_MS => self.lookahead_ms = v,
            RELEASE_MS => {
                self.release_ms = v;
                self.release.set_time(v as f64, self.sample_rate);
            }
            INPUT_GAIN_DB => {
                self.input_gain_db = v;
                self.drive.set_target(db_to_gain(v));
            }
            _ => return Err(ParamError::UnknownParam(id)),
        }
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        match id {
            CEILING_DBTP => Some(self.ceiling_dbtp),
            LOOKAHEAD_MS => Some(self.lookahead_ms),
            RELEASE_MS => Some(self.release_ms),
            INPUT_GAIN_DB => Some(self.input_gain_db),
            _ => None,
        }
    }

    fn channels(&self) -> (usize, usize) {
        (self.channels, self.channels)
    }

    fn latency_samples(&self) -> usize {
        self.ramp + SUPPORT_EXTRA - 1
    }

    fn meter(&self, index: usize, _band: usize) -> f32 {
        match index {
            METER_GAIN_REDUCTION => self.meter_gr_db,
            METER_OUTPUT_TRUE_PEAK => self.meter_tp_dbtp,
            _ => f32::NAN,
        }
    }

    fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let chans = self.channels.min(inputs.len()).min(outputs.len());
        let frames = inputs
            .iter()
            .take(chans)
            .map(|c| c.len())
            .chain(outputs.iter().take(chans).map(|c| c.len()))
            .min()
            .unwrap_or(0);
        let cap = self.delay.first().map_or(0, |d| d.len());
        if chans == 0 || cap == 0 || self.box_ring.is_empty() {
            for o in outputs.iter_mut() {
                o.fill(0.0);
            }
            return;
        }
        let ramp = self.ramp;
        let latency = ramp + SUPPORT_EXTRA - 1;
        let inv_ramp = 1.0 / ramp as f64;
        let target = self.target;
        let mut min_gain = 1.0f32;
        let mut out_peak = 0.0f32;

        for i in 0..frames {
            let drive = self.drive.next();
            let read = (self.delay_pos + cap - latency) % cap;
            let mut peak = 0.0f32;
            for ch in 0..chans {
                let x = inputs[ch][i];
                let x = if x.is_finite() { (x * drive).clamp(-MAX_ABS, MAX_ABS) } else { 0.0 };
                self.delay[ch][self.delay_pos] = x;
                peak = peak.max(self.detectors[ch].push(x));
            }
            let required = if peak > target { target / peak } else { 1.0 };
            let held = self.hold.push(required);
            let released = self.release.next(held);
            self.box_sum += released as f64 - self.box_ring[self.box_pos] as f64;
            self.box_ring[self.box_pos] = released;
            self.box_pos += 1;
            if self.box_pos >= ramp {
                self.box_pos = 0;
                self.box_sum = self.box_ring[..ramp].iter().map(|&g| g as f64).sum();
            }
            let gain = (self.box_sum * inv_ramp) as f32;
            min_gain = min_gain.min(gain);
            for ch in 0..chans {
                let y = gain * self.delay[ch][read];
                outputs[ch][i] = y;
                out_peak = out_peak.max(self.out_detectors[ch].push(y));
            }
            self.delay_pos = if self.delay_pos + 1 == cap { 0 } else { self.delay_pos + 1 };
        }
        for o in outputs.iter_mut().skip(chans) {
            o.fill(0.0);
        }

        self.release.sanitise();
        if !self.box_sum.is_finite() {
            self.restart();
        }
        self.meter_gr_db = -gain_to_db(min_gain);
        self.meter_tp_dbtp = gain_to_db(out_peak);
    }
}

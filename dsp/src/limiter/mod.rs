//! True-peak lookahead limiter, node kind `"limiter"`.
//!
//! # Structure
//! All channels share one gain (linked), so the stereo image never shifts. Per sample `n`:
//!
//! 1. Drive: `x = input · input_gain` (smoothed); non-finite samples become 0, finite ones are clamped
//!    to ±1e18 so no later product overflows.
//! 2. Detection: every channel's driven sample goes through the BS.1770-4 Annex 2 interpolator
//!    family on a 16× grid below 96 kHz, 8× above ([`Detector::fine`]): the same Hann-windowed sinc
//!    design as [`crate::true_peak::TruePeak`] with four times the phases, whose every fourth phase
//!    *is* the BS.1770 phase, bit for bit. So `P[n]`, the largest magnitude over channels among the
//!    points that push `n` completes, is never below the BS.1770 reading, and the finer grid also
//!    catches peaks between the BS.1770 grid points (up to 0.33 dB at 0.35 fs). Each point is a
//!    weighted sum of driven samples `n − 12 ..= n` (its *support*, `S = 13` samples at every rate).
//!    The required gain is `r[n] = min(1, c' / P[n])` with `c' = ceiling · 10^(−MARGIN_DB/20)`.
//! 3. Hold: `h[j] = min r[j ..= j + B + 11]`, a sliding minimum over `B + S − 1` values
//!    ([`SlidingMin`]: van Herk / Gil–Werman, O(1) per sample, branch-free, preallocated).
//! 4. Release: `h'[j] ≤ h[j]` ([`Release`], program dependent), so the release can only lower the gain.
//! 5. Attack ramp: `g[k] = (1/B) Σ_{i<B} h'[k − i]`, a box filter (moving average, running sum in f64
//!    re-summed every lap).
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
//! The guarantee is stated against the BS.1770-4 true-peak measurement (4× below 96 kHz, 2× above,
//! the interpolator of `TruePeak`, libebur128 and ballast's loudness meter): the output's true peak
//! never exceeds the ceiling. Every oversampled output point `m` completed at push `n` is
//! `y_m = Σ_{j ∈ W} a_j g[j] x[j]` over its support `W = n − 12 ..= n` with the interpolator's taps
//! `a_j`.
//!
//! (a) *Every gain in the support is at or below the point's required gain.* For `k ∈ W`, each term
//! `h'[k − i]` (`0 ≤ i < B`) of the box is `≤ h[k − i] = min r[k − i ..= k − i + B + 11]`, a window that
//! contains `n` (because `k − i ≤ k ≤ n` and `k − i + B + 11 ≥ k + 12 ≥ n`). So every term, hence the
//! mean `g[k]`, is `≤ r[n]`. The same holds for the phase-0 points (the samples themselves), so also
//! `g[j] |x[j]| ≤ c'` for every `j` near a loud sample.
//!
//! (b) *Where the gain is constant over the support the bound is exact:* `y_m = g · x_m` and
//! `|y_m| ≤ r[n] · P[n] ≤ c'`. This covers every point whose support lies in a held stretch — the
//! loudest part of every event, since the hold keeps the gain flat for 12 samples around it — and
//! all steady-state limiting.
//!
//! (c) *Where the gain moves inside the support* (an attack ramp or a release), write
//! `g[j] = g_t + δ_j` with `g_t` the gain at the point's position. Then `y_m = g_t x_m + Σ a_j δ_j x[j]`:
//! the first term is `≤ c'` by (a), with slack `c' (1 − g_t / max_W g)` because the largest gain in
//! the support is also `≤ r[n]`; the second is first order in the gain's slope across 13 samples,
//! which the box bounds by `|h'[k] − h'[k − B]| / B` (1/60 of the ramp depth per sample at least) and
//! the release by `1 − a_fast` (≤ 2e-3 per sample). On a straight ramp the slack outweighs the error
//! term (it is `6 s / g` against `Σ |a_j| |j − t| · s / g ≤ 1.91 s / g` for the BS.1770 taps); only
//! where the slope changes inside the support (the start of a ramp, the start of a release) is the
//! error uncompensated, at most about `0.95 · s / g` by the triangle inequality. That inequality
//! ignores that the same samples must also meet their own requirements (a), and in practice the
//! excess is an order of magnitude smaller: the largest excess over the target `c'` found by the
//! tests (`dsp/tests/limiter.rs`: the worst-case signals, 36 randomised hostile runs with steps to
//! +100 dBFS, square waves, noise, Nyquist patterns and random parameter changes, and 2000
//! adversarial ramp starts on signals already at the ceiling with heavy inter-sample overshoot) is
//! 0.0115 dB. [`MARGIN_DB`] = 0.05 dB, over four times that, is the documented safety margin. So (c)
//! is argued and measured, not proved: the honest status of this bound.
//!
//! Content above 0.35 fs: the BS.1770 interpolator itself reads it low (−0.44 dB at 0.4 fs, −2.2 dB
//! at 0.45 fs), so a full-band signal (white noise, a naive square wave with aliased harmonics) can
//! have an ideal band-limited peak above the ceiling while every BS.1770 meter reads it at or below.
//! For content below 0.35 fs (where the filter is flat to ±0.04 dB) the 16× grid makes the output's
//! ideal band-limited peak stay under the ceiling too; the tests check both with a 16× windowed-sinc
//! reconstruction.
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

mod detector;
mod min_queue;
mod release;

pub use detector::Detector;
pub use min_queue::SlidingMin;
pub use release::{Release, ReleaseMode};

use crate::level::{db_to_gain, gain_to_db};
use crate::param::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;
use crate::smoother::Smoother;

/// Safety margin below the ceiling that the required gain aims at, in dB: covers the gain-slope term
/// (c) of the bound (module documentation; measured ≤ 0.0115 dB) and f32 rounding in the gain path.
/// Signals whose true peak stays below `ceiling − MARGIN_DB` pass bit-exactly.
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
    /// Input detector: the BS.1770-4 interpolator at four times its phases ([`Detector::fine`]).
    detector: Detector,
    /// Output meter: exactly the BS.1770-4 interpolator ([`Detector::bs1770`]).
    meter_detector: Detector,
    /// Per channel: [`detector::HISTORY`] earlier samples, then the current block; driven input and
    /// output (the latter for the output true-peak meter).
    in_ext: Vec<Vec<f32>>,
    out_ext: Vec<Vec<f32>>,
    hold: SlidingMin,
    release: Release,
    /// Ring of the last `ramp` released gains and their running sum (re-summed each lap so rounding
    /// cannot drift).
    box_ring: Vec<f32>,
    box_pos: usize,
    box_sum: f64,
    /// Per-channel delay lines of the driven input, a power of two at least `max_block` longer than
    /// the longest latency, so a whole block can be written before the delayed samples are read.
    delay: Vec<Vec<f32>>,
    delay_mask: usize,
    delay_pos: usize,
    /// Per-block scratch (`max_block` long): drive gains, detected peaks, output gains.
    drive_buf: Vec<f32>,
    peak_buf: Vec<f32>,
    gain_buf: Vec<f32>,

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
            detector: Detector::fine(48_000.0),
            meter_detector: Detector::bs1770(48_000.0),
            in_ext: Vec::new(),
            out_ext: Vec::new(),
            hold: SlidingMin::new(1),
            release: Release::new(mode),
            box_ring: Vec::new(),
            box_pos: 0,
            box_sum: 0.0,
            delay: Vec::new(),
            delay_mask: 0,
            delay_pos: 0,
            drive_buf: Vec::new(),
            peak_buf: Vec::new(),
            gain_buf: Vec::new(),
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
        for e in self.in_ext.iter_mut().chain(self.out_ext.iter_mut()) {
            e.fill(0.0);
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
        self.detector = Detector::fine(sample_rate);
        self.meter_detector = Detector::bs1770(sample_rate);
        self.hold = SlidingMin::new(max_ramp + SUPPORT_EXTRA);
        self.release.set_time(self.release_ms as f64, sample_rate);
        self.box_ring = vec![1.0; max_ramp];
        let max_block = max_block.max(1);
        let delay_len = (max_ramp + SUPPORT_EXTRA + max_block).next_power_of_two();
        self.delay = vec![vec![0.0; delay_len]; self.channels];
        self.delay_mask = delay_len - 1;
        self.drive_buf = vec![0.0; max_block];
        self.peak_buf = vec![0.0; max_block];
        self.gain_buf = vec![0.0; max_block];
        self.in_ext = vec![vec![0.0; max_block + detector::HISTORY]; self.channels];
        self.out_ext = self.in_ext.clone();
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
        let frames = inputs[..chans].iter().map(|c| c.len()).chain(outputs[..chans].iter().map(|c| c.len())).min();
        let frames = frames.unwrap_or(0);
        for o in outputs.iter_mut().skip(chans) {
            o.fill(0.0);
        }
        if chans == 0 || self.drive_buf.is_empty() {
            for o in outputs.iter_mut() {
                o.fill(0.0);
            }
            return;
        }
        let mut min_gain = 1.0f32;
        let mut out_peak = 0.0f32;
        // Blocks longer than prepared are processed in prepared-size pieces rather than refused.
        let mut pos = 0;
        while pos < frames {
            let n = self.drive_buf.len().min(frames - pos);
            let (g, p) = self.process_chunk(inputs, outputs, chans, pos, n);
            min_gain = min_gain.min(g);
            out_peak = out_peak.max(p);
            pos += n;
        }
        self.release.sanitise();
        if !self.box_sum.is_finite() {
            self.restart();
        }
        // `0 - x`, not `-x`: no gain reduction reads +0 dB, not -0.
        self.meter_gr_db = 0.0 - gain_to_db(min_gain);
        self.meter_tp_dbtp = gain_to_db(out_peak);
    }
}

impl Limiter {
    /// Processes frames `pos .. pos + n` (`n <= max_block`) in three passes: drive and detect per
    /// channel, the gain computer per frame, and the delayed product per channel. Returns the block's
    /// smallest gain and largest output true peak.
    fn process_chunk(
        &mut self,
        inputs: &[&[f32]],
        outputs: &mut [&mut [f32]],
        chans: usize,
        pos: usize,
        n: usize,
    ) -> (f32, f32) {
        let mask = self.delay_mask;
        let wpos = self.delay_pos;
        let drive = &mut self.drive_buf[..n];
        self.drive.next_block(drive);
        let peak = &mut self.peak_buf[..n];
        peak.fill(0.0);

        const H: usize = detector::HISTORY;
        // 1. Drive, sanitise, store in the delay line and detect.
        for ((input, line), ext) in inputs[..chans].iter().zip(&mut self.delay).zip(&mut self.in_ext) {
            let input = &input[pos..pos + n];
            for i in 0..n {
                let x = input[i];
                let x = if x.is_finite() { (x * drive[i]).clamp(-MAX_ABS, MAX_ABS) } else { 0.0 };
                line[(wpos + i) & mask] = x;
                ext[H + i] = x;
            }
            self.detector.max_into(&ext[..H + n], peak);
            ext.copy_within(n..n + H, 0);
        }

        // 2. Gain computer: required gain, hold, release, box ramp.
        let ramp = self.ramp;
        let inv_ramp = 1.0 / ramp as f64;
        let target = self.target;
        let gain = &mut self.gain_buf[..n];
        let mut min_gain = 1.0f32;
        for i in 0..n {
            let p = peak[i];
            let required = if p > target { target / p } else { 1.0 };
            let held = self.hold.push(required);
            let released = self.release.next(held);
            self.box_sum += released as f64 - self.box_ring[self.box_pos] as f64;
            self.box_ring[self.box_pos] = released;
            self.box_pos += 1;
            if self.box_pos >= ramp {
                // Re-sum once per lap so the running sum's rounding cannot drift (O(1) amortised).
                self.box_pos = 0;
                self.box_sum = self.box_ring[..ramp].iter().map(|&g| g as f64).sum();
            }
            let g = (self.box_sum * inv_ramp) as f32;
            gain[i] = g;
            min_gain = min_gain.min(g);
        }

        // 3. Output: the delayed driven input times the gain; its true peak for the meter.
        let latency = ramp + SUPPORT_EXTRA - 1;
        let rpos = wpos.wrapping_sub(latency);
        let out_tp = &mut self.peak_buf[..n];
        out_tp.fill(0.0);
        for ((out, line), ext) in outputs[..chans].iter_mut().zip(&self.delay).zip(&mut self.out_ext) {
            let out = &mut out[pos..pos + n];
            for i in 0..n {
                let y = gain[i] * line[rpos.wrapping_add(i) & mask];
                out[i] = y;
                ext[H + i] = y;
            }
            self.meter_detector.max_into(&ext[..H + n], out_tp);
            ext.copy_within(n..n + H, 0);
        }
        let out_peak = out_tp.iter().fold(0.0f32, |m, &p| m.max(p));
        self.delay_pos = (wpos + n) & mask;
        (min_gain, out_peak)
    }
}

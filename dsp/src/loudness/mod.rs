//! Loudness metering after ITU-R BS.1770-4 and EBU R128: momentary (400 ms), short-term (3 s),
//! integrated (gated) loudness, loudness range (EBU Tech 3342), true peak (BS.1770-4 Annex 2) and
//! sample peak, for any channel count with BS.1770 channel weights, at any rate from 8 to 192 kHz.
//!
//! Guarantees: memory is fixed at construction (two 0.01 LU histograms and a 60 s ring of 100 ms
//! powers) however long it runs; `feed`/`process` never allocate; non-finite input samples are measured
//! as silence and passed on as silence; readings do not depend on how the signal is cut into blocks.
//!
//! Structure: [`kweight`] (K-weighting for any rate and the multi-channel power front end), [`gating`]
//! (histograms, sliding-window ring). The loudness controller (`loudness_control`) reuses both.
//! Windows advance in 100 ms sub-blocks (`(fs + 5) / 10` frames, as libebur128), so momentary and
//! short-term update at 10 Hz, integrated gating blocks are 400 ms with 75 % overlap (BS.1770-4) and
//! LRA short-term blocks are 3 s every 100 ms (Tech 3342 asks for at least 10 Hz).

pub mod gating;
pub mod kweight;

use std::cell::Cell;

use crate::param::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;
use gating::{GatingHistogram, PowerRing};
use kweight::{power_to_lufs, KWeightedPower};

/// Sub-blocks in a momentary window (400 ms).
const MOMENTARY_BLOCKS: usize = 4;
/// Sub-blocks in a short-term window (3 s).
const SHORT_TERM_BLOCKS: usize = 30;
const DEFAULT_RATE: f64 = 48_000.0;

/// BS.1770-4 Table 3 channel weights: `G = 1.0` for L, R, C; `1.41` (+1.5 dB) for the surrounds; the
/// LFE channel is excluded. 6 channels are L R C LFE Ls Rs (SMPTE / ITU order), 5 are L R C Ls Rs;
/// any other count weighs every channel 1.0.
pub fn bs1770_weights(channels: usize) -> Vec<f64> {
    match channels {
        6 => vec![1.0, 1.0, 1.0, 0.0, 1.41, 1.41],
        5 => vec![1.0, 1.0, 1.0, 1.41, 1.41],
        n => vec![1.0; n],
    }
}

/// Samples per 100 ms sub-block, rounded as libebur128 does.
pub fn subblock_frames(sample_rate: f64) -> usize {
    ((sample_rate.round().max(1.0) as usize + 5) / 10).max(1)
}

/// All the numbers `ballastctl measure` prints. Loudness and peaks are `-inf` when undefined (silence,
/// nothing above the absolute gate); `lra_lu` is 0 when fewer than two short-term blocks pass the gates.
/// The maxima of momentary and short-term loudness are taken every 100 ms from the first 100 ms on, with
/// the part of a window before the start counted as silence (what libebur128 reports when asked then),
/// so a programme shorter than 3 s still has a maximum short-term loudness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoudnessSummary {
    pub integrated_lufs: f64,
    pub lra_lu: f64,
    pub true_peak_dbtp: f64,
    pub max_momentary_lufs: f64,
    pub max_short_term_lufs: f64,
    pub sample_peak_dbfs: f64,
}

/// Linear amplitude to dB; `-inf` for 0.
fn amp_to_db(a: f64) -> f64 {
    20.0 * a.log10()
}

/// Everything downstream of the K-weighted power: windows, maxima, gating histograms.
#[derive(Clone, Debug)]
struct Stats {
    ring: PowerRing,
    momentary: f64,
    short_term: f64,
    max_momentary: f64,
    max_short_term: f64,
    integrated: GatingHistogram,
    range: GatingHistogram,
}

impl Stats {
    fn new() -> Self {
        Self {
            ring: PowerRing::new(),
            momentary: f64::NEG_INFINITY,
            short_term: f64::NEG_INFINITY,
            max_momentary: f64::NEG_INFINITY,
            max_short_term: f64::NEG_INFINITY,
            integrated: GatingHistogram::new(),
            range: GatingHistogram::new(),
        }
    }

    fn clear(&mut self) {
        self.ring.clear();
        self.momentary = f64::NEG_INFINITY;
        self.short_term = f64::NEG_INFINITY;
        self.clear_integration();
    }

    fn clear_integration(&mut self) {
        self.max_momentary = f64::NEG_INFINITY;
        self.max_short_term = f64::NEG_INFINITY;
        self.integrated.clear();
        self.range.clear();
    }

    /// One 100 ms sub-block completed with mean weighted power `power`.
    fn push(&mut self, power: f64) {
        self.ring.push(power);
        let m = self.ring.mean(MOMENTARY_BLOCKS);
        let s = self.ring.mean(SHORT_TERM_BLOCKS);
        self.momentary = power_to_lufs(m);
        self.short_term = power_to_lufs(s);
        self.max_momentary = self.max_momentary.max(self.momentary);
        self.max_short_term = self.max_short_term.max(self.short_term);
        let filled = self.ring.filled();
        if filled >= MOMENTARY_BLOCKS as u64 {
            self.integrated.add(m);
        }
        if filled >= SHORT_TERM_BLOCKS as u64 {
            self.range.add(s);
        }
    }
}

/// EBU R128 loudness meter. As a [`Processor`] (kind `"loudness_meter"`) it passes audio through
/// unchanged and publishes its readings as meters; offline, [`LoudnessMeter::feed`] measures without
/// output.
#[derive(Clone, Debug)]
pub struct LoudnessMeter {
    weights: Vec<f64>,
    sample_rate: f64,
    front: KWeightedPower,
    stats: Stats,
    /// Integrated and LRA scans (a few µs each) are done on demand, at most once per sub-block.
    cache_integrated: Cell<Option<f64>>,
    cache_lra: Cell<Option<f64>>,
}

impl LoudnessMeter {
    /// A meter for `channels` channels with BS.1770 weights (see [`bs1770_weights`]), prepared for
    /// 48 kHz; call `prepare` for another rate.
    pub fn new(channels: usize) -> Self {
        Self::with_weights(&bs1770_weights(channels))
    }

    /// A meter with explicit per-channel weights (0.0 excludes a channel from loudness, not from peaks).
    pub fn with_weights(weights: &[f64]) -> Self {
        let weights = weights.to_vec();
        Self {
            front: KWeightedPower::new(&weights, DEFAULT_RATE, subblock_frames(DEFAULT_RATE), true),
            weights,
            sample_rate: DEFAULT_RATE,
            stats: Stats::new(),
            cache_integrated: Cell::new(None),
            cache_lra: Cell::new(None),
        }
    }

    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// Measures `inputs` (one slice per channel, any length) without producing output.
    pub fn feed(&mut self, inputs: &[&[f32]]) {
        let stats = &mut self.stats;
        let mut any = false;
        self.front.process(inputs, |p| {
            stats.push(p);
            any = true;
        });
        if any {
            self.cache_integrated.set(None);
            self.cache_lra.set(None);
        }
    }

    /// Restarts integrated loudness, LRA, maxima and peaks; momentary and short-term keep running.
    pub fn reset_integration(&mut self) {
        self.stats.clear_integration();
        self.front.reset_peaks();
        self.cache_integrated.set(None);
        self.cache_lra.set(None);
    }

    /// Loudness of the last 400 ms (updated every 100 ms).
    pub fn momentary_lufs(&self) -> f64 {
        self.stats.momentary
    }

    /// Loudness of the last 3 s (updated every 100 ms).
    pub fn short_term_lufs(&self) -> f64 {
        self.stats.short_term
    }

    /// Gated integrated loudness since the start (or the last reset).
    pub fn integrated_lufs(&self) -> f64 {
        if let Some(v) = self.cache_integrated.get() {
            return v;
        }
        let v = self.stats.integrated.integrated_lufs();
        self.cache_integrated.set(Some(v));
        v
    }

    /// Loudness range (EBU Tech 3342) since the start (or the last reset).
    pub fn lra_lu(&self) -> f64 {
        if let Some(v) = self.cache_lra.get() {
            return v;
        }
        let v = self.stats.range.loudness_range_lu();
        self.cache_lra.set(Some(v));
        v
    }

    /// Largest true peak over all channels (never below the sample peak, as libebur128 reports it).
    pub fn true_peak_dbtp(&self) -> f64 {
        let tp = (0..self.weights.len()).fold(0.0f32, |m, c| m.max(self.front.true_peak(c)));
        amp_to_db(tp.max(self.max_sample_peak()) as f64)
    }

    fn max_sample_peak(&self) -> f32 {
        (0..self.weights.len()).fold(0.0f32, |m, c| m.max(self.front.sample_peak(c)))
    }

    /// Largest |sample| over all channels.
    pub fn sample_peak_dbfs(&self) -> f64 {
        amp_to_db(self.max_sample_peak() as f64)
    }

    pub fn max_momentary_lufs(&self) -> f64 {
        self.stats.max_momentary
    }

    pub fn max_short_term_lufs(&self) -> f64 {
        self.stats.max_short_term
    }

    pub fn summary(&self) -> LoudnessSummary {
        LoudnessSummary {
            integrated_lufs: self.integrated_lufs(),
            lra_lu: self.lra_lu(),
            true_peak_dbtp: self.true_peak_dbtp(),
            max_momentary_lufs: self.max_momentary_lufs(),
            max_short_term_lufs: self.max_short_term_lufs(),
            sample_peak_dbfs: self.sample_peak_dbfs(),
        }
    }
}

/// Parameter id of the integration-reset trigger.
pub const PARAM_RESET_INTEGRATION: ParamId = ParamId(0);

static PARAMS: [ParamDescriptor; 1] = [ParamDescriptor {
    id: PARAM_RESET_INTEGRATION,
    key: "reset_integration",
    name: "Reset integration",
    unit: Unit::Bool,
    min: 0.0,
    max: 1.0,
    default: 0.0,
    scale: Scale::Linear,
    smoothing: Smoothing::None,
    doc: "Setting 1 restarts integrated loudness, loudness range, maxima and peaks (reads back as 0).",
}];

static METERS: [MeterDescriptor; 8] = [
    MeterDescriptor { key: "momentary_lufs", name: "Momentary loudness (400 ms)", unit: Unit::Lufs, per_band: false },
    MeterDescriptor { key: "short_term_lufs", name: "Short-term loudness (3 s)", unit: Unit::Lufs, per_band: false },
    MeterDescriptor { key: "integrated_lufs", name: "Integrated loudness", unit: Unit::Lufs, per_band: false },
    MeterDescriptor { key: "lra_lu", name: "Loudness range", unit: Unit::Lu, per_band: false },
    MeterDescriptor { key: "true_peak_dbtp", name: "True peak", unit: Unit::Dbtp, per_band: false },
    MeterDescriptor { key: "sample_peak_dbfs", name: "Sample peak", unit: Unit::Db, per_band: false },
    MeterDescriptor { key: "max_momentary_lufs", name: "Max momentary", unit: Unit::Lufs, per_band: false },
    MeterDescriptor { key: "max_short_term_lufs", name: "Max short-term", unit: Unit::Lufs, per_band: false },
];

/// The `"loudness_meter"` kind.
pub static DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "loudness_meter",
    doc: "EBU R128 / BS.1770-4 loudness meter: passes audio through, meters M, S, I, LRA, true and sample peak.",
    params: &PARAMS,
    band_params: &[],
    meters: &METERS,
};

impl Processor for LoudnessMeter {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn prepare(&mut self, sample_rate: f64, _max_block: usize) {
        let sr = if sample_rate.is_finite() && sample_rate > 0.0 { sample_rate } else { DEFAULT_RATE };
        self.sample_rate = sr;
        self.front = KWeightedPower::new(&self.weights, sr, subblock_frames(sr), true);
        self.reset();
    }

    fn reset(&mut self) {
        self.front.reset();
        self.stats.clear();
        self.cache_integrated.set(None);
        self.cache_lra.set(None);
    }

    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = DESCRIPTOR.validate(id, value)?;
        if id == PARAM_RESET_INTEGRATION && v == 1.0 {
            self.reset_integration();
        }
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        (id == PARAM_RESET_INTEGRATION).then_some(0.0)
    }

    fn channels(&self) -> (usize, usize) {
        (self.weights.len(), self.weights.len())
    }

    fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        self.feed(inputs);
        for (i, out) in outputs.iter_mut().enumerate() {
            match inputs.get(i) {
                Some(inp) => {
                    for (o, &x) in out.iter_mut().zip(inp.iter()) {
                        *o = if x.is_finite() { x } else { 0.0 };
                    }
                }
                None => out.fill(0.0),
            }
        }
    }

    fn meter(&self, index: usize, _band: usize) -> f32 {
        (match index {
            0 => self.momentary_lufs(),
            1 => self.short_term_lufs(),
            2 => self.integrated_lufs(),
            3 => self.lra_lu(),
            4 => self.true_peak_dbtp(),
            5 => self.sample_peak_dbfs(),
            6 => self.max_momentary_lufs(),
            7 => self.max_short_term_lufs(),
            _ => f64::NAN,
        }) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_1k_stereo() {
        let sr = 48_000.0;
        let mut m = LoudnessMeter::new(2);
        m.prepare(sr, 1024);
        let amp = 10f64.powf(-23.0 / 20.0);
        let x: Vec<f32> = (0..(sr as usize * 10))
            .map(|n| (amp * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / sr).sin()) as f32)
            .collect();
        m.feed(&[&x, &x]);
        let s = m.summary();
        // Tech 3341 case 1 (stereo -23 dBFS 1 kHz reads -23.0 +-0.1).
        assert!((s.integrated_lufs + 23.0).abs() < 0.1, "{s:?}");
        assert!((m.momentary_lufs() + 23.0).abs() < 0.1, "{s:?}");
        assert!((m.short_term_lufs() + 23.0).abs() < 0.1, "{s:?}");
        assert!((s.sample_peak_dbfs + 23.0).abs() < 0.01, "{s:?}");
        assert!(s.lra_lu.abs() < 0.1, "{s:?}");
    }

    #[test]
    fn silence_is_neg_inf() {
        let mut m = LoudnessMeter::new(2);
        m.feed(&[&[0.0; 48_000], &[0.0; 48_000]]);
        let s = m.summary();
        assert_eq!(s.integrated_lufs, f64::NEG_INFINITY);
        assert_eq!(s.true_peak_dbtp, f64::NEG_INFINITY);
        assert_eq!(s.lra_lu, 0.0);
    }
}

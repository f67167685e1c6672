//! Issue 6's measures of an estimate, in Rust so the CI test of the committed model and `evaluate.py`
//! (`models/train/common.py`, same rule) agree.
//!
//! - Accuracy: an estimate of a parameter is correct when threshold is within ±2 dB, ratio within ±20%,
//!   attack and release within ±30%, makeup within ±1 dB. Knee has no rule.
//! - Re-synthesis error: render the dry audio with the estimated settings; the RMS difference between its
//!   gain trajectory and the wet audio's ([`crate::features::Features::gain_db`], 10 ms frames), in dB.

use std::path::Path;

use crate::dataset::{compress_into, DatasetError, SAMPLE_RATE};
use crate::estimator::Estimator;
use crate::features::{FeatureExtractor, FLOOR_DB};
use crate::features::{FEATURES, FRAMES, SIGNALS};
use crate::npy::Npy;
use crate::params::{CompressorParams, KEYS};

/// How a parameter's estimate is judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// Within ± this many units (dB).
    Absolute(f32),
    /// Within ± this fraction of the true value.
    Relative(f32),
    /// Not scored.
    None,
}

/// The tolerance of each of [`KEYS`], in order.
pub const TOLERANCES: [Tolerance; 6] = [
    Tolerance::Absolute(2.0),  // threshold_db
    Tolerance::Relative(0.20), // ratio
    Tolerance::Relative(0.30), // attack_ms
    Tolerance::Relative(0.30), // release_ms
    Tolerance::None,           // knee_db
    Tolerance::Absolute(1.0),  // makeup_db
];

/// Whether each parameter of `estimate` is correct for `truth`; `None` for parameters without a rule.
pub fn judge(estimate: CompressorParams, truth: CompressorParams) -> [Option<bool>; 6] {
    let (e, t) = (estimate.to_array(), truth.to_array());
    std::array::from_fn(|i| match TOLERANCES[i] {
        Tolerance::Absolute(tol) => Some((e[i] - t[i]).abs() <= tol),
        Tolerance::Relative(tol) => Some((e[i] / t[i] - 1.0).abs() <= tol),
        Tolerance::None => None,
    })
}

/// Per-parameter and overall accuracy over many estimates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accuracy {
    correct: [usize; 6],
    total: usize,
}

impl Accuracy {
    pub fn add(&mut self, estimate: CompressorParams, truth: CompressorParams) {
        for (i, c) in judge(estimate, truth).iter().enumerate() {
            self.correct[i] += usize::from(*c == Some(true));
        }
        self.total += 1;
    }

    pub fn count(&self) -> usize {
        self.total
    }

    /// Share correct for parameter `key`, `None` for knee (no rule) or before any estimate.
    pub fn of(&self, key: &str) -> Option<f64> {
        let i = KEYS.iter().position(|k| *k == key)?;
        (TOLERANCES[i] != Tolerance::None && self.total > 0).then(|| self.correct[i] as f64 / self.total as f64)
    }

    /// Share of correct (estimate, scored parameter) pairs.
    pub fn overall(&self) -> Option<f64> {
        let scored: Vec<usize> = (0..6).filter(|&i| TOLERANCES[i] != Tolerance::None).collect();
        (self.total > 0)
            .then(|| scored.iter().map(|&i| self.correct[i]).sum::<usize>() as f64 / (self.total * scored.len()) as f64)
    }
}

/// An estimator's scores on one split of a `build-dataset` directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SplitReport {
    /// Over the identifiable examples: the figure issue 6 targets.
    pub identifiable: Accuracy,
    /// Unidentifiable examples, reported apart (only makeup means anything there).
    pub unidentifiable: Accuracy,
}

/// Runs `estimator` over `{split}_x.npy` of `dir` in batches of `batch` windows and scores it against
/// `{split}_y.npy`, identifiable and unidentifiable examples apart. For the CI test of the committed
/// model on its fixed held-out set.
pub fn evaluate_split(
    estimator: &mut Estimator,
    dir: &Path,
    split: &str,
    batch: usize,
) -> Result<SplitReport, Box<dyn std::error::Error>> {
    let read = |what: &str| Npy::read(&dir.join(format!("{split}_{what}.npy")));
    let x = read("x")?;
    let n = x.shape[0];
    if x.shape != [n, SIGNALS, FRAMES, FEATURES] {
        return Err(
            format!("{split}_x.npy has shape {:?}, expected [n, {SIGNALS}, {FRAMES}, {FEATURES}]", x.shape).into()
        );
    }
    let x = ndarray::Array4::from_shape_vec((n, SIGNALS, FRAMES, FEATURES), x.to_f32().ok_or("x is not f32")?)?;
    let y = read("y")?.to_f32().ok_or("y is not f32")?;
    let id = read("identifiable")?.to_u8().ok_or("identifiable is not u8")?;
    if y.len() != n * 6 || id.len() != n {
        return Err(format!("{split}: x, y and identifiable disagree on the example count").into());
    }
    let mut report = SplitReport::default();
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(n);
        let pred = estimator.predict_windows(x.slice(ndarray::s![start..end, .., .., ..]))?;
        for (i, p) in (start..end).zip(pred) {
            let truth = CompressorParams::from_array(y[i * 6..i * 6 + 6].try_into().expect("six values"));
            if id[i] == 1 {
                report.identifiable.add(p, truth);
            } else {
                report.unidentifiable.add(p, truth);
            }
        }
    }
    Ok(report)
}

/// Re-synthesis error, dB RMS: `dry` rendered with `estimate` through ballast's compressor against `wet`,
/// compared frame by frame as gain trajectories (wet minus dry RMS level), over frames whose dry level is
/// at least 10 dB above the floor (silence has no gain to compare). Stereo at [`SAMPLE_RATE`].
pub fn resynthesis_error_db(
    dry: [&[f32]; 2],
    wet: [&[f32]; 2],
    estimate: CompressorParams,
) -> Result<f32, DatasetError> {
    let mut resynth = [Vec::new(), Vec::new()];
    compress_into(dry, estimate, &mut resynth, 0)?;
    let mut fx = FeatureExtractor::new(SAMPLE_RATE, 2, &[]).expect("valid fixed configuration");
    let bad = |e: crate::features::FeatureError| DatasetError::Render(e.to_string());
    let truth = fx.extract(&dry, &wet).map_err(bad)?;
    let ours = fx.extract(&dry, &[&resynth[0], &resynth[1]]).map_err(bad)?;
    let (gt, go) = (truth.gain_db(0), ours.gain_db(0));
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for t in 0..truth.frames() {
        if truth.data[[0, 0, t, 0]] > FLOOR_DB + 10.0 {
            sum += f64::from(gt[t] - go[t]).powi(2);
            n += 1;
        }
    }
    Ok(if n == 0 { 0.0 } else { (sum / n as f64).sqrt() as f32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUTH: CompressorParams = CompressorParams {
        threshold_db: -30.0,
        ratio: 4.0,
        attack_ms: 10.0,
        release_ms: 100.0,
        knee_db: 6.0,
        makeup_db: 2.0,
    };

    #[test]
    fn the_rule_at_its_edges() {
        assert_eq!(judge(TRUTH, TRUTH), [Some(true), Some(true), Some(true), Some(true), None, Some(true)]);
        // Just inside every tolerance (the margins keep clear of f32 rounding at the exact edge).
        let inside = CompressorParams {
            threshold_db: -31.99,
            ratio: 4.79,
            attack_ms: 12.99,
            release_ms: 70.1,
            knee_db: 24.0,
            makeup_db: 2.99,
        };
        assert_eq!(judge(inside, TRUTH), [Some(true), Some(true), Some(true), Some(true), None, Some(true)]);
        let outside = CompressorParams {
            threshold_db: -32.01,
            ratio: 3.19,
            attack_ms: 13.01,
            release_ms: 69.9,
            knee_db: 0.0,
            makeup_db: 0.99,
        };
        assert_eq!(judge(outside, TRUTH), [Some(false), Some(false), Some(false), Some(false), None, Some(false)]);
        let mut acc = Accuracy::default();
        acc.add(inside, TRUTH);
        acc.add(outside, TRUTH);
        assert_eq!(acc.count(), 2);
        assert_eq!(acc.of("threshold_db"), Some(0.5));
        assert_eq!(acc.of("knee_db"), None);
        assert_eq!(acc.overall(), Some(0.5));
    }

    #[test]
    fn resynthesis_with_the_truth_is_exact_and_a_makeup_error_shows_as_itself() {
        let n = 48_000 * 3;
        // A tone whose level steps between −30 and −6 dBFS every 250 ms: the compressor attacks and releases.
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let amp = if (i / 12_000) % 2 == 0 { 0.5 } else { 0.0316 };
                amp * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 48_000.0).sin()
            })
            .collect();
        let mut wet = [Vec::new(), Vec::new()];
        compress_into([&x, &x], TRUTH, &mut wet, 0).unwrap();
        let e = resynthesis_error_db([&x, &x], [&wet[0], &wet[1]], TRUTH).unwrap();
        // Same node, same input, same settings: bit-identical output.
        assert_eq!(e, 0.0);
        let off = CompressorParams { makeup_db: TRUTH.makeup_db + 1.0, ..TRUTH };
        let e = resynthesis_error_db([&x, &x], [&wet[0], &wet[1]], off).unwrap();
        // Makeup is a constant gain after the detector: every frame's gain moves by exactly 1 dB (f32).
        eprintln!("re-synthesis error with makeup 1 dB off: {e:.5} dB");
        assert!((e - 1.0).abs() < 1e-3, "{e}");
        let slow = CompressorParams { release_ms: 1000.0, ..TRUTH };
        let e = resynthesis_error_db([&x, &x], [&wet[0], &wet[1]], slow).unwrap();
        // A 10× slower release holds the gain down through the quiet steps: several dB off.
        eprintln!("re-synthesis error with a 10x release: {e:.2} dB");
        assert!(e > 2.0, "{e}");
    }
}

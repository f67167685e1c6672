//! Inference for the compressor-parameter estimator: (dry, wet) audio -> per-band compressor settings.
//!
//! The same [`FeatureExtractor`] as the dataset builder cuts the pair into bands and frames; every
//! [`FRAMES`]-frame window (half-overlapping) of every band goes through the model in one batch; the
//! per-band estimate is the median of its windows' normalised outputs (robust to windows where the
//! compressor was idle), mapped back to settings by [`CompressorParams::from_normalised`]. One model
//! serves every band and band count.

use ndarray::{Array4, ArrayView4, Axis};

use crate::features::{FeatureError, FeatureExtractor, FEATURES, FRAMES, SIGNALS};
use crate::params::{CompressorParams, KEYS};
use crate::session::{Model, ModelError, ModelSpec, TensorSpec};

/// The model's input name: `[batch, 2, FRAMES, FEATURES]` features (dry, wet).
pub const INPUT: &str = "features";
/// The model's output name: `[batch, 6]` settings normalised to [0, 1] in [`KEYS`] order.
pub const OUTPUT: &str = "params_norm";

/// The interface an estimator `.onnx` must have.
pub fn spec() -> ModelSpec {
    ModelSpec {
        inputs: vec![TensorSpec::f32(INPUT, &[None, Some(SIGNALS as i64), Some(FRAMES as i64), Some(FEATURES as i64)])],
        outputs: vec![TensorSpec::f32(OUTPUT, &[None, Some(KEYS.len() as i64)])],
    }
}

/// Why an estimate failed.
#[derive(Clone, Debug, PartialEq)]
pub enum EstimateError {
    Model(ModelError),
    Features(FeatureError),
    /// The pair is shorter than one window.
    TooShort {
        seconds: f64,
        needed: f64,
    },
}

impl std::fmt::Display for EstimateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EstimateError::Model(e) => write!(f, "{e}"),
            EstimateError::Features(e) => write!(f, "{e}"),
            EstimateError::TooShort { seconds, needed } => {
                write!(f, "the audio is {seconds:.2} s long; the estimator needs at least {needed:.2} s")
            }
        }
    }
}

impl std::error::Error for EstimateError {}

impl From<ModelError> for EstimateError {
    fn from(e: ModelError) -> Self {
        EstimateError::Model(e)
    }
}

impl From<FeatureError> for EstimateError {
    fn from(e: FeatureError) -> Self {
        EstimateError::Features(e)
    }
}

/// Settings per band, low to high.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub bands: Vec<CompressorParams>,
    /// Windows each band's estimate is the median of.
    pub windows: usize,
}

/// A loaded estimator model. Worker threads only (allocates, runs ONNX Runtime).
#[derive(Debug)]
pub struct Estimator {
    model: Model,
}

impl Estimator {
    /// Loads and checks the model against [`spec`].
    pub fn load(path: &std::path::Path) -> Result<Self, ModelError> {
        Ok(Self { model: Model::load(path, &spec())? })
    }

    /// Settings for ready-made feature windows `[n, 2, FRAMES, FEATURES]` (a dataset's `x`), one per
    /// window, without the median over windows.
    pub fn predict_windows(&mut self, x: ArrayView4<'_, f32>) -> Result<Vec<CompressorParams>, ModelError> {
        let out = self.model.run_f32(&[x.into_dyn()])?;
        let out = &out[0];
        Ok((0..out.shape()[0])
            .map(|r| CompressorParams::from_normalised(std::array::from_fn(|k| out[[r, k]])))
            .collect())
    }

    /// Estimates the settings of each band between `crossovers_hz` (empty: one band, the `compressor`
    /// node) that turned `dry` into `wet` (planar, same length and channel count, 1 or 2 channels).
    pub fn estimate(
        &mut self,
        dry: &[&[f32]],
        wet: &[&[f32]],
        sample_rate: f64,
        crossovers_hz: &[f64],
    ) -> Result<Estimate, EstimateError> {
        let mut fx = FeatureExtractor::new(sample_rate, dry.len(), crossovers_hz)?;
        let features = fx.extract(dry, wet)?;
        let frames = features.frames();
        if frames < FRAMES {
            let hop_s = fx.hop_samples() as f64 / sample_rate;
            return Err(EstimateError::TooShort { seconds: frames as f64 * hop_s, needed: FRAMES as f64 * hop_s });
        }
        // Half-overlapping windows, the last one flush with the end so no frame is left out.
        let mut starts: Vec<usize> = (0..=frames - FRAMES).step_by(FRAMES / 2).collect();
        if *starts.last().expect("at least one window") != frames - FRAMES {
            starts.push(frames - FRAMES);
        }
        let bands = features.bands();
        let mut batch = Array4::<f32>::zeros((bands * starts.len(), SIGNALS, FRAMES, FEATURES));
        for band in 0..bands {
            for (w, &s) in starts.iter().enumerate() {
                let win = features.window(band, s).expect("start chosen within range");
                batch.index_axis_mut(Axis(0), band * starts.len() + w).assign(&win);
            }
        }
        let out = self.model.run_f32(&[batch.into_dyn().view()])?;
        let out = &out[0];
        let mut result = Vec::with_capacity(bands);
        for band in 0..bands {
            let rows = band * starts.len()..(band + 1) * starts.len();
            let u: [f32; 6] = std::array::from_fn(|k| median(rows.clone().map(|r| out[[r, k]]).collect()));
            result.push(CompressorParams::from_normalised(u));
        }
        Ok(Estimate { bands: result, windows: starts.len() })
    }
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

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
use crate::refine::{self, RefineConfig, RefineError, Refiner};
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
    /// The audio cannot be refined: a NaN or infinite sample, or silent dry audio.
    Refine(RefineError),
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
            EstimateError::Refine(e) => write!(f, "{e}"),
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

impl From<RefineError> for EstimateError {
    fn from(e: RefineError) -> Self {
        EstimateError::Refine(e)
    }
}

/// Settings per band, low to high.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// The refined settings ([`crate::refine`]): what to apply.
    pub bands: Vec<CompressorParams>,
    /// Windows each band's network estimate is the median of.
    pub windows: usize,
    /// The network's settings alone (the refiner's start), for reporting.
    pub network: Vec<CompressorParams>,
    /// Per band, the re-synthesis error of `bands` over the whole pair, dB ([`crate::refine`]'s measure,
    /// 10 ms frames; NaN for a silent band).
    pub residual_db: Vec<f32>,
    /// The same for `network`.
    pub network_residual_db: Vec<f32>,
    /// Per band, [`refine::confidence`] of the residual and of how much the gain moved, in [0, 1].
    pub band_confidence: Vec<f32>,
    /// The lowest band confidence: the estimate is as trustworthy as its worst band.
    pub confidence: f32,
}

impl Estimate {
    /// Issue 6's JSON: `{"bands": [{"threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db",
    /// "knee_db", "residual_db", "confidence"}…], "confidence": …}`, plus `"network"` with the network-only
    /// settings.
    pub fn to_json(&self) -> serde_json::Value {
        let settings = |p: &CompressorParams| {
            serde_json::json!({
                "threshold_db": p.threshold_db,
                "ratio": p.ratio,
                "attack_ms": p.attack_ms,
                "release_ms": p.release_ms,
                "makeup_db": p.makeup_db,
                "knee_db": p.knee_db,
            })
        };
        let finite = |v: f32| v.is_finite().then_some(v);
        let bands: Vec<serde_json::Value> = self
            .bands
            .iter()
            .enumerate()
            .map(|(b, p)| {
                let mut v = settings(p);
                v["residual_db"] = serde_json::json!(self.residual_db.get(b).copied().and_then(finite));
                v["confidence"] = serde_json::json!(self.band_confidence.get(b));
                v
            })
            .collect();
        serde_json::json!({
            "bands": bands,
            "confidence": self.confidence,
            "network": self.network.iter().map(settings).collect::<Vec<_>>(),
        })
    }
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
    /// node) that turned `dry` into `wet` (planar, same length and channel count, 1 or 2 channels): the
    /// network's estimate, refined by re-synthesis ([`crate::refine`]). A NaN or infinite sample, or dry
    /// audio silent in every band, is an error; a silent band of several keeps the network's settings with
    /// confidence 0.
    pub fn estimate(
        &mut self,
        dry: &[&[f32]],
        wet: &[&[f32]],
        sample_rate: f64,
        crossovers_hz: &[f64],
    ) -> Result<Estimate, EstimateError> {
        let cfg = RefineConfig::for_bands(crossovers_hz.len() + 1);
        self.estimate_with(dry, wet, sample_rate, crossovers_hz, Some(&cfg))
    }

    /// As [`Estimator::estimate`], with the refiner's budgets; `None` skips refinement (`bands` are then
    /// the network's settings, and the residuals and confidence are still measured).
    pub fn estimate_with(
        &mut self,
        dry: &[&[f32]],
        wet: &[&[f32]],
        sample_rate: f64,
        crossovers_hz: &[f64],
        refine: Option<&RefineConfig>,
    ) -> Result<Estimate, EstimateError> {
        // Checked before the network: NaN features would come back as NaN settings.
        let mut refiner = match Refiner::new(dry, wet, sample_rate, crossovers_hz) {
            Ok(r) => r,
            // Shape problems are reported by the feature extractor, in its words.
            Err(RefineError::Shape(_)) => {
                FeatureExtractor::new(sample_rate, dry.len(), crossovers_hz)?.extract(dry, wet)?;
                return Err(EstimateError::Refine(RefineError::Shape("dry and wet do not match".into())));
            }
            Err(e) => return Err(e.into()),
        };
        let (network, windows) = self.network(dry, wet, sample_rate, crossovers_hz)?;
        refiner.set_context(&network);
        let mut fits = Vec::with_capacity(network.len());
        let (mut residual_db, mut network_residual_db, mut band_confidence) = (Vec::new(), Vec::new(), Vec::new());
        for (b, &start) in network.iter().enumerate() {
            let fit = match refine {
                Some(cfg) => refiner.refine_band(b, start, cfg),
                None => {
                    let r = if refiner.silent(b) { f32::NAN } else { refiner.residual_db(b, start) };
                    refine::BandFit {
                        params: start,
                        residual_db: r,
                        start_residual_db: r,
                        spread_db: refiner.spread_db(b),
                        evals: 0,
                    }
                }
            };
            fits.push(fit);
        }
        // Multiband: each band was fitted beside the network's other bands; fit once more beside the
        // refined ones, so every band's leakage is the final estimate's.
        if let (Some(cfg), true) = (refine, fits.len() > 1) {
            refiner.set_context(&fits.iter().map(|f| f.params).collect::<Vec<_>>());
            for (b, fit) in fits.iter_mut().enumerate() {
                let polished = refiner.polish_band(b, fit.params, cfg.restart_evals);
                *fit = refine::BandFit { start_residual_db: fit.start_residual_db, ..polished };
            }
        }
        let mut bands = Vec::with_capacity(fits.len());
        for fit in &fits {
            bands.push(fit.params);
            residual_db.push(fit.residual_db);
            network_residual_db.push(fit.start_residual_db);
            band_confidence.push(refine::confidence(fit.residual_db, fit.spread_db));
        }
        let confidence = band_confidence.iter().copied().fold(1.0f32, f32::min);
        Ok(Estimate { bands, windows, network, residual_db, network_residual_db, band_confidence, confidence })
    }

    /// The network's settings per band (median over half-overlapping windows) and the window count.
    fn network(
        &mut self,
        dry: &[&[f32]],
        wet: &[&[f32]],
        sample_rate: f64,
        crossovers_hz: &[f64],
    ) -> Result<(Vec<CompressorParams>, usize), EstimateError> {
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
        Ok((result, starts.len()))
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

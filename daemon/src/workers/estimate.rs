//! The estimate job: read a (dry, wet) pair and estimate the compressor settings per band.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ballast_models::estimator::EstimateError;
use ballast_models::params::CompressorParams;

use super::audio::read_pair;
use super::models::{one_line, Models};
use super::JobError;

/// Estimate the settings that turned `dry` into `wet`.
#[derive(Clone, Debug, PartialEq)]
pub struct EstimateJob {
    pub dry: PathBuf,
    pub wet: PathBuf,
    /// The split frequencies, low to high (empty: one band, a `compressor`).
    pub crossovers_hz: Vec<f64>,
}

/// The estimate and what it was made from.
#[derive(Clone, Debug, PartialEq)]
pub struct EstimateOutput {
    /// Settings per band, low to high.
    pub bands: Vec<CompressorParams>,
    /// Audio used, in seconds (at most [`super::MAX_SECONDS`]).
    pub seconds: f64,
    pub sample_rate: u32,
    /// Reading the files.
    pub read: Duration,
    /// Feature extraction and inference.
    pub infer: Duration,
}

pub(crate) fn run(models: &mut Models, job: &EstimateJob) -> Result<EstimateOutput, JobError> {
    // Checked before reading the files: an unavailable model answers at once.
    models.estimator().map_err(|r| JobError::ModelUnavailable(r.to_string()))?;
    let t0 = Instant::now();
    let pair = read_pair(&job.dry, &job.wet).map_err(JobError::Input)?;
    let read = t0.elapsed();
    let est = models.estimator().map_err(|r| JobError::ModelUnavailable(r.to_string()))?;
    let dry: Vec<&[f32]> = pair.dry.iter().map(Vec::as_slice).collect();
    let wet: Vec<&[f32]> = pair.wet.iter().map(Vec::as_slice).collect();
    let t1 = Instant::now();
    let e = est.estimate(&dry, &wet, f64::from(pair.sample_rate), &job.crossovers_hz).map_err(|e| match e {
        EstimateError::Model(m) => JobError::Failed(one_line(&m.to_string())),
        other => JobError::Input(one_line(&other.to_string())),
    })?;
    Ok(EstimateOutput {
        bands: e.bands,
        seconds: pair.seconds(),
        sample_rate: pair.sample_rate,
        read,
        infer: t1.elapsed(),
    })
}

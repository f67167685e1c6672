//! `[models]`: where the ONNX Runtime library and the model files are, and how many inference workers
//! run them. Every key is optional; the defaults search the documented places at load time (on the
//! worker), so a config never fails because a model is missing: the daemon reports the model's health.

use std::path::{Path, PathBuf};

use super::diag::Sink;
use super::known_entries;
use super::value::{self, Entry};

/// `[models]` as validated. Paths are absolute, or relative to the config file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelsSettings {
    /// `libonnxruntime.so` to load (`None`: `ORT_DYLIB_PATH`, then the ballast cache, then the system
    /// library directories; see `ballast_models::runtime::init`).
    pub onnxruntime: Option<PathBuf>,
    /// The estimator `.onnx` (`None`: [`crate::workers::estimator_search_path`]).
    pub estimator: Option<PathBuf>,
    /// Inference worker threads.
    pub workers: usize,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        ModelsSettings { onnxruntime: None, estimator: None, workers: 1 }
    }
}

/// Accepted `workers`: one is plenty on the small machines ballast targets; more than a few would only
/// compete with the audio thread for cores.
pub const WORKERS: (usize, usize) = (1, 8);

pub(crate) const MODELS_KEYS: [&str; 3] = ["onnxruntime", "estimator", "workers"];

pub(crate) fn models(sink: &mut Sink<'_>, e: &Entry<'_>, file: &str) -> ModelsSettings {
    let mut s = ModelsSettings::default();
    // A relative path means "next to the config", not "wherever the daemon was started from".
    let base = Path::new(file).parent().filter(|p| p.is_dir());
    for entry in known_entries(sink, e, "[models]", &MODELS_KEYS) {
        let span = value::span_of(entry.item, &entry.key_span);
        match entry.key {
            "onnxruntime" | "estimator" => {
                let Some(text) = value::string(sink, &entry) else { continue };
                if text.trim().is_empty() || text.contains('\0') {
                    sink.error(span, format!("{} must be a file path (absolute, or relative to the config)", entry.key));
                    continue;
                }
                let p = PathBuf::from(text);
                let p = match base {
                    Some(b) if p.is_relative() => b.join(p),
                    _ => p,
                };
                if entry.key == "onnxruntime" {
                    s.onnxruntime = Some(p);
                } else {
                    s.estimator = Some(p);
                }
            }
            "workers" => {
                if let Some(v) = value::integer(sink, &entry) {
                    let (lo, hi) = WORKERS;
                    match usize::try_from(v).ok().filter(|v| (lo..=hi).contains(v)) {
                        Some(v) => s.workers = v,
                        None => sink.error(span, format!("workers = {v} is out of range {lo}..{hi}")),
                    }
                }
            }
            _ => unreachable!("known_entries returned an unknown key"),
        }
    }
    s
}

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
                    sink.error(
                        span,
                        format!("{} must be a file path (absolute, or relative to the config)", entry.key),
                    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn errors(text: &str) -> Vec<String> {
        parse(text, "t.toml").expect_err("refused").diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn defaults_when_absent_and_values_when_set() {
        assert_eq!(parse("", "t.toml").unwrap().models, ModelsSettings::default());
        let c = parse("[models]\nonnxruntime = \"/opt/ort.so\"\nestimator = \"/m/e.onnx\"\nworkers = 2\n", "t.toml")
            .unwrap();
        assert_eq!(c.models.onnxruntime.as_deref(), Some(Path::new("/opt/ort.so")));
        assert_eq!(c.models.estimator.as_deref(), Some(Path::new("/m/e.onnx")));
        assert_eq!(c.models.workers, 2);
    }

    #[test]
    fn relative_paths_are_next_to_the_config() {
        let dir = std::env::temp_dir();
        let file = dir.join("ballast-models-test.toml");
        let c = parse("[models]\nestimator = \"m/e.onnx\"\n", file.to_str().unwrap()).unwrap();
        assert_eq!(c.models.estimator, Some(dir.join("m/e.onnx")));
    }

    #[test]
    fn bad_values_are_located_errors() {
        let e = errors("[models]\nworkers = 0\nestimator = 3\nonnxruntim = \"x\"\nonnxruntime = \"\"\n");
        assert_eq!(e.len(), 4, "{e:?}");
        assert_eq!(e[0], "t.toml:2:11: error: workers = 0 is out of range 1..8");
        assert!(e[1].starts_with("t.toml:3:13: error: wrong type: `estimator` must be a string"), "{}", e[1]);
        assert!(
            e[2].starts_with("t.toml:4:1: error: unknown key `onnxruntim` in [models]; did you mean `onnxruntime`?"),
            "{}",
            e[2]
        );
        assert!(e[3].starts_with("t.toml:5:15: error: onnxruntime must be a file path"), "{}", e[3]);
        let e = errors("[model]\n");
        assert!(e[0].contains("did you mean `models`?"), "{e:?}");
    }
}

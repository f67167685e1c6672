//! The models a worker owns, where their files are looked for, and their health.

use std::fmt;
use std::path::{Path, PathBuf};

use ballast_models::estimator::Estimator;
use ballast_models::runtime;

use crate::config::ModelsSettings;

/// The estimator's file name in every directory searched.
pub const ESTIMATOR_FILE: &str = "estimator.onnx";

/// System-wide model directories, searched after the user's (`$XDG_DATA_HOME/ballast/models`).
pub const SYSTEM_MODEL_DIRS: [&str; 2] = ["/usr/local/share/ballast/models", "/usr/share/ballast/models"];

/// The models the daemon knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// Compressor settings from (dry, wet) audio.
    Estimator,
}

impl ModelKind {
    pub const ALL: [ModelKind; 1] = [ModelKind::Estimator];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Estimator => "estimator",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A model's state as `Status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// The workers have not reported yet.
    Loading,
    /// Loaded and checked against the interface ballast expects.
    Ready { path: PathBuf, runtime: String },
    /// Cannot be used; `reason` says what is wrong and where the library and the file were looked for.
    Unavailable { reason: String },
}

impl Health {
    /// `loading`, `ready` or `unavailable`.
    pub fn state(&self) -> &'static str {
        match self {
            Health::Loading => "loading",
            Health::Ready { .. } => "ready",
            Health::Unavailable { .. } => "unavailable",
        }
    }

    /// The model file and runtime when ready, the reason when unavailable.
    pub fn detail(&self) -> String {
        match self {
            Health::Loading => String::new(),
            Health::Ready { path, runtime } => format!("{} ({runtime})", path.display()),
            Health::Unavailable { reason } => reason.clone(),
        }
    }
}

/// A worker's loaded models (or why each is not).
pub struct Models {
    estimator: Result<(Estimator, PathBuf, String), String>,
}

impl Models {
    /// Loads ONNX Runtime (the configured library, else `ORT_DYLIB_PATH`, the cache, the system
    /// directories) and every model. Never fails: a model that cannot load is kept as its reason.
    pub fn load(settings: &ModelsSettings) -> Models {
        Models { estimator: load_estimator(settings) }
    }

    /// Every model unavailable for `reason` (loading itself failed).
    pub fn failed(reason: &str) -> Models {
        Models { estimator: Err(reason.to_string()) }
    }

    /// Every model's health.
    pub fn health(&self) -> Vec<(ModelKind, Health)> {
        let estimator = match &self.estimator {
            Ok((_, path, runtime)) => Health::Ready { path: path.clone(), runtime: runtime.clone() },
            Err(reason) => Health::Unavailable { reason: reason.clone() },
        };
        vec![(ModelKind::Estimator, estimator)]
    }

    /// The estimator, or why it is unavailable.
    pub fn estimator(&mut self) -> Result<&mut Estimator, &str> {
        match &mut self.estimator {
            Ok((e, _, _)) => Ok(e),
            Err(reason) => Err(reason.as_str()),
        }
    }
}

fn load_estimator(settings: &ModelsSettings) -> Result<(Estimator, PathBuf, String), String> {
    // The runtime first, with the configured path: `Estimator::load` would otherwise initialise it
    // without one (ONNX Runtime is loaded once per process, by whichever call comes first).
    let info = runtime::init(settings.onnxruntime.as_deref()).map_err(|e| one_line(&e.to_string()))?;
    let runtime = format!("ONNX Runtime {} from {} ({})", info.version, info.path.display(), info.source);
    let path = locate_estimator(settings.estimator.as_deref())?;
    let est = Estimator::load(&path).map_err(|e| one_line(&e.to_string()))?;
    Ok((est, path, runtime))
}

/// Where the estimator is looked for when `[models] estimator` is not set, in order:
/// `$XDG_DATA_HOME/ballast/models/` (default `~/.local/share/ballast/models/`),
/// `/usr/local/share/ballast/models/`, `/usr/share/ballast/models/`, then the source tree this binary
/// was built from (`models/estimator.onnx`, for a checkout).
pub fn estimator_candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(d) = data {
        dirs.push(d.join("ballast/models"));
    }
    dirs.extend(SYSTEM_MODEL_DIRS.iter().map(PathBuf::from));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    dirs.into_iter()
        .map(|d| {
            let p = d.join(ESTIMATOR_FILE);
            // `daemon/../models` reads better without the `..`.
            std::fs::canonicalize(&p).unwrap_or(p)
        })
        .collect()
}

/// The estimator file: `explicit` (which must exist: a configured path is never silently replaced by
/// another file), else the first of [`estimator_candidates`] that exists. The error lists every place
/// looked at.
pub fn locate_estimator(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("estimator model {} (configured in [models] estimator) does not exist", p.display()))
        };
    }
    let candidates = estimator_candidates();
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "estimator model not found; looked in: {}; fix: set [models] estimator = \"/path/to/{ESTIMATOR_FILE}\" or \
         install it in one of those places",
        looked.join(", ")
    ))
}

/// ONNX Runtime's "looked in" list comes one place per line; a status field and a D-Bus error message
/// are one line.
pub(crate) fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

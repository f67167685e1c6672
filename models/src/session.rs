//! ONNX models loaded into `ort` sessions for ballast's worker threads, checked against what the caller
//! expects before anything runs.
//!
//! Every session uses one intra-op thread with spinning off: the daemon's inference workers are
//! ordinary threads on a machine whose cores belong to the audio thread first, and ONNX Runtime's default
//! (a spinning thread per core) would steal the RT thread's CPU. Loading and running allocate; call them
//! on a worker, never on the RT thread, and drop a [`Model`] there too.

use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, ArrayViewD};
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::runtime::{self, RuntimeError};

/// Why a model cannot be used. The daemon reports it as model health (`ModelUnavailable`) and keeps
/// processing audio.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelError {
    /// ONNX Runtime itself is unavailable.
    Runtime(RuntimeError),
    /// The `.onnx` file cannot be read.
    Missing { path: PathBuf, reason: String },
    /// ONNX Runtime refused the file (not ONNX, truncated, unsupported operators).
    Corrupt { path: PathBuf, reason: String },
    /// The model loads but its interface differs from what ballast expects; `what` says how.
    Mismatch { path: PathBuf, what: String },
    /// A run failed (wrong input shape at run time, or an ONNX Runtime error).
    Run { reason: String },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Runtime(e) => write!(f, "{e}"),
            ModelError::Missing { path, reason } => write!(f, "model {}: cannot read: {reason}", path.display()),
            ModelError::Corrupt { path, reason } => {
                write!(f, "model {}: not a usable ONNX model: {reason}", path.display())
            }
            ModelError::Mismatch { path, what } => write!(f, "model {}: {what}", path.display()),
            ModelError::Run { reason } => write!(f, "inference failed: {reason}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<RuntimeError> for ModelError {
    fn from(e: RuntimeError) -> Self {
        ModelError::Runtime(e)
    }
}

/// One expected input or output tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub element: TensorElementType,
    /// Expected dimensions; `None` accepts any size (e.g. the batch). A dimension the model leaves dynamic
    /// accepts any expected size.
    pub shape: Vec<Option<i64>>,
}

impl TensorSpec {
    /// An `f32` tensor named `name` with dimensions `shape` (`None` = any).
    pub fn f32(name: &str, shape: &[Option<i64>]) -> Self {
        Self { name: name.to_string(), element: TensorElementType::Float32, shape: shape.to_vec() }
    }
}

/// A model's expected interface, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelSpec {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A checked session. `Send`: build it on the worker that uses it, or move it there.
pub struct Model {
    session: Session,
    path: PathBuf,
    spec: ModelSpec,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model").field("path", &self.path).field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl Model {
    /// Loads `path` (ONNX Runtime must be loadable: [`runtime::init`] runs here if it has not yet, with no
    /// explicit path) into a session with one intra-op thread, spinning off, and checks its inputs and
    /// outputs against `spec`: names, element types, ranks and fixed dimensions, in order.
    pub fn load(path: &Path, spec: &ModelSpec) -> Result<Model, ModelError> {
        runtime::init(None)?;
        let env = runtime::environment().ok_or_else(|| {
            // init succeeded, so the environment exists; this branch only guards a future refactor.
            ModelError::Runtime(RuntimeError::NotFound { searched: vec!["(environment not initialised)".into()] })
        })?;
        let bytes =
            std::fs::read(path).map_err(|e| ModelError::Missing { path: path.to_path_buf(), reason: e.to_string() })?;
        let corrupt = |reason: String| ModelError::Corrupt { path: path.to_path_buf(), reason };
        let setup = |e: String| ModelError::Runtime(runtime_setup_error(e));
        let mut builder = Session::builder(env)
            .map_err(|e| setup(e.to_string()))?
            .with_intra_threads(1)
            .map_err(|e| setup(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| setup(e.to_string()))?
            .with_intra_op_spinning(false)
            .map_err(|e| setup(e.to_string()))?
            .with_inter_op_spinning(false)
            .map_err(|e| setup(e.to_string()))?;
        let session = builder.commit_from_memory(&bytes).map_err(|e| corrupt(e.to_string()))?;
        check_interface(&session, spec).map_err(|what| ModelError::Mismatch { path: path.to_path_buf(), what })?;
        Ok(Model { session, path: path.to_path_buf(), spec: spec.clone() })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The interface it was checked against.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Runs the model on `f32` inputs (in the spec's order) and returns its `f32` outputs (in the spec's
    /// order). Allocates: worker threads only.
    pub fn run_f32(&mut self, inputs: &[ArrayViewD<'_, f32>]) -> Result<Vec<ArrayD<f32>>, ModelError> {
        if inputs.len() != self.spec.inputs.len() {
            return Err(ModelError::Run {
                reason: format!("{} inputs given, the model takes {}", inputs.len(), self.spec.inputs.len()),
            });
        }
        let run_err = |e: ort::Error| ModelError::Run { reason: e.to_string() };
        let mut values: Vec<SessionInputValue<'_>> = Vec::with_capacity(inputs.len());
        for (view, spec) in inputs.iter().zip(&self.spec.inputs) {
            check_run_shape(spec, view.shape()).map_err(|reason| ModelError::Run { reason })?;
            values.push(TensorRef::from_array_view(view.view()).map_err(run_err)?.into());
        }
        let outputs = self.session.run(values.as_slice()).map_err(run_err)?;
        let mut result = Vec::with_capacity(self.spec.outputs.len());
        for spec in &self.spec.outputs {
            let value = outputs
                .get(spec.name.as_str())
                .ok_or_else(|| ModelError::Run { reason: format!("output `{}` missing", spec.name) })?;
            result.push(value.try_extract_array::<f32>().map_err(run_err)?.to_owned());
        }
        Ok(result)
    }

    /// The underlying session, for inputs other than `f32`.
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// ONNX Runtime loaded but refused session options: report it against the library that was loaded.
fn runtime_setup_error(e: String) -> RuntimeError {
    match runtime::init(None) {
        Ok(info) => {
            RuntimeError::Load { path: info.path, source: info.source, reason: format!("session options refused: {e}") }
        }
        Err(err) => err,
    }
}

fn check_run_shape(spec: &TensorSpec, shape: &[usize]) -> Result<(), String> {
    let fits = shape.len() == spec.shape.len()
        && shape.iter().zip(&spec.shape).all(|(&got, want)| want.is_none_or(|w| w == got as i64));
    if fits {
        Ok(())
    } else {
        Err(format!("input `{}`: shape {:?}, expected {}", spec.name, shape, dims(&spec.shape)))
    }
}

/// Compares the session's declared interface with `spec`; the error names the first difference.
fn check_interface(session: &Session, spec: &ModelSpec) -> Result<(), String> {
    let declared = |outlets: &[ort::value::Outlet]| -> Vec<String> {
        outlets.iter().map(|o| format!("{} {}", o.name(), describe(o.dtype()))).collect()
    };
    for (kind, got, want) in [("input", session.inputs(), &spec.inputs), ("output", session.outputs(), &spec.outputs)] {
        if got.len() != want.len() {
            return Err(format!(
                "has {} {kind}s [{}], expected {} [{}]",
                got.len(),
                declared(got).join(", "),
                want.len(),
                want.iter()
                    .map(|w| format!("{} {:?}{}", w.name, w.element, dims(&w.shape)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for (i, (o, w)) in got.iter().zip(want).enumerate() {
            if o.name() != w.name {
                return Err(format!("{kind} {i} is named `{}`, expected `{}`", o.name(), w.name));
            }
            let ValueType::Tensor { ty, shape, .. } = o.dtype() else {
                return Err(format!("{kind} `{}` is {}, expected a tensor", w.name, describe(o.dtype())));
            };
            if *ty != w.element {
                return Err(format!("{kind} `{}` has element type {ty:?}, expected {:?}", w.name, w.element));
            }
            let fits = shape.len() == w.shape.len()
                && shape.iter().zip(&w.shape).all(|(&have, want)| have < 0 || want.is_none_or(|x| x == have));
            if !fits {
                let have: Vec<Option<i64>> = shape.iter().map(|&d| (d >= 0).then_some(d)).collect();
                return Err(format!("{kind} `{}` has shape {}, expected {}", w.name, dims(&have), dims(&w.shape)));
            }
        }
    }
    Ok(())
}

fn describe(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => {
            let d: Vec<Option<i64>> = shape.iter().map(|&d| (d >= 0).then_some(d)).collect();
            format!("{ty:?}{}", dims(&d))
        }
        other => format!("{other:?}"),
    }
}

/// `[?, 4]` style.
fn dims(d: &[Option<i64>]) -> String {
    let parts: Vec<String> = d.iter().map(|x| x.map_or("?".to_string(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

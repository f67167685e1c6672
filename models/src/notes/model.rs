//! The note model's ONNX step form (`models/notes.onnx`): one token in, the next token's logits out, the
//! GRU state passed through. Loading checks the interface against [`spec`]; worker threads only (ONNX
//! Runtime allocates inside `run`).

use std::path::{Path, PathBuf};

use ort::inputs;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::tokens::VOCAB;
use crate::session::{Model, ModelError, ModelSpec, TensorSpec};

/// Input names, in order: the previous token, the voice slot and bar position of the token to predict,
/// the recurrent state.
pub const INPUTS: [&str; 4] = ["token", "voice", "position", "state"];
/// Output names, in order.
pub const OUTPUTS: [&str; 2] = ["logits", "state_out"];

/// The path of the committed model, for tools run from the source tree.
pub fn default_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("notes.onnx")
}

fn i64_spec(name: &str) -> TensorSpec {
    TensorSpec { name: name.to_string(), element: TensorElementType::Int64, shape: vec![None] }
}

/// The interface a note `.onnx` must have: `token`, `voice`, `position` int64 `[batch]`, `state` f32
/// `[layers, batch, hidden]` in; `logits` f32 `[batch, VOCAB]`, `state_out` f32 `[layers, batch, hidden]`
/// out. Layers and hidden size are read from the file.
pub fn spec() -> ModelSpec {
    ModelSpec {
        inputs: vec![
            i64_spec(INPUTS[0]),
            i64_spec(INPUTS[1]),
            i64_spec(INPUTS[2]),
            TensorSpec::f32(INPUTS[3], &[None, None, None]),
        ],
        outputs: vec![
            TensorSpec::f32(OUTPUTS[0], &[None, Some(VOCAB as i64)]),
            TensorSpec::f32(OUTPUTS[1], &[None, None, None]),
        ],
    }
}

/// A loaded step model with one sequence's state.
#[derive(Debug)]
pub struct StepModel {
    model: Model,
    layers: usize,
    hidden: usize,
    state: Vec<f32>,
    logits: Vec<f32>,
}

impl StepModel {
    /// Loads `path` and checks it against [`spec`]; the state's layers and width must be fixed in the file.
    pub fn load(path: &Path) -> Result<StepModel, ModelError> {
        let mut model = Model::load(path, &spec())?;
        let mismatch = |what: String| ModelError::Mismatch { path: path.to_path_buf(), what };
        let shape = match model.session_mut().inputs()[3].dtype() {
            ValueType::Tensor { shape, .. } => shape.iter().copied().collect::<Vec<i64>>(),
            other => return Err(mismatch(format!("input `state` is {other:?}"))),
        };
        let (layers, hidden) = match shape.as_slice() {
            [l, _, h] if *l > 0 && *h > 0 => (*l as usize, *h as usize),
            _ => return Err(mismatch(format!("input `state` has shape {shape:?}; layers and width must be fixed"))),
        };
        Ok(StepModel { model, layers, hidden, state: vec![0.0; layers * hidden], logits: vec![0.0; VOCAB] })
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        self.model.path()
    }

    /// GRU layers and width.
    pub fn shape(&self) -> (usize, usize) {
        (self.layers, self.hidden)
    }

    /// Forgets everything read so far (the state before `BOS`).
    pub fn reset(&mut self) {
        self.state.fill(0.0);
    }

    /// Reads `token` and returns the logits of the next token, which is for voice slot `voice` (0–3, or
    /// [`super::tokens::KEY_SLOT`]) at bar position `position` (sixteenths, 0..16).
    pub fn step(&mut self, token: u32, voice: i64, position: i64) -> Result<&[f32], ModelError> {
        let run_err = |e: ort::Error| ModelError::Run { reason: e.to_string() };
        let token = [i64::from(token)];
        let voice = [voice];
        let position = [position];
        let outputs = {
            let t = TensorRef::from_array_view(([1usize], &token[..])).map_err(run_err)?;
            let v = TensorRef::from_array_view(([1usize], &voice[..])).map_err(run_err)?;
            let p = TensorRef::from_array_view(([1usize], &position[..])).map_err(run_err)?;
            let s = TensorRef::from_array_view(([self.layers, 1, self.hidden], &self.state[..])).map_err(run_err)?;
            self.model.session_mut().run(inputs![t, v, p, s]).map_err(run_err)?
        };
        let (_, logits) = outputs[OUTPUTS[0]].try_extract_tensor::<f32>().map_err(run_err)?;
        let (_, state) = outputs[OUTPUTS[1]].try_extract_tensor::<f32>().map_err(run_err)?;
        if logits.len() != VOCAB || state.len() != self.state.len() {
            return Err(ModelError::Run {
                reason: format!("outputs have {} logits and {} state values", logits.len(), state.len()),
            });
        }
        self.logits.copy_from_slice(logits);
        self.state.copy_from_slice(state);
        Ok(&self.logits)
    }

    /// The logits of the last [`StepModel::step`].
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }
}

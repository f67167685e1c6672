//! The generative note model (issue 7): four-part (soprano, alto, tenor, bass) music on a sixteenth-note
//! grid from a GRU trained on Bach's chorales (`models/NOTES_MODEL_CARD.md`), run as an ONNX step model.
//!
//! - [`tokens`]: the vocabulary and the token form of a piece;
//! - [`model`]: loading and stepping `notes.onnx` (checked against its [`model::spec`]);
//! - [`generate`]: seeded sampling (temperature, key, transpose, voices on/off, priming) into a [`Piece`];
//! - [`events`]: timed notes in beats ([`Note`]), the form a MIDI file or a synth consumes;
//! - [`midi`]: Standard MIDI File writer and reader;
//! - [`metrics`]: key share (Krumhansl–Schmuckler), SATB ranges, parallel fifths/octaves, onset alignment.
//!
//! Everything here allocates and runs ONNX Runtime: worker threads only, never the RT thread.

pub mod events;
pub mod generate;
pub mod heldout;
pub mod metrics;
pub mod midi;
pub mod model;
pub mod tokens;

pub use events::Note;
pub use generate::{generate, GenerateError, Generator, Options, Piece};
pub use model::StepModel;
pub use tokens::Key;

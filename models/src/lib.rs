//! ballast's learned models: ONNX Runtime loading ([`runtime`]), checked sessions for worker threads
//! ([`session`]), and the feature extraction shared by the dataset builder and inference ([`features`]),
//! so training and inference cannot drift.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod accuracy;
pub mod dataset;
pub mod estimator;
pub mod features;
pub mod notes;
pub mod npy;
pub mod params;
pub mod refine;
pub mod rng;
pub mod runtime;
pub mod session;
pub mod synth;

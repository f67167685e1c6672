//! ballast's signal processing: pure DSP, no I/O, no threads, no configuration.
//!
//! Every node implements [`Processor`]: `prepare` may allocate; `reset`, `set_param` and `process` run on
//! the real-time thread and never allocate, lock, block or panic on input values. Each node kind has one
//! static [`KindDescriptor`] (parameters with stable ids, units, ranges, defaults and smoothing; meters)
//! that the daemon, the config validator and `ballastctl` all read.
//!
//! Conventions (see `DESIGN.md`): levels in dBFS with a full-scale sine peaking at 0 dBFS; loudness per
//! ITU-R BS.1770-4 / EBU R128.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod biquad;
pub mod compressor;
pub mod crossover;
pub mod denormal;
pub mod generators;
pub mod level;
pub mod limiter;
pub mod loudness;
pub mod loudness_control;
pub mod multiband;
pub mod param;
pub mod processor;
pub mod registry;
pub mod smoother;
pub mod true_peak;

pub use denormal::DenormalGuard;
pub use param::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
pub use processor::Processor;
pub use smoother::Smoother;

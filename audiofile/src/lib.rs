//! WAV files for ballast, shared by `ballastctl measure` and `ballastd render`.
//!
//! - [`WavStream`] reads RIFF/WAVE with 16/24/32-bit integer or 32/64-bit float samples, 1–8 channels,
//!   8–192 kHz, packet by packet into planar `f32`, and refuses anything else with a one-line reason.
//! - [`WavWriter`] writes 32-bit float or 16/24-bit integer WAV from planar `f32` blocks, atomically:
//!   samples go to a temporary file next to the destination, which is fsynced and renamed over the
//!   final name only by [`WavWriter::commit`]. Dropping the writer without committing removes the
//!   temporary file, so a failed or interrupted render never leaves a half-written file under the
//!   final name.
#![deny(unsafe_code)]

mod read;
mod write;

pub use read::{InputError, WavInfo, WavStream, MAX_CHANNELS, MAX_RATE, MIN_RATE};
pub use write::{OutputError, SampleFormat, WavWriter};

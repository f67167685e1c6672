//! The lifecycle every node shares.

use crate::param::{KindDescriptor, ParamError, ParamId};

/// A processing node. The engine owns nodes as `Box<dyn Processor>` and calls them from the RT thread.
///
/// Threads and phases:
/// - [`Processor::prepare`] runs off the RT thread and may allocate; it sizes every buffer for blocks of
///   up to `max_block` frames at `sample_rate` (8 kHz–192 kHz).
/// - [`Processor::reset`], [`Processor::set_param`] and [`Processor::process`] run on the RT thread:
///   no allocation, no lock, no syscall, no panic on any input value.
///
/// Every `process` accepts any block length from 1 to the prepared maximum, and its output does not
/// depend on how a signal is cut into blocks (per-sample output equals per-block output).
pub trait Processor: Send {
    /// The static description of this node's kind: parameters, meters.
    fn descriptor(&self) -> &'static KindDescriptor;

    /// Allocates and computes everything that depends on the sample rate or block size. Resets state.
    fn prepare(&mut self, sample_rate: f64, max_block: usize);

    /// Returns to the state after `prepare`: silence in, silence out; parameter targets kept.
    fn reset(&mut self);

    /// Sets a parameter (in the descriptor's unit). Validated against the descriptor; refused values
    /// leave the node unchanged. Changes are smoothed inside the node.
    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError>;

    /// The parameter's current target value.
    fn param(&self, id: ParamId) -> Option<f32>;

    /// Number of audio input and output channels.
    fn channels(&self) -> (usize, usize);

    /// Processes one block. `inputs.len()` and `outputs.len()` equal [`Processor::channels`]; every
    /// slice has the same length, at most the prepared maximum.
    fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]);

    /// Delay the node adds, in samples (lookahead), for latency compensation and reporting.
    fn latency_samples(&self) -> usize {
        0
    }

    /// The meter at `index` in the descriptor's meter table (for per-band meters, `band` selects the
    /// band). `NaN` when the node has no such meter.
    fn meter(&self, _index: usize, _band: usize) -> f32 {
        f32::NAN
    }

    /// Runs [`Processor::process`] and enforces finite output: if any output sample is NaN or infinite
    /// (a non-finite input, or state that blew up), the node is reset and the block is replaced by
    /// silence. Returns `false` when that happened, so the caller can count the event.
    fn process_checked(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) -> bool {
        self.process(inputs, outputs);
        if outputs.iter().all(|ch| all_finite(ch)) {
            return true;
        }
        self.reset();
        for ch in outputs.iter_mut() {
            ch.fill(0.0);
        }
        false
    }
}

/// True when every sample is finite. Branch-free over lanes so it vectorises (`x - x` is 0 for finite
/// values and NaN for NaN and ±inf).
#[inline]
#[allow(clippy::eq_op)] // `x - x` is the point: it is 0 exactly when `x` is finite.
pub fn all_finite(buf: &[f32]) -> bool {
    let mut acc = [0.0f32; 8];
    let chunks = buf.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] - c[i];
        }
    }
    let mut sum: f32 = rest.iter().map(|&x| x - x).sum();
    for a in acc {
        sum += a;
    }
    sum == 0.0
}

/// True when any input sample is non-finite; nodes with long-memory state check this at block start
/// and skip the poison instead of integrating it.
#[inline]
pub fn any_nonfinite(inputs: &[&[f32]]) -> bool {
    !inputs.iter().all(|ch| all_finite(ch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finiteness() {
        let mut v = vec![0.5f32; 37];
        assert!(all_finite(&v));
        v[36] = f32::NAN;
        assert!(!all_finite(&v));
        v[36] = 0.0;
        v[3] = f32::NEG_INFINITY;
        assert!(!all_finite(&v));
        v[3] = f32::MAX;
        assert!(all_finite(&v));
    }
}

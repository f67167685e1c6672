//! Test helpers shared by the DSP integration tests: signal generators, block-size equivalence and the
//! real-time-safety harness. Each test binary that uses [`rt::exercise`] installs
//! `assert_no_alloc::AllocDisabler` as its global allocator.
#![allow(dead_code)]

pub mod music;
pub mod rt;
pub mod signals;

use ballast_dsp::Processor;

/// Runs `input` (channels × frames) through `node` cut into blocks of `block` frames; returns the
/// output channels. The node must be prepared for at least `block` frames.
pub fn run_blocks(node: &mut dyn Processor, input: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
    let (_, n_out) = node.channels();
    let frames = input.first().map_or(0, |c| c.len());
    let mut out = vec![vec![0.0f32; frames]; n_out];
    let mut pos = 0;
    while pos < frames {
        let n = block.min(frames - pos);
        let ins: Vec<&[f32]> = input.iter().map(|c| &c[pos..pos + n]).collect();
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[pos..pos + n]).collect();
        node.process(&ins, &mut outs);
        pos += n;
    }
    out
}

/// Like [`run_blocks`] for a node with no inputs (generators): `frames` of output.
pub fn run_generator(node: &mut dyn Processor, frames: usize, block: usize) -> Vec<Vec<f32>> {
    let (_, n_out) = node.channels();
    let mut out = vec![vec![0.0f32; frames]; n_out];
    let mut pos = 0;
    while pos < frames {
        let n = block.min(frames - pos);
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[pos..pos + n]).collect();
        node.process(&[], &mut outs);
        pos += n;
    }
    out
}

/// Asserts that the output of a freshly made node does not depend on the block size: blocks of 1, 7,
/// 64, 256 and `max_block` frames give bit-identical output.
pub fn assert_block_size_invariant(
    make: impl Fn() -> Box<dyn Processor>,
    sample_rate: f64,
    max_block: usize,
    input: &[Vec<f32>],
) {
    let frames = input.first().map_or(0, |c| c.len());
    let reference = {
        let mut n = make();
        n.prepare(sample_rate, max_block);
        if input.is_empty() {
            run_generator(n.as_mut(), frames, 1)
        } else {
            run_blocks(n.as_mut(), input, 1)
        }
    };
    for block in [7usize, 64, 256, max_block] {
        let block = block.min(max_block);
        let mut n = make();
        n.prepare(sample_rate, max_block);
        let out = if input.is_empty() {
            run_generator(n.as_mut(), frames, block)
        } else {
            run_blocks(n.as_mut(), input, block)
        };
        for (ch, (a, b)) in reference.iter().zip(&out).enumerate() {
            if let Some(i) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
                panic!("block {block}: channel {ch} differs at sample {i}: {} vs {}", a[i], b[i]);
            }
        }
    }
}

/// Peak of |x| over all channels.
pub fn peak(chs: &[Vec<f32>]) -> f32 {
    chs.iter().flat_map(|c| c.iter()).fold(0.0f32, |m, &x| m.max(x.abs()))
}

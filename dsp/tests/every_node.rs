//! Every node kind in the registry, driven the same way: RT entry points under the allocation guard with
//! hostile input and every parameter at its extremes, output independent of block size, and `reset`
//! determinism — at the sample-rate extremes and for every channel/band shape a config can ask for.
//! Kind-specific behaviour is tested in each kind's own file; this one makes sure none is left out.

mod common;

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

use ballast_dsp::registry::{kinds, KindEntry, Shape};
use ballast_dsp::Processor;
use common::signals::bursty_noise;

/// The shapes to try for a kind: mono, stereo, 5.1; each band count for multiband.
fn shapes(k: &KindEntry) -> Vec<Shape> {
    let bands: Vec<usize> = k.bands.clone().map_or(vec![0], |b| b.collect());
    let mut out = Vec::new();
    for channels in [1, 2, 6] {
        for &b in &bands {
            out.push(Shape { channels, bands: b });
        }
    }
    out
}

fn input_for(node: &dyn Processor, frames: usize, seed: u64) -> Vec<Vec<f32>> {
    let (n_in, _) = node.channels();
    (0..n_in).map(|c| bursty_noise(seed + c as u64, frames, 1500)).collect()
}

#[test]
fn every_kind_is_rt_safe_at_every_shape_and_rate() {
    for k in kinds() {
        for shape in shapes(k) {
            for (rate, max_block) in [(8_000.0, 64), (48_000.0, 256), (192_000.0, 1024)] {
                let mut node = k.make(shape);
                common::rt::exercise(node.as_mut(), rate, max_block, shape.bands);
            }
        }
    }
}

#[test]
fn every_kind_is_block_size_invariant() {
    for k in kinds() {
        let shape = Shape { channels: 2, bands: k.bands.as_ref().map_or(0, |b| *b.end().min(&4)) };
        let probe = k.make(shape);
        // Two seconds: long enough for attack/release, 100 ms loudness blocks and control-rate ticks to
        // cross many block boundaries at 48 kHz.
        let input = input_for(probe.as_ref(), 96_000, 11);
        common::assert_block_size_invariant(|| k.make(shape), 48_000.0, 1024, &input);
    }
}

#[test]
fn every_kind_repeats_after_reset() {
    for k in kinds() {
        let shape = Shape { channels: 2, bands: k.bands.as_ref().map_or(0, |b| *b.start()) };
        let mut node = k.make(shape);
        node.prepare(44_100.0, 512);
        let input = input_for(node.as_ref(), 44_100, 5);
        let first = if input.is_empty() {
            common::run_generator(node.as_mut(), 44_100, 512)
        } else {
            common::run_blocks(node.as_mut(), &input, 512)
        };
        node.reset();
        let second = if input.is_empty() {
            common::run_generator(node.as_mut(), 44_100, 512)
        } else {
            common::run_blocks(node.as_mut(), &input, 512)
        };
        assert!(first == second, "{}: output after reset differs", k.descriptor.kind);
    }
}

#[test]
fn every_kind_survives_nonfinite_input_and_recovers() {
    for k in kinds().iter().filter(|k| !k.generator) {
        let shape = Shape { channels: 2, bands: k.bands.as_ref().map_or(0, |b| *b.start()) };
        let mut node = k.make(shape);
        node.prepare(48_000.0, 256);
        let mut poisoned = input_for(node.as_ref(), 256, 3);
        poisoned[0][100] = f32::NAN;
        poisoned[1][7] = f32::INFINITY;
        let clean = input_for(node.as_ref(), 48_000, 4);
        let mut out = vec![vec![0.0f32; 256]; 2];
        {
            let ins: Vec<&[f32]> = poisoned.iter().map(|c| &c[..]).collect();
            let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[..]).collect();
            node.process_checked(&ins, &mut outs);
        }
        assert!(out.iter().flatten().all(|x| x.is_finite()), "{}: non-finite output", k.descriptor.kind);
        // The poison must not stick: clean input afterwards gives finite, non-silent output.
        let after = common::run_blocks(node.as_mut(), &clean, 256);
        assert!(after.iter().flatten().all(|x| x.is_finite()), "{}: poisoned state", k.descriptor.kind);
        let tail_energy: f32 = after[0][24_000..].iter().map(|x| x * x).sum();
        assert!(tail_energy > 0.0, "{}: silent after a non-finite block", k.descriptor.kind);
    }
}

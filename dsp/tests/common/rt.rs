//! The real-time-safety harness: runs a node's RT entry points under `assert_no_alloc`.
//!
//! The calling test binary must install the guard allocator:
//! `#[global_allocator] static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;`
//! The crate is built with its `warn_*` features, so a violation is counted (not an abort that would
//! kill every test in the binary), and the harness asserts the count did not move.

use assert_no_alloc::{assert_no_alloc, violation_count};
use ballast_dsp::{DenormalGuard, ParamId, Processor, Unit};

/// Values to try for a parameter: min, max, default, and a middle value.
fn probe_values(p: &ballast_dsp::ParamDescriptor) -> Vec<f32> {
    match p.unit {
        Unit::Bool => vec![0.0, 1.0, p.default],
        Unit::Choice(opts) => (0..opts.len()).map(|i| i as f32).chain([p.default]).collect(),
        _ => {
            let max = if p.max.is_finite() { p.max } else { 1000.0f32.max(p.min) };
            vec![p.min, max, (p.min + max) * 0.5, p.default]
        }
    }
}

/// Exercises every RT entry point of `node`: blocks of 1 to `max_block` frames, every parameter (every
/// band's too, for `bands` bands) at its extremes, `reset`, and hostile input (NaN, ±inf, subnormals,
/// +100 dB). Asserts: no allocation on the RT side, and finite output from `process_checked`.
pub fn exercise(node: &mut dyn Processor, sample_rate: f64, max_block: usize, bands: usize) {
    node.prepare(sample_rate, max_block);
    let (n_in, n_out) = node.channels();
    let desc = node.descriptor();

    // Everything the RT side touches is allocated here, before the guard.
    let mut ids: Vec<(ParamId, f32)> = Vec::new();
    for p in desc.params {
        for v in probe_values(p) {
            ids.push((p.id, v));
        }
    }
    for b in 0..bands {
        for p in desc.band_params {
            for v in probe_values(p) {
                ids.push((ParamId::band(b, p.id), v));
            }
        }
    }
    let defaults: Vec<(ParamId, f32)> = desc
        .params
        .iter()
        .map(|p| (p.id, p.default))
        .chain((0..bands).flat_map(|b| desc.band_params.iter().map(move |p| (ParamId::band(b, p.id), p.default))))
        .collect();
    let mut rng = super::signals::Rng::new(7);
    let hostile: [f32; 6] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, 1e5, -1e5];
    let mut inputs: Vec<Vec<f32>> = vec![vec![0.0; max_block]; n_in];
    let mut outputs: Vec<Vec<f32>> = vec![vec![0.0; max_block]; n_out];
    let mut blocks: Vec<usize> = vec![1, 2, 3, 7, 31, 64, max_block, max_block / 2 + 1];
    blocks.retain(|&b| b >= 1 && b <= max_block);
    // Per-round channel lists live in stack arrays: a Vec of borrows kept across rounds would hold
    // `inputs` borrowed while the next round refills it.
    const MAX_CH: usize = 64;
    assert!(n_in <= MAX_CH && n_out <= MAX_CH, "rt::exercise handles up to {MAX_CH} channels");

    let before = violation_count();
    let mut nonfinite_out = 0usize;
    assert_no_alloc(|| {
        let _ftz = DenormalGuard::new();
        for round in 0..(ids.len() + 8) {
            if let Some(&(id, v)) = ids.get(round) {
                let _ = node.set_param(id, v);
            }
            let n = blocks[round % blocks.len()];
            for ch in inputs.iter_mut() {
                for (i, x) in ch[..n].iter_mut().enumerate() {
                    *x = if round % 5 == 4 && i == n / 2 {
                        hostile[(round / 5) % hostile.len()]
                    } else {
                        (0.7 * rng.bipolar()) as f32
                    };
                }
            }
            let mut in_arr: [&[f32]; MAX_CH] = [&[]; MAX_CH];
            for (d, c) in in_arr.iter_mut().zip(&inputs) {
                *d = &c[..n];
            }
            let mut out_arr: [&mut [f32]; MAX_CH] = std::array::from_fn(|_| <&mut [f32]>::default());
            for (d, c) in out_arr.iter_mut().zip(outputs.iter_mut()) {
                *d = &mut c[..n];
            }
            let in_refs = &in_arr[..n_in];
            let out_refs = &mut out_arr[..n_out];
            node.process_checked(in_refs, out_refs);
            nonfinite_out += out_refs.iter().flat_map(|c| c.iter()).filter(|x| !x.is_finite()).count();
            if round % 11 == 10 {
                node.reset();
            }
            // Out-of-range and unknown ids must be refused without allocating.
            let _ = node.set_param(ParamId(0xfff0), 1.0);
            let _ = node.set_param(ids.first().map_or(ParamId(0), |p| p.0), f32::NAN);
        }
        for &(id, v) in &defaults {
            let _ = node.set_param(id, v);
        }
    });
    assert_eq!(violation_count(), before, "{}: allocation on the RT side", desc.kind);
    assert_eq!(nonfinite_out, 0, "{}: non-finite output", desc.kind);

    // After the hostile blocks and a reset, a clean signal must give finite, non-stuck output.
    node.reset();
    for ch in inputs.iter_mut() {
        for x in ch.iter_mut() {
            *x = (0.25 * rng.bipolar()) as f32;
        }
    }
    let in_refs: Vec<&[f32]> = inputs.iter().map(|c| &c[..]).collect();
    let mut out_refs: Vec<&mut [f32]> = outputs.iter_mut().map(|c| &mut c[..]).collect();
    assert!(node.process_checked(&in_refs, &mut out_refs), "{}: non-finite output after reset", desc.kind);
}

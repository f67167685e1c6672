//! Limiter cost: ns per sample per channel, stereo, 48 kHz, blocks of 64 and 256.
//!
//! Each iteration processes one second of audio (48 000 frames) cut into blocks, so criterion's time
//! per iteration is the cost of one second: real-time factor = 1 s / time. The throughput line reads
//! in samples (frames × 2 channels): ns per sample per channel = 1 / throughput.
//! The input is noise whose level jumps every 50 ms over -40..+6 dBFS, driven +12 dB, so the limiter
//! spends most of the time limiting (the costly path is the same either way: the detector runs always).
use ballast_dsp::limiter::{Limiter, INPUT_GAIN_DB};
use ballast_dsp::Processor;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const SR: f64 = 48_000.0;

fn input(frames: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut amp = 0.5f32;
    (0..frames)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if i % 2400 == 0 {
                amp = 10f32.powf(((s >> 40) as f32 / (1u64 << 24) as f32 * 46.0 - 40.0) / 20.0);
            }
            amp * ((s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0)
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let frames = SR as usize;
    let ins = [input(frames, 0x9e37_79b9_7f4a_7c15), input(frames, 0x2545_f491_4f6c_dd1d)];
    let mut outs = vec![vec![0.0f32; frames]; 2];
    let mut g = c.benchmark_group("limiter_stereo_48k_1s");
    g.throughput(Throughput::Elements(2 * frames as u64));
    for block in [64usize, 256] {
        let mut l = Limiter::new(2);
        l.set_param(INPUT_GAIN_DB, 12.0).unwrap();
        l.prepare(SR, block);
        g.bench_function(format!("block_{block}"), |b| {
            b.iter(|| {
                let mut pos = 0;
                while pos < frames {
                    let n = block.min(frames - pos);
                    let i: [&[f32]; 2] = [&ins[0][pos..pos + n], &ins[1][pos..pos + n]];
                    let (o0, o1) = outs.split_at_mut(1);
                    let mut o: [&mut [f32]; 2] = [&mut o0[0][pos..pos + n], &mut o1[0][pos..pos + n]];
                    l.process(black_box(&i), &mut o);
                    pos += n;
                }
                black_box(&outs);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = g;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(20);
    targets = benches
}
criterion_main!(g);

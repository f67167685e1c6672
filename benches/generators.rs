//! Generators: ns per sample per channel at blocks of 64 and 256 frames, 48 kHz, stereo outputs.
//! Criterion's "time per element" with `Throughput::Elements(block × channels)` is that figure.
use ballast_dsp::generators::{Noise, NoteEvent, NoteKind, Synth, Tone, Waveform};
use ballast_dsp::{ParamId, Processor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const SR: f64 = 48_000.0;
const CHANNELS: usize = 2;

fn run(c: &mut Criterion, name: &str, make: impl Fn(usize) -> Box<dyn Processor>) {
    let mut group = c.benchmark_group(name);
    for block in [64usize, 256] {
        let mut node = make(block);
        let mut out = vec![vec![0.0f32; block]; CHANNELS];
        group.throughput(Throughput::Elements((block * CHANNELS) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(block), &block, |b, _| {
            b.iter(|| {
                let (l, r) = out.split_at_mut(1);
                let mut refs: [&mut [f32]; CHANNELS] = [&mut l[0][..], &mut r[0][..]];
                node.process(&[], &mut refs);
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    run(c, "tone_saw", |block| {
        let mut t = Tone::new(CHANNELS);
        t.set_param(ParamId(0), Waveform::Saw.index()).unwrap();
        t.set_param(ParamId(1), 1234.5).unwrap();
        t.prepare(SR, block);
        Box::new(t)
    });
    run(c, "noise_pink", |block| {
        let mut n = Noise::new(CHANNELS);
        n.set_param(ParamId(0), 1.0).unwrap();
        n.prepare(SR, block);
        Box::new(n)
    });
    run(c, "synth_16_voices_saw", |block| {
        let mut s = Synth::new(CHANNELS);
        s.set_param(ParamId(0), Waveform::Saw.index()).unwrap();
        // Sustain at -6 dB, held for the whole run: all 16 voices sound in every block.
        for i in 0..16u8 {
            s.push_event(NoteEvent { time: 0, kind: NoteKind::On { note: 40 + 3 * i, velocity: 0.5 } }).unwrap();
        }
        s.prepare(SR, block);
        Box::new(s)
    });
}

criterion_group! {
    name = g;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(g);

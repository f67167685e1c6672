//! Loudness meter (I + LRA + true peak, stereo, 48 kHz) against the `ebur128` crate in the same run, at
//! blocks of 64 and 256 frames. Each iteration measures 1 s of bursty noise; criterion's throughput is in
//! stereo frames, so ns per stereo frame = 1e9 / (elements per second). Also the loudness controller
//! (two K-weighted measurements, in and out, plus the gain ramp) at the same sizes.
use ballast_dsp::loudness::LoudnessMeter;
use ballast_dsp::loudness_control::LoudnessControl;
use ballast_dsp::Processor;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ebur128::{EbuR128, Mode};
use std::hint::black_box;
use std::time::Duration;

const SR: usize = 48_000;

fn signal(seed: u64) -> Vec<f32> {
    let mut s = seed;
    let mut amp = 0.3f32;
    (0..SR)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if i % 4_800 == 0 {
                amp = 0.02 + (s % 1000) as f32 / 1000.0 * 0.6;
            }
            amp * ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let l = signal(0x9e37_79b9_7f4a_7c15);
    let r = signal(0x2545_f491_4f6c_dd1d);
    let mut g = c.benchmark_group("loudness_stereo_48k");
    g.throughput(Throughput::Elements(SR as u64));
    for block in [64usize, 256] {
        g.bench_with_input(BenchmarkId::new("ballast", block), &block, |b, &block| {
            let mut m = LoudnessMeter::new(2);
            m.prepare(SR as f64, block);
            b.iter(|| {
                for (cl, cr) in l.chunks(block).zip(r.chunks(block)) {
                    m.feed(&[cl, cr]);
                }
                black_box(m.integrated_lufs() + m.lra_lu() + m.true_peak_dbtp())
            })
        });
        g.bench_with_input(BenchmarkId::new("ebur128", block), &block, |b, &block| {
            let mut e = EbuR128::new(2, SR as u32, Mode::I | Mode::LRA | Mode::TRUE_PEAK).unwrap();
            b.iter(|| {
                for (cl, cr) in l.chunks(block).zip(r.chunks(block)) {
                    e.add_frames_planar_f32(&[cl, cr]).unwrap();
                }
                black_box(e.loudness_global().unwrap() + e.loudness_range().unwrap() + e.true_peak(0).unwrap())
            })
        });
        g.bench_with_input(BenchmarkId::new("controller", block), &block, |b, &block| {
            let mut c = LoudnessControl::new(2);
            c.prepare(SR as f64, block);
            let (mut ol, mut or) = (vec![0.0f32; block], vec![0.0f32; block]);
            b.iter(|| {
                for (cl, cr) in l.chunks(block).zip(r.chunks(block)) {
                    let n = cl.len();
                    c.process(&[cl, cr], &mut [&mut ol[..n], &mut or[..n]]);
                }
                black_box(ol[0] + or[0])
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = g;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(g);

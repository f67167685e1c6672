//! Render speed of `config/broadcast.toml` (4-band multiband → loudness controller → true-peak limiter
//! → loudness meter) on stereo 48 kHz, in memory, at 256-frame blocks, through the offline backend
//! ([`ballastd::offline::Offline`]: the same engine the real-time backends run). Reported as frames
//! per second by criterion and as × real time on stderr.
//!
//! The programme is music-like and deterministic: a decaying chord retriggered every half second over
//! pink-ish noise, at roughly −20 dBFS, so every band's compressor, the loudness controller and the
//! limiter all work.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ballastd::offline::Offline;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const RATE: usize = 48_000;
const BLOCK: usize = 256;
/// Audio handed to the backend per iteration: one second.
const CHUNK: usize = RATE;

fn programme(frames: usize) -> [Vec<f32>; 2] {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let (mut b0, mut b1) = (0.0f32, 0.0f32);
    let mut l = Vec::with_capacity(frames);
    let mut r = Vec::with_capacity(frames);
    for i in 0..frames {
        let t = i as f32 / RATE as f32;
        let env = (-(t % 0.5) * 6.0).exp();
        let chord: f32 =
            [110.0f32, 220.0, 277.2, 329.6, 1760.0].iter().map(|f| (t * f * std::f32::consts::TAU).sin()).sum();
        // Two one-pole stages tilt white noise towards pink.
        b0 = 0.95 * b0 + 0.05 * noise();
        b1 = 0.6 * b1 + 0.4 * noise();
        l.push(0.06 * env * chord + 0.3 * b0 + 0.02 * b1);
        r.push(0.05 * env * chord + 0.3 * b0 - 0.02 * b1);
    }
    [l, r]
}

fn bench(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/broadcast.toml");
    let cfg = ballastd::config::load(path).expect("config/broadcast.toml is valid");
    let input = programme(CHUNK);
    let mut offline = Offline::new(&cfg.graph, RATE as f64, BLOCK, false).expect("broadcast graph compiles");
    let mut out = [vec![0.0f32; CHUNK], vec![0.0f32; CHUNK]];
    let run = |offline: &mut Offline, out: &mut [Vec<f32>; 2]| {
        let mut at = 0;
        let mut sink = |block: &[&[f32]]| -> Result<(), ()> {
            let n = block[0].len().min(CHUNK - at);
            out[0][at..at + n].copy_from_slice(&block[0][..n]);
            out[1][at..at + n].copy_from_slice(&block[1][..n]);
            at = (at + n) % CHUNK;
            Ok(())
        };
        offline.push(&[&input[0], &input[1]], &mut sink).unwrap();
    };

    // A plain timing first, in the unit people ask for: × real time (after two seconds of audio to
    // warm caches and let every node's state settle).
    for _ in 0..2 {
        run(&mut offline, &mut out);
    }
    let seconds = 20;
    let t0 = Instant::now();
    for _ in 0..seconds {
        run(&mut offline, &mut out);
    }
    let rt = seconds as f64 / t0.elapsed().as_secs_f64();
    eprintln!("render/broadcast/block{BLOCK}: {rt:.0}× real time (stereo 48 kHz, {seconds} s of audio)");

    let mut group = c.benchmark_group("render/broadcast");
    group.throughput(Throughput::Elements(CHUNK as u64));
    group.sample_size(10);
    group.bench_function(format!("block{BLOCK}/1s_stereo_48k"), |b| {
        b.iter(|| {
            run(&mut offline, &mut out);
            black_box(&out);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);

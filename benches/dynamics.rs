//! Speed of the dynamics nodes: ns per sample per channel at 48 kHz for blocks of 64 and 256 frames.
//!
//! Target (brief): the 4-band stereo multiband compressor at >= 1000x real time, i.e. <= ~20.8 ns per
//! stereo frame (<= ~10.4 ns per sample per channel). Each iteration processes one second of program-like
//! noise; criterion's "thrpt" line is in elements = samples × channels, so ns/elem is ns per sample per
//! channel, and x real time = 1e9 / (ns per stereo frame × 48000).

use ballast_dsp::compressor::Compressor;
use ballast_dsp::crossover::Crossover;
use ballast_dsp::multiband::Multiband;
use ballast_dsp::{DenormalGuard, Processor};
use criterion::{criterion_group, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const SR: f64 = 48_000.0;
const FRAMES: usize = 48_000;

fn program(seed: u64) -> Vec<f32> {
    // xorshift noise whose level jumps every 4800 frames (-40..0 dB), so the compressor works.
    let mut s = seed;
    let mut amp = 0.5f32;
    (0..FRAMES)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if i % 4800 == 0 {
                amp = 10f32.powf(-((s % 40) as f32) / 20.0);
            }
            amp * ((s >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        })
        .collect()
}

fn run_node(node: &mut dyn Processor, input: &[Vec<f32>], out: &mut [Vec<f32>], block: usize) {
    let _ftz = DenormalGuard::new();
    let mut pos = 0;
    while pos < FRAMES {
        let n = block.min(FRAMES - pos);
        let ins = [&input[0][pos..pos + n], &input[1][pos..pos + n]];
        let (l, r) = out.split_at_mut(1);
        let mut outs = [&mut l[0][pos..pos + n], &mut r[0][pos..pos + n]];
        node.process(&ins, &mut outs);
        pos += n;
    }
}

fn benches(c: &mut Criterion) {
    let input = vec![program(1), program(2)];
    let mut out = vec![vec![0.0f32; FRAMES]; 2];
    let mut g = c.benchmark_group("dynamics");
    g.throughput(Throughput::Elements((FRAMES * 2) as u64));
    for block in [64usize, 256] {
        let mut comp = Compressor::new(2);
        comp.prepare(SR, block);
        g.bench_function(format!("compressor_stereo_b{block}"), |b| {
            b.iter(|| run_node(&mut comp, black_box(&input), &mut out, block))
        });
        let mut mb = Multiband::new(2, 4);
        mb.prepare(SR, block);
        g.bench_function(format!("multiband4_stereo_b{block}"), |b| {
            b.iter(|| run_node(&mut mb, black_box(&input), &mut out, block))
        });
        let mut mb6 = Multiband::new(2, 6);
        mb6.prepare(SR, block);
        g.bench_function(format!("multiband6_stereo_b{block}"), |b| {
            b.iter(|| run_node(&mut mb6, black_box(&input), &mut out, block))
        });
        let mut xo = Crossover::new(2, 4);
        xo.prepare(SR, block);
        let mut bands = vec![vec![0.0f32; block]; 8];
        g.bench_function(format!("crossover4_stereo_b{block}"), |b| {
            b.iter(|| {
                let _ftz = DenormalGuard::new();
                let mut pos = 0;
                while pos < FRAMES {
                    let n = block.min(FRAMES - pos);
                    let ins = [&input[0][pos..pos + n], &input[1][pos..pos + n]];
                    let mut outs: [&mut [f32]; 8] = {
                        let mut it = bands.iter_mut().map(|v| &mut v[..n]);
                        std::array::from_fn(|_| it.next().unwrap())
                    };
                    xo.process(&ins, &mut outs);
                    pos += n;
                }
                black_box(&bands);
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

/// CPU time of this thread in seconds (utime + stime from /proc, 10 ms ticks): unlike wall time it
/// does not count time the scheduler gave to other processes on this shared 2-core machine.
fn thread_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 (utime) and 15 (stime) counted from 1; `after` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// `DYNAMICS_CPU_TIME=1 cargo bench --bench dynamics`: ns per stereo frame by thread CPU time.
fn cpu_time_report() {
    let input = vec![program(1), program(2)];
    let mut out = vec![vec![0.0f32; FRAMES]; 2];
    for block in [64usize, 256] {
        let nodes: Vec<(&str, Box<dyn Processor>)> = vec![
            ("compressor stereo", Box::new(Compressor::new(2))),
            ("multiband 4-band stereo", Box::new(Multiband::new(2, 4))),
            ("multiband 6-band stereo", Box::new(Multiband::new(2, 6))),
        ];
        for (name, mut node) in nodes {
            node.prepare(SR, block);
            run_node(node.as_mut(), &input, &mut out, block);
            let seconds = 150;
            let t0 = thread_cpu_s();
            for _ in 0..seconds {
                run_node(node.as_mut(), black_box(&input), &mut out, block);
            }
            let cpu = thread_cpu_s() - t0;
            let ns_frame = cpu * 1e9 / (seconds * FRAMES) as f64;
            println!(
                "{name:<26} block {block:>3}: {ns_frame:6.2} ns/stereo frame, {:5.2} ns/sample/channel, {:6.0}x real time",
                ns_frame / 2.0,
                1e9 / (ns_frame * SR)
            );
        }
    }
}

fn main() {
    if std::env::var_os("DYNAMICS_CPU_TIME").is_some() {
        cpu_time_report();
        return;
    }
    g();
    Criterion::default().configure_from_args().final_summary();
}

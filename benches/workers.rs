//! Estimate latency per call, on a real track (a wesnoth Ogg decoded by ffmpeg, 10 s stereo at 48 kHz)
//! compressed by ballast's own compressor, with the committed estimator through the real ONNX Runtime
//! (one intra-op thread, spinning off, as the daemon runs it):
//!
//! - `workers/estimate_job`: one `Job::Estimate` through `ballastd::workers::Pool` (one worker), from
//!   submit to `Event::Done`: reading both WAV files, features, inference. What `Learn` costs the
//!   daemon, without D-Bus and the apply.
//! - `workers/estimate_job_4_bands`: the same split at 200/2000/8000 Hz (a 4-band multiband).
//!
//! criterion prints the mean; p50/p99 of the same job are printed on stderr from 50 timed calls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ballast_audiofile::{SampleFormat, WavStream, WavWriter};
use ballast_dsp::registry::{self, Shape};
use ballastd::config::ModelsSettings;
use ballastd::workers::{EstimateJob, Event, Job, Output, Pool};
use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_channel::Receiver;

const TRACK: &str = "/usr/share/games/wesnoth/1.16/data/core/music/battle.ogg";

fn pair() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-workers");
    std::fs::create_dir_all(&dir).unwrap();
    let dry = dir.join("dry.wav");
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i", TRACK, "-t", "10", "-ar", "48000", "-ac", "2", "-c:a", "pcm_f32le"])
        .arg(&dry)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg decodes {TRACK}");
    let mut s = WavStream::open(&dry).unwrap();
    let mut input = vec![Vec::new(); 2];
    while let Some(chunk) = s.next_chunk().unwrap() {
        for (d, c) in input.iter_mut().zip(chunk) {
            d.extend_from_slice(c);
        }
    }
    let mut comp = registry::create("compressor", Shape { channels: 2, bands: 0 }).unwrap();
    for (key, v) in [("threshold_db", -28.0f32), ("ratio", 5.0), ("attack_ms", 8.0), ("release_ms", 200.0)] {
        let id = comp.descriptor().param_by_key(key).unwrap().id;
        comp.set_param(id, v).unwrap();
    }
    const BLOCK: usize = 512;
    comp.prepare(48_000.0, BLOCK);
    comp.reset();
    let wet = dir.join("wet.wav");
    let mut w = WavWriter::create(&wet, 48_000, 2, SampleFormat::F32).unwrap();
    let (mut l, mut r) = (vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]);
    for start in (0..input[0].len()).step_by(BLOCK) {
        let n = BLOCK.min(input[0].len() - start);
        let ins = [&input[0][start..start + n], &input[1][start..start + n]];
        let mut outs: [&mut [f32]; 2] = [&mut l[..n], &mut r[..n]];
        comp.process(&ins, &mut outs);
        w.write(&[&l[..n], &r[..n]]).unwrap();
    }
    w.commit().unwrap();
    (dry, wet)
}

fn run(pool: &mut Pool, events: &Receiver<Event>, dry: &Path, wet: &Path, crossovers: &[f64]) -> Duration {
    let job = EstimateJob { dry: dry.into(), wet: wet.into(), crossovers_hz: crossovers.to_vec() };
    let t0 = Instant::now();
    let id = pool.submit(Job::Estimate(job)).expect("queue has room");
    loop {
        match events.recv().expect("worker alive") {
            Event::Done(d) if d.id == id => {
                let Output::Estimate(r) = d.output;
                r.expect("estimate works");
                return t0.elapsed();
            }
            _ => {}
        }
    }
}

fn bench(c: &mut Criterion) {
    let (dry, wet) = pair();
    let (ort, _) = ballast_models::runtime::locate(None).expect("ONNX Runtime (make onnxruntime)");
    let settings = ModelsSettings { onnxruntime: Some(ort), ..ModelsSettings::default() };
    let (mut pool, events) = Pool::start(&settings).unwrap();
    for crossovers in [&[][..], &[200.0, 2000.0, 8000.0][..]] {
        let mut ms: Vec<f64> =
            (0..50).map(|_| run(&mut pool, &events, &dry, &wet, crossovers).as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        eprintln!(
            "estimate job, 10 s stereo, {} band(s), 50 calls: p50 {:.1} ms, p99 {:.1} ms",
            crossovers.len() + 1,
            ms[25],
            ms[49]
        );
    }
    let mut g = c.benchmark_group("workers");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("estimate_job", |b| b.iter(|| run(&mut pool, &events, &dry, &wet, &[])));
    g.bench_function("estimate_job_4_bands", |b| {
        b.iter(|| run(&mut pool, &events, &dry, &wet, &[200.0, 2000.0, 8000.0]))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

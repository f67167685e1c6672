//! Note model generation speed on one thread (ONNX Runtime with one intra-op thread): time per sixteenth
//! step (four tokens: soprano, alto, tenor, bass), sampling and note conversion included. Criterion's
//! "time per element" is the time per step. Real time: a sixteenth lasts 60 / bpm / 4 s (150 ms at 100
//! bpm), so the real-time factor at 100 bpm is 0.15 s / time per step; issue 7 asks for at least 100×.
use ballast_models::notes::events::NoteTracker;
use ballast_models::notes::{model, Generator, Options, StepModel};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const STEPS: usize = 64;

fn benches(c: &mut Criterion) {
    let model = StepModel::load(&model::default_path()).unwrap_or_else(|e| panic!("{e}"));
    let mut group = c.benchmark_group("notes");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.measurement_time(Duration::from_secs(10));
    let mut generator = Some(Generator::new(model, Options::default()).unwrap());
    let mut seed = 0;
    let mut notes = Vec::new();
    group.bench_function("generate_4_bars", |b| {
        b.iter(|| {
            // A fresh piece each time (state reset, key drawn), as a live generator starting over would.
            seed += 1;
            let m = generator.take().unwrap().into_model();
            let mut g = Generator::new(m, Options { seed, ..Options::default() }).unwrap();
            let mut tracker = NoteTracker::new(0, [true; 4], 0, 16);
            notes.clear();
            g.advance(STEPS, &mut tracker, &mut notes).unwrap();
            black_box(&notes);
            generator = Some(g);
        })
    });
    group.finish();
}

criterion_group!(notes_benches, benches);
criterion_main!(notes_benches);

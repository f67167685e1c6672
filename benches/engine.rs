//! Engine overhead: a chain of 64 gain nodes run through the engine vs the same nodes called directly
//! (ping-ponging two stereo buffers), at 64- and 256-frame blocks. Two node types: a trivial gain (the
//! worst case for relative overhead: the node costs almost nothing) and the compressor at ratio 1 (a
//! real gain stage).

use std::hint::black_box;
use std::time::Duration;

use ballast_dsp::compressor::ids;
use ballast_dsp::registry::{self, CreateError, Shape};
use ballast_dsp::{KindDescriptor, ParamError, ParamId, Processor};
use ballastd::engine::{self, EngineConfig};
use ballastd::graph::{Endpoint, GraphSpec, Link, NodeSpec};
use criterion::{criterion_group, Criterion, Throughput};

const CHAIN: usize = 64;
const CHANNELS: usize = 2;

static GAIN_DESCRIPTOR: KindDescriptor =
    KindDescriptor { kind: "bench_gain", doc: "x · 0.999", params: &[], band_params: &[], meters: &[] };

/// `out = 0.999 · in`: as little work as a node can do.
struct Gain;

impl Processor for Gain {
    fn descriptor(&self) -> &'static KindDescriptor {
        &GAIN_DESCRIPTOR
    }
    fn prepare(&mut self, _sample_rate: f64, _max_block: usize) {}
    fn reset(&mut self) {}
    fn set_param(&mut self, id: ParamId, _value: f32) -> Result<(), ParamError> {
        Err(ParamError::UnknownParam(id))
    }
    fn param(&self, _id: ParamId) -> Option<f32> {
        None
    }
    fn channels(&self) -> (usize, usize) {
        (CHANNELS, CHANNELS)
    }
    fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        for (i, o) in inputs.iter().zip(outputs.iter_mut()) {
            for (x, y) in i.iter().zip(o.iter_mut()) {
                *y = 0.999 * x;
            }
        }
    }
}

fn factory(kind: &str, shape: Shape) -> Result<Box<dyn Processor>, CreateError> {
    match kind {
        "bench_gain" => Ok(Box::new(Gain)),
        _ => registry::create(kind, shape),
    }
}

fn params(kind: &str) -> Vec<(ParamId, f32)> {
    if kind == "compressor" {
        vec![(ids::RATIO, 1.0)]
    } else {
        Vec::new()
    }
}

fn chain_spec(kind: &str) -> GraphSpec {
    let nodes = (0..CHAIN)
        .map(|i| NodeSpec {
            name: format!("n{i}"),
            kind: kind.into(),
            shape: Shape { channels: CHANNELS, bands: 0 },
            params: params(kind),
        })
        .collect();
    let node = |i| Endpoint::Node { node: i, channel: None };
    let io = Endpoint::Io { channel: None };
    let mut links = vec![Link { from: io.clone(), to: node(0) }];
    links.extend((1..CHAIN).map(|i| Link { from: node(i - 1), to: node(i) }));
    links.push(Link { from: node(CHAIN - 1), to: io });
    GraphSpec { inputs: vec!["l".into(), "r".into()], outputs: vec!["l".into(), "r".into()], nodes, links }
}

fn bench(c: &mut Criterion) {
    for kind in ["bench_gain", "compressor"] {
        for block in [64usize, 256] {
            let mut group = c.benchmark_group(format!("engine/{kind}x{CHAIN}/block{block}"));
            group.throughput(Throughput::Elements((block * CHANNELS) as u64));
            let input: Vec<Vec<f32>> =
                (0..CHANNELS).map(|c| (0..block).map(|i| ((i + c) as f32 * 0.01).sin() * 0.5).collect()).collect();

            // Direct: the nodes called one after another, ping-ponging two buffer pairs.
            let mut nodes: Vec<Box<dyn Processor>> = (0..CHAIN)
                .map(|_| {
                    let mut n = factory(kind, Shape { channels: CHANNELS, bands: 0 }).unwrap();
                    n.prepare(48_000.0, block);
                    for (id, v) in params(kind) {
                        n.set_param(id, v).unwrap();
                    }
                    // As the engine's control side does: parameters that act at reset are in effect.
                    n.reset();
                    n
                })
                .collect();
            let mut a = input.clone();
            let mut b = input.clone();
            group.bench_function("direct", |bch| {
                bch.iter(|| {
                    for ch in 0..CHANNELS {
                        a[ch].copy_from_slice(&input[ch]);
                    }
                    for n in nodes.iter_mut() {
                        {
                            let ins: [&[f32]; CHANNELS] = [&a[0], &a[1]];
                            let (b0, b1) = b.split_at_mut(1);
                            let mut outs: [&mut [f32]; CHANNELS] = [&mut b0[0], &mut b1[0]];
                            n.process(&ins, &mut outs);
                        }
                        std::mem::swap(&mut a, &mut b);
                    }
                    black_box(&a);
                })
            });
            group.bench_function("direct_checked", |bch| {
                bch.iter(|| {
                    for ch in 0..CHANNELS {
                        a[ch].copy_from_slice(&input[ch]);
                    }
                    for n in nodes.iter_mut() {
                        {
                            let ins: [&[f32]; CHANNELS] = [&a[0], &a[1]];
                            let (b0, b1) = b.split_at_mut(1);
                            let mut outs: [&mut [f32]; CHANNELS] = [&mut b0[0], &mut b1[0]];
                            black_box(n.process_checked(&ins, &mut outs));
                        }
                        std::mem::swap(&mut a, &mut b);
                    }
                    black_box(&a);
                })
            });

            let (mut ctl, mut eng, _reclaimer) = engine::new(EngineConfig {
                sample_rate: 48_000.0,
                max_block: block,
                slots: CHAIN + 8,
                ring_capacity: 256,
                crossfade_ms: 5.0,
            });
            ctl.set_factory(Box::new(factory));
            ctl.apply(&chain_spec(kind)).unwrap();
            let mut out = input.clone();
            group.bench_function("engine", |bch| {
                bch.iter(|| {
                    let ins: [&[f32]; CHANNELS] = [&input[0], &input[1]];
                    let (o0, o1) = out.split_at_mut(1);
                    let mut outs: [&mut [f32]; CHANNELS] = [&mut o0[0], &mut o1[0]];
                    eng.process(&ins, &mut outs);
                    black_box(&out);
                })
            });
            group.finish();
        }
    }
}

/// Paired timing, robust to a loaded machine: the engine and the direct loops run alternately, block by
/// block; each group of 50 rounds keeps its minimum per variant; printed are the median of those minima
/// and the overall minimum (the least disturbed run) with the engine's overhead for each.
/// `BALLAST_PAIRED=KIND:BLOCK` runs one configuration only (e.g. `bench_gain:64`).
fn paired() {
    let only = std::env::var("BALLAST_PAIRED").ok();
    for kind in ["bench_gainx64", "compressor"] {
        let kind = kind.trim_end_matches("x64");
        for block in [64usize, 256] {
            if only.as_deref().is_some_and(|o| o != format!("{kind}:{block}")) {
                continue;
            }
            let input: Vec<Vec<f32>> =
                (0..CHANNELS).map(|c| (0..block).map(|i| ((i + c) as f32 * 0.01).sin() * 0.5).collect()).collect();
            let mut nodes: Vec<Box<dyn Processor>> = (0..CHAIN)
                .map(|_| {
                    let mut n = factory(kind, Shape { channels: CHANNELS, bands: 0 }).unwrap();
                    n.prepare(48_000.0, block);
                    for (id, v) in params(kind) {
                        n.set_param(id, v).unwrap();
                    }
                    // As the engine's control side does: parameters that act at reset are in effect.
                    n.reset();
                    n
                })
                .collect();
            let (mut ctl, mut eng, _r) = engine::new(EngineConfig {
                sample_rate: 48_000.0,
                max_block: block,
                slots: CHAIN + 8,
                ring_capacity: 256,
                crossfade_ms: 5.0,
            });
            ctl.set_factory(Box::new(factory));
            ctl.apply(&chain_spec(kind)).unwrap();
            let mut a = input.clone();
            let mut b = input.clone();
            let mut out = input.clone();
            let mut direct = |checked: bool| {
                let t = std::time::Instant::now();
                for ch in 0..CHANNELS {
                    a[ch].copy_from_slice(&input[ch]);
                }
                for n in nodes.iter_mut() {
                    {
                        let ins: [&[f32]; CHANNELS] = [&a[0], &a[1]];
                        let (b0, b1) = b.split_at_mut(1);
                        let mut outs: [&mut [f32]; CHANNELS] = [&mut b0[0], &mut b1[0]];
                        if checked {
                            black_box(n.process_checked(&ins, &mut outs));
                        } else {
                            n.process(&ins, &mut outs);
                        }
                    }
                    std::mem::swap(&mut a, &mut b);
                }
                black_box(&a);
                t.elapsed().as_nanos() as f64
            };
            let mut engine_run = || {
                let t = std::time::Instant::now();
                let ins: [&[f32]; CHANNELS] = [&input[0], &input[1]];
                let (o0, o1) = out.split_at_mut(1);
                let mut outs: [&mut [f32]; CHANNELS] = [&mut o0[0], &mut o1[0]];
                eng.process(&ins, &mut outs);
                black_box(&out);
                t.elapsed().as_nanos() as f64
            };
            let (mut e_min, mut d_min, mut c_min) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..200 {
                let (mut e, mut d, mut c) = (f64::MAX, f64::MAX, f64::MAX);
                for _ in 0..50 {
                    e = e.min(engine_run());
                    d = d.min(direct(false));
                    c = c.min(direct(true));
                }
                e_min.push(e);
                d_min.push(d);
                c_min.push(c);
            }
            let med = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                v[v.len() / 2]
            };
            let least = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
            let (e0, d0, c0) = (least(&e_min), least(&d_min), least(&c_min));
            let (e, d, c) = (med(&mut e_min), med(&mut d_min), med(&mut c_min));
            println!(
                "paired {kind} x{CHAIN} block {block}: median of minima: engine {e:.0} ns/block, direct {d:.0}, \
                 direct_checked {c:.0}; engine vs direct {:+.1}%, vs direct_checked {:+.1}% | overall minima: \
                 engine {e0:.0}, direct {d0:.0}, direct_checked {c0:.0}; {:+.1}%, {:+.1}%",
                100.0 * (e / d - 1.0),
                100.0 * (e / c - 1.0),
                100.0 * (e0 / d0 - 1.0),
                100.0 * (e0 / c0 - 1.0)
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}

/// Instruction counting, for `valgrind --tool=callgrind` (repeatable on a loaded machine, unlike time):
/// `BALLAST_ENGINE_COUNT=KIND:BLOCK:VARIANT` (e.g. `bench_gain:64:engine`; variants `direct`,
/// `direct_checked`, `engine`) sets the variant up, warms it, runs `COUNT_BLOCKS` blocks inside
/// `count_blocks` and exits. See `scripts/engine-callgrind.sh`.
const COUNT_BLOCKS: usize = 1000;

fn count_mode(spec: &str) {
    let mut parts = spec.split(':');
    let (Some(kind), Some(block), Some(variant)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("BALLAST_ENGINE_COUNT=KIND:BLOCK:VARIANT, got {spec}");
    };
    let block: usize = block.parse().expect("block size");
    let input: Vec<Vec<f32>> =
        (0..CHANNELS).map(|c| (0..block).map(|i| ((i + c) as f32 * 0.01).sin() * 0.5).collect()).collect();
    let mut nodes: Vec<Box<dyn Processor>> = (0..CHAIN)
        .map(|_| {
            let mut n = factory(kind, Shape { channels: CHANNELS, bands: 0 }).unwrap();
            n.prepare(48_000.0, block);
            for (id, v) in params(kind) {
                n.set_param(id, v).unwrap();
            }
            n.reset();
            n
        })
        .collect();
    let (mut ctl, mut eng, _r) = engine::new(EngineConfig {
        sample_rate: 48_000.0,
        max_block: block,
        slots: CHAIN + 8,
        ring_capacity: 256,
        crossfade_ms: 5.0,
    });
    ctl.set_factory(Box::new(factory));
    ctl.apply(&chain_spec(kind)).unwrap();
    let mut a = input.clone();
    let mut b = input.clone();
    let mut out = input.clone();
    let mut one = |variant: &str| match variant {
        "direct" | "direct_checked" => {
            for ch in 0..CHANNELS {
                a[ch].copy_from_slice(&input[ch]);
            }
            for n in nodes.iter_mut() {
                {
                    let ins: [&[f32]; CHANNELS] = [&a[0], &a[1]];
                    let (b0, b1) = b.split_at_mut(1);
                    let mut outs: [&mut [f32]; CHANNELS] = [&mut b0[0], &mut b1[0]];
                    if variant == "direct" {
                        n.process(&ins, &mut outs);
                    } else {
                        black_box(n.process_checked(&ins, &mut outs));
                    }
                }
                std::mem::swap(&mut a, &mut b);
            }
            black_box(&a);
        }
        "engine" => {
            let ins: [&[f32]; CHANNELS] = [&input[0], &input[1]];
            let (o0, o1) = out.split_at_mut(1);
            let mut outs: [&mut [f32]; CHANNELS] = [&mut o0[0], &mut o1[0]];
            eng.process(&ins, &mut outs);
            black_box(&out);
        }
        v => panic!("unknown variant {v}"),
    };
    for _ in 0..10 {
        one(variant);
    }
    count_blocks(&mut one, variant);
}

/// The measured region (callgrind: `--toggle-collect=*count_blocks*`).
#[inline(never)]
fn count_blocks(one: &mut impl FnMut(&str), variant: &str) {
    for _ in 0..COUNT_BLOCKS {
        one(black_box(variant));
    }
}

fn main() {
    if let Ok(spec) = std::env::var("BALLAST_ENGINE_COUNT") {
        count_mode(&spec);
        return;
    }
    paired();
    if std::env::var("BALLAST_PAIRED").is_ok() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! The graph engine end to end: compiler (order, fan-in/out, channel maps, latency compensation,
//! cycles), RT side under an allocation guard, edits that keep state, rings, reclaimer, meters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use assert_no_alloc::{assert_no_alloc, reset_violation_count, violation_count};
use ballast_dsp::registry::{self, CreateError, Shape};
use ballast_dsp::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Processor};
use ballast_dsp::{Scale, Smoothing, Unit};
use ballastd::engine::{self, Command, Controller, Engine, EngineConfig, EngineError, Reclaimer};
use ballastd::graph::{CompileError, Endpoint, GraphSpec, Link, NodeSpec};

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

// ---------------------------------------------------------------------------------------------
// Test nodes

const GAIN: ParamId = ParamId(0);
const POISON: ParamId = ParamId(1);

static TEST_PARAMS: [ParamDescriptor; 2] = [
    ParamDescriptor {
        id: GAIN,
        key: "gain",
        name: "Gain",
        unit: Unit::Scalar,
        min: -100.0,
        max: 100.0,
        default: 1.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Linear gain applied to every channel.",
    },
    ParamDescriptor {
        id: POISON,
        key: "poison",
        name: "Poison",
        unit: Unit::Bool,
        min: 0.0,
        max: 1.0,
        default: 0.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "When 1, the next block's output is NaN (to exercise the engine's reset).",
    },
];
static TEST_METERS: [MeterDescriptor; 1] =
    [MeterDescriptor { key: "peak", name: "Peak", unit: Unit::Scalar, per_band: false }];

static GAIN_DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "test_gain",
    doc: "Multiplies by a gain; optional fixed delay; can poison itself.",
    params: &TEST_PARAMS,
    band_params: &[],
    meters: &TEST_METERS,
};

static DROPPED: AtomicUsize = AtomicUsize::new(0);
static DROP_THREADS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// `out = gain × in` (delayed by `delay` samples); publishes its block peak; counts its drops.
struct TestGain {
    channels: usize,
    gain: f32,
    poison: bool,
    delay: usize,
    line: Vec<Vec<f32>>,
    pos: usize,
    peak: f32,
    counted: bool,
    /// Poison stays until a reset (state that blew up) instead of lasting one block.
    sticky: bool,
}

impl TestGain {
    fn new(channels: usize, delay: usize, counted: bool) -> Self {
        Self { channels, gain: 1.0, poison: false, delay, line: Vec::new(), pos: 0, peak: 0.0, counted, sticky: false }
    }
}

impl Drop for TestGain {
    fn drop(&mut self) {
        if self.counted {
            DROPPED.fetch_add(1, Ordering::SeqCst);
            let name = std::thread::current().name().unwrap_or("?").to_string();
            DROP_THREADS.lock().unwrap().push(name);
        }
    }
}

impl Processor for TestGain {
    fn descriptor(&self) -> &'static KindDescriptor {
        &GAIN_DESCRIPTOR
    }
    fn prepare(&mut self, _sample_rate: f64, _max_block: usize) {
        self.line = vec![vec![0.0; self.delay + 1]; self.channels];
        self.pos = 0;
    }
    fn reset(&mut self) {
        for l in &mut self.line {
            l.fill(0.0);
        }
        self.poison = false;
    }
    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = GAIN_DESCRIPTOR.validate(id, value)?;
        match id {
            GAIN => self.gain = v,
            _ => self.poison = v != 0.0,
        }
        Ok(())
    }
    fn param(&self, id: ParamId) -> Option<f32> {
        match id {
            GAIN => Some(self.gain),
            POISON => Some(self.poison as u8 as f32),
            _ => None,
        }
    }
    fn channels(&self) -> (usize, usize) {
        (self.channels, self.channels)
    }
    fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let len = self.delay + 1;
        let mut pos = self.pos;
        let mut peak = 0.0f32;
        for (c, (i, o)) in inputs.iter().zip(outputs.iter_mut()).enumerate() {
            pos = self.pos;
            for (x, y) in i.iter().zip(o.iter_mut()) {
                self.line[c][pos] = *x;
                pos = (pos + 1) % len;
                *y = self.gain * self.line[c][pos];
                peak = peak.max(y.abs());
            }
        }
        self.pos = pos;
        self.peak = peak;
        if self.poison {
            self.poison = self.sticky;
            if let Some(o) = outputs.first_mut() {
                o.fill(f32::NAN);
            }
        }
    }
    fn latency_samples(&self) -> usize {
        self.delay
    }
    fn meter(&self, index: usize, _band: usize) -> f32 {
        if index == 0 {
            self.peak
        } else {
            f32::NAN
        }
    }
}

/// Registry kinds plus `test_gain`, `test_delay7` (a gain node with 7 samples of latency),
/// `test_counted` (a gain node whose drops are counted) and `test_stuck` (a gain node whose poison
/// lasts until it is reset).
fn factory(kind: &str, shape: Shape) -> Result<Box<dyn Processor>, CreateError> {
    match kind {
        "test_stuck" => {
            let mut g = TestGain::new(shape.channels, 0, false);
            g.sticky = true;
            Ok(Box::new(g))
        }
        "test_gain" => Ok(Box::new(TestGain::new(shape.channels, 0, false))),
        "test_delay7" => Ok(Box::new(TestGain::new(shape.channels, 7, false))),
        "test_counted" => Ok(Box::new(TestGain::new(shape.channels, 0, true))),
        _ => registry::create(kind, shape),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn make(max_block: usize, ring: usize) -> (Controller, Engine, Reclaimer) {
    let (mut c, e, r) = engine::new(EngineConfig {
        sample_rate: 48_000.0,
        max_block,
        slots: 64,
        ring_capacity: ring,
        crossfade_ms: 1.0,
    });
    c.set_factory(Box::new(factory));
    (c, e, r)
}

fn node(name: &str, kind: &str, channels: usize, params: &[(ParamId, f32)]) -> NodeSpec {
    NodeSpec { name: name.into(), kind: kind.into(), shape: Shape { channels, bands: 0 }, params: params.to_vec() }
}

fn io() -> Endpoint {
    Endpoint::Io { channel: None }
}
fn io_ch(c: usize) -> Endpoint {
    Endpoint::Io { channel: Some(c) }
}
fn n(i: usize) -> Endpoint {
    Endpoint::Node { node: i, channel: None }
}
fn link(from: Endpoint, to: Endpoint) -> Link {
    Link { from, to }
}

fn spec(inputs: usize, outputs: usize, nodes: Vec<NodeSpec>, links: Vec<Link>) -> GraphSpec {
    GraphSpec {
        inputs: (0..inputs).map(|i| format!("in_{i}")).collect(),
        outputs: (0..outputs).map(|i| format!("out_{i}")).collect(),
        nodes,
        links,
    }
}

/// Runs `input` (channels × frames) through the engine in blocks of `block`; returns the outputs.
fn run(e: &mut Engine, input: &[Vec<f32>], outputs: usize, block: usize) -> Vec<Vec<f32>> {
    let frames = input.first().map_or(0, |c| c.len());
    let mut out = vec![vec![0.0f32; frames]; outputs];
    let mut start = 0;
    while start < frames {
        let end = (start + block).min(frames);
        let ins: Vec<&[f32]> = input.iter().map(|c| &c[start..end]).collect();
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[start..end]).collect();
        e.process(&ins, &mut outs);
        start = end;
    }
    out
}

/// SplitMix64: deterministic, seedable, good enough to drive edits.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
}

fn noise(rng: &mut Rng, channels: usize, frames: usize, amp: f32) -> Vec<Vec<f32>> {
    (0..channels).map(|_| (0..frames).map(|_| amp * (2.0 * rng.unit() - 1.0)).collect()).collect()
}

/// A limiter's latency with lookahead `ms` (which takes effect at a reset).
fn limiter_latency(ms: f32) -> usize {
    limiter_latency_at(ms, 48_000.0)
}

/// The same at `sample_rate`.
fn limiter_latency_at(ms: f32, sample_rate: f64) -> usize {
    let mut l = registry::create("limiter", Shape { channels: 1, bands: 0 }).unwrap();
    l.prepare(sample_rate, 64);
    l.set_param(ballast_dsp::limiter::LOOKAHEAD_MS, ms).unwrap();
    l.reset();
    l.latency_samples()
}

// ---------------------------------------------------------------------------------------------
// Compiler and routing

#[test]
fn fan_in_sums_and_fan_out_copies() {
    let (mut c, mut e, _r) = make(64, 64);
    // in → a (×2) and in → b (×3): fan-out; a + b → out: fan-in.
    let g = spec(
        1,
        1,
        vec![node("a", "test_gain", 1, &[(GAIN, 2.0)]), node("b", "test_gain", 1, &[(GAIN, 3.0)])],
        vec![link(io(), n(0)), link(io(), n(1)), link(n(0), io()), link(n(1), io())],
    );
    c.apply(&g).unwrap();
    let input = vec![(0..200).map(|i| (i as f32 * 0.01).sin()).collect::<Vec<f32>>()];
    let out = run(&mut e, &input, 1, 64);
    for (x, y) in input[0].iter().zip(&out[0]) {
        // 2x is exact, 3x and the sum round once each: within 1.5 ulp of 5x, so 2 ulp (relative
        // 2·ε) is the bound.
        assert!((y - 5.0 * x).abs() <= 2.0 * f32::EPSILON * (5.0 * x).abs(), "{y} vs {}", 5.0 * x);
    }
    // Two links into one node input sum as well (in + in → node).
    let g =
        spec(1, 1, vec![node("a", "test_gain", 1, &[])], vec![link(io(), n(0)), link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    let out = run(&mut e, &input, 1, 64);
    for (x, y) in input[0].iter().zip(&out[0]) {
        assert_eq!(*y, 2.0 * x, "x + x is exact in f32");
    }
}

#[test]
fn mono_stereo_rules_and_single_channel_links() {
    let (mut c, mut e, _r) = make(64, 64);
    let input = vec![vec![1.0f32; 64], vec![3.0f32; 64]];
    // Stereo in → mono node: downmix (1 + 3) / 2 = 2; mono node → stereo out: spread.
    let g = spec(2, 2, vec![node("m", "test_gain", 1, &[])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    let out = run(&mut e, &input, 2, 64);
    assert!(out[0].iter().chain(&out[1]).all(|&y| y == 2.0), "{:?}", &out[0][..4]);
    // in:1 → mono node → out:0 only; out:1 takes in:0 directly.
    let g = spec(
        2,
        2,
        vec![node("m", "test_gain", 1, &[])],
        vec![link(io_ch(1), n(0)), link(n(0), io_ch(0)), link(io_ch(0), Endpoint::Io { channel: Some(1) })],
    );
    c.apply(&g).unwrap();
    let out = run(&mut e, &input, 2, 64);
    assert!(out[0].iter().all(|&y| y == 3.0) && out[1].iter().all(|&y| y == 1.0));
    // Stereo in → stereo node → stereo out: one to one.
    let g = spec(2, 2, vec![node("s", "test_gain", 2, &[(GAIN, -1.0)])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    let out = run(&mut e, &input, 2, 64);
    assert!(out[0].iter().all(|&y| y == -1.0) && out[1].iter().all(|&y| y == -3.0));
    // 2 channels into 3 is refused by the rule.
    let g = spec(2, 3, vec![], vec![link(io(), io())]);
    assert!(matches!(c.apply(&g), Err(EngineError::Compile(CompileError::ChannelMismatch { from: 2, to: 3, .. }))));
}

#[test]
fn cycles_are_rejected_by_name_and_nothing_is_sent() {
    let (mut c, _e, _r) = make(64, 64);
    let g = spec(
        1,
        1,
        vec![
            node("src", "test_gain", 1, &[]),
            node("a", "test_gain", 1, &[]),
            node("b", "test_gain", 1, &[]),
            node("c", "test_gain", 1, &[]),
            node("after", "test_gain", 1, &[]),
        ],
        vec![
            link(io(), n(0)),
            link(n(0), n(1)),
            link(n(1), n(2)),
            link(n(2), n(3)),
            link(n(3), n(1)),
            link(n(3), n(4)),
            link(n(4), io()),
        ],
    );
    let free = c.ring_free();
    match c.apply(&g) {
        Err(EngineError::Compile(CompileError::Cycle(names))) => {
            assert_eq!(names, ["a", "b", "c"]);
            let msg = CompileError::Cycle(names).to_string();
            assert_eq!(msg, "cycle: a -> b -> c -> a");
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert_eq!(c.ring_free(), free, "a refused graph sends nothing");
    // A self-loop is a cycle of one.
    let g = spec(1, 1, vec![node("x", "test_gain", 1, &[])], vec![link(n(0), n(0))]);
    assert!(matches!(c.apply(&g), Err(EngineError::Compile(CompileError::Cycle(n))) if n == ["x"]));
    // Dangling node index: reported, no panic.
    let g = spec(1, 1, vec![], vec![link(n(3), io())]);
    assert!(matches!(c.apply(&g), Err(EngineError::Compile(CompileError::BadEndpoint { .. }))));
}

#[test]
fn long_chain_reuses_buffers() {
    let nodes: Vec<NodeSpec> = (0..64).map(|i| node(&format!("g{i}"), "test_gain", 2, &[])).collect();
    let mut links = vec![link(io(), n(0))];
    links.extend((1..64).map(|i| link(n(i - 1), n(i))));
    links.push(link(n(63), io()));
    let g = spec(2, 2, nodes, links);
    let infos: Vec<_> =
        (0..64).map(|i| ballastd::graph::NodeInfo { slot: i, inputs: 2, outputs: 2, latency_samples: 0 }).collect();
    let s = ballastd::graph::compile(&g, &infos, 256).unwrap();
    // Each step needs its own outputs while its inputs are live: two stereo pairs ping-pong.
    assert_eq!(s.buffer_count(), 4);
    assert_eq!(s.order(), (0..64).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Latency compensation

#[test]
fn latency_compensation_aligns_an_impulse() {
    let (mut c, mut e, _r) = make(64, 64);
    // Limiter branch and a plain wire from the same input, summed at the output.
    let g = spec(
        2,
        2,
        vec![node("lim", "limiter", 2, &[(ballast_dsp::limiter::LOOKAHEAD_MS, 3.0)])],
        vec![link(io(), n(0)), link(n(0), io()), link(io(), io())],
    );
    let rep = c.apply(&g).unwrap();
    let lim_latency = limiter_latency(3.0);
    assert!(lim_latency >= 144, "a 3 ms lookahead at 48 kHz delays by at least 144 samples: {lim_latency}");
    assert_eq!(rep.latency_samples, lim_latency);
    assert_eq!(c.latency_samples(), lim_latency);
    let at = 10;
    let mut input = vec![vec![0.0f32; 2048]; 2];
    input[0][at] = 0.25; // well below the −1 dBTP ceiling: the limiter passes it at unity gain
    input[1][at] = -0.25;
    let out = run(&mut e, &input, 2, 64);
    for (ch, want) in [(0usize, 0.5f32), (1, -0.5)] {
        for (t, &y) in out[ch].iter().enumerate() {
            if t == at + lim_latency {
                // The limiter multiplies by a gain of exactly 1 below the ceiling; sum is exact.
                assert!((y - want).abs() < 1e-6, "ch {ch}: {y} at the reported latency");
            } else {
                assert!(y.abs() < 1e-6, "ch {ch}: stray {y} at {t} (latency {lim_latency})");
            }
        }
    }
    // Two limiters in series vs a wire: twice the latency, still one impulse.
    let p = [(ballast_dsp::limiter::LOOKAHEAD_MS, 3.0)];
    let g = spec(
        1,
        1,
        vec![node("l1", "limiter", 1, &p), node("l2", "limiter", 1, &p)],
        vec![link(io(), n(0)), link(n(0), n(1)), link(n(1), io()), link(io(), io())],
    );
    let rep = c.apply(&g).unwrap();
    assert_eq!(rep.latency_samples, 2 * lim_latency);
    let (mut c2, mut e2, _r2) = make(64, 64);
    c2.apply(&g).unwrap();
    let mut input = vec![vec![0.0f32; 2048]];
    input[0][at] = 0.25;
    let out = run(&mut e2, &input, 1, 37);
    let peaks: Vec<usize> = (0..out[0].len()).filter(|&t| out[0][t].abs() > 1e-6).collect();
    assert_eq!(peaks, [at + 2 * lim_latency]);
    assert!((out[0][at + 2 * lim_latency] - 0.5).abs() < 1e-6);
}

#[test]
fn paths_meeting_at_a_node_input_are_aligned() {
    // in → split → {d7 (×1, 7 samples), g (×1)} → sum → out: the short path into `sum` is delayed by 7,
    // and the mono `tap` reading `g` directly into the output is aligned to the total as well.
    let (mut c, mut e, _r) = make(64, 64);
    let g = spec(
        1,
        2,
        vec![
            node("split", "test_gain", 1, &[]),
            node("d7", "test_delay7", 1, &[]),
            node("g", "test_gain", 1, &[]),
            node("sum", "test_gain", 1, &[]),
        ],
        vec![
            link(io(), n(0)),
            link(n(0), n(1)),
            link(n(0), n(2)),
            link(n(1), n(3)),
            link(n(2), n(3)),
            link(n(3), io_ch(0)),
            link(n(2), Endpoint::Io { channel: Some(1) }),
        ],
    );
    assert_eq!(c.apply(&g).unwrap().latency_samples, 7);
    let mut input = vec![vec![0.0f32; 128]];
    input[0][5] = 1.0;
    let out = run(&mut e, &input, 2, 64);
    let hits = |ch: usize| (0..128).filter(|&t| out[ch][t] != 0.0).map(|t| (t, out[ch][t])).collect::<Vec<_>>();
    assert_eq!(hits(0), [(12, 2.0)], "both paths arrive together at the sum");
    assert_eq!(hits(1), [(12, 1.0)], "the tap is aligned to the output latency");
}

#[test]
fn compensation_delays_survive_unrelated_edits() {
    // in → d7 → out plus in → out: the wire gets a 7-sample delay. Adding an unrelated node mid-run must
    // not restart that delay (its contents migrate), so the output equals a run without the edit.
    let base =
        spec(1, 1, vec![node("d", "test_delay7", 1, &[])], vec![link(io(), n(0)), link(n(0), io()), link(io(), io())]);
    let mut edited = base.clone();
    edited.nodes.push(node("other", "test_gain", 1, &[]));
    edited.links.push(link(io(), n(1)));
    let mut rng = Rng(7);
    let input = noise(&mut rng, 1, 640, 0.5);
    let (mut c1, mut e1, _r1) = make(64, 64);
    c1.apply(&base).unwrap();
    let reference = run(&mut e1, &input, 1, 64);
    let (mut c2, mut e2, _r2) = make(64, 64);
    c2.apply(&base).unwrap();
    let first = run(&mut e2, &[input[0][..320].to_vec()], 1, 64);
    c2.apply(&edited).unwrap();
    let second = run(&mut e2, &[input[0][320..].to_vec()], 1, 64);
    let joined: Vec<f32> = first[0].iter().chain(&second[0]).copied().collect();
    assert_eq!(joined, reference[0]);
}

// ---------------------------------------------------------------------------------------------
// RT side: commands, rings, reclaimer, meters, finiteness

#[test]
fn parameter_change_is_heard_in_the_next_block() {
    let (mut c, mut e, _r) = make(64, 64);
    // A compressor with ratio 1 is a gain stage: makeup_db moves the output level, smoothed.
    use ballast_dsp::compressor::ids;
    let g =
        spec(1, 1, vec![node("comp", "compressor", 1, &[(ids::RATIO, 1.0)])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    let input = [vec![0.25f32; 64 * 200]];
    let before = run(&mut e, &[input[0][..64 * 100].to_vec()], 1, 64);
    let level = *before[0].last().unwrap();
    c.set_param("comp", ids::MAKEUP_DB, 6.0).unwrap();
    let after = run(&mut e, &[input[0][..64 * 100].to_vec()], 1, 64);
    // Within the first block after the change the output already moves...
    assert!(after[0][63] > level * 1.001, "{} vs {level}", after[0][63]);
    // ...without a jump at its first sample (smoothed: well under the 6 dB step)...
    assert!(after[0][0] < level * 1.1, "{} vs {level}", after[0][0]);
    // ...and settles at +6 dB (the ramp is a few tens of ms; 100 blocks is 133 ms).
    let gain_db = 20.0 * (after[0].last().unwrap() / level).log10();
    assert!((gain_db - 6.0).abs() < 0.01, "{gain_db} dB");
}

#[test]
fn full_command_ring_returns_the_command_and_counts() {
    let (mut c, mut e, _r) = make(64, 4);
    let g = spec(1, 1, vec![node("a", "test_gain", 1, &[])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    run(&mut e, &[vec![0.0; 64]], 1, 64);
    let slot = c.slot_of("a").unwrap();
    for i in 0..4 {
        c.send(Command::SetParam { slot, id: GAIN, value: i as f32 }).unwrap();
    }
    match c.send(Command::SetParam { slot, id: GAIN, value: 42.0 }) {
        Err(Command::SetParam { value, .. }) => assert_eq!(value, 42.0, "the refused command comes back whole"),
        other => panic!("expected the command back, got {other:?}"),
    }
    assert_eq!(c.stats().ring_full, 1);
    // An edit that does not fit is refused before anything is sent, and counted.
    let g2 = spec(1, 1, vec![node("b", "test_gain", 1, &[])], vec![link(io(), n(0)), link(n(0), io())]);
    assert!(matches!(c.apply(&g2), Err(EngineError::RingFull { needed: 3, free: 0 })));
    assert_eq!(c.stats().ring_full, 2);
    // The RT side drains; the last queued value wins; the edit goes through afterwards.
    let out = run(&mut e, &[vec![1.0; 64]], 1, 64);
    assert!(out[0].iter().all(|&y| y == 3.0));
    c.apply(&g2).unwrap();
    let out = run(&mut e, &[vec![1.0; 64]], 1, 64);
    assert!(out[0].iter().all(|&y| y == 1.0));
}

#[test]
fn full_return_ring_delays_commands_instead_of_dropping() {
    // Return ring of 2: without a reclaimer, the third retiring command waits for room.
    let (mut c, mut e, mut r) = make(64, 1);
    let mk = |name: &str| spec(1, 1, vec![node(name, "test_gain", 1, &[])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&mk("a")).unwrap_err(); // needs 2 places (insert + swap); the ring has 1
    let g = spec(1, 1, vec![], vec![link(io(), io())]);
    for _ in 0..3 {
        c.apply(&g).unwrap(); // one swap each, each retiring the previous schedule
        run(&mut e, &[vec![0.0; 8]], 1, 8);
    }
    // First swap retired nothing, second and third filled the return ring (capacity 2).
    c.apply(&g).unwrap();
    run(&mut e, &[vec![0.0; 8]], 1, 8);
    assert_eq!(c.stats().return_full, 1, "the fourth swap waits");
    assert_eq!(c.stats().leaked, 0);
    assert_eq!(r.collect(), 2);
    run(&mut e, &[vec![0.0; 8]], 1, 8);
    assert_eq!(r.collect(), 1, "the waiting swap ran once there was room");
}

#[test]
fn reclaimer_drops_removed_nodes_off_the_rt_thread() {
    let (mut c, mut e, r) = make(64, 64);
    let with = spec(1, 1, vec![node("x", "test_counted", 1, &[])], vec![link(io(), n(0)), link(n(0), io())]);
    let without = spec(1, 1, vec![], vec![link(io(), io())]);
    c.apply(&with).unwrap();
    run(&mut e, &[vec![0.5; 64]], 1, 64);
    let before = DROPPED.load(Ordering::SeqCst);
    c.apply(&without).unwrap();
    reset_violation_count();
    assert_no_alloc(|| {
        let input = [0.5f32; 64];
        let mut out = [0.0f32; 64];
        e.process(&[&input], &mut [&mut out]);
    });
    assert_eq!(violation_count(), 0, "removing a node frees nothing on the RT thread");
    assert_eq!(DROPPED.load(Ordering::SeqCst), before, "not dropped yet: waiting on the return ring");
    let thread = r.spawn(std::time::Duration::from_millis(1)).unwrap();
    let t0 = std::time::Instant::now();
    while DROPPED.load(Ordering::SeqCst) == before && t0.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(DROPPED.load(Ordering::SeqCst), before + 1);
    assert!(DROP_THREADS.lock().unwrap().iter().any(|t| t == "ballast-reclaim"));
    drop(thread);
    // The node and the retired schedule both went through the reclaimer.
    assert_eq!(c.stats().reclaimed, 2);
}

#[test]
fn meters_are_readable_from_another_thread() {
    let (mut c, mut e, _r) = make(256, 64);
    let g = spec(
        2,
        2,
        vec![
            node("lim", "limiter", 2, &[(ballast_dsp::limiter::INPUT_GAIN_DB, 12.0)]),
            node("meter", "loudness_meter", 2, &[]),
        ],
        vec![link(io(), n(0)), link(n(0), n(1)), link(n(1), io())],
    );
    c.apply(&g).unwrap();
    let lim = c.meters("lim").unwrap();
    let meter = c.meters("meter").unwrap();
    let stats = c.stats_handle();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut reads = 0u64;
        let mut last = (f32::NAN, f32::NAN);
        while !stop2.load(Ordering::Acquire) {
            last = (lim.by_key("gain_reduction_db", 0).unwrap(), meter.by_key("momentary_lufs", 0).unwrap());
            reads += 1;
        }
        (reads, last, stats.snapshot().blocks)
    });
    let mut rng = Rng(3);
    let input = noise(&mut rng, 2, 48_000, 0.5);
    run(&mut e, &input, 2, 256);
    stop.store(true, Ordering::Release);
    let (reads, (gr, momentary), blocks) = reader.join().unwrap();
    assert!(reads > 0);
    assert!(blocks > 0, "the counters are visible to the reader thread too");
    // +12 dB into a −1 dBTP ceiling: several dB of gain reduction; noise at 0.5 peak: loud.
    assert!(gr.is_finite() && gr.abs() > 3.0, "gain reduction {gr}");
    assert!(momentary.is_finite() && momentary > -30.0, "momentary {momentary}");
}

#[test]
fn non_finite_output_resets_the_node_and_is_counted() {
    let (mut c, mut e, _r) = make(64, 64);
    let g = spec(1, 1, vec![node("p", "test_gain", 1, &[])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    c.set_param("p", POISON, 1.0).unwrap();
    let out = run(&mut e, &[vec![0.5; 64]], 1, 64);
    assert!(out[0].iter().all(|&y| y == 0.0), "a NaN block is replaced by silence");
    assert_eq!(c.meters("p").unwrap().nonfinite_resets(), 1);
    assert_eq!(c.stats().nonfinite_resets, 1);
    let out = run(&mut e, &[vec![0.5; 64]], 1, 64);
    assert!(out[0].iter().all(|&y| y == 0.5), "the node runs normally afterwards");
    // A NaN input wired straight to the output is replaced too.
    let g = spec(1, 1, vec![], vec![link(io(), io())]);
    c.apply(&g).unwrap();
    let out = run(&mut e, &[vec![f32::NAN, f32::INFINITY, 1.0]], 1, 64);
    assert_eq!(out[0], [0.0, 0.0, 1.0]);
    assert_eq!(c.stats().output_sanitized, 1);
}

/// A chain of `len` nodes of `kind` (all `test_gain` but node `odd` of kind `odd_kind`), `channels`
/// wide, from the input bus to the output bus.
fn chain(len: usize, channels: usize, odd: usize, odd_kind: &str) -> GraphSpec {
    let nodes = (0..len)
        .map(|i| node(&format!("n{i}"), if i == odd { odd_kind } else { "test_gain" }, channels, &[]))
        .collect();
    let mut links = vec![link(io(), n(0))];
    links.extend((1..len).map(|i| link(n(i - 1), n(i))));
    links.push(link(n(len - 1), io()));
    spec(channels, channels, nodes, links)
}

/// Per-node NaN resets of nodes `n0..n{len}`.
fn resets(c: &Controller, len: usize) -> Vec<u64> {
    (0..len).map(|i| c.meters(&format!("n{i}")).unwrap().nonfinite_resets()).collect()
}

#[test]
fn nan_state_in_the_middle_of_a_long_chain_is_found_reset_and_counted() {
    // Node 20 of 40 (stereo, so the engine's short path runs it) blows up and stays blown up until
    // reset. Its NaN reaches the output bus through every later node, whose buffers the chain has
    // long reused by the end of the block: the bus is sanitised, and the next block, checked node by
    // node, finds node 20 (its inputs finite, its output not), resets it and counts it there only.
    const LEN: usize = 40;
    let (mut c, mut e, _r) = make(64, 64);
    c.apply(&chain(LEN, 2, 20, "test_stuck")).unwrap();
    let input = vec![vec![0.25f32; 64], vec![-0.5f32; 64]];
    // Let the round-robin check move off the first step, so it does not matter here.
    for _ in 0..3 {
        assert_eq!(run(&mut e, &input, 2, 64), input);
    }
    c.set_param("n20", POISON, 1.0).unwrap();
    let mut blocks = 0;
    while c.meters("n20").unwrap().nonfinite_resets() == 0 {
        blocks += 1;
        assert!(blocks <= 2, "found within the block after the failed bus check");
        let out = run(&mut e, &input, 2, 64);
        assert!(out.iter().flatten().all(|x| x.is_finite()), "output finite in block {blocks}");
    }
    let mut want = vec![0; LEN];
    want[20] = 1;
    assert_eq!(resets(&c, LEN), want, "only the node that made the NaN is counted");
    assert_eq!(c.stats().nonfinite_resets, 1);
    // Reset, it runs normally again.
    assert_eq!(run(&mut e, &input, 2, 64), input);
    assert_eq!(resets(&c, LEN), want);
}

#[test]
fn one_block_nan_in_the_middle_of_a_chain_is_silenced_and_counted_once() {
    // A NaN that lasts one block, made by a node whose buffers are reused before the block ends: the
    // output is sanitised; the event is counted exactly once, against the node when a check saw it
    // being made, otherwise as output_sanitized (no node can be blamed after the fact).
    const LEN: usize = 40;
    let (mut c, mut e, _r) = make(64, 64);
    c.apply(&chain(LEN, 1, usize::MAX, "")).unwrap();
    let input = vec![vec![0.25f32; 64]];
    for _ in 0..5 {
        run(&mut e, &input, 1, 64);
    }
    c.set_param("n17", POISON, 1.0).unwrap();
    for _ in 0..4 {
        let out = run(&mut e, &input, 1, 64);
        assert!(out[0].iter().all(|x| x.is_finite()));
    }
    let counts = resets(&c, LEN);
    assert_eq!(counts.iter().enumerate().filter(|&(i, &k)| i != 17 && k > 0).count(), 0, "{counts:?}");
    assert_eq!(counts[17] + c.stats().output_sanitized, 1, "{counts:?} {:?}", c.stats());
    assert_eq!(run(&mut e, &input, 1, 64), input, "back to normal");
}

#[test]
fn nan_into_a_meter_only_sink_is_caught_in_the_same_block() {
    // `sink` listens to `a` and its output goes nowhere: the output bus can never show its NaN, so
    // the engine checks it every block.
    let (mut c, mut e, _r) = make(64, 64);
    let g = spec(
        1,
        1,
        vec![node("a", "test_gain", 1, &[]), node("sink", "test_gain", 1, &[])],
        vec![link(io(), n(0)), link(n(0), io()), link(n(0), n(1))],
    );
    c.apply(&g).unwrap();
    let input = vec![vec![0.5f32; 64]];
    for _ in 0..3 {
        run(&mut e, &input, 1, 64);
    }
    c.set_param("sink", POISON, 1.0).unwrap();
    assert_eq!(run(&mut e, &input, 1, 64), input, "the output never saw it");
    assert_eq!(c.meters("sink").unwrap().nonfinite_resets(), 1, "caught in the block it happened");
    assert_eq!(c.meters("a").unwrap().nonfinite_resets(), 0);
    assert_eq!(c.stats().output_sanitized, 0);
}

#[test]
fn nan_that_a_later_node_absorbs_is_still_found() {
    // The limiter treats non-finite input as silence, so a blown-up node before it never shows at the
    // output bus; the engine's round-robin check (one step every 1024 frames) finds it anyway.
    let (mut c, mut e, _r) = make(64, 64);
    let g = spec(
        1,
        1,
        vec![node("pre", "test_gain", 1, &[]), node("bad", "test_stuck", 1, &[]), node("lim", "limiter", 1, &[])],
        vec![link(io(), n(0)), link(n(0), n(1)), link(n(1), n(2)), link(n(2), io())],
    );
    c.apply(&g).unwrap();
    let input = vec![vec![0.1f32; 64]];
    run(&mut e, &input, 1, 64);
    c.set_param("bad", POISON, 1.0).unwrap();
    let mut frames = 0;
    while c.meters("bad").unwrap().nonfinite_resets() == 0 {
        let out = run(&mut e, &input, 1, 64);
        assert!(out[0].iter().all(|x| x.is_finite()));
        frames += 64;
        // Three steps, one checked every 1024 frames, plus the block the check falls in.
        assert!(frames <= 3 * 1024 + 1024, "not found after {frames} frames");
    }
    assert_eq!(c.meters("bad").unwrap().nonfinite_resets(), 1);
    assert_eq!(c.meters("lim").unwrap().nonfinite_resets(), 0);
    assert_eq!(c.meters("pre").unwrap().nonfinite_resets(), 0);
    assert_eq!(c.stats().output_sanitized, 0);
}

#[test]
fn set_sample_rate_remakes_nodes_with_their_parameters() {
    let (mut c, mut e, _r) = make(64, 64);
    let tone = registry::find("tone").unwrap().descriptor;
    let key = |k: &str| tone.params.iter().find(|p| p.key == k).unwrap().id;
    let (freq, level) = (key("freq_hz"), key("level_db"));
    let g = spec(
        0,
        1,
        vec![
            node("tone", "tone", 1, &[(freq, 1000.0), (level, -6.0)]),
            node("lim", "limiter", 1, &[(ballast_dsp::limiter::LOOKAHEAD_MS, 5.0)]),
        ],
        vec![link(n(0), n(1)), link(n(1), io())],
    );
    let at_48k = c.apply(&g).unwrap().latency_samples;
    assert_eq!(at_48k, limiter_latency_at(5.0, 48_000.0));
    c.set_param("lim", ballast_dsp::limiter::CEILING_DBTP, -3.0).unwrap();
    run(&mut e, &[], 1, 64);

    let report = c.set_sample_rate(44_100.0).unwrap();
    // Lookahead is set in ms: 5 ms is 240 samples at 48 kHz and 220.5 → the limiter's rounding at
    // 44.1 kHz (within a sample of the scaled value).
    assert_eq!(report.latency_samples, limiter_latency_at(5.0, 44_100.0));
    assert!((report.latency_samples as f64 - at_48k as f64 * 44_100.0 / 48_000.0).abs() <= 1.0);
    assert_eq!(c.latency_samples(), report.latency_samples);
    assert_eq!((report.inserted, report.kept, report.removed), (2, 0, 0));
    assert_eq!(c.sample_rate(), 44_100.0);
    assert_eq!(c.param("lim", ballast_dsp::limiter::CEILING_DBTP), Some(-3.0), "set_param value kept");
    assert_eq!(c.param("tone", freq), Some(1000.0));
    assert_eq!(c.param("lim", ballast_dsp::limiter::LOOKAHEAD_MS), Some(5.0));

    // One second at 44.1 kHz: the tone must still be 1000 Hz (a node left at 48 kHz would give
    // 1000 × 44.1 / 48 = 918.75 Hz). Positive-going zero crossings over the last 0.9 s, ±2 for the
    // partial cycles at either end.
    let out = run(&mut e, &[], 1, 64);
    assert!(out[0].iter().all(|x| x.is_finite()));
    let mut out = Vec::new();
    for _ in 0..(44_100 / 64 + 1) {
        let mut block = vec![0.0f32; 64];
        e.process(&[], &mut [&mut block]);
        out.extend(block);
    }
    let tail = &out[4_410..44_100];
    let crossings = tail.windows(2).filter(|w| w[0] <= 0.0 && w[1] > 0.0).count() as f64;
    let hz = crossings / (tail.len() as f64 / 44_100.0);
    assert!((hz - 1000.0).abs() <= 2.5, "tone at {hz} Hz after the rate change");
    let peak = tail.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(peak > 0.3 && peak < 0.71, "peak {peak}: the −6 dB level survived, the −3 dBTP ceiling holds");
    assert_eq!(c.stats().stale_commands, 0);
}

#[test]
fn set_sample_rate_with_a_full_ring_changes_nothing() {
    let (mut c, mut e, _r) = make(64, 4);
    let g = spec(1, 1, vec![node("lim", "limiter", 1, &[])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    run(&mut e, &[vec![0.0; 64]], 1, 64);
    // Fill the ring with harmless parameter sends, leaving one place: two are needed.
    while c.ring_free() > 1 {
        c.set_param("lim", ballast_dsp::limiter::CEILING_DBTP, -1.0).unwrap();
    }
    let latency = c.latency_samples();
    match c.set_sample_rate(96_000.0) {
        Err(EngineError::RingFull { needed: 2, free: 1 }) => {}
        other => panic!("expected RingFull, got {other:?}"),
    }
    assert_eq!(c.sample_rate(), 48_000.0);
    assert_eq!(c.latency_samples(), latency);
    run(&mut e, &[vec![0.0; 64]], 1, 64);
    assert!(c.set_sample_rate(96_000.0).unwrap().latency_samples > latency, "lookahead doubles in samples");
}

#[test]
fn current_spec_and_bypass_follow_edits() {
    let (mut c, mut e, _r) = make(64, 64);
    let three = spec(
        1,
        1,
        vec![
            node("a", "test_gain", 1, &[(GAIN, 2.0)]),
            node("b", "test_gain", 1, &[(GAIN, 0.5)]),
            node("c", "test_gain", 1, &[]),
        ],
        vec![link(io(), n(0)), link(n(0), n(1)), link(n(1), n(2)), link(n(2), io())],
    );
    c.apply(&three).unwrap();
    c.set_param("a", GAIN, 3.0).unwrap();
    c.set_param("c", GAIN, 4.0).unwrap();
    let now = c.current_spec();
    assert_eq!(now.nodes[0].params, [(GAIN, 3.0)], "set_param replaced the spec's value");
    assert_eq!(now.nodes[1].params, [(GAIN, 0.5)]);
    assert_eq!(now.nodes[2].params, [(GAIN, 4.0)], "set_param added a value the spec left out");
    assert_eq!((&now.links, &now.inputs, &now.outputs), (&three.links, &three.inputs, &three.outputs));
    assert_eq!(c.spec(), &three, "spec() stays the applied spec");

    assert!(c.bypassed().is_empty());
    c.bypass("b", true).unwrap();
    c.bypass("c", true).unwrap();
    c.bypass("c", false).unwrap();
    assert_eq!(c.bypassed(), ["b"]);
    // b survives an apply that drops c: still bypassed. Then b is removed, and comes back fresh.
    let two = spec(
        1,
        1,
        vec![node("a", "test_gain", 1, &[(GAIN, 2.0)]), node("b", "test_gain", 1, &[(GAIN, 0.5)])],
        vec![link(io(), n(0)), link(n(0), n(1)), link(n(1), io())],
    );
    c.apply(&two).unwrap();
    assert_eq!(c.bypassed(), ["b"]);
    assert_eq!(c.current_spec().nodes[0].params, [(GAIN, 2.0)], "the apply set a's gain back");
    c.apply(&spec(1, 1, vec![node("a", "test_gain", 1, &[])], vec![link(io(), n(0)), link(n(0), io())])).unwrap();
    assert!(c.bypassed().is_empty(), "a removed node drops out");
    c.apply(&two).unwrap();
    assert!(c.bypassed().is_empty(), "a node made again starts processing");

    // Bypass survives a sample-rate change, on the RT side too: a bypassed ×2 passes its input.
    c.bypass("a", true).unwrap();
    let input = vec![vec![0.2f32; 64]];
    for _ in 0..4 {
        run(&mut e, &input, 1, 64);
    }
    c.set_sample_rate(44_100.0).unwrap();
    assert_eq!(c.bypassed(), ["a"]);
    let out = run(&mut e, &input, 1, 64);
    assert_eq!(out[0], vec![0.1f32; 64], "a bypassed (×1), b ×0.5, from the first sample");
}

#[test]
fn bypass_crossfades_and_keeps_latency() {
    let (mut c, mut e, _r) = make(64, 64);
    // A ×2 node with 7 samples of latency; bypass must give the input delayed by 7 samples.
    let g = spec(1, 1, vec![node("d", "test_delay7", 1, &[(GAIN, 2.0)])], vec![link(io(), n(0)), link(n(0), io())]);
    c.apply(&g).unwrap();
    let input: Vec<f32> = (0..4096).map(|i| 0.001 * i as f32).collect();
    let first = run(&mut e, &[input[..1024].to_vec()], 1, 64);
    for t in 7..1024 {
        assert_eq!(first[0][t], 2.0 * input[t - 7]);
    }
    c.bypass("d", true).unwrap();
    let second = run(&mut e, &[input[1024..].to_vec()], 1, 64);
    // Crossfade of 1 ms = 48 samples from ×2 to ×1, monotone, then exactly the delayed input.
    let ratio: Vec<f32> = (0..64).map(|t| second[0][t] / input[1024 + t - 7]).collect();
    assert!(ratio.windows(2).all(|w| w[1] <= w[0] + 1e-6), "{ratio:?}");
    assert!((ratio[0] - 2.0).abs() < 0.05 && (ratio[47] - 1.0).abs() < 1e-6, "{ratio:?}");
    for t in 64..3072 {
        // wet = 0: out = 0·node + 1·dry exactly.
        assert_eq!(second[0][t], input[1024 + t - 7], "t {t}");
    }
    c.bypass("d", false).unwrap();
    let third = run(&mut e, &[vec![1.0; 256]], 1, 64);
    assert_eq!(third[0][255], 2.0, "back to the processed path");
}

#[test]
fn allocation_guard_is_live() {
    // Negative control: the guard in this binary does see an allocation (so zero below means zero).
    reset_violation_count();
    let v = assert_no_alloc(|| vec![1u8; 16]);
    assert_eq!(violation_count(), 1);
    drop(v);
    reset_violation_count();
}

#[test]
fn output_is_identical_for_every_block_size() {
    // A broadcast-like chain with a parallel dry path (latency compensated) and a mono tap: the output
    // must not depend on how the signal is cut into blocks (1 sample, odd sizes, longer than max_block).
    use ballast_dsp::limiter;
    let g = GraphSpec {
        inputs: vec!["l".into(), "r".into()],
        outputs: vec!["l".into(), "r".into(), "mono".into()],
        nodes: vec![
            NodeSpec {
                name: "mbc".into(),
                kind: "multiband".into(),
                shape: Shape { channels: 2, bands: 4 },
                params: vec![],
            },
            node("level", "loudness", 2, &[]),
            node("lim", "limiter", 2, &[(limiter::LOOKAHEAD_MS, 1.5)]),
            node("tap", "test_gain", 1, &[(GAIN, 0.5)]),
        ],
        links: vec![
            link(io(), n(0)),
            link(n(0), n(1)),
            link(n(1), n(2)),
            link(n(2), Endpoint::Io { channel: Some(0) }),
            link(Endpoint::Node { node: 2, channel: Some(1) }, Endpoint::Io { channel: Some(1) }),
            link(io(), n(3)),
            link(n(3), Endpoint::Io { channel: Some(2) }),
            link(Endpoint::Io { channel: Some(0) }, Endpoint::Io { channel: Some(2) }),
        ],
    };
    let mut rng = Rng(99);
    let input = noise(&mut rng, 2, 6000, 0.7);
    let mut reference: Option<Vec<Vec<f32>>> = None;
    for block in [1usize, 7, 64, 256, 1000, 6000] {
        let (mut c, mut e, _r) = make(256, 64);
        let rep = c.apply(&g).unwrap();
        assert!(rep.latency_samples > 0);
        let out = run(&mut e, &input, 3, block);
        assert!(out.iter().flatten().all(|x| x.is_finite()));
        match &reference {
            None => reference = Some(out),
            Some(r) => assert!(out == *r, "block size {block} changes the output"),
        }
    }
}

#[test]
fn engine_runs_on_its_own_thread_while_the_control_side_edits() {
    fn assert_send<T: Send>() {}
    assert_send::<Engine>();
    assert_send::<Controller>();
    assert_send::<Reclaimer>();
    let (mut c, mut e, r) = make(128, 64);
    let reclaim = r.spawn(std::time::Duration::from_millis(1)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let rt = std::thread::spawn(move || {
        let input = [0.25f32; 128];
        let mut out = [[0.0f32; 128]; 2];
        let mut violations = 0;
        let mut blocks = 0u64;
        while !stop2.load(Ordering::Acquire) {
            reset_violation_count();
            let (o0, o1) = out.split_at_mut(1);
            assert_no_alloc(|| e.process(&[&input, &input], &mut [&mut o0[0], &mut o1[0]]));
            violations += violation_count();
            assert!(out.iter().flatten().all(|x| x.is_finite()));
            blocks += 1;
            std::thread::yield_now();
        }
        (violations, blocks)
    });
    let mut rng = Rng(5);
    let kinds = ["compressor", "limiter", "loudness_meter", "test_gain"];
    for i in 0..300 {
        let count = 1 + rng.below(6);
        let nodes: Vec<NodeSpec> =
            (0..count).map(|k| node(&format!("n{k}"), kinds[(k + i / 7) % kinds.len()], 2, &[])).collect();
        let mut links = vec![link(io(), n(0)), link(n(count - 1), io())];
        links.extend((1..count).map(|k| link(n(k - 1), n(k))));
        match c.apply(&spec(2, 2, nodes, links)) {
            Ok(_) | Err(EngineError::RingFull { .. }) => {}
            Err(err) => panic!("{err}"),
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    stop.store(true, Ordering::Release);
    let (violations, blocks) = rt.join().unwrap();
    drop(reclaim);
    let stats = c.stats();
    assert_eq!(violations, 0);
    assert!(blocks > 0 && stats.blocks == blocks);
    assert_eq!(stats.leaked, 0);
    assert!(stats.reclaimed > 0, "{stats:?}");
}

#[test]
fn bypassed_dry_path_follows_a_latency_change() {
    use ballast_dsp::limiter::LOOKAHEAD_MS;
    let (l1, l2) = (limiter_latency(1.0), limiter_latency(4.0));
    assert_ne!(l1, l2);
    let (mut c, mut e, mut r) = make(64, 64);
    let g =
        spec(1, 1, vec![node("lim", "limiter", 1, &[(LOOKAHEAD_MS, 1.0)])], vec![link(io(), n(0)), link(n(0), io())]);
    assert_eq!(c.apply(&g).unwrap().latency_samples, l1);
    c.bypass("lim", true).unwrap();
    let input: Vec<f32> = (0..8192).map(|i| 0.9 * (i as f32 * 0.05).sin()).collect();
    let first = run(&mut e, &[input[..4096].to_vec()], 1, 64);
    for t in 1024..4096 {
        assert_eq!(first[0][t], input[t - l1], "bypassed: the input delayed by the lookahead, t {t}");
    }
    c.set_param("lim", LOOKAHEAD_MS, 4.0).unwrap();
    assert_eq!(c.latency_samples(), l2);
    let second = run(&mut e, &[input[4096..].to_vec()], 1, 64);
    for t in 1024..4096 {
        assert_eq!(second[0][t], input[4096 + t - l2], "after the change: the new lookahead, t {t}");
    }
    // Old schedule and old dry path both went to the reclaimer (plus the first, empty-graph swap's
    // nothing: the engine started without a schedule).
    assert_eq!(r.collect(), 2);
}

// ---------------------------------------------------------------------------------------------
// Thousands of random edits under the allocation guard

/// The random part of the graph, as the test tracks it.
struct RandNode {
    name: String,
    kind: &'static str,
    shape: Shape,
    params: Vec<(ParamId, f32)>,
    /// Index into the "sources" list: 0 = input bus, 1 = ref_lim, 2 = ref_meter, 3 + k = random node k.
    source: Option<usize>,
}

fn random_value(rng: &mut Rng, p: &ParamDescriptor) -> f32 {
    let v = match p.unit {
        Unit::Choice(opts) => rng.below(opts.len()) as f32,
        Unit::Bool => rng.below(2) as f32,
        _ => {
            let max = if p.max.is_finite() { p.max } else { p.min.max(1.0) * 40.0 };
            if p.scale == Scale::Log && p.min > 0.0 {
                p.min * (max / p.min).powf(rng.unit())
            } else {
                p.min + (max - p.min) * rng.unit()
            }
        }
    };
    v.clamp(p.min, p.max)
}

fn random_param(rng: &mut Rng, kind: &str, bands: usize) -> Option<(ParamId, f32)> {
    let d = if kind == "test_gain" { &GAIN_DESCRIPTOR } else { registry::find(kind)?.descriptor };
    let use_band = !d.band_params.is_empty() && (d.params.is_empty() || rng.chance(0.5));
    let (id, p) = if use_band {
        let p = &d.band_params[rng.below(d.band_params.len())];
        (ParamId::band(rng.below(bands), p.id), p)
    } else {
        let p = &d.params[rng.below(d.params.len())];
        (p.id, p)
    };
    let v = random_value(rng, p);
    p.validate(v).ok().map(|v| (id, v))
}

fn build(ref_nodes: &[NodeSpec], rand: &[RandNode]) -> GraphSpec {
    let mut nodes = ref_nodes.to_vec();
    // in → ref_lim → ref_meter → out: the untouched branch.
    let mut links = vec![link(io(), n(0)), link(n(0), n(1)), link(n(1), io())];
    for (k, r) in rand.iter().enumerate() {
        nodes.push(NodeSpec { name: r.name.clone(), kind: r.kind.into(), shape: r.shape, params: r.params.clone() });
        let me = n(ref_nodes.len() + k);
        let generator = registry::find(r.kind).is_some_and(|e| e.generator);
        if let (Some(s), false) = (r.source, generator) {
            let from = if s == 0 { io() } else { n(s - 1) };
            links.push(link(from, me));
        }
    }
    GraphSpec { inputs: vec!["l".into(), "r".into()], outputs: vec!["l".into(), "r".into()], nodes, links }
}

/// Noise at 0.5 peak; one block in 50 carries a NaN and an infinity (the same in both runs).
fn hostile_noise(rng: &mut Rng, frames: usize) -> Vec<Vec<f32>> {
    let mut v = noise(rng, 2, frames, 0.5);
    if rng.below(50) == 0 {
        let t = rng.below(frames);
        v[0][t] = f32::NAN;
        v[1][frames - 1 - t] = f32::INFINITY;
    }
    v
}

/// Meter cells of the untouched nodes, as bits.
fn ref_meters(c: &Controller) -> Vec<u32> {
    let mut v = Vec::new();
    for name in ["ref_lim", "ref_meter"] {
        let m = c.meters(name).unwrap();
        for i in 0..m.descriptor().meters.len() {
            v.push(m.get(i, 0).unwrap().to_bits());
        }
    }
    v
}

#[test]
fn thousands_of_random_edits_under_the_allocation_guard() {
    const OPS: usize = 9000;
    let ref_nodes = vec![
        node(
            "ref_lim",
            "limiter",
            2,
            &[(ballast_dsp::limiter::INPUT_GAIN_DB, 9.0), (ballast_dsp::limiter::LOOKAHEAD_MS, 2.0)],
        ),
        node("ref_meter", "loudness_meter", 2, &[]),
    ];
    // Every registry kind, plus the test gain whose `poison` parameter makes it emit NaN (so the
    // engine's reset path runs under the guard too).
    let mut kinds: Vec<&'static str> = registry::kinds().iter().map(|k| k.descriptor.kind).collect();
    kinds.push("test_gain");

    // The reference: the untouched branch alone, same input, same block sizes.
    let mut sizes = Rng(11);
    let mut sig = Rng(12);
    let (mut rc, mut re, mut rr) = make(256, 1024);
    rc.apply(&build(&ref_nodes, &[])).unwrap();
    let mut ref_out: Vec<Vec<f32>> = vec![Vec::new(); 2];
    let mut ref_meter_log: Vec<Vec<u32>> = Vec::new();
    let blocks = OPS / 3;
    for _ in 0..blocks {
        let frames = 1 + sizes.below(300); // sometimes longer than max_block: split inside
        let input = hostile_noise(&mut sig, frames);
        let out = run(&mut re, &input, 2, frames);
        ref_out[0].extend(&out[0]);
        ref_out[1].extend(&out[1]);
        ref_meter_log.push(ref_meters(&rc));
        rr.collect();
    }

    let mut sizes = Rng(11);
    let mut sig = Rng(12);
    let mut rng = Rng(0xBA11A57);
    let (mut c, mut e, mut r) = make(256, 1024);
    let mut rand: Vec<RandNode> = Vec::new();
    let mut next_name = 0;
    c.apply(&build(&ref_nodes, &rand)).unwrap();
    let mut out_all: Vec<Vec<f32>> = vec![Vec::new(); 2];
    let mut meter_log: Vec<Vec<u32>> = Vec::new();
    let (mut edits, mut params, mut bypasses, mut inserted, mut removed) = (0, 0, 0, 0, 0);
    let mut in_buf = vec![vec![0.0f32; 300]; 2];
    let mut out_buf = vec![vec![0.0f32; 300]; 2];
    reset_violation_count();
    let mut block = 0;
    while block < blocks {
        match rng.below(12) {
            // Process a block (a third of the operations).
            0..=3 => {
                let frames = 1 + sizes.below(300);
                let input = hostile_noise(&mut sig, frames);
                for ch in 0..2 {
                    in_buf[ch][..frames].copy_from_slice(&input[ch]);
                }
                {
                    let ins: [&[f32]; 2] = [&in_buf[0][..frames], &in_buf[1][..frames]];
                    let (o0, o1) = out_buf.split_at_mut(1);
                    let mut outs: [&mut [f32]; 2] = [&mut o0[0][..frames], &mut o1[0][..frames]];
                    assert_no_alloc(|| e.process(&ins, &mut outs));
                }
                for ch in 0..2 {
                    assert!(out_buf[ch][..frames].iter().all(|x| x.is_finite()), "non-finite output");
                    out_all[ch].extend(&out_buf[ch][..frames]);
                }
                meter_log.push(ref_meters(&c));
                block += 1;
                if rng.chance(0.5) {
                    r.collect();
                }
            }
            // Insert a random node fed by the input, an untouched node or another random node.
            4 | 5 if rand.len() < 12 => {
                let kind = kinds[rng.below(kinds.len())];
                let band_range = registry::find(kind).and_then(|e| e.bands.clone());
                let bands = band_range.map_or(0, |b| b.start() + rng.below(b.end() - b.start() + 1));
                let shape = Shape { channels: 1 + rng.below(2), bands };
                let mut p = Vec::new();
                for _ in 0..rng.below(3) {
                    p.extend(random_param(&mut rng, kind, bands.max(1)));
                }
                let source = Some(rng.below(3 + rand.len()));
                rand.push(RandNode { name: format!("r{next_name}"), kind, shape, params: p, source });
                next_name += 1;
                inserted += 1;
                edits += 1;
                apply_ok(&mut c, &build(&ref_nodes, &rand));
            }
            // Remove a random node; its readers fall back to the input bus.
            6 if !rand.is_empty() => {
                let k = rng.below(rand.len());
                rand.remove(k);
                for r in rand.iter_mut() {
                    r.source = match r.source {
                        Some(s) if s == 3 + k => Some(0),
                        Some(s) if s > 3 + k => Some(s - 1),
                        s => s,
                    };
                }
                removed += 1;
                edits += 1;
                apply_ok(&mut c, &build(&ref_nodes, &rand));
            }
            // Rewire: a new source among those before it (so the graph stays acyclic), or none.
            7 if !rand.is_empty() => {
                let k = rng.below(rand.len());
                rand[k].source = if rng.chance(0.1) { None } else { Some(rng.below(3 + k)) };
                edits += 1;
                apply_ok(&mut c, &build(&ref_nodes, &rand));
            }
            // Parameter change through a new spec (diffed into SetParam) or directly.
            8 | 9 if !rand.is_empty() => {
                let k = rng.below(rand.len());
                if let Some((id, v)) = random_param(&mut rng, rand[k].kind, rand[k].shape.bands.max(1)) {
                    if rng.chance(0.5) {
                        rand[k].params.retain(|(i, _)| *i != id);
                        rand[k].params.push((id, v));
                        apply_ok(&mut c, &build(&ref_nodes, &rand));
                    } else {
                        c.set_param(&rand[k].name, id, v).unwrap();
                        rand[k].params.retain(|(i, _)| *i != id);
                        rand[k].params.push((id, v));
                    }
                    params += 1;
                }
            }
            // Bypass toggle.
            10 if !rand.is_empty() => {
                let k = rng.below(rand.len());
                c.bypass(&rand[k].name, rng.chance(0.5)).unwrap();
                bypasses += 1;
            }
            // Re-apply the same spec: nothing but a schedule swap.
            _ => {
                edits += 1;
                apply_ok(&mut c, &build(&ref_nodes, &rand));
            }
        }
    }
    let violations = violation_count();
    r.collect();
    let stats = c.stats();
    println!(
        "{blocks} blocks, {edits} graph edits ({inserted} inserts, {removed} removes), {params} parameter \
         changes, {bypasses} bypass toggles; {violations} allocation violations; stats {stats:?}"
    );
    assert!(edits + params + bypasses >= 1000, "thousands of operations: {}", edits + params + bypasses);
    assert_eq!(violations, 0, "allocations or frees on the RT side");
    assert_eq!(stats.leaked, 0);
    assert!(stats.nonfinite_resets > 0, "poisoned test nodes were reset");
    assert_eq!(stats.stale_commands, 0);
    assert_eq!(stats.param_refused, 0);
    assert_eq!(meter_log.len(), ref_meter_log.len());
    for (b, (a, r)) in meter_log.iter().zip(&ref_meter_log).enumerate() {
        assert_eq!(a, r, "untouched nodes' meters differ at block {b}");
    }
    // Random nodes never feed the output bus, so its latency is the untouched branch's: every sample
    // of the output must match the run without edits bit for bit.
    assert_eq!(out_all[0].len(), ref_out[0].len());
    for ch in 0..2 {
        if let Some(t) = (0..out_all[ch].len()).find(|&t| out_all[ch][t].to_bits() != ref_out[ch][t].to_bits()) {
            panic!("output ch {ch} differs at sample {t}: {} vs {}", out_all[ch][t], ref_out[ch][t]);
        }
    }
}

/// Applies a spec that must be accepted (the ring of 1024 never fills: the RT side drains every few
/// operations).
fn apply_ok(c: &mut Controller, g: &GraphSpec) {
    if let Err(err) = c.apply(g) {
        panic!("random edit refused: {err}");
    }
}

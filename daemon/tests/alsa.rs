//! The ALSA backend against real ALSA PCMs. There is no sound card on the machines these run on, so
//! the PCMs are alsa-lib's own plugins:
//! - `file` (with a `null` slave) tees playback to a file; with `infile` it reads the capture stream
//!   from a raw file. Its output is a FIFO read by the test: writes block once the pipe is full, which
//!   paces the loop (`null` alone runs as fast as the CPU) and bounds the data to what the test reads.
//! - `linear` with an S16 slave refuses float, so the backend falls back to an integer format.
//!
//! The PCMs are defined in a config file written once per test binary, and ALSA is pointed at it
//! with `ALSA_CONFIG_PATH`. That variable replaces alsa-lib's whole configuration, so the file first
//! includes `/usr/share/alsa/alsa.conf` to keep the standard names (`null`, `default`, `plughw`…).
//! Checked with alsa-lib 1.2.8: the include works; the PCMs below are self-contained (inline
//! `type null` slaves), so they also work without it, and nothing is read from `~/.asoundrc`.
//!
//! Every audio loop runs under `assert_no_alloc` through `start_guarded`; allocations on any audio
//! thread are counted in `RT_VIOLATIONS`, and each test asserts none happened.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use assert_no_alloc::{assert_no_alloc, reset_violation_count, violation_count};
use ballast_dsp::registry::{self, Shape};
use ballast_dsp::ParamId;
use ballastd::backend::alsa::{self, AlsaBackend, AlsaOptions, SampleFormat};
use ballastd::backend::{Backend, BackendEvent, BackendState};
use ballastd::engine::{self, Engine, EngineConfig, Reclaimer};
use ballastd::graph::{Endpoint, GraphSpec, Link, NodeSpec};
use crossbeam_channel::Receiver;

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

const RATE: u32 = 48_000;
const PERIOD: usize = 256;
const PERIODS: u32 = 2;
/// Playback is primed with one buffer of silence.
const PRIME: usize = PERIOD * PERIODS as usize;
/// Generous: the machine is a loaded 2-core CI box.
const TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// The allocation guard around every audio cycle

/// Allocations seen on audio threads (`assert_no_alloc` counts per thread; the guard moves the count
/// here so the test thread can read it).
static RT_VIOLATIONS: AtomicU32 = AtomicU32::new(0);
/// Cycles run under the guard (to show it wrapped the loop at all).
static GUARDED_CYCLES: AtomicU64 = AtomicU64::new(0);

fn no_alloc_guard(cycle: &mut dyn FnMut()) {
    assert_no_alloc(cycle);
    let v = violation_count();
    if v > 0 {
        RT_VIOLATIONS.fetch_add(v, Ordering::Relaxed);
        reset_violation_count();
    }
    GUARDED_CYCLES.fetch_add(1, Ordering::Relaxed);
}

fn assert_no_rt_alloc() {
    assert_eq!(RT_VIOLATIONS.load(Ordering::Relaxed), 0, "an audio thread allocated");
}

// ---------------------------------------------------------------------------------------------
// ALSA configuration and files

/// The directory holding the config, the FIFOs and the input files; ALSA is pointed at the config.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // No teardown runs after the last test of a binary: each run removes what earlier runs (whose
        // process is gone) left behind.
        for entry in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("ballast-alsa-test-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = std::env::temp_dir().join(format!("ballast-alsa-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lost")).unwrap();
        let d = dir.display();
        let null = "slave { pcm { type null } }";
        let conf = format!(
            r#"</usr/share/alsa/alsa.conf>
pcm.ballast_tone {{ type file; {null}; file "{d}/tone.fifo"; format "raw" }}
pcm.ballast_loop_out {{ type file; {null}; file "{d}/loop.fifo"; format "raw" }}
pcm.ballast_loop_in {{ type file; {null}; file "/dev/null"; infile "{d}/loop_in.raw"; format "raw" }}
pcm.ballast_xrun {{ type file; {null}; file "{d}/xrun.fifo"; format "raw" }}
pcm.ballast_alloc {{ type file; {null}; file "{d}/alloc.fifo"; format "raw" }}
pcm.ballast_alloc_in {{ type file; {null}; file "/dev/null"; infile "/dev/zero"; format "raw" }}
pcm.ballast_prio {{ type file; {null}; file "{d}/prio.fifo"; format "raw" }}
pcm.ballast_lost {{ type file; {null}; file "{d}/lost/out.fifo"; format "raw" }}
pcm.ballast_int16 {{ type linear; slave {{ pcm "ballast_int16_tee"; format S16_LE }} }}
pcm.ballast_int16_tee {{ type file; {null}; file "{d}/int16.fifo"; format "raw" }}
"#
        );
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("ballastd=debug").try_init();
        let path = dir.join("asound.conf");
        std::fs::write(&path, conf).unwrap();
        // Before any thread of this binary calls into ALSA: every test reaches ALSA through `dir()`.
        std::env::set_var("ALSA_CONFIG_PATH", &path);
        std::fs::write(dir.join("loop_in.raw"), f32_bytes(&loop_input())).unwrap();
        dir
    })
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Reads a FIFO the backend's `file` plugin writes to. Keeps the first `keep` bytes, then stops
/// reading (the backend blocks on the full pipe) until `drain`, after which it reads and discards
/// until the writer closes. With `pause_at`, it also stops after that many bytes until `resume`
/// (so the test can act while the backend is held at a known point).
struct Sink {
    progress: Arc<AtomicUsize>,
    drain: crossbeam_channel::Sender<()>,
    resume: crossbeam_channel::Sender<()>,
    handle: JoinHandle<Vec<u8>>,
}

impl Sink {
    fn spawn(path: &Path, keep: usize) -> Self {
        Self::spawn_pausing(path, keep, usize::MAX)
    }

    fn spawn_pausing(path: &Path, keep: usize, pause_at: usize) -> Self {
        let path = path.to_path_buf();
        let progress = Arc::new(AtomicUsize::new(0));
        let (drain, drain_rx) = crossbeam_channel::bounded::<()>(1);
        let (resume, resume_rx) = crossbeam_channel::bounded::<()>(1);
        let p = progress.clone();
        let handle = std::thread::spawn(move || {
            // Blocks until the plugin opens the FIFO for writing.
            let mut f = File::open(&path).unwrap();
            let mut kept = Vec::with_capacity(keep);
            let mut buf = vec![0u8; 1 << 16];
            let mut paused = false;
            while kept.len() < keep {
                if !paused && kept.len() >= pause_at {
                    paused = true;
                    let _ = resume_rx.recv();
                }
                let limit = if paused { keep } else { pause_at.min(keep) };
                let want = buf.len().min(limit - kept.len());
                let n = f.read(&mut buf[..want]).unwrap();
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                p.store(kept.len(), Ordering::Release);
            }
            let _ = drain_rx.recv();
            while f.read(&mut buf).unwrap_or(0) > 0 {}
            kept
        });
        Self { progress, drain, resume, handle }
    }

    /// Declare after the backend: if the test panics, the sink drains before the backend is dropped
    /// (dropping it stops the loop, which may be blocked writing to the full pipe).
    fn drain_on_unwind(&self) -> DrainOnDrop {
        DrainOnDrop(self.drain.clone(), self.resume.clone())
    }

    fn wait_for(&self, bytes: usize) {
        let start = Instant::now();
        while self.progress.load(Ordering::Acquire) < bytes {
            assert!(
                start.elapsed() < TIMEOUT,
                "only {} of {bytes} bytes arrived",
                self.progress.load(Ordering::Acquire)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn resume(&self) {
        self.resume.send(()).unwrap();
    }

    /// Waits for `keep` bytes, stops the backend (the sink drains meanwhile) and returns the bytes kept.
    fn finish(self, keep: usize, backend: Box<AlsaBackend>) -> (Vec<u8>, Option<Engine>) {
        self.wait_for(keep);
        self.drain.send(()).unwrap();
        let started = Instant::now();
        let engine = backend.stop();
        // Not a speed assertion on the machine: stop only waits for the period in flight.
        eprintln!("stop took {:?}", started.elapsed());
        assert!(started.elapsed() < TIMEOUT, "stop took {:?}", started.elapsed());
        (self.handle.join().unwrap(), engine)
    }
}

struct DrainOnDrop(crossbeam_channel::Sender<()>, crossbeam_channel::Sender<()>);

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
        let _ = self.1.try_send(());
    }
}

// ---------------------------------------------------------------------------------------------
// Graphs and engines

fn param(kind: &str, key: &str) -> ParamId {
    registry::find(kind).unwrap().descriptor.param_by_key(key).unwrap().id
}

/// A 1 kHz sine at -6 dBFS on both outputs.
fn tone_graph() -> GraphSpec {
    tone_graph_at(1000.0)
}

/// A sine at `freq_hz`, -6 dBFS, on both outputs.
fn tone_graph_at(freq_hz: f32) -> GraphSpec {
    GraphSpec {
        inputs: vec![],
        outputs: vec!["out_l".into(), "out_r".into()],
        nodes: vec![NodeSpec {
            name: "tone".into(),
            kind: "tone".into(),
            shape: Shape { channels: 2, bands: 0 },
            params: vec![(param("tone", "freq_hz"), freq_hz), (param("tone", "level_db"), -6.0)],
        }],
        links: vec![Link { from: Endpoint::Node { node: 0, channel: None }, to: Endpoint::Io { channel: None } }],
    }
}

/// The inputs straight to the outputs.
fn through_graph() -> GraphSpec {
    GraphSpec {
        inputs: vec!["in_l".into(), "in_r".into()],
        outputs: vec!["out_l".into(), "out_r".into()],
        nodes: vec![],
        links: vec![Link { from: Endpoint::Io { channel: None }, to: Endpoint::Io { channel: None } }],
    }
}

fn engine_for(graph: &GraphSpec) -> (engine::Controller, Engine, Reclaimer) {
    let (mut c, e, r) = engine::new(EngineConfig { sample_rate: RATE as f64, max_block: PERIOD, ..Default::default() });
    c.apply(graph).unwrap();
    (c, e, r)
}

/// `graph` rendered by the engine directly, `blocks` blocks of `PERIOD` frames without inputs,
/// interleaved.
fn offline(graph: &GraphSpec, blocks: usize) -> Vec<f32> {
    let (_c, mut e, _r) = engine_for(graph);
    let n = graph.outputs.len();
    let mut outs = vec![vec![0.0f32; PERIOD]; n];
    let mut out = Vec::with_capacity(blocks * PERIOD * n);
    for _ in 0..blocks {
        let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(|v| &mut v[..]).collect();
        e.process(&[], &mut refs);
        for i in 0..PERIOD {
            for ch in &outs {
                out.push(ch[i]);
            }
        }
    }
    out
}

fn options(device: &str, inputs: usize, outputs: usize) -> AlsaOptions {
    AlsaOptions {
        device: device.into(),
        capture_device: None,
        sample_rate: RATE,
        period: PERIOD,
        periods: PERIODS,
        inputs,
        outputs,
        rt_priority: 10,
    }
}

fn start(opts: AlsaOptions, engine: Engine) -> (Box<AlsaBackend>, Receiver<BackendEvent>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let backend = alsa::start_guarded(opts, engine, tx, no_alloc_guard).unwrap();
    (Box::new(backend), rx)
}

fn next_event(rx: &Receiver<BackendEvent>) -> BackendEvent {
    rx.recv_timeout(TIMEOUT).expect("no backend event")
}

fn channel(interleaved: &[f32], c: usize, n: usize) -> Vec<f32> {
    interleaved.iter().skip(c).step_by(n).copied().collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Playback through the `file` plugin: the recording is a 1 kHz sine at -6 dBFS, and sample for
/// sample what the engine renders offline for the same graph, after the one buffer of priming silence.
#[test]
fn playback_matches_offline_render() {
    let d = dir();
    mkfifo(&d.join("tone.fifo"));
    let blocks = 200; // ~1.07 s
    let keep = (PRIME + blocks * PERIOD) * 2 * 4;
    let sink = Sink::spawn(&d.join("tone.fifo"), keep);
    let graph = tone_graph();
    let (_c, engine, _r) = engine_for(&graph);
    let (backend, events) = start(options("ballast_tone", 0, 2), engine);
    let _drain = sink.drain_on_unwind();
    assert_eq!(next_event(&events), BackendEvent::Running { sample_rate: RATE, block_size: PERIOD });
    let f = backend.format();
    assert_eq!((f.sample_rate, f.period, f.periods, f.prime_frames), (RATE, PERIOD, PERIODS, PRIME));
    assert_eq!(f.playback_format, SampleFormat::F32);
    assert_eq!(f.capture_format, None);
    let stats = backend.stats();
    assert_eq!(stats.state(), BackendState::Running);
    assert_eq!((stats.sample_rate(), stats.block_size()), (RATE, PERIOD));

    let (bytes, engine) = sink.finish(keep, backend);
    assert!(engine.is_some(), "stop returns the engine");
    assert_eq!(stats.state(), BackendState::Stopped);
    assert!(stats.cycles() >= blocks as u64);
    assert_eq!(stats.xruns(), 0);
    let dsp = stats.dsp_load();
    assert!(dsp.is_finite() && dsp > 0.0, "dsp load {dsp}");

    let got = bytes_f32(&bytes);
    assert!(got[..PRIME * 2].iter().all(|&x| x == 0.0), "priming is silence");
    let played = &got[PRIME * 2..];
    let want = offline(&graph, blocks);
    assert_eq!(played.len(), want.len());
    let first_diff = played.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(first_diff, None, "ALSA output differs from the offline render");

    // The signal itself, past the tone's start-up (decimator delay, 30.75 samples).
    let left = &channel(played, 0, 2)[2048..];
    assert_eq!(left, &channel(played, 1, 2)[2048..], "both channels carry the tone");
    let rms = (left.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / left.len() as f64).sqrt();
    let level_db = 20.0 * (rms * 2f64.sqrt()).log10();
    // -6 dBFS peak; the band-limited oscillator's passband ripple at 1 kHz is far below 0.05 dB.
    assert!((level_db + 6.0).abs() < 0.05, "level {level_db:.3} dBFS");
    // Frequency from the first and last upward zero crossings (linear interpolation between samples).
    let ups: Vec<f64> = left
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + (-w[0] / (w[1] - w[0])) as f64)
        .collect();
    let freq = (ups.len() - 1) as f64 * RATE as f64 / (ups[ups.len() - 1] - ups[0]);
    // Interpolation error is a small fraction of a sample over ~50 000 samples: 0.05 Hz is loose.
    assert!((freq - 1000.0).abs() < 0.05, "frequency {freq:.4} Hz");
    assert!(GUARDED_CYCLES.load(Ordering::Relaxed) >= blocks as u64);
    assert_no_rt_alloc();
}

/// A deterministic stereo signal (two different sines with a slow sweep and an offset between
/// channels), 0.75 s, not a whole number of periods.
fn loop_input() -> Vec<f32> {
    let frames = 36_000 + 77;
    let mut x = Vec::with_capacity(frames * 2);
    for i in 0..frames {
        let t = i as f64 / RATE as f64;
        x.push((0.5 * (2.0 * std::f64::consts::PI * (440.0 + 200.0 * t) * t).sin()) as f32);
        x.push((0.25 * (2.0 * std::f64::consts::PI * 3_000.0 * t).cos() - 0.1) as f32);
    }
    x
}

/// Capture → engine → playback: what the `file` plugin reads from `infile` comes out of playback
/// unchanged (the graph is a plain link, latency 0), one priming buffer late, and silence after the
/// input file ends.
#[test]
fn capture_through_engine_to_playback() {
    let d = dir();
    mkfifo(&d.join("loop.fifo"));
    let input = loop_input();
    let in_frames = input.len() / 2;
    let tail = 4 * PERIOD;
    let keep = (PRIME + in_frames + tail) * 2 * 4;
    let sink = Sink::spawn(&d.join("loop.fifo"), keep);
    let graph = through_graph();
    let (c, engine, _r) = engine_for(&graph);
    assert_eq!(c.latency_samples(), 0);
    let mut opts = options("ballast_loop_out", 2, 2);
    opts.capture_device = Some("ballast_loop_in".into());
    let (backend, events) = start(opts, engine);
    let _drain = sink.drain_on_unwind();
    assert!(matches!(next_event(&events), BackendEvent::Running { .. }));
    let f = backend.format();
    assert_eq!(f.capture_format, Some(SampleFormat::F32));
    let (bytes, _) = sink.finish(keep, backend);
    let got = bytes_f32(&bytes);
    assert!(got[..PRIME * 2].iter().all(|&x| x == 0.0), "priming is silence");
    let body = &got[PRIME * 2..(PRIME + in_frames) * 2];
    let first_diff = body.iter().zip(&input).position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(first_diff, None, "playback differs from the captured input");
    assert!(got[(PRIME + in_frames) * 2..].iter().all(|&x| x == 0.0), "silence after the input ends");
    assert_no_rt_alloc();
}

/// Finds the first run of at least `PRIME` silent frames in `x` (interleaved, `n` channels) from
/// frame `from` on; returns its first frame.
fn silent_run(x: &[f32], n: usize, from: usize) -> Option<usize> {
    let frames = x.len() / n;
    let mut run = 0;
    for i in from..frames {
        if x[i * n..(i + 1) * n].iter().all(|&v| v == 0.0) {
            run += 1;
            if run == PRIME {
                return Some(i + 1 - PRIME);
            }
        } else {
            run = 0;
        }
    }
    None
}

/// Xrun recovery. No ALSA plugin without a sound card paces time (`null` and `file` never underrun),
/// so the underrun is injected: the next write reports EPIPE instead of writing, as a real underrun
/// would. Everything after that is real: `snd_pcm_recover` on the real PCM, re-prepare, re-prime,
/// restart. Measured: one xrun counted; the output is the offline render with exactly the one lost
/// period replaced by a buffer of silence; audio continues after it, sample for sample; nothing
/// allocated on the audio thread.
#[test]
fn xrun_is_counted_and_audio_continues() {
    let d = dir();
    mkfifo(&d.join("xrun.fifo"));
    let blocks = 300;
    let keep = (2 * PRIME + blocks * PERIOD) * 2 * 4;
    let sink = Sink::spawn_pausing(&d.join("xrun.fifo"), keep, keep / 5);
    let graph = tone_graph();
    let (_c, engine, _r) = engine_for(&graph);
    let (backend, events) = start(options("ballast_xrun", 0, 2), engine);
    let _drain = sink.drain_on_unwind();
    assert!(matches!(next_event(&events), BackendEvent::Running { .. }));
    let stats = backend.stats();
    // The sink holds at a fifth of the stream, the backend blocked on the full pipe (64 KiB and the
    // plugin's buffers ahead, ~40 periods); the write after the blocked one fails.
    sink.wait_for(keep / 5);
    backend.inject_write_error(libc::EPIPE);
    sink.resume();
    let start = Instant::now();
    while stats.xruns() == 0 {
        assert!(start.elapsed() < TIMEOUT, "the xrun was not counted");
        std::thread::sleep(Duration::from_millis(2));
    }
    let (bytes, _) = sink.finish(keep, backend);
    assert_eq!(stats.xruns(), 1);
    assert!(events.try_recv().is_err(), "an xrun is not a loss: no event");

    let got = bytes_f32(&bytes);
    let want = offline(&graph, blocks + 1);
    let gap = silent_run(&got, 2, PRIME + 1).expect("no re-priming silence in the output");
    assert_eq!((gap - PRIME) % PERIOD, 0, "the gap starts on a period boundary");
    let k = (gap - PRIME) / PERIOD;
    assert!(k > 10 && k < blocks - 10, "xrun at block {k}");
    assert_eq!(&got[PRIME * 2..gap * 2], &want[..k * PERIOD * 2], "before the xrun");
    let after = &got[(gap + PRIME) * 2..];
    assert_eq!(after, &want[(k + 1) * PERIOD * 2..(k + 1) * PERIOD * 2 + after.len()], "after the xrun");
    assert!(after.iter().any(|&x| x != 0.0));
    assert_no_rt_alloc();
}

/// A PCM name ALSA does not know: `start` fails with the name and ALSA's error text.
#[test]
fn bad_device_name_is_a_clear_error() {
    dir();
    let (_c, engine, _r) = engine_for(&tone_graph());
    let (tx, _rx) = crossbeam_channel::unbounded();
    let err = match alsa::start(options("ballast_no_such_pcm", 0, 2), engine, tx) {
        Ok(_) => panic!("started on a device that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("\"ballast_no_such_pcm\"") && err.contains("playback"), "{err}");
    assert!(err.contains("No such file or directory"), "ALSA's text is kept: {err}");
}

/// A device that refuses float (`linear` to S16): the backend writes S32 through its conversion
/// buffer; the plugin's S16 file is the offline render quantised, within one 16-bit step.
#[test]
fn integer_device_gets_converted_samples() {
    let d = dir();
    mkfifo(&d.join("int16.fifo"));
    let blocks = 100;
    let keep = (PRIME + blocks * PERIOD) * 2 * 2;
    let sink = Sink::spawn(&d.join("int16.fifo"), keep);
    let graph = tone_graph();
    let (_c, engine, _r) = engine_for(&graph);
    let (backend, _events) = start(options("ballast_int16", 0, 2), engine);
    let _drain = sink.drain_on_unwind();
    assert_eq!(backend.format().playback_format, SampleFormat::S32);
    let (bytes, _) = sink.finish(keep, backend);
    let got: Vec<f32> = bytes.chunks_exact(2).map(|c| i16::from_ne_bytes([c[0], c[1]]) as f32 / 32_768.0).collect();
    let want = offline(&graph, blocks);
    assert!(got[..PRIME * 2].iter().all(|&x| x == 0.0));
    let err = got[PRIME * 2..].iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    // S32 rounding, then `linear` keeps the top 16 bits (truncation): under one 16-bit step.
    assert!(err <= 1.0 / 32_768.0 + 1e-7, "max error {err}");
    assert_no_rt_alloc();
}

/// The loop body allocates nothing, in the busiest configuration: capture and playback, conversions,
/// an xrun and its recovery, for a few thousand periods.
#[test]
fn audio_loop_allocates_nothing() {
    let d = dir();
    mkfifo(&d.join("alloc.fifo"));
    let blocks = 3000;
    let keep = (PRIME + blocks * PERIOD) * 2 * 4;
    let sink = Sink::spawn_pausing(&d.join("alloc.fifo"), keep, keep / 4);
    let graph = through_graph();
    let (_c, engine, _r) = engine_for(&graph);
    let mut opts = options("ballast_alloc", 2, 2);
    opts.capture_device = Some("ballast_alloc_in".into());
    let guarded_before = GUARDED_CYCLES.load(Ordering::Relaxed);
    let (backend, _events) = start(opts, engine);
    let _drain = sink.drain_on_unwind();
    let stats = backend.stats();
    sink.wait_for(keep / 4);
    backend.inject_write_error(libc::EPIPE);
    sink.resume();
    let (_bytes, _) = sink.finish(keep, backend);
    assert_eq!(stats.xruns(), 1);
    assert!(GUARDED_CYCLES.load(Ordering::Relaxed) - guarded_before >= blocks as u64);
    assert_no_rt_alloc();
}

/// The device goes away and comes back. The loss is injected (ENODEV from a write: an unplugged USB
/// interface; a `file` plugin cannot vanish on its own), everything after it is real: the PCMs are
/// closed, reopening fails for real while the plugin's output directory is gone (ENOENT, retried with
/// backoff, not reported again), and succeeds once it is back. Measured: events Running → Lost (with
/// ALSA's text) → Running, nothing in between; the state while retrying; audio flowing again from
/// the same engine (the new stream continues the offline render).
#[test]
fn lost_device_is_reopened_when_it_comes_back() {
    let d = dir();
    let lost_dir = d.join("lost");
    let fifo = lost_dir.join("out.fifo");
    mkfifo(&fifo);
    let first = 60 * PERIOD * 2 * 4;
    let sink1 = Sink::spawn_pausing(&fifo, 2 * first, first);
    // 997 Hz: no 256-frame block repeats within 375 blocks (1 kHz repeats every 3), so the block the
    // new stream starts with identifies where the engine was.
    let graph = tone_graph_at(997.0);
    let (_c, engine, _r) = engine_for(&graph);
    let (backend, events) = start(options("ballast_lost", 0, 2), engine);
    let _drain = sink1.drain_on_unwind();
    assert!(matches!(next_event(&events), BackendEvent::Running { .. }));
    let stats = backend.stats();
    sink1.wait_for(first);
    // The device "disappears": its directory goes (the open FIFO lives on until closed).
    std::fs::remove_file(&fifo).unwrap();
    std::fs::remove_dir(&lost_dir).unwrap();
    backend.inject_write_error(libc::ENODEV);
    sink1.drain.send(()).unwrap();
    sink1.resume();
    match next_event(&events) {
        BackendEvent::Lost { reason } => {
            assert!(reason.contains("ballast_lost") && reason.contains("No such device"), "{reason}")
        }
        e => panic!("expected Lost, got {e:?}"),
    }
    sink1.handle.join().unwrap();
    assert_eq!(stats.state(), BackendState::Retrying);
    // Several reopen attempts fail in this time (0.1 + 0.2 + 0.4 s); none is an event.
    std::thread::sleep(Duration::from_millis(800));
    assert!(events.try_recv().is_err(), "retries are not reported one by one");
    assert_eq!(stats.state(), BackendState::Retrying);

    // It comes back, atomically (a reopen between mkdir and mkfifo would create a regular file).
    let staging = d.join("lost.new");
    std::fs::create_dir_all(&staging).unwrap();
    mkfifo(&staging.join("out.fifo"));
    let blocks = 100;
    let keep = (PRIME + blocks * PERIOD) * 2 * 4;
    std::fs::rename(&staging, &lost_dir).unwrap();
    let sink2 = Sink::spawn(&fifo, keep);
    let _drain2 = sink2.drain_on_unwind();
    assert_eq!(next_event(&events), BackendEvent::Running { sample_rate: RATE, block_size: PERIOD });
    assert_eq!(stats.state(), BackendState::Running);
    let (bytes, engine) = sink2.finish(keep, backend);
    assert!(engine.is_some());
    assert_eq!(stats.xruns(), 0, "a lost device is not an xrun");

    let got = bytes_f32(&bytes);
    assert!(got[..PRIME * 2].iter().all(|&x| x == 0.0), "the new stream starts primed");
    let played = &got[PRIME * 2..];
    let want = offline(&graph, 400);
    let j = (0..300)
        .find(|j| played[..PERIOD * 2] == want[j * PERIOD * 2..(j + 1) * PERIOD * 2])
        .expect("the new stream is not the engine's output");
    assert!(j >= 60, "the engine went on where it was (block {j})");
    assert_eq!(played, &want[j * PERIOD * 2..j * PERIOD * 2 + played.len()]);
    assert_no_rt_alloc();
}

/// A SCHED_FIFO priority the system refuses (out of range here; EPERM without rtprio elsewhere):
/// the backend warns and runs at normal priority.
#[test]
fn refused_priority_still_runs() {
    let d = dir();
    mkfifo(&d.join("prio.fifo"));
    let blocks = 50;
    let keep = (PRIME + blocks * PERIOD) * 2 * 4;
    let sink = Sink::spawn(&d.join("prio.fifo"), keep);
    let (_c, engine, _r) = engine_for(&tone_graph());
    let mut opts = options("ballast_prio", 0, 2);
    opts.rt_priority = 1000;
    let (backend, events) = start(opts, engine);
    let _drain = sink.drain_on_unwind();
    assert!(matches!(next_event(&events), BackendEvent::Running { .. }));
    let (bytes, _) = sink.finish(keep, backend);
    assert!(bytes_f32(&bytes)[PRIME * 2..].iter().any(|&x| x != 0.0));
    assert_no_rt_alloc();
}

//! `ballastd render`, driven as the real binary: bit-identical output for every block size (and equal to
//! the engine driven the way a real-time backend drives it), latency stated and compensated (measured
//! with an impulse), the example configs on real music (Debian's `wesnoth-1.16-music`) with the
//! broadcast chain's loudness and ceiling checked by two meters, output formats, and every error class
//! with its exit code, its one line, and nothing left under the output name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ballast_audiofile::{SampleFormat, WavStream, WavWriter};
use ballast_dsp::loudness::{LoudnessMeter, LoudnessSummary};
use ballast_dsp::Processor;
use ballastd::engine::{self, EngineConfig};

const BIN: &str = env!("CARGO_BIN_EXE_ballastd");
const MUSIC: &str = "/usr/share/games/wesnoth/1.16/data/core/music";

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config").join(name)
}

/// A fresh, empty directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ballast-render-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Decodes a wesnoth track (or its first `seconds`) to 48 kHz stereo 32-bit float WAV with ffmpeg.
fn decode(track: &str, seconds: Option<f64>, out: &Path) {
    let src = format!("{MUSIC}/{track}");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-i", &src]);
    if let Some(s) = seconds {
        cmd.args(["-t", &s.to_string()]);
    }
    cmd.args(["-ar", "48000", "-ac", "2", "-c:a", "pcm_f32le"]).arg(out);
    let o = cmd.output().expect("ffmpeg runs (Debian package ffmpeg)");
    assert!(o.status.success(), "ffmpeg {track}: {}", String::from_utf8_lossy(&o.stderr));
}

fn ballastd(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("ballastd runs")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Renders and asserts success; returns stderr.
fn render_ok(args: &[&str]) -> String {
    let o = ballastd(&[&["render"], args].concat());
    assert!(o.status.success(), "ballastd render {args:?} failed: {}", stderr(&o));
    stderr(&o)
}

/// The latency `ballastd render` states on stderr.
fn stated_latency(stderr: &str) -> usize {
    let rest = stderr.split("latency ").nth(1).unwrap_or_else(|| panic!("no latency stated: {stderr}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// Reads a whole WAV file: (rate, planar channels).
fn read_wav(path: &Path) -> (u32, Vec<Vec<f32>>) {
    let mut s = WavStream::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = s.info().sample_rate;
    let mut ch = vec![Vec::new(); s.info().channels];
    while let Some(chunk) = s.next_chunk().unwrap() {
        for (dst, src) in ch.iter_mut().zip(chunk) {
            dst.extend_from_slice(src);
        }
    }
    (rate, ch)
}

fn write_wav(path: &Path, rate: u32, channels: &[Vec<f32>]) {
    let mut w = WavWriter::create(path, rate, channels.len(), SampleFormat::F32).unwrap();
    let refs: Vec<&[f32]> = channels.iter().map(|c| c.as_slice()).collect();
    w.write(&refs).unwrap();
    w.commit().unwrap();
}

/// `ballast_dsp`'s loudness meter over a file (what `ballastctl measure` runs).
fn meter(channels: &[Vec<f32>], rate: u32) -> LoudnessSummary {
    let mut m = LoudnessMeter::new(channels.len());
    Processor::prepare(&mut m, f64::from(rate), 4096);
    let n = channels[0].len();
    for start in (0..n).step_by(4096) {
        let end = (start + 4096).min(n);
        let refs: Vec<&[f32]> = channels.iter().map(|c| &c[start..end]).collect();
        m.feed(&refs);
    }
    m.summary()
}

/// ffmpeg's `ebur128` filter (an independent implementation): (integrated LUFS, true peak dBTP).
fn ffmpeg_ebur128(path: &Path) -> (f64, f64) {
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i", p(path), "-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let text = String::from_utf8_lossy(&o.stderr);
    // The summary is at the end: "I:         -23.0 LUFS" … "Peak:       -1.2 dBFS".
    let summary = text.rsplit("Summary:").next().unwrap();
    let value = |key: &str| -> f64 {
        let line = summary.lines().find(|l| l.trim_start().starts_with(key)).unwrap_or_else(|| panic!("{text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (value("I:"), value("Peak:"))
}

/// `ballastctl measure --json`, when the workspace build put the binary next to this test's
/// (`cargo test --workspace` does); `None` otherwise.
fn ballastctl_measure(path: &Path) -> Option<(f64, f64)> {
    let exe = std::env::current_exe().ok()?;
    let ctl = exe.parent()?.parent()?.join("ballastctl");
    if !ctl.is_file() {
        return None;
    }
    let o = Command::new(&ctl).args(["measure", "--json", p(path)]).output().ok()?;
    assert!(o.status.success(), "ballastctl measure: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    Some((v["integrated_lufs"].as_f64().unwrap(), v["true_peak_dbtp"].as_f64().unwrap()))
}

fn assert_finite(channels: &[Vec<f32>], what: &str) {
    for (c, ch) in channels.iter().enumerate() {
        if let Some(i) = ch.iter().position(|x| !x.is_finite()) {
            panic!("{what}: channel {c} sample {i} is {}", ch[i]);
        }
    }
}

fn peak(channels: &[Vec<f32>]) -> f32 {
    channels.iter().flatten().fold(0.0f32, |m, x| m.max(x.abs()))
}

// ---------------------------------------------------------------------------------------------

/// 20 s of real music (starting with the track's fade-in, where near-silent filter state once made
/// the multiband depend on block ends) through the broadcast chain at blocks 1, 64, 256 and 4096:
/// every sample bit-identical. And equal to the engine driven directly with 128-frame periods, the way
/// a real-time backend drives it.
#[test]
fn output_is_identical_for_every_block_size() {
    let dir = scratch("blocks");
    let input = dir.join("in.wav");
    decode("elvish-theme.ogg", Some(20.0), &input);
    let cfg = config("broadcast.toml");
    let mut outputs = Vec::new();
    for block in ["1", "64", "256", "4096"] {
        let out = dir.join(format!("out{block}.wav"));
        render_ok(&["--config", p(&cfg), "--input", p(&input), "--output", p(&out), "--block", block]);
        outputs.push((block, read_wav(&out).1));
    }
    let (_, reference) = &outputs[0];
    assert_eq!(reference[0].len(), 20 * 48_000);
    assert!(peak(reference) > 0.05, "the chain makes sound: peak {}", peak(reference));
    for (block, out) in &outputs[1..] {
        for (c, (a, b)) in reference.iter().zip(out).enumerate() {
            assert_eq!(a.len(), b.len());
            if let Some(i) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
                panic!("block {block} differs from block 1: channel {c} sample {i}: {} vs {}", b[i], a[i]);
            }
        }
    }

    // The engine as a real-time backend drives it: same graph, periods of 128 frames.
    let (rate, input) = read_wav(&input);
    let graph = ballastd::config::load(&cfg).unwrap().graph;
    let (mut ctl, mut eng, mut reclaimer) =
        engine::new(EngineConfig { sample_rate: f64::from(rate), max_block: 128, ..EngineConfig::default() });
    ctl.apply(&graph).unwrap();
    let n = input[0].len();
    let mut direct = vec![vec![0.0f32; n]; 2];
    for start in (0..n).step_by(128) {
        let end = (start + 128).min(n);
        let (l, r) = direct.split_at_mut(1);
        eng.process(
            &[&input[0][start..end], &input[1][start..end]],
            &mut [&mut l[0][start..end], &mut r[0][start..end]],
        );
    }
    reclaimer.collect();
    for (c, (a, b)) in reference.iter().zip(&direct).enumerate() {
        if let Some(i) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
            panic!("render differs from the engine run directly: channel {c} sample {i}: {} vs {}", a[i], b[i]);
        }
    }
}

/// An impulse at sample 1000 of silence through the broadcast chain: without compensation the output
/// is exactly zero before 1000 + L and not at 1000 + L, where L is the latency stated on stderr (the
/// limiter's 1.5 ms lookahead: 72 samples at 48 kHz); with `--compensate-latency` the same holds at
/// 1000, and the output keeps the input's length. Through a limiter alone the impulse comes out intact
/// (it is below the ceiling), so there its peak lands exactly there too.
#[test]
fn latency_is_stated_and_compensated() {
    let dir = scratch("latency");
    let at = 1000;
    let frames = 48_000;
    let mut imp = vec![0.0f32; frames];
    imp[at] = 0.5;
    let input = dir.join("impulse.wav");
    write_wav(&input, 48_000, &[imp.clone(), imp.clone()]);

    let limiter_only = dir.join("limiter.toml");
    std::fs::write(
        &limiter_only,
        "[ports]\naudio_in = [\"l\", \"r\"]\naudio_out = [\"l_out\", \"r_out\"]\n\
         [nodes.lim]\nkind = \"limiter\"\nceiling_dbtp = -1.0\nlookahead_ms = 1.5\n\
         [links]\nchain = [\"in\", \"lim\", \"out\"]\n",
    )
    .unwrap();

    for cfg in [config("broadcast.toml"), limiter_only.clone()] {
        let plain = dir.join("plain.wav");
        let aligned = dir.join("aligned.wav");
        let err = render_ok(&["-c", p(&cfg), "-i", p(&input), "-o", p(&plain)]);
        let latency = stated_latency(&err);
        assert_eq!(latency, 72, "1.5 ms lookahead at 48 kHz: {err}");
        assert!(err.contains("not compensated"), "{err}");
        let err = render_ok(&["-c", p(&cfg), "-i", p(&input), "-o", p(&aligned), "--compensate-latency"]);
        assert_eq!(stated_latency(&err), latency);

        // Latency longer than the block: the compensation spans several blocks; same file.
        for block in ["1", "16"] {
            let small = dir.join(format!("aligned{block}.wav"));
            render_ok(&["-c", p(&cfg), "-i", p(&input), "-o", p(&small), "--compensate-latency", "--block", block]);
            assert_eq!(read_wav(&small).1, read_wav(&aligned).1, "block {block}");
        }
        for (path, expect) in [(&plain, at + latency), (&aligned, at)] {
            let (_, out) = read_wav(path);
            for ch in &out {
                assert_eq!(ch.len(), frames, "output length = input length");
                let first = ch.iter().position(|&x| x != 0.0);
                assert_eq!(first, Some(expect), "{}: first non-zero sample", cfg.display());
            }
            if cfg == limiter_only {
                for ch in &out {
                    let argmax = (0..ch.len()).max_by(|&a, &b| ch[a].abs().total_cmp(&ch[b].abs())).unwrap();
                    assert_eq!(argmax, expect);
                    assert_eq!(ch[expect], 0.5, "below the ceiling the impulse passes unchanged");
                }
            }
        }
    }
}

/// `config/default.toml` (generators) for 60 s, `studio-bus.toml` and `broadcast.toml` over whole
/// tracks: no error, every sample finite, the right length. The broadcast output meets EBU R128:
/// integrated loudness −23 LUFS ± 0.5 LU and true peak ≤ −1 dBTP, by ballast's meter (what
/// `ballastctl measure` runs; the binary itself too when the workspace build made it) and by ffmpeg's
/// `ebur128` filter.
#[test]
fn example_configs_render_real_music() {
    let dir = scratch("examples");

    let gen = dir.join("default.wav");
    render_ok(&["-c", p(&config("default.toml")), "--duration", "60", "-o", p(&gen)]);
    let (rate, out) = read_wav(&gen);
    assert_eq!((rate, out.len(), out[0].len()), (48_000, 2, 60 * 48_000));
    assert_finite(&out, "default.toml");
    let s = meter(&out, rate);
    eprintln!("default.toml, 60 s: I {:.2} LUFS, TP {:.2} dBTP", s.integrated_lufs, s.true_peak_dbtp);
    assert!(s.integrated_lufs > -40.0, "the demo is audible: {:.1} LUFS", s.integrated_lufs);

    let track = dir.join("wanderer.wav");
    decode("wanderer.ogg", None, &track);
    let bus = dir.join("bus.wav");
    render_ok(&["-c", p(&config("studio-bus.toml")), "-i", p(&track), "-o", p(&bus)]);
    let (_, input) = read_wav(&track);
    let (_, out) = read_wav(&bus);
    assert_eq!(out[0].len(), input[0].len());
    assert_finite(&out, "studio-bus.toml");
    let s = meter(&out, 48_000);
    eprintln!(
        "studio-bus.toml, wanderer ({} s): I {:.2} LUFS, TP {:.2} dBTP",
        out[0].len() / 48_000,
        s.integrated_lufs,
        s.true_peak_dbtp
    );
    // The safety limiter's ceiling is −0.3 dBTP; 0.1 dB for the meter's and the limiter's different
    // oversampling filters (both BS.1770-4 Annex 2, different interpolators).
    assert!(s.true_peak_dbtp <= -0.2, "studio bus true peak {:.2} dBTP", s.true_peak_dbtp);

    let mut failures = Vec::new();
    for track_name in ["wanderer.ogg", "knolls.ogg", "elvish-theme.ogg"] {
        let track = dir.join(track_name.replace(".ogg", ".wav"));
        if !track.exists() {
            decode(track_name, None, &track);
        }
        let out_path = dir.join("broadcast.wav");
        render_ok(&["-c", p(&config("broadcast.toml")), "-i", p(&track), "-o", p(&out_path), "--compensate-latency"]);
        let (rate, out) = read_wav(&out_path);
        assert_finite(&out, "broadcast.toml");
        let ours = meter(&out, rate);
        let (ff_i, ff_tp) = ffmpeg_ebur128(&out_path);
        let ctl = ballastctl_measure(&out_path);
        eprintln!(
            "broadcast.toml, {track_name} ({} s): ballast meter I {:.2} LUFS TP {:.2} dBTP; ffmpeg I {ff_i:.1} TP {ff_tp:.1}; ballastctl {}",
            out[0].len() / 48_000,
            ours.integrated_lufs,
            ours.true_peak_dbtp,
            ctl.map_or("not built".into(), |(i, tp)| format!("I {i:.2} TP {tp:.2}")),
        );
        let mut readings =
            vec![("ballast meter", ours.integrated_lufs, ours.true_peak_dbtp), ("ffmpeg ebur128", ff_i, ff_tp)];
        if let Some((i, tp)) = ctl {
            readings.push(("ballastctl measure", i, tp));
        }
        for (who, i, tp) in readings {
            // ±0.5 LU: the tolerance for the loudness controller (R128 itself allows ±1 LU live).
            if (i + 23.0).abs() > 0.5 {
                failures.push(format!("{track_name}: {who}: integrated {i:.2} LUFS, target −23 ± 0.5"));
            }
            // −1 dBTP ceiling; ffmpeg prints one decimal, and its true-peak interpolator differs from the
            // limiter's: 0.1 dB of slack for that.
            if tp > -0.9 {
                failures.push(format!("{track_name}: {who}: true peak {tp:.2} dBTP above −1"));
            }
        }
    }
    assert!(failures.is_empty(), "broadcast chain misses R128:\n{}", failures.join("\n"));
}

/// s16 and s24 output: within half a quantisation step of the f32 render (clipped samples aside).
#[test]
fn integer_output_formats() {
    let dir = scratch("formats");
    let input = dir.join("in.wav");
    decode("knolls.ogg", Some(5.0), &input);
    let cfg = config("studio-bus.toml");
    let f = dir.join("f32.wav");
    render_ok(&["-c", p(&cfg), "-i", p(&input), "-o", p(&f)]);
    let (_, reference) = read_wav(&f);
    for (fmt, scale) in [("s16", 32_768.0f32), ("s24", 8_388_608.0)] {
        let out = dir.join(format!("{fmt}.wav"));
        render_ok(&["-c", p(&cfg), "-i", p(&input), "-o", p(&out), "--format", fmt]);
        let s = WavStream::open(&out).unwrap();
        assert_eq!(s.info().format, if fmt == "s16" { "16-bit integer" } else { "24-bit integer" });
        let (_, got) = read_wav(&out);
        let err = reference.iter().flatten().zip(got.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        // Rounding to the nearest step: at most half a step (plus f32 rounding of the scaled value).
        assert!(err <= 0.5 / scale * 1.001, "{fmt}: max error {err}");
    }
}

/// Every error class: exit code, one line on stderr naming the problem, nothing under the output name
/// and no temporary file left. A render that fails midway (a truncated input) leaves an existing
/// output file untouched.
#[test]
fn errors_exit_nonzero_with_one_line_and_leave_nothing() {
    let dir = scratch("errors");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("out.wav");
    let broadcast = config("broadcast.toml");
    let stereo = dir.join("stereo.wav");
    write_wav(&stereo, 48_000, &[vec![0.1; 4800], vec![0.1; 4800]]);
    let mono = dir.join("mono.wav");
    write_wav(&mono, 48_000, &[vec![0.1; 4800]]);
    let text = dir.join("notes.wav");
    std::fs::write(&text, "this is not audio\n").unwrap();
    let bad_cfg = dir.join("bad.toml");
    std::fs::write(
        &bad_cfg,
        std::fs::read_to_string(&broadcast).unwrap().replace("ceiling_dbtp = -1.0", "ceiling_dbtp = 3.0"),
    )
    .unwrap();
    let plain_file = dir.join("plain");
    std::fs::write(&plain_file, "x").unwrap();

    let missing = dir.join("missing.wav");
    let cases: Vec<(&str, Vec<String>, i32, String)> = vec![
        (
            "missing input",
            vec!["-c".into(), p(&broadcast).into(), "-i".into(), p(&missing).into()],
            2,
            format!("{}: no such file", p(&missing)),
        ),
        (
            "not a WAV",
            vec!["-c".into(), p(&broadcast).into(), "-i".into(), p(&text).into()],
            2,
            format!("{}: not a WAV file", p(&text)),
        ),
        (
            "channel mismatch",
            vec!["-c".into(), p(&broadcast).into(), "-i".into(), p(&mono).into()],
            1,
            format!("{} has 1 channel; config {} declares 2 audio_in ports (in_l, in_r)", p(&mono), p(&broadcast)),
        ),
        (
            "input to a generator config",
            vec!["-c".into(), p(&config("default.toml")).into(), "-i".into(), p(&stereo).into()],
            1,
            "declares 0 audio_in ports; render it with --duration SECONDS instead".into(),
        ),
        (
            "duration to a config with inputs",
            vec!["-c".into(), p(&broadcast).into(), "--duration".into(), "1".into()],
            1,
            "declares 2 audio_in ports (in_l, in_r): give --input FILE".into(),
        ),
    ];
    for (what, args, code, message) in cases {
        let mut full: Vec<&str> = vec!["render"];
        full.extend(args.iter().map(String::as_str));
        full.extend(["-o", p(&out)]);
        let o = ballastd(&full);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.contains(&message), "{what}: expected `{message}` in: {err}");
        assert!(err.starts_with("ballastd: "), "{what}: {err}");
        assert!(entries(&out_dir).is_empty(), "{what}: left {:?}", entries(&out_dir));
    }

    // Invalid config: every error with file:line:col, exit 1.
    let o = ballastd(&["render", "-c", p(&bad_cfg), "-i", p(&stereo), "-o", p(&out)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = broadcast_line(&bad_cfg, "ceiling_dbtp = 3.0");
    assert!(err.contains(&format!("{}:{line}:16: error: ceiling_dbtp = 3.0 is out of range", p(&bad_cfg))), "{err}");
    assert!(entries(&out_dir).is_empty());

    // Unwritable outputs, refused before any audio runs: exit 3, one line.
    for (what, target, message) in [
        ("missing directory", dir.join("nope/out.wav"), "does not exist"),
        ("a directory in its place", out_dir.clone(), "is a directory"),
        ("parent is a file", plain_file.join("out.wav"), "is not a directory"),
    ] {
        let o = ballastd(&["render", "-c", p(&broadcast), "-i", p(&stereo), "-o", p(&target)]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.contains(message) && err.contains(p(&target)), "{what}: {err}");
    }
    assert!(entries(&out_dir).is_empty());

    // A failure midway: the header promises 10 s, the file holds about 1 s. The render starts, fails,
    // and the previous output file stays as it was; no temporary file is left.
    let long = dir.join("long.wav");
    write_wav(&long, 48_000, &[vec![0.1; 480_000], vec![0.1; 480_000]]);
    let bytes = std::fs::read(&long).unwrap();
    let truncated = dir.join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 10]).unwrap();
    std::fs::write(&out, b"previous render").unwrap();
    let o = ballastd(&["render", "-c", p(&broadcast), "-i", p(&truncated), "-o", p(&out)]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.lines().last().unwrap().contains("truncated WAV"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous render");
    assert_eq!(entries(&out_dir), vec!["out.wav".to_string()]);
}

/// 1-based line of the first line of `path` containing `needle`.
fn broadcast_line(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).unwrap().lines().position(|l| l.contains(needle)).unwrap() + 1
}

/// `ballastd check` compiles the graph and states its latency.
#[test]
fn check_states_latency() {
    let o = ballastd(&["check", "--config", p(&config("broadcast.toml"))]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("latency 72 samples (1.50 ms at 48000 Hz)"), "{out}");
}

/// NaN and Inf in the input file (a float WAV can hold them): the render succeeds and every output
/// sample is finite, at every block size alike.
#[test]
fn non_finite_input_gives_finite_output() {
    let dir = scratch("nonfinite");
    let mut x: Vec<f32> = (0..48_000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    x[10_000..10_010].fill(f32::NAN);
    x[20_000..20_003].fill(f32::INFINITY);
    x[30_000] = f32::NEG_INFINITY;
    let input = dir.join("in.wav");
    write_wav(&input, 48_000, &[x.clone(), x]);
    let mut outs = Vec::new();
    for block in ["7", "256"] {
        let out = dir.join(format!("out{block}.wav"));
        render_ok(&["-c", p(&config("broadcast.toml")), "-i", p(&input), "-o", p(&out), "--block", block]);
        let (_, o) = read_wav(&out);
        assert_finite(&o, "broadcast.toml with NaN/Inf input");
        outs.push(o);
    }
    assert_eq!(outs[0], outs[1]);
}

/// SIGINT (Ctrl-C) or SIGTERM midway: exit 130, one line after the latency line, no temporary file
/// left and nothing under the output name.
#[test]
fn interrupted_render_leaves_nothing() {
    let dir = scratch("interrupt");
    for signal in ["-INT", "-TERM"] {
        let out = dir.join("out.wav");
        // An hour of the generator demo one frame per block: far longer than the test waits.
        let child = Command::new(BIN)
            .args(["render", "-c", p(&config("default.toml")), "--duration", "3600", "--block", "1", "-o", p(&out)])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        let killed = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(130), "{signal}: {err}");
        assert_eq!(err.lines().last(), Some("ballastd: interrupted; no output written"), "{err}");
        assert!(entries(&dir).is_empty(), "{signal}: left {:?}", entries(&dir));
    }
}

/// The render runs at the input file's rate, not the config's `sample_rate_hz`: a 44.1 kHz file comes
/// out at 44.1 kHz, and the stated latency is the limiter's at that rate (1.5 ms is 66 samples, but the
/// limiter's true-peak path needs at least 71) with the impulse exactly there.
#[test]
fn sample_rate_comes_from_the_file() {
    let dir = scratch("rate");
    let mut imp = vec![0.0f32; 44_100];
    imp[500] = 0.5;
    let input = dir.join("in.wav");
    write_wav(&input, 44_100, &[imp.clone(), imp]);
    let out = dir.join("out.wav");
    let err = render_ok(&["-c", p(&config("broadcast.toml")), "-i", p(&input), "-o", p(&out)]);
    assert!(err.contains("at 44100 Hz"), "{err}");
    let latency = stated_latency(&err);
    assert_eq!(latency, 71, "{err}");
    let (rate, o) = read_wav(&out);
    assert_eq!(rate, 44_100);
    for ch in &o {
        assert_eq!(ch.iter().position(|&x| x != 0.0), Some(500 + latency));
    }
}

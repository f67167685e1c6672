//! `ballastctl estimate`, offline, end to end: real music (a wesnoth track decoded by ffmpeg), compressed
//! by ballast's own compressor (the DSP crate, as the daemon runs it), the committed estimator run by
//! the real `ballastctl` binary through the real ONNX Runtime library. No daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ballast_audiofile::{SampleFormat, WavStream, WavWriter};
use ballast_dsp::registry::{self, Shape};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ballastctl");
const TRACK: &str = "/usr/share/games/wesnoth/1.16/data/core/music/battle.ogg";

fn scratch(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(path: &Path) -> Vec<Vec<f32>> {
    let mut s = WavStream::open(path).unwrap();
    let mut planar = vec![Vec::new(); s.info().channels];
    while let Some(chunk) = s.next_chunk().unwrap() {
        for (d, c) in planar.iter_mut().zip(chunk) {
            d.extend_from_slice(c);
        }
    }
    planar
}

/// 10 s of the track (stereo, 48 kHz) and the same through a `compressor` with these settings.
fn pair(dir: &Path, settings: &[(&str, f32)]) -> (PathBuf, PathBuf) {
    let dry = dir.join("dry.wav");
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i", TRACK, "-t", "10", "-ar", "48000", "-ac", "2", "-c:a", "pcm_f32le"])
        .arg(&dry)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg decodes {TRACK}");
    let input = read(&dry);
    let mut comp = registry::create("compressor", Shape { channels: 2, bands: 0 }).unwrap();
    for (key, v) in settings {
        let id = comp.descriptor().param_by_key(key).unwrap().id;
        comp.set_param(id, *v).unwrap();
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

fn ctl(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const KEYS: [&str; 6] = ["attack_ms", "knee_db", "makeup_db", "ratio", "release_ms", "threshold_db"];

fn check_bands(j: &Value, n: usize) {
    let mut top: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    top.sort();
    assert_eq!(top, ["bands", "confidence"], "{j}");
    assert!(j["confidence"].is_null(), "the estimator gives no confidence: {j}");
    let bands = j["bands"].as_array().unwrap();
    assert_eq!(bands.len(), n, "{j}");
    for b in bands {
        let mut keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, KEYS, "{b}");
        for k in KEYS {
            assert!(b[k].as_f64().is_some_and(f64::is_finite), "{k} in {b}");
        }
        assert!(b["ratio"].as_f64().unwrap() >= 1.0 && b["attack_ms"].as_f64().unwrap() > 0.0, "{b}");
    }
}

#[test]
fn estimates_a_real_compressed_track_offline() {
    let dir = scratch("ctl-estimate");
    let made_with =
        [("threshold_db", -28.0), ("ratio", 5.0), ("attack_ms", 8.0), ("release_ms", 200.0), ("knee_db", 4.0)];
    let (dry, wet) = pair(&dir, &made_with);
    let (d, w) = (dry.to_str().unwrap(), wet.to_str().unwrap());

    let o = ctl(&["estimate", "--dry", d, "--wet", w, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    check_bands(&j, 1);
    let b = &j["bands"][0];
    let got: Vec<String> = made_with.iter().map(|(k, v)| format!("{k} {v} -> {}", b[*k])).collect();
    eprintln!("made with / estimated: {}", got.join(", "));

    // Per band at a multiband's crossovers: N splits, N + 1 bands.
    let o = ctl(&["estimate", "--dry", d, "--wet", w, "--crossovers", "200,2000,8000", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    check_bands(&serde_json::from_slice(&o.stdout).unwrap(), 4);

    // Text: a table, and the missing confidence said in words.
    let o = ctl(&["estimate", "--dry", d, "--wet", w]);
    let out = text(&o);
    assert!(o.status.success() && out.contains("threshold") && out.contains("confidence: not given"), "{out}");
}

#[test]
fn bad_input_and_a_missing_model_are_one_line_errors() {
    let dir = scratch("ctl-estimate-bad");
    let (dry, wet) = pair(&dir, &[("threshold_db", -30.0)]);
    let (d, w) = (dry.to_str().unwrap(), wet.to_str().unwrap());
    let fails = |args: &[&str], code: i32, want: &str| {
        let o = ctl(args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
        assert!(err.contains(want) && err.trim().lines().count() == 1, "{args:?}: wanted {want:?} in one line: {err}");
        assert!(o.stdout.is_empty(), "nothing on stdout: {}", text(&o));
    };
    fails(&["estimate", "--dry", d, "--wet", "/nonexistent/wet.wav", "--json"], 2, "no such file");
    let short = dir.join("short.wav");
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i", d, "-t", "4", "-c:a", "pcm_f32le"])
        .arg(&short)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    fails(&["estimate", "--dry", d, "--wet", short.to_str().unwrap()], 2, "do not match");
    fails(&["estimate", "--dry", d, "--wet", w, "--crossovers", "2000,200"], 2, "must rise");
    fails(&["estimate", "--dry", d, "--wet", w, "--onnxruntime", "/nonexistent/libonnxruntime.so"], 1, "/nonexistent/libonnxruntime.so");
    let corrupt = dir.join("corrupt.onnx");
    std::fs::write(&corrupt, b"not a model").unwrap();
    fails(&["estimate", "--dry", d, "--wet", w, "--model", corrupt.to_str().unwrap()], 1, "corrupt.onnx");
    fails(&["estimate", "--dry", d, "--wet", w, "--model", "/nonexistent/estimator.onnx"], 1, "no such file");
}

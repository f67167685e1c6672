//! `ballastctl estimate`, offline, end to end: real music (a wesnoth track decoded by ffmpeg), compressed
//! by ballast's own compressor (the DSP crate, as the daemon runs it), the committed estimator run by
//! the real `ballastctl` binary through the real ONNX Runtime library. No daemon. And `learn` through
//! the real `ballastd` binary on a JACK dummy server and a private bus.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// `estimate --json` (offline: with a confidence overall and per band, and each band's residual) or
/// `learn --json` (through the daemon, which applies settings and reports no confidence).
fn check_bands(j: &Value, n: usize) {
    let mut top: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    top.sort();
    assert_eq!(top, ["bands", "confidence"], "{j}");
    let offline = !j["confidence"].is_null();
    if offline {
        let c = j["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c), "{j}");
    }
    let bands = j["bands"].as_array().unwrap();
    assert_eq!(bands.len(), n, "{j}");
    for b in bands {
        let mut keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = KEYS.to_vec();
        if offline {
            want.extend(["confidence", "residual_db"]);
            want.sort();
            assert!((0.0..=1.0).contains(&b["confidence"].as_f64().unwrap()), "{b}");
            assert!(b["residual_db"].as_f64().unwrap() >= 0.0, "{b}");
        }
        assert_eq!(keys, want, "{b}");
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
    eprintln!("made with / estimated: {}, confidence {}", got.join(", "), j["confidence"]);
    // The refined estimate re-synthesises the wet file: its residual is far below the 1 dB target.
    assert!(b["residual_db"].as_f64().unwrap() < 0.5, "{j}");

    // Per band at a multiband's crossovers: N splits, N + 1 bands.
    let o = ctl(&["estimate", "--dry", d, "--wet", w, "--crossovers", "200,2000,8000", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    check_bands(&serde_json::from_slice(&o.stdout).unwrap(), 4);

    // Text: a table, and the confidence with the residual in words.
    let o = ctl(&["estimate", "--dry", d, "--wet", w]);
    let out = text(&o);
    assert!(o.status.success() && out.contains("threshold") && out.contains("confidence: "), "{out}");
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
    fails(
        &["estimate", "--dry", d, "--wet", w, "--onnxruntime", "/nonexistent/libonnxruntime.so"],
        1,
        "/nonexistent/libonnxruntime.so",
    );
    let corrupt = dir.join("corrupt.onnx");
    std::fs::write(&corrupt, b"not a model").unwrap();
    fails(&["estimate", "--dry", d, "--wet", w, "--model", corrupt.to_str().unwrap()], 1, "corrupt.onnx");
    fails(&["estimate", "--dry", d, "--wet", w, "--model", "/nonexistent/estimator.onnx"], 1, "no such file");
}

/// Stops a child with SIGTERM (SIGKILL after 10 s) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: kill(2) of a child this test started.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `ballastd` next to `ballastctl`, built with the test profile (see ctl/tests/ballastd.rs for why).
fn ballastd_binary() -> PathBuf {
    let bin = PathBuf::from(BIN).with_file_name("ballastd");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "-q", "--profile", "test", "-p", "ballastd", "--bin", "ballastd"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("cargo runs")
        .success();
    assert!(ok && bin.exists(), "cargo build -p ballastd failed");
    bin
}

#[test]
fn learn_applies_an_estimate_to_the_running_daemon() {
    let bin = ballastd_binary();
    let dir = scratch("ctl-learn");
    let (_dry, _wet) = pair(&dir, &[("threshold_db", -26.0), ("ratio", 4.0), ("attack_ms", 10.0)]);
    let jack_name = format!("bctl-learn-{}", std::process::id());
    let _jack = Guard(
        Command::new("jackd")
            .args(["-n", &jack_name, "-d", "dummy", "-r", "48000", "-p", "256"])
            .env("JACK_NO_START_SERVER", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("jackd runs"),
    );
    poll("jackd", || {
        Command::new("jack_lsp")
            .env("JACK_DEFAULT_SERVER", &jack_name)
            .env("JACK_NO_START_SERVER", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    });
    let bus = common::Bus::start();
    let ort = ballast_models::runtime::locate(None).expect("ONNX Runtime (make onnxruntime)").0;
    let cfg = dir.join("ballast.toml");
    std::fs::write(
        &cfg,
        format!(
            "[engine]\nbackend = \"jack\"\nclient_name = \"bctl-learn\"\n[ports]\naudio_out = [\"out_l\", \"out_r\"]\n\
             [nodes.src]\nkind = \"noise\"\n[nodes.comp]\nkind = \"compressor\"\n[nodes.mb]\nkind = \"multiband\"\n\
             crossovers_hz = [200, 2000, 8000]\n[nodes.lim]\nkind = \"limiter\"\n\
             [links]\nchain = [\"src\", \"comp\", \"mb\", \"lim\", \"out\"]\n\
             [models]\nonnxruntime = \"{}\"\n",
            ort.display()
        ),
    )
    .unwrap();
    let log = dir.join("ballastd.log");
    let _daemon = Guard(
        Command::new(&bin)
            .args(["--config", cfg.to_str().unwrap()])
            .env("HOME", &dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_STATE_HOME", dir.join("state"))
            .env("JACK_DEFAULT_SERVER", &jack_name)
            .env("JACK_NO_START_SERVER", "1")
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("ballastd starts"),
    );
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let st = poll("the estimator's health", || {
        let r = common::ctl(&bus, &["status", "--json"]);
        (r.code == 0).then(|| r.json()).filter(|j| j["models"]["estimator"]["state"] != "loading")
    });
    assert_eq!(st["models"]["estimator"]["state"], "ready", "{st}\n{}", daemon_log());
    let text = common::ctl(&bus, &["status"]);
    assert!(text.out().contains("model estimator ready: "), "{}", text.out());

    // Relative paths, from the test's directory: ballastctl makes them absolute for the daemon.
    let learn = |args: &[&str]| {
        let o = common::ballastctl()
            .args(args)
            .current_dir(&dir)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let (code, out, err) = learn(&["learn", "comp", "--dry", "dry.wav", "--wet", "wet.wav", "--json"]);
    assert_eq!(code, 0, "{err}\n{}", daemon_log());
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["node"], "comp");
    assert!(j["confidence"].is_null());
    check_bands(&json_of_bands(&j), 1);
    let ratio = j["applied"]["ratio"].as_f64().unwrap();
    let now = common::ctl(&bus, &["get", "comp.ratio", "--json"]).json()["value"].as_f64().unwrap();
    assert!((now - ratio).abs() < 1e-3 * ratio, "get {now}, learn said {ratio}");

    let (code, out, err) = learn(&["learn", "mb", "--dry", "dry.wav", "--wet", "wet.wav", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    check_bands(&json_of_bands(&j), 4);
    assert_eq!(j["applied"].as_object().unwrap().len(), 24);
    let (code, out, _) = learn(&["learn", "mb", "--dry", "dry.wav", "--wet", "wet.wav"]);
    assert!(code == 0 && out.starts_with("mb: applied") && out.lines().count() == 6, "{out}");

    let (code, _, err) = learn(&["learn", "lim", "--dry", "dry.wav", "--wet", "wet.wav"]);
    assert!(code == 1 && err.starts_with("ballastctl: WrongKind: ") && err.contains("limiter"), "{err}");
    let (code, _, err) = learn(&["learn", "comp", "--dry", "dry.wav", "--wet", "nope.wav"]);
    assert!(code == 1 && err.starts_with("ballastctl: InvalidInput: ") && err.contains("nope.wav"), "{err}");
}

/// `learn --json` without its `node` and `applied`: the shape `estimate --json` has.
fn json_of_bands(j: &Value) -> Value {
    serde_json::json!({ "bands": j["bands"], "confidence": j["confidence"] })
}

//! Model inference in the real daemon: `ballastd` on a JACK dummy server and a private session bus,
//! the committed estimator run through the real ONNX Runtime library on an inference worker, real
//! music (a wesnoth track) compressed by `ballastd render`. `Learn` sets a running compressor and a
//! multiband while audio keeps flowing and other calls keep being answered; a missing library or a
//! corrupt model leaves the daemon running audio with the model `unavailable` in `Status` and `Learn`
//! answering `org.ballast.Error.ModelUnavailable`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{scratch, wait_for, Bus, Daemon, Jackd};
use serde_json::Value;

const TRACK: &str = "/usr/share/games/wesnoth/1.16/data/core/music/battle.ogg";
const WAIT: Duration = Duration::from_secs(60);

/// The settings the wet file was made with.
const MADE_WITH: [(&str, f64); 6] = [
    ("threshold_db", -30.0),
    ("ratio", 6.0),
    ("attack_ms", 5.0),
    ("release_ms", 150.0),
    ("knee_db", 3.0),
    ("makeup_db", 6.0),
];

fn live_config(client: &str, models: &str) -> String {
    format!(
        r#"[engine]
backend = "jack"
client_name = "{client}"

[ports]
audio_out = ["out_l", "out_r"]

[nodes.src]
kind = "noise"
level_db = -12

[nodes.comp]
kind = "compressor"
threshold_db = -10

[nodes.mb]
kind = "multiband"
crossovers_hz = [200, 2000, 8000]

[nodes.lim]
kind = "limiter"

[nodes.meter]
kind = "loudness_meter"

[links]
chain = ["src", "comp", "mb", "lim", "meter", "out"]

{models}
"#
    )
}

/// The ONNX Runtime library as the test process finds it (the daemons run with a scratch HOME, so
/// they are pointed at it explicitly).
fn onnxruntime() -> PathBuf {
    match ballast_models::runtime::locate(None) {
        Ok((p, _)) => p,
        Err(e) => panic!("these tests run the real ONNX Runtime: {e}"),
    }
}

/// `seconds` of a real track (stereo, 48 kHz, f32) and the same compressed by `ballastd render` with
/// [`MADE_WITH`]: (dry, wet).
fn pair(dir: &Path, seconds: u32) -> (PathBuf, PathBuf) {
    let dry = dir.join(format!("dry-{seconds}.wav"));
    let wet = dir.join(format!("wet-{seconds}.wav"));
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i", TRACK, "-t", &seconds.to_string(), "-ar", "48000", "-ac", "2"])
        .args(["-c:a", "pcm_f32le"])
        .arg(&dry)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg decodes {TRACK}");
    let params: String = MADE_WITH.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let cfg = dir.join("render.toml");
    fs::write(
        &cfg,
        format!(
            "[engine]\nbackend = \"offline\"\n[ports]\naudio_in = [\"in_l\", \"in_r\"]\naudio_out = [\"out_l\", \"out_r\"]\n\
             [nodes.comp]\nkind = \"compressor\"\n{params}[links]\nchain = [\"in\", \"comp\", \"out\"]\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ballastd"))
        .args(["render", "--config"])
        .arg(&cfg)
        .arg("--input")
        .arg(&dry)
        .arg("--output")
        .arg(&wet)
        .output()
        .unwrap();
    assert!(out.status.success(), "render: {}", String::from_utf8_lossy(&out.stderr));
    (dry, wet)
}

/// `busctl --json=short call` of a root method: the reply's first value, or busctl's error text.
fn call(bus: &Bus, method: &str, args: &[&str]) -> Result<Value, String> {
    // The refined estimate of a multiband pair takes seconds to tens of seconds on a loaded 2-core box: more
    // than busctl's default 25 s wait (the daemon's own limit for model calls is 120 s).
    let mut all = vec!["--json=short", "--timeout=150", "--", "call", "org.ballast.Daemon1", "/org/ballast/Daemon1"];
    all.extend_from_slice(&["org.ballast.Daemon1", method]);
    all.extend_from_slice(args);
    let (ok, out, err) = bus.busctl(&all);
    if !ok {
        return Err(err);
    }
    let v: Value = serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out}"))?;
    Ok(v["data"][0].clone())
}

fn status(bus: &Bus) -> Value {
    call(bus, "Status", &[]).expect("Status answers")
}

/// (state, detail) of the estimator in `Status`.
fn estimator_health(bus: &Bus) -> (String, String) {
    let st = status(bus);
    let m = &st["models"]["data"]["estimator"];
    (m[0].as_str().unwrap_or_default().to_string(), m[1].as_str().unwrap_or_default().to_string())
}

/// The loudness meter's momentary loudness: it moves block to block while noise flows.
fn momentary(bus: &Bus) -> Option<f64> {
    let m = call(bus, "Meters", &[]).ok()?;
    m["meter"]["momentary_lufs"].as_f64().filter(|v| v.is_finite())
}

/// Audio flows: the meter shows `n` different momentary readings within the wait.
fn audio_flows(bus: &Bus, n: usize) {
    let mut seen: Vec<u64> = Vec::new();
    wait_for(WAIT, "the loudness meter to move (audio flowing)", || {
        if let Some(v) = momentary(bus) {
            if !seen.contains(&v.to_bits()) {
                seen.push(v.to_bits());
            }
        }
        (seen.len() >= n).then_some(())
    });
}

fn get(bus: &Bus, node: &str, key: &str) -> f64 {
    call(bus, "Get", &["ss", node, key]).unwrap_or_else(|e| panic!("Get {node} {key}: {e}")).as_f64().unwrap()
}

/// `dbus-send` names the error of a failed call: (success, reply or `Error NAME: message`).
fn learn_raw(bus: &Bus, node: &str, dry: &Path, wet: &Path) -> (bool, String) {
    bus.dbus_send(&[
        "/org/ballast/Daemon1",
        "org.ballast.Daemon1.Learn",
        &format!("string:{node}"),
        &format!("string:{}", dry.display()),
        &format!("string:{}", wet.display()),
    ])
}

/// User + system CPU seconds of the daemon's thread named `name` (`/proc/PID/task/TID/stat`).
fn thread_cpu_s(pid: i32, name: &str) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        if fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name) {
            let stat = fs::read_to_string(t.path().join("stat")).unwrap();
            // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            return (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / hz;
        }
    }
    panic!("no thread {name} in ballastd");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[test]
fn learn_sets_running_nodes_as_one_transaction_while_audio_flows() {
    let home = scratch("wk-learn");
    let (dry, wet) = pair(&home, 12);
    let jack = Jackd::start("bwk-learn");
    let bus = Bus::start();
    let cfg = home.join("ballast.toml");
    let models = format!("[models]\nonnxruntime = \"{}\"\n", onnxruntime().display());
    fs::write(&cfg, live_config("wkl", &models)).unwrap();
    let env = [("JACK_DEFAULT_SERVER", jack.name.as_str()), ("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())];
    let mut d = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &env);
    d.wait_log("serving org.ballast.Daemon1", 0);
    jack.wait_ports(&["wkl:out_l", "wkl:out_r"]);
    audio_flows(&bus, 3);
    let (state, detail) = wait_for(WAIT, "the estimator to load", || {
        let h = estimator_health(&bus);
        (h.0 != "loading").then_some(h)
    });
    assert_eq!(state, "ready", "{detail}");
    assert!(detail.contains("estimator.onnx") && detail.contains("ONNX Runtime"), "{detail}");
    // The worker is an ordinary named thread of the daemon, not the JACK process thread.
    let threads: Vec<String> = fs::read_dir(format!("/proc/{}/task", d.pid()))
        .unwrap()
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    assert!(threads.iter().any(|t| t == "ballast-infer-1"), "threads: {threads:?}");

    // Learn on the compressor, with Status and Meters called meanwhile from this thread: the control
    // loop keeps answering while the worker runs, and the meter keeps moving.
    let before = get(&bus, "comp", "threshold_db");
    let learner = {
        let (address, dry, wet) = (bus.address.clone(), dry.clone(), wet.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let out = Command::new("busctl")
                .args([
                    "--user",
                    "--json=short",
                    "--timeout=150",
                    "call",
                    "org.ballast.Daemon1",
                    "/org/ballast/Daemon1",
                ])
                .args(["org.ballast.Daemon1", "Learn", "sss", "mb"])
                .arg(&dry)
                .arg(&wet)
                .env("DBUS_SESSION_BUS_ADDRESS", address)
                .output()
                .unwrap();
            (out, t0.elapsed())
        })
    };
    let mut answered_meanwhile = 0;
    let mut readings = Vec::new();
    while !learner.is_finished() {
        let _ = status(&bus);
        if let Some(v) = momentary(&bus) {
            readings.push(v.to_bits());
        }
        if !learner.is_finished() {
            answered_meanwhile += 1;
        }
    }
    let (out, took) = learner.join().unwrap();
    assert!(out.status.success(), "Learn mb: {}", String::from_utf8_lossy(&out.stderr));
    readings.dedup();
    eprintln!(
        "Learn on the 4-band multiband ({:.1} s of audio): {:.0} ms; {answered_meanwhile} Status+Meters calls answered \
         meanwhile, {} distinct meter readings",
        12.0,
        took.as_secs_f64() * 1e3,
        readings.len()
    );
    assert!(answered_meanwhile >= 1, "no call was answered while Learn ran ({took:?})");
    let applied: Value = serde_json::from_slice::<Value>(&out.stdout).unwrap()["data"][0].clone();
    let applied = applied.as_object().expect("a{sd}");
    assert_eq!(applied.len(), 24, "4 bands x 6 settings: {applied:?}");
    for (key, v) in applied {
        let now = get(&bus, "mb", key);
        assert!((now - v.as_f64().unwrap()).abs() < 1e-3, "mb {key}: Get {now}, Learn said {v}");
    }
    // The crossovers were the node's own and stay as they were.
    assert_eq!(get(&bus, "mb", "crossover_2_hz"), 2000.0);

    // The single-band compressor, many times: latency per Learn as a client sees it, and the worker
    // thread's CPU time over the run.
    let cpu0 = thread_cpu_s(d.pid(), "ballast-infer-1");
    let wall0 = Instant::now();
    let mut ms = Vec::new();
    let mut last = serde_json::Map::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let v = call(&bus, "Learn", &["sss", "comp", dry.to_str().unwrap(), wet.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("Learn comp: {e}\n{}", d.log_text()));
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        last = v.as_object().unwrap().clone();
    }
    let (cpu, wall) = (thread_cpu_s(d.pid(), "ballast-infer-1") - cpu0, wall0.elapsed().as_secs_f64());
    eprintln!("worker CPU over 20 Learns: {cpu:.2} s in {wall:.2} s wall ({:.0}% of one core)", 100.0 * cpu / wall);
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "Learn comp over D-Bus, 12 s stereo pair, 20 calls: p50 {:.1} ms, p99 {:.1} ms (max of 20), min {:.1} ms",
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[0]
    );
    let mut keys: Vec<&str> = last.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["attack_ms", "knee_db", "makeup_db", "ratio", "release_ms", "threshold_db"]);
    for (k, v) in &last {
        assert_eq!(get(&bus, "comp", k), v.as_f64().unwrap(), "comp {k}");
    }
    let learned = get(&bus, "comp", "threshold_db");
    assert_ne!(learned, before, "Learn changed the threshold");
    let truth: Vec<String> = MADE_WITH.iter().map(|(k, v)| format!("{k} {v} -> {:.2}", last[*k])).collect();
    eprintln!("made with / estimated: {}", truth.join(", "));
    d.wait_log("learn comp: 1 band(s) estimated", 0);

    // Errors, typed: an unreadable file, a pair that does not match, a node of another kind, no node.
    let (ok, text) = learn_raw(&bus, "comp", &dry, &home.join("missing.wav"));
    assert!(!ok && text.contains("org.ballast.Error.InvalidInput") && text.contains("no such file"), "{text}");
    let short = home.join("short.wav");
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(&dry)
        .args(["-t", "5", "-c:a", "pcm_f32le"])
        .arg(&short)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg cuts the dry file");
    let (ok, text) = learn_raw(&bus, "comp", &dry, &short);
    assert!(!ok && text.contains("org.ballast.Error.InvalidInput") && text.contains("lengths differ"), "{text}");
    let (ok, text) = learn_raw(&bus, "lim", &dry, &wet);
    assert!(!ok && text.contains("org.ballast.Error.WrongKind") && text.contains("limiter"), "{text}");
    let (ok, text) = learn_raw(&bus, "nope", &dry, &wet);
    assert!(!ok && text.contains("org.ballast.Error.UnknownNode"), "{text}");
    assert_eq!(get(&bus, "comp", "threshold_db"), learned, "failed Learns change nothing");

    // Estimate: settings per band without applying them; crossovers checked as a multiband's.
    let (d_s, w_s) = (dry.to_str().unwrap(), wet.to_str().unwrap());
    let bands = call(&bus, "Estimate", &["ssad", d_s, w_s, "3", "200", "2000", "8000"]).unwrap();
    let bands = bands.as_array().expect("aa{sd}");
    assert_eq!(bands.len(), 4, "{bands:?}");
    assert!(bands.iter().all(|b| b.as_object().unwrap().len() == 6), "{bands:?}");
    let (ok, text) = bus.dbus_send(&[
        "/org/ballast/Daemon1",
        "org.ballast.Daemon1.Estimate",
        &format!("string:{d_s}"),
        &format!("string:{w_s}"),
        "array:double:2000,200",
    ]);
    assert!(!ok && text.contains("org.ballast.Error.InvalidInput") && text.contains("must rise"), "{text}");
    assert_eq!(get(&bus, "comp", "threshold_db"), learned, "Estimate applies nothing");

    // Many at once: each one is applied or answered Busy (the queue holds a few), none is lost.
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (address, dry, wet) = (bus.address.clone(), dry.clone(), wet.clone());
            std::thread::spawn(move || {
                Command::new("dbus-send")
                    .args(["--session", "--print-reply", "--dest=org.ballast.Daemon1", "/org/ballast/Daemon1"])
                    .args(["org.ballast.Daemon1.Learn", "string:comp"])
                    .arg(format!("string:{}", dry.display()))
                    .arg(format!("string:{}", wet.display()))
                    .env("DBUS_SESSION_BUS_ADDRESS", address)
                    .output()
                    .unwrap()
            })
        })
        .collect();
    let (mut applied_n, mut busy) = (0, 0);
    for c in callers {
        let out = c.join().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            applied_n += 1;
        } else {
            assert!(text.contains("org.ballast.Error.Busy"), "{text}");
            busy += 1;
        }
    }
    eprintln!("8 concurrent Learns: {applied_n} applied, {busy} answered Busy");
    assert!(applied_n >= 1);

    // Through all of it the audio ran: the meter still moves.
    audio_flows(&bus, 3);
    assert!(d.alive());
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
}

/// The daemon with a model it cannot use: it starts, runs audio, says why in `Status` and answers
/// `Learn` with `ModelUnavailable`.
fn unavailable_case(tag: &str, models: &str, reason_has: &[&str]) {
    let home = scratch(tag);
    let jack = Jackd::start(&format!("b{tag}"));
    let bus = Bus::start();
    let cfg = home.join("ballast.toml");
    fs::write(&cfg, live_config(tag, models)).unwrap();
    fs::write(home.join("corrupt.onnx"), b"this is not an ONNX model, just some bytes\x00\x01\x02").unwrap();
    let env = [("JACK_DEFAULT_SERVER", jack.name.as_str()), ("DBUS_SESSION_BUS_ADDRESS", bus.address.as_str())];
    let mut d = Daemon::start(&home, &["--config", cfg.to_str().unwrap()], &env);
    d.wait_log("serving org.ballast.Daemon1", 0);
    jack.wait_ports(&[&format!("{tag}:out_l"), &format!("{tag}:out_r")]);
    let (state, detail) = wait_for(WAIT, "the estimator's health", || {
        let h = estimator_health(&bus);
        (h.0 != "loading").then_some(h)
    });
    assert_eq!(state, "unavailable", "{detail}");
    for want in reason_has {
        assert!(detail.contains(want), "wanted {want:?} in the reason: {detail}");
    }
    d.wait_log("estimator model unavailable", 0);
    audio_flows(&bus, 3);
    let dry = home.join("any.wav");
    let (ok, text) = learn_raw(&bus, "comp", &dry, &dry);
    assert!(!ok && text.contains("org.ballast.Error.ModelUnavailable"), "{text}");
    for want in reason_has {
        assert!(text.contains(want), "wanted {want:?} in the error: {text}");
    }
    // Still running, still serving, still processing audio.
    assert!(d.alive());
    assert_eq!(status(&bus)["backend"]["data"], "jack");
    audio_flows(&bus, 3);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.log_text());
}

#[test]
fn a_missing_onnxruntime_library_leaves_audio_running_and_the_model_unavailable() {
    unavailable_case(
        "wk-nolib",
        "[models]\nonnxruntime = \"/nonexistent/ballast-test/libonnxruntime.so.1.31.1\"\n",
        &["/nonexistent/ballast-test/libonnxruntime.so.1.31.1", "make onnxruntime"],
    );
}

#[test]
fn a_corrupt_model_leaves_audio_running_and_the_model_unavailable() {
    let models = format!("[models]\nonnxruntime = \"{}\"\nestimator = \"corrupt.onnx\"\n", onnxruntime().display());
    unavailable_case("wk-corrupt", &models, &["corrupt.onnx", "not a usable ONNX model"]);
}

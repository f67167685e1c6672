//! `ballastctl gen render`, driven as a real binary with the committed note model and the real ONNX
//! Runtime: the file it writes is parsed back (header, tracks, note count), the same seed writes the same
//! bytes, and bad input fails with the documented exit codes.
use std::path::PathBuf;
use std::process::{Command, Output};

use ballast_models::notes::midi::read_smf;

const BIN: &str = env!("CARGO_BIN_EXE_ballastctl");

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("ballastctl-gen-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ctl(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run ballastctl")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "ballastctl failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn renders_a_midi_file_that_parses_back() {
    let d = Scratch::new("render");
    let file = d.0.join("chorale.mid");
    let f = file.to_str().unwrap();
    let args = ["gen", "render", "--bars", "8", "--seed", "7", "--output", f, "--tempo", "72", "--json"];
    let v = json(&ctl(&args));
    assert_eq!(v["bars"], 8);
    assert_eq!(v["tracks"], 5);
    assert_eq!(v["tempo_bpm"], 72.0);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(&bytes[..4], b"MThd");
    let midi = read_smf(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(midi.format, 1);
    assert_eq!(midi.tracks.len(), 5);
    assert!((midi.tempo_bpm - 72.0).abs() < 0.01);
    let notes: usize = midi.tracks.iter().map(|t| t.notes.len()).sum();
    assert_eq!(notes as u64, v["notes"].as_u64().unwrap());
    assert!(notes >= 16, "only {notes} notes in 8 bars of four voices");
    let end = midi.notes().iter().map(|n| n.end_beats()).fold(0.0, f64::max);
    assert!(end <= 32.0 + 1e-9, "notes run to beat {end}, past 8 bars");

    // Same seed and options: the same bytes.
    let again = d.0.join("again.mid");
    let a = again.to_str().unwrap();
    json(&ctl(&["gen", "render", "--bars", "8", "--seed", "7", "--output", a, "--tempo", "72", "--json"]));
    assert_eq!(std::fs::read(&again).unwrap(), bytes, "the same seed wrote a different file");

    // Two voices: a tempo track and two voice tracks.
    let outer = d.0.join("outer.mid");
    let o = outer.to_str().unwrap();
    let v = json(&ctl(&["gen", "render", "--bars", "4", "--seed", "2", "-o", o, "--voices", "sb", "--json"]));
    assert_eq!(v["tracks"], 3);
    let midi = read_smf(&std::fs::read(&outer).unwrap()).unwrap();
    assert_eq!(midi.tracks.len(), 3);
    assert_eq!(midi.tracks[2].name.as_deref(), Some("Bass"));

    // Primed from the first file: its first bars come back.
    let primed = d.0.join("primed.mid");
    let p = primed.to_str().unwrap();
    let v = json(&ctl(&["gen", "render", "--bars", "2", "-o", p, "--prime", f, "--json"]));
    assert_eq!(v["bars"], 10, "8 bars of primer + 2");

    let avoid = d.0.join("avoid.mid");
    let a = avoid.to_str().unwrap();
    let v = json(&ctl(&["gen", "render", "--bars", "4", "--seed", "7", "-o", a, "--avoid-parallels", "--json"]));
    assert_eq!(v["avoid_parallels"], true);
}

#[test]
fn bad_input_fails_with_the_documented_exit_codes() {
    let d = Scratch::new("bad");
    let out = d.0.join("x.mid");
    let o = out.to_str().unwrap();
    let r = ctl(&["gen", "render", "--bars", "2", "-o", o, "--model", "/nonexistent/notes.onnx"]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.starts_with("ballastctl: ModelUnavailable: ") && err.contains("/nonexistent/notes.onnx"), "{err}");
    for bad in [&["--voices", "xq"][..], &["--temperature", "0"], &["--bars", "0"], &["--key", "H"], &["--tempo", "5"]]
    {
        let mut args = vec!["gen", "render", "-o", o];
        args.extend_from_slice(bad);
        let r = ctl(&args);
        assert_eq!(r.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&r.stderr));
    }
    let not_midi = d.0.join("not.mid");
    std::fs::write(&not_midi, b"RIFF....").unwrap();
    let r = ctl(&["gen", "render", "-o", o, "--prime", not_midi.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("MThd"));
    let r = ctl(&["gen", "render", "--bars", "1", "-o", "/nonexistent-dir/x.mid"]);
    assert_eq!(r.status.code(), Some(4));
    assert!(!out.exists());
}

//! The control API over a real `Controller` and a real `Engine` run block by block on this thread:
//! status, nodes, parameters (validated, in effect on the RT side), bypass, transactions that keep the
//! state of surviving nodes, presets in a real directory, and every error type.

use std::f32::consts::TAU;
use std::path::PathBuf;

use ballastd::config;
use ballastd::control_api::{Answer, Answerer, ApiError, GraphOp, Request, StatusInfo};
use ballastd::engine::{self, Controller, Engine, EngineConfig, Reclaimer};
use ballastd::presets::PresetStore;

const RATE: f64 = 48_000.0;
const BLOCK: usize = 256;

/// in → meter (loudness meter) → comp (compressor) → out, stereo.
const GRAPH: &str = r#"
[engine]
backend = "offline"
[ports]
audio_in = ["in_l", "in_r"]
audio_out = ["out_l", "out_r"]
[nodes.meter]
kind = "loudness_meter"
[nodes.comp]
kind = "compressor"
threshold_db = -20
[links]
chain = ["in", "meter", "comp", "out"]
"#;

struct Rig {
    controller: Controller,
    engine: Engine,
    reclaimer: Reclaimer,
    presets: PresetStore,
    dir: PathBuf,
    phase: f32,
    /// Peak of the last `run`'s output, per channel.
    out_peak: f32,
}

impl Rig {
    fn new(name: &str) -> Rig {
        let config = config::parse(GRAPH, "test.toml").expect("test config is valid");
        let (mut controller, engine, reclaimer) =
            engine::new(EngineConfig { sample_rate: RATE, max_block: BLOCK, ..EngineConfig::default() });
        controller.apply(&config.graph).expect("graph applies");
        let dir = std::env::temp_dir().join(format!("ballast-control-api-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let presets = PresetStore::new(dir.join("presets"));
        Rig { controller, engine, reclaimer, presets, dir, phase: 0.0, out_peak: 0.0 }
    }

    fn ask(&mut self, req: Request) -> Result<Answer, ApiError> {
        let status = StatusInfo {
            backend: "test".into(),
            sample_rate_hz: RATE as u32,
            block_size: BLOCK as u32,
            version: env!("CARGO_PKG_VERSION").into(),
            ..StatusInfo::default()
        };
        let mut a = Answerer { controller: &mut self.controller, status, presets: &self.presets };
        a.answer(req)
    }

    /// Runs `seconds` of a 1 kHz sine at `level_db` (peak, dBFS) on both inputs through the engine.
    fn run(&mut self, seconds: f64, level_db: f32) {
        let amp = 10f32.powf(level_db / 20.0);
        let step = TAU * 1000.0 / RATE as f32;
        let blocks = (seconds * RATE / BLOCK as f64).ceil() as usize;
        let mut input = vec![0.0f32; BLOCK];
        let (mut l, mut r) = (vec![0.0f32; BLOCK], vec![0.0f32; BLOCK]);
        self.out_peak = 0.0;
        for _ in 0..blocks {
            for s in input.iter_mut() {
                *s = amp * self.phase.sin();
                self.phase = (self.phase + step) % TAU;
            }
            let mut outputs: [&mut [f32]; 2] = [&mut l, &mut r];
            self.engine.process(&[&input, &input], &mut outputs);
            self.out_peak = l.iter().chain(&r).fold(self.out_peak, |p, s| p.max(s.abs()));
            self.reclaimer.collect();
        }
    }

    fn meter(&mut self, node: &str, key: &str) -> f64 {
        let Ok(Answer::Meters(all)) = self.ask(Request::Meters) else { panic!("meters") };
        let n = all.iter().find(|m| m.node == node).unwrap_or_else(|| panic!("no meters for {node}"));
        n.values.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no meter {key}")).1
    }

    fn get(&mut self, node: &str, param: &str) -> f64 {
        match self.ask(Request::Get { node: node.into(), param: param.into() }) {
            Ok(Answer::Value(v)) => v,
            other => panic!("get {node}.{param}: {other:?}"),
        }
    }

    fn node_names(&mut self) -> Vec<String> {
        let Ok(Answer::Nodes(nodes)) = self.ask(Request::ListNodes) else { panic!("list") };
        nodes.into_iter().map(|n| n.name).collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn set(node: &str, param: &str, value: f64) -> Request {
    Request::Set { node: node.into(), param: param.into(), value }
}

fn kind(r: &Result<Answer, ApiError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    }
}

#[test]
fn status_nodes_and_params() {
    let mut rig = Rig::new("status");
    let Ok(Answer::Status(s)) = rig.ask(Request::Status) else { panic!("status") };
    assert_eq!(s.info.backend, "test");
    assert_eq!(s.info.sample_rate_hz, 48_000);
    assert_eq!(s.nodes, 2);
    assert_eq!(s.graph_latency_samples, 0, "no lookahead in meter → compressor");

    let Ok(Answer::Nodes(nodes)) = rig.ask(Request::ListNodes) else { panic!("list") };
    let listed: Vec<(&str, &str, u32, bool)> =
        nodes.iter().map(|n| (n.name.as_str(), n.kind.as_str(), n.channels, n.bypassed)).collect();
    assert_eq!(listed, [("meter", "loudness_meter", 2, false), ("comp", "compressor", 2, false)]);

    let Ok(Answer::Params(params)) = rig.ask(Request::Params { node: "comp".into() }) else { panic!("params") };
    let t = params.iter().find(|p| p.key == "threshold_db").expect("threshold_db listed");
    assert_eq!((t.unit.as_str(), t.value), ("dB", -20.0), "the config's value, in dB");
    assert!(t.min < t.max && !t.doc.is_empty());
    let d = params.iter().find(|p| p.key == "detector").expect("detector listed");
    assert_eq!(d.choices, ["peak", "rms"]);
    assert_eq!(rig.get("comp", "threshold_db"), -20.0);
    assert_eq!(kind(&rig.ask(Request::Reload)), "ok");
    assert_eq!(rig.ask(Request::Reload), Ok(Answer::Reload), "reload is the service's to do");
}

#[test]
fn set_is_validated_and_reaches_the_rt_side() {
    let mut rig = Rig::new("set");
    rig.run(0.5, -6.0);
    let before = rig.out_peak;
    // A hard, fast compressor at -40 dB pulls a -6 dBFS sine down by tens of dB.
    for (p, v) in [("threshold_db", -40.0), ("ratio", 20.0), ("attack_ms", 0.1), ("makeup_db", 0.0)] {
        assert_eq!(rig.ask(set("comp", p, v)), Ok(Answer::Value(v as f32 as f64)), "{p}: the f32 in effect");
    }
    rig.run(0.5, -6.0);
    // Peak of a later stretch: the change is smoothed and the gain computer attacks and settles first.
    rig.run(0.2, -6.0);
    let after = rig.out_peak;
    println!("peak before {before:.4}, after the sets {after:.4} ({:.1} dB)", 20.0 * (after / before).log10());
    assert!(20.0 * (after / before).log10() < -20.0, "set took effect on the RT side: peak {before} → {after}");
    assert_eq!(rig.get("comp", "threshold_db"), -40.0);

    let e = rig.ask(set("comp", "threshold_db", 50.0)).unwrap_err();
    assert_eq!(e.kind(), "OutOfRange");
    assert!(e.message().contains("comp.threshold_db = 50") && e.message().contains("(dB)"), "{e}");
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
        assert_eq!(kind(&rig.ask(set("comp", "threshold_db", bad))), "OutOfRange", "{bad}");
    }
    let e = rig.ask(set("comp", "detector", 0.5)).unwrap_err();
    assert!(e.message().contains("0 = peak, 1 = rms"), "{e}");
    let e = rig.ask(set("comp", "treshold_db", -10.0)).unwrap_err();
    assert_eq!(e.kind(), "UnknownParam");
    assert!(e.message().contains("threshold_db") && e.message().contains("ratio"), "lists the params: {e}");
    let e = rig.ask(set("compp", "threshold_db", -10.0)).unwrap_err();
    assert_eq!(e.kind(), "UnknownNode");
    assert!(e.message().contains("meter, comp"), "lists the nodes: {e}");
    assert_eq!(kind(&rig.ask(Request::Get { node: "".into(), param: "x".into() })), "UnknownNode");
    assert_eq!(kind(&rig.ask(Request::Params { node: "nope".into() })), "UnknownNode");
    assert_eq!(rig.get("comp", "threshold_db"), -40.0, "refused sets changed nothing");
}

#[test]
fn bypass_is_listed() {
    let mut rig = Rig::new("bypass");
    assert_eq!(rig.ask(Request::Bypass { node: "comp".into(), on: true }), Ok(Answer::Done));
    let Ok(Answer::Nodes(nodes)) = rig.ask(Request::ListNodes) else { panic!() };
    assert!(nodes.iter().find(|n| n.name == "comp").unwrap().bypassed);
    assert_eq!(kind(&rig.ask(Request::Bypass { node: "x".into(), on: true })), "UnknownNode");
    rig.ask(Request::Bypass { node: "comp".into(), on: false }).unwrap();
    let Ok(Answer::Nodes(nodes)) = rig.ask(Request::ListNodes) else { panic!() };
    assert!(nodes.iter().all(|n| !n.bypassed));

    // A node replaced under the same name is a new node: not bypassed.
    rig.ask(Request::Bypass { node: "comp".into(), on: true }).unwrap();
    let ops = vec![
        GraphOp::RemoveNode { name: "comp".into() },
        GraphOp::AddNode { name: "comp".into(), kind: "limiter".into(), params: vec![], channels: None, bands: None },
        GraphOp::Connect { from: "meter".into(), to: "comp".into() },
        GraphOp::Connect { from: "comp".into(), to: "out".into() },
    ];
    rig.ask(Request::Commit { ops }).unwrap();
    let Ok(Answer::Nodes(nodes)) = rig.ask(Request::ListNodes) else { panic!() };
    let comp = nodes.iter().find(|n| n.name == "comp").unwrap();
    assert_eq!((comp.kind.as_str(), comp.bypassed), ("limiter", false));
}

/// Half the graph replaced in one commit: the loudness meter survives and keeps integrating across it.
/// Before the commit the programme is a -10 dBFS sine, after it a -30 dBFS one. A meter that kept its
/// state still reads about the loud part (BS.1770's relative gate, 10 LU below the ungated mean, drops
/// the quiet blocks); a meter added by the commit hears only the quiet part, 20 LU lower. A meter that
/// had been reset by the edit would read like the fresh one.
#[test]
fn commit_replaces_half_the_graph_and_survivors_keep_state() {
    let mut rig = Rig::new("commit");
    assert_eq!(rig.ask(set("comp", "ratio", 3.0)), Ok(Answer::Value(3.0)));
    rig.run(6.0, -10.0);
    let before = rig.meter("meter", "integrated_lufs");
    assert!(before.is_finite(), "integrated loudness after 6 s: {before}");

    let ops = vec![
        GraphOp::RemoveNode { name: "comp".into() },
        GraphOp::AddNode {
            name: "limit".into(),
            kind: "limiter".into(),
            params: vec![("ceiling_dbtp".into(), -3.0)],
            channels: None,
            bands: None,
        },
        GraphOp::AddNode {
            name: "fresh".into(),
            kind: "loudness_meter".into(),
            params: vec![],
            channels: None,
            bands: None,
        },
        GraphOp::Connect { from: "meter".into(), to: "limit".into() },
        GraphOp::Connect { from: "limit".into(), to: "out".into() },
        GraphOp::Connect { from: "in".into(), to: "fresh".into() },
    ];
    let a = rig.ask(Request::Commit { ops }).expect("commit");
    let Answer::Applied { kept, inserted, removed, latency_samples } = a else { panic!("{a:?}") };
    assert_eq!((kept, inserted, removed), (1, 2, 1), "meter kept; limit and fresh made; comp gone");
    assert!(latency_samples > 0, "the limiter's lookahead");
    assert_eq!(rig.node_names(), ["meter", "limit", "fresh"]);
    assert_eq!(rig.get("limit", "ceiling_dbtp"), -3.0);

    rig.run(6.0, -30.0);
    let kept_i = rig.meter("meter", "integrated_lufs");
    let fresh_i = rig.meter("fresh", "integrated_lufs");
    println!("integrated: before commit {before:.2}, kept meter {kept_i:.2}, fresh meter {fresh_i:.2} LUFS");
    assert!(fresh_i.is_finite() && kept_i.is_finite());
    assert!((fresh_i - (before - 20.0)).abs() < 1.0, "fresh meter hears only the -30 dBFS part: {fresh_i}");
    assert!(kept_i - fresh_i > 10.0, "the kept meter integrated across the commit: {kept_i} vs {fresh_i}");
    assert!(rig.out_peak <= 10f32.powf(-3.0 / 20.0) * 1.02, "limiter in the path: peak {}", rig.out_peak);
}

#[test]
fn parameter_changes_survive_a_commit() {
    let mut rig = Rig::new("survive");
    rig.ask(set("comp", "threshold_db", -33.0)).unwrap();
    rig.ask(set("comp", "knee_db", 4.0)).unwrap();
    let ops = vec![GraphOp::AddNode {
        name: "meter2".into(),
        kind: "loudness_meter".into(),
        params: vec![],
        channels: Some(1),
        bands: None,
    }];
    rig.ask(Request::Commit { ops: ops.clone() }).unwrap();
    assert_eq!(rig.get("comp", "threshold_db"), -33.0, "set_param changes are part of the edited graph");
    assert_eq!(rig.get("comp", "knee_db"), 4.0);
}

#[test]
fn bad_transactions_are_refused_whole() {
    let mut rig = Rig::new("badtx");
    let names = rig.node_names();
    let add = |name: &str, kind: &str| GraphOp::AddNode {
        name: name.into(),
        kind: kind.into(),
        params: vec![],
        channels: None,
        bands: None,
    };
    let connect = |f: &str, t: &str| GraphOp::Connect { from: f.into(), to: t.into() };
    let cases: Vec<(Vec<GraphOp>, &str, &str)> = vec![
        (vec![add("x", "limiter"), connect("x", "nosuch")], "UnknownNode", "no node or bus named `nosuch`"),
        (vec![GraphOp::RemoveNode { name: "ghost".into() }], "UnknownNode", "no node named"),
        (vec![connect("comp", "meter")], "InvalidGraph", "cycle"),
        (vec![connect("comp", "in")], "InvalidGraph", "can only be a source"),
        (vec![connect("meter:in_1", "comp")], "InvalidGraph", "wrong side"),
        (vec![add("x", "tone"), connect("comp", "x")], "InvalidGraph", "generator"),
        (vec![add("x", "nope")], "InvalidGraph", "known kinds"),
        (vec![add("comp", "limiter")], "InvalidGraph", "exists already"),
        (vec![add("a/b", "limiter")], "InvalidName", "contains '/'"),
        (vec![add("in", "limiter")], "InvalidName", "bus"),
        (vec![add("mb", "multiband")], "InvalidGraph", "bands in 2..=6"),
        (
            vec![GraphOp::AddNode {
                name: "x".into(),
                kind: "limiter".into(),
                params: vec![("ceiling".into(), -1.0)],
                channels: None,
                bands: None,
            }],
            "UnknownParam",
            "ceiling_dbtp",
        ),
        (
            vec![GraphOp::AddNode {
                name: "x".into(),
                kind: "limiter".into(),
                params: vec![("ceiling_dbtp".into(), 99.0)],
                channels: None,
                bands: None,
            }],
            "OutOfRange",
            "dBTP",
        ),
        (
            vec![
                GraphOp::AddNode {
                    name: "x".into(),
                    kind: "limiter".into(),
                    params: vec![],
                    channels: Some(6),
                    bands: None,
                },
                connect("comp", "x"),
            ],
            "InvalidGraph",
            "2 channels into 6",
        ),
        (vec![GraphOp::Disconnect { from: "in".into(), to: "comp".into() }], "InvalidGraph", "no link"),
    ];
    for (ops, want, text) in cases {
        let r = rig.ask(Request::Commit { ops: ops.clone() });
        let e = r.expect_err(&format!("{ops:?} must fail"));
        assert_eq!(e.kind(), want, "{ops:?}: {e}");
        assert!(e.message().contains(text), "{ops:?}: message {:?} lacks {text:?}", e.message());
        assert_eq!(rig.node_names(), names, "nothing applied");
    }
    // Multiband band parameters by key; a disconnect and reconnect in one commit.
    let ops = vec![
        GraphOp::AddNode {
            name: "mb".into(),
            kind: "multiband".into(),
            params: vec![("band2.threshold_db".into(), -31.0), ("crossover_1_hz".into(), 250.0)],
            channels: None,
            bands: Some(3),
        },
        GraphOp::Disconnect { from: "comp".into(), to: "out".into() },
        connect("comp", "mb"),
        connect("mb:out_1", "out:out_l"),
        connect("mb:out_2", "out:out_r"),
    ];
    rig.ask(Request::Commit { ops }).expect("multiband commit");
    assert_eq!(rig.get("mb", "band2.threshold_db"), -31.0);
    assert_eq!(rig.get("mb", "crossover_1_hz"), 250.0);
    assert_eq!(kind(&rig.ask(Request::Get { node: "mb".into(), param: "band4.threshold_db".into() })), "UnknownParam");
    assert_eq!(kind(&rig.ask(Request::Get { node: "mb".into(), param: "crossover_3_hz".into() })), "UnknownParam");
    let Ok(Answer::Nodes(nodes)) = rig.ask(Request::ListNodes) else { panic!() };
    let mb = nodes.iter().find(|n| n.name == "mb").unwrap();
    assert_eq!((mb.channels, mb.bands), (2, 3), "width inferred from comp, as the config would");
    rig.run(0.2, -10.0);
    assert!(rig.out_peak > 0.01, "audio flows through the new path: {}", rig.out_peak);
}

#[test]
fn presets_round_trip_and_names_are_checked() {
    let mut rig = Rig::new("presets");
    rig.ask(set("comp", "threshold_db", -27.0)).unwrap();
    rig.ask(Request::Bypass { node: "comp".into(), on: true }).unwrap();
    assert_eq!(rig.ask(Request::PresetSave { name: "evening-show_2.v1".into() }), Ok(Answer::Done));
    assert_eq!(rig.ask(Request::PresetList), Ok(Answer::Presets(vec!["evening-show_2.v1".into()])));

    // Change everything the preset holds.
    rig.ask(set("comp", "threshold_db", -5.0)).unwrap();
    rig.ask(Request::Bypass { node: "comp".into(), on: false }).unwrap();
    let ops = vec![
        GraphOp::AddNode { name: "extra".into(), kind: "limiter".into(), params: vec![], channels: None, bands: None },
        GraphOp::Connect { from: "comp".into(), to: "extra".into() },
    ];
    rig.ask(Request::Commit { ops }).unwrap();
    assert_eq!(rig.node_names(), ["meter", "comp", "extra"]);

    let a = rig.ask(Request::PresetLoad { name: "evening-show_2.v1".into() }).expect("load");
    assert!(matches!(a, Answer::Applied { kept: 2, inserted: 0, removed: 1, .. }), "{a:?}");
    assert_eq!(rig.node_names(), ["meter", "comp"]);
    assert_eq!(rig.get("comp", "threshold_db"), -27.0);
    let Ok(Answer::Nodes(nodes)) = rig.ask(Request::ListNodes) else { panic!() };
    assert!(nodes.iter().find(|n| n.name == "comp").unwrap().bypassed, "bypass restored");

    let long = "a".repeat(65);
    for bad in ["../x", "a/b", ".hidden", "", long.as_str(), "..", "x\0y", "a b"] {
        for req in [
            Request::PresetSave { name: bad.into() },
            Request::PresetLoad { name: bad.into() },
            Request::PresetDelete { name: bad.into() },
        ] {
            let e = rig.ask(req.clone()).expect_err("bad name");
            assert_eq!(e.kind(), "InvalidName", "{req:?}: {e}");
            assert!(e.message().contains("letters, digits"), "says what is allowed: {e}");
        }
    }
    assert!(rig.ask(Request::PresetSave { name: "a".repeat(64) }).is_ok(), "64 characters are fine");
    let files: Vec<String> =
        std::fs::read_dir(&rig.dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(files, ["presets"], "nothing written beside the presets directory");

    assert_eq!(kind(&rig.ask(Request::PresetLoad { name: "missing".into() })), "Failed");
    assert_eq!(rig.ask(Request::PresetDelete { name: "evening-show_2.v1".into() }), Ok(Answer::Done));
    assert_eq!(kind(&rig.ask(Request::PresetDelete { name: "evening-show_2.v1".into() })), "Failed");
    assert_eq!(rig.ask(Request::PresetList), Ok(Answer::Presets(vec!["a".repeat(64)])));
    // A corrupt file is reported, not applied.
    std::fs::write(rig.presets.dir().join("broken.json"), "{\"version\": 1, \"graph\": 3}").unwrap();
    let e = rig.ask(Request::PresetLoad { name: "broken".into() }).unwrap_err();
    assert_eq!(e.kind(), "Failed");
    assert!(e.message().contains("broken"), "{e}");
}

#[test]
fn meters_are_listed_by_key() {
    let mut rig = Rig::new("meters");
    rig.run(1.0, -20.0);
    let m = rig.meter("meter", "momentary_lufs");
    assert!(m.is_finite() && m < -15.0 && m > -30.0, "momentary loudness of a -20 dBFS sine: {m}");
    assert!(rig.meter("comp", "gain_reduction_db").is_finite());
}

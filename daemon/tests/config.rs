//! Config parsing and validation: every error class with its exact `line:col`, the examples, the docs,
//! and `ballastd check` as a program.

use std::path::PathBuf;
use std::process::Command;

use ballast_dsp::param::ParamId;
use ballast_dsp::registry::{self, Shape};
use ballastd::config::{self, docs, Backend, Config, Severity};
use ballastd::graph::{Endpoint, Link};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn ok(text: &str) -> Config {
    match config::parse(text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// Every diagnostic as `LINE:COL: error: message` (the file name is the same everywhere).
fn diags(text: &str) -> Vec<String> {
    match config::parse(text, "t.toml") {
        Ok(c) => panic!("expected errors; it parsed (warnings: {:?})", c.warnings),
        Err(e) => e.diagnostics.iter().map(|d| d.to_string().trim_start_matches("t.toml:").to_string()).collect(),
    }
}

/// Asserts exactly one error, at `at` (`"LINE:COL"`), whose message contains every piece of `has`.
fn one_error(text: &str, at: &str, has: &[&str]) {
    let d = diags(text);
    let errors: Vec<&String> = d.iter().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 1, "{d:#?}");
    assert!(errors[0].starts_with(&format!("{at}: error: ")), "wanted at {at}: {}", errors[0]);
    for h in has {
        assert!(errors[0].contains(h), "`{h}` missing from: {}", errors[0]);
    }
}

fn pid(kind: &str, key: &str) -> ParamId {
    registry::find(kind).unwrap().descriptor.param_by_key(key).unwrap().id
}

fn band_pid(band: usize, key: &str) -> ParamId {
    let d = registry::find("multiband").unwrap().descriptor;
    ParamId::band(band, d.band_params.iter().find(|p| p.key == key).unwrap().id)
}

fn param(c: &Config, node: &str, id: ParamId) -> Option<f32> {
    let n = c.graph.nodes.iter().find(|n| n.name == node)?;
    n.params.iter().find(|(i, _)| *i == id).map(|(_, v)| *v)
}

fn node(node: usize) -> Endpoint {
    Endpoint::Node { node, channel: None }
}

const BUS: Endpoint = Endpoint::Io { channel: None };

const STEREO: &str = "[ports]\naudio_in = [\"in_l\", \"in_r\"]\naudio_out = [\"out_l\", \"out_r\"]\n";

// ---------------------------------------------------------------------------------------------
// The examples

#[test]
fn broadcast_example_is_the_r128_chain() {
    let c = config::load(repo("config/broadcast.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.engine.backend, Backend::Jack);
    let g = &c.graph;
    assert_eq!(g.inputs, ["in_l", "in_r"]);
    assert_eq!(g.outputs, ["out_l", "out_r"]);
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["mbc", "level", "limit", "meter"]);
    let kinds: Vec<&str> = g.nodes.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["multiband", "loudness", "limiter", "loudness_meter"]);
    assert_eq!(g.nodes[0].shape, Shape { channels: 2, bands: 4 });
    for n in &g.nodes[1..] {
        assert_eq!(n.shape.channels, 2, "{}", n.name);
    }
    assert_eq!(
        g.links,
        [
            Link { from: BUS, to: node(0) },
            Link { from: node(0), to: node(1) },
            Link { from: node(1), to: node(2) },
            Link { from: node(2), to: BUS },
            Link { from: node(2), to: node(3) },
        ]
    );
    assert_eq!(param(&c, "mbc", pid("multiband", "crossover_1_hz")), Some(120.0));
    assert_eq!(param(&c, "mbc", pid("multiband", "crossover_3_hz")), Some(6000.0));
    assert_eq!(param(&c, "mbc", pid("multiband", "crossover_4_hz")), None);
    assert_eq!(param(&c, "mbc", band_pid(0, "threshold_db")), Some(-24.0));
    assert_eq!(param(&c, "mbc", band_pid(3, "ratio")), Some(4.0));
    assert_eq!(param(&c, "mbc", band_pid(3, "attack_ms")), Some(3.0));
    assert_eq!(param(&c, "level", pid("loudness", "target_lufs")), Some(-23.0));
    assert_eq!(param(&c, "limit", pid("limiter", "ceiling_dbtp")), Some(-1.0));
    // Every value the validator let through, the node itself accepts.
    for n in &g.nodes {
        let mut p = registry::create(&n.kind, n.shape).unwrap();
        for &(id, v) in &n.params {
            p.set_param(id, v).unwrap_or_else(|e| panic!("{}: {e}", n.name));
        }
    }
}

#[test]
fn default_example_makes_sound_without_inputs() {
    let c = config::load(repo("config/default.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let g = &c.graph;
    assert!(g.inputs.is_empty());
    assert_eq!(g.outputs.len(), 2);
    let generators: Vec<&str> =
        g.nodes.iter().filter(|n| registry::find(&n.kind).unwrap().generator).map(|n| n.name.as_str()).collect();
    assert_eq!(generators, ["tone", "noise"]);
    let kinds: Vec<&str> = g.nodes.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["tone", "noise", "multiband", "loudness", "limiter"]);
    assert_eq!(g.nodes[2].shape, Shape { channels: 2, bands: 3 });
    // Both generators feed the multiband; the limiter feeds the outputs.
    assert!(g.links.contains(&Link { from: node(0), to: node(2) }));
    assert!(g.links.contains(&Link { from: node(1), to: node(2) }));
    assert!(g.links.contains(&Link { from: node(4), to: BUS }));
    assert!(!g.links.iter().any(|l| l.from == BUS), "nothing reads the (absent) inputs");
    assert_eq!(param(&c, "tone", pid("tone", "waveform")), Some(1.0)); // "saw"
    assert_eq!(param(&c, "noise", pid("noise", "color")), Some(1.0)); // "pink"
    assert_eq!(param(&c, "mbc", band_pid(1, "detector")), Some(1.0)); // "rms"
}

#[test]
fn studio_bus_example() {
    let c = config::load(repo("config/studio-bus.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let kinds: Vec<&str> = c.graph.nodes.iter().map(|n| n.kind.as_str()).collect();
    assert_eq!(kinds, ["compressor", "limiter", "loudness_meter"]);
    assert_eq!(c.engine.client_name, "ballast-bus");
    assert_eq!(param(&c, "glue", pid("compressor", "detector")), Some(1.0));
    assert_eq!(param(&c, "glue", pid("compressor", "ratio")), Some(2.0));
    assert_eq!(c.graph.links.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Each error class, with its position

#[test]
fn toml_syntax_error_has_its_position() {
    one_error("[engine]\nbackend = \"jack\"\nblock_size = = 3\n", "3:14", &["TOML syntax"]);
}

#[test]
fn unknown_key_suggests_the_nearest() {
    let text = "[nodes.c]\nkind = \"compressor\"\ntreshold_db = -20\n";
    one_error(text, "3:1", &["unknown key `treshold_db`", "did you mean `threshold_db`?"]);
    one_error("[engin]\n", "1:2", &["unknown key `engin`", "did you mean `engine`?"]);
    one_error("[engine]\nblock_sise = 64\n", "2:1", &["did you mean `block_size`?"]);
    one_error("[links]\nchian = []\n", "2:1", &["did you mean `chain`?"]);
    let band = "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [200]\nbands = [{}, { atack_ms = 3 }]\n";
    one_error(band, "4:16", &["unknown key `atack_ms` in band 2", "did you mean `attack_ms`?"]);
    let split = "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [200]\ncrossover_1_hz = 100\n";
    one_error(split, "4:1", &["crossovers_hz"]);
}

#[test]
fn wrong_type() {
    one_error(
        "[nodes.c]\nkind = \"compressor\"\nratio = \"4\"\n",
        "3:9",
        &["`ratio` must be a number, found a string"],
    );
    one_error("[nodes.c]\nkind = \"compressor\"\ndetector = 1\n", "3:12", &["`detector` must be a string"]);
    let solo = "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [200]\nbands = [{ solo = 1 }, {}]\n";
    one_error(solo, "4:19", &["`solo` must be true or false"]);
    one_error("[engine]\nsample_rate_hz = 48000.0\n", "2:18", &["must be an integer"]);
    one_error("[ports]\naudio_in = \"in_l\"\n", "2:12", &["must be an array"]);
    one_error("[ports]\naudio_in = [\"a\", 2]\n", "2:18", &["must be strings"]);
    one_error("nodes = 3\n", "1:9", &["`nodes` must be a table"]);
}

#[test]
fn out_of_range_names_range_and_unit() {
    one_error("[nodes.c]\nkind = \"compressor\"\nratio = 0.5\n", "3:9", &["ratio = 0.5 is out of range 1..inf (:1)"]);
    one_error(
        "[nodes.l]\nkind = \"limiter\"\nceiling_dbtp = 3\n",
        "3:16",
        &["ceiling_dbtp = 3 is out of range -20..0 (dBTP)"],
    );
    one_error("[nodes.c]\nkind = \"compressor\"\ndetector = \"rsm\"\n", "3:12", &["did you mean `rms`?", "peak, rms"]);
    one_error("[nodes.c]\nkind = \"limiter\"\nchannels = 9\n", "3:12", &["channels = 9 is out of range 1..8"]);
    one_error("[engine]\nblock_size = 0\n", "2:14", &["block_size = 0 is out of range 1..8192"]);
    one_error("[engine]\nbackend = \"jak\"\n", "2:11", &["did you mean `jack`?"]);
    let split = "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [200, 10, 30000]\n";
    let d = diags(split);
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d[0].starts_with("3:23: error: crossovers_hz: 10 is out of range 20..20000 (Hz)"), "{}", d[0]);
    assert!(d[1].starts_with("3:27: error: crossovers_hz: 30000 is out of range 20..20000 (Hz)"), "{}", d[1]);
    one_error(
        "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [1000, 500]\n",
        "3:24",
        &["crossovers_hz must rise from low to high: 500 Hz follows 1000 Hz"],
    );
}

#[test]
fn unknown_kind_lists_the_kinds() {
    one_error(
        "[nodes.c]\nkind = \"compresor\"\n",
        "2:8",
        &["unknown node kind \"compresor\"", "did you mean `compressor`?", "multiband", "synth"],
    );
    one_error("[nodes.c]\nratio = 2\n", "1:8", &["node `c` has no `kind`"]);
}

#[test]
fn dangling_links() {
    let nodes = "[nodes.mbc]\nkind = \"multiband\"\ncrossovers_hz = [500]\n[links]\n";
    one_error(
        &format!("{STEREO}{nodes}chain = [\"in\", \"mcb\", \"out\"]\n"),
        "8:16",
        &["dangling link: no node or bus named `mcb`", "did you mean `mbc`?"],
    );
    one_error(
        &format!("{STEREO}{nodes}edges = [[\"in:in_x\", \"mbc\"], [\"mbc\", \"out\"]]\n"),
        "8:11",
        &["`in` has no port `in_x`", "in_l, in_r"],
    );
    one_error(
        &format!("{STEREO}{nodes}edges = [[\"in\", \"mbc\"], [\"mbc:in_1\", \"out\"]]\n"),
        "8:26",
        &["`mbc:in_1`", "wrong side", "`mbc:out_N`"],
    );
    one_error(
        &format!("{STEREO}{nodes}edges = [[\"in\", \"mbc\"], [\"mbc:out_3\", \"out:out_l\"]]\n"),
        "8:26",
        &["node `mbc` has 2 channels (out_1..out_2)"],
    );
    one_error(
        &format!("{STEREO}{nodes}chain = [\"in\", \"mbc\", \"in\"]\n"),
        "8:23",
        &["`in` is the daemon's input bus, so it can only be a source"],
    );
    one_error("[nodes.t]\nkind = \"tone\"\n[links]\nchain = [\"t\", \"out\"]\n", "4:15", &["`out` bus has no ports"]);
}

#[test]
fn generator_cannot_be_a_sink() {
    let text =
        format!("{STEREO}[nodes.osc]\nkind = \"tone\"\n[links]\nedges = [[\"in\", \"osc\"], [\"osc\", \"out\"]]\n");
    one_error(&text, "7:17", &["node `osc` is a generator (kind \"tone\")"]);
}

#[test]
fn channel_count_mismatch_names_both_widths() {
    let text = format!(
        "{STEREO}[nodes.surround]\nkind = \"limiter\"\nchannels = 6\n[links]\nchain = [\"in\", \"surround\"]\n\
         edges = [[\"surround:out_1\", \"out:out_l\"], [\"surround:out_2\", \"out:out_r\"]]\n"
    );
    one_error(&text, "8:16", &["channel-count mismatch", "`in` (2 channels)", "`surround` (6 channels)"]);
    // Mono spreads to stereo, stereo downmixes into mono: both allowed by the one rule.
    let fine = format!(
        "{STEREO}[nodes.mono]\nkind = \"limiter\"\nchannels = 1\n[links]\nchain = [\"in\", \"mono\", \"out\"]\n"
    );
    assert_eq!(ok(&fine).graph.nodes[0].shape.channels, 1);
}

#[test]
fn cycle_names_its_nodes_in_order() {
    let text = format!(
        "{STEREO}[nodes.a]\nkind = \"limiter\"\n[nodes.b]\nkind = \"compressor\"\n[nodes.c]\nkind = \"limiter\"\n\
         [links]\nchain = [\"in\", \"a\", \"b\", \"c\", \"out\"]\nedges = [[\"c\", \"a\"]]\n"
    );
    one_error(&text, "12:16", &["cycle: a -> b -> c -> a"]);
    let self_loop =
        format!("{STEREO}[nodes.a]\nkind = \"limiter\"\n[links]\nchain = [\"in\", \"a\", \"a\", \"out\"]\n");
    one_error(&self_loop, "7:21", &["cycle: a -> a"]);
}

#[test]
fn band_count_must_match_the_crossovers() {
    let text = "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [100, 1000]\nbands = [{}, {}]\n";
    one_error(text, "4:1", &["band count mismatch: 2 crossovers make 3 bands, but `bands` has 2 entries"]);
    one_error(
        "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [100, 200, 300, 400, 500, 600]\n",
        "3:17",
        &["6 crossovers make 7 bands", "2..6 bands"],
    );
    one_error("[nodes.m]\nkind = \"multiband\"\n", "1:8", &["needs `crossovers_hz"]);
}

#[test]
fn duplicate_and_bad_names() {
    one_error(
        "[ports]\naudio_in = [\"a\", \"b\"]\naudio_out = [\"c\", \"a\"]\n",
        "3:19",
        &["duplicate port name \"a\" (already in audio_in)"],
    );
    one_error("[ports]\naudio_in = [\"in l\"]\n", "2:13", &["port name \"in l\" contains ' '"]);
    one_error("[nodes.in]\nkind = \"limiter\"\n", "1:8", &["`in` is the daemon's in bus"]);
    one_error("[nodes.a]\nkind = \"limiter\"\n[nodes.a]\nkind = \"limiter\"\n", "3:8", &["TOML syntax", "duplicate"]);
}

#[test]
fn all_errors_are_reported_together_in_file_order() {
    let text = format!(
        "[engin]\n{STEREO}[nodes.c]\nkind = \"compressor\"\nratio = 0.5\ntreshold_db = 1\n[nodes.x]\nkind = \"nope\"\n\
         [links]\nchain = [\"in\", \"c\", \"lim\", \"out\"]\n"
    );
    let d = diags(&text);
    let at: Vec<&str> = d.iter().map(|l| l.split(": ").next().unwrap()).collect();
    assert_eq!(at, ["1:2", "7:9", "8:1", "10:8", "12:21"], "{d:#?}");
    assert!(d[3].contains("unknown node kind \"nope\""));
    assert!(d[4].contains("no node or bus named `lim`"));
    assert!(d.iter().all(|l| l.contains(": error: ")), "warnings are left out when there are errors");
    // `Errors` prints one diagnostic per line, each starting with the file name.
    let e = config::parse(&text, "f.toml").unwrap_err();
    let printed = e.to_string();
    assert_eq!(printed.lines().count(), e.diagnostics.len());
    assert!(printed.lines().all(|l| l.starts_with("f.toml:")));
    assert!(printed.lines().next().unwrap().starts_with("f.toml:1:2: error: unknown key `engin`"));
}

#[test]
fn warnings_do_not_refuse_the_config() {
    let text = format!(
        "{STEREO}[nodes.a]\nkind = \"limiter\"\n[nodes.lonely]\nkind = \"compressor\"\n[links]\n\
         chain = [\"in\", \"a\", \"out:out_l\"]\n"
    );
    let c = ok(&text);
    let w: Vec<String> = c.warnings.iter().map(|d| d.to_string()).collect();
    assert!(c.warnings.iter().all(|d| d.severity == Severity::Warning));
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(w[0].starts_with("t.toml:3:23: warning: output port `out_r` has nothing feeding it"), "{}", w[0]);
    assert!(w[1].starts_with("t.toml:6:8: warning: node `lonely` is not connected to anything"), "{}", w[1]);
}

// ---------------------------------------------------------------------------------------------
// Values, widths, links

#[test]
fn choices_and_bools_round_trip_through_the_descriptors() {
    let text = "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [300]\n\
                bands = [{ detector = \"rms\", solo = true }, { detector = \"peak\", mute = false, bypass = true }]\n\
                [nodes.t]\nkind = \"tone\"\nwaveform = \"triangle\"\n[nodes.s]\nkind = \"sweep\"\nrepeat = false\n";
    let c = ok(text);
    assert_eq!(param(&c, "m", band_pid(0, "detector")), Some(1.0));
    assert_eq!(param(&c, "m", band_pid(0, "solo")), Some(1.0));
    assert_eq!(param(&c, "m", band_pid(1, "detector")), Some(0.0));
    assert_eq!(param(&c, "m", band_pid(1, "mute")), Some(0.0));
    assert_eq!(param(&c, "m", band_pid(1, "bypass")), Some(1.0));
    assert_eq!(param(&c, "t", pid("tone", "waveform")), Some(3.0));
    assert_eq!(param(&c, "s", pid("sweep", "repeat")), Some(0.0));
    // And back: the node reads out the value under the same name.
    let n = &c.graph.nodes[1];
    let mut tone = registry::create(&n.kind, n.shape).unwrap();
    tone.set_param(n.params[0].0, n.params[0].1).unwrap();
    let d = tone.descriptor().param(n.params[0].0).unwrap();
    let ballast_dsp::Unit::Choice(options) = d.unit else { panic!("waveform is a choice") };
    assert_eq!(options[tone.param(n.params[0].0).unwrap() as usize], "triangle");
}

#[test]
fn widths_follow_what_feeds_a_node() {
    let text = format!(
        "{STEREO}[nodes.left]\nkind = \"loudness_meter\"\n[nodes.both]\nkind = \"loudness_meter\"\n\
         [nodes.idle]\nkind = \"loudness_meter\"\n[nodes.six]\nkind = \"loudness_meter\"\nchannels = 6\n\
         [links]\nedges = [[\"in:in_l\", \"left\"], [\"in\", \"both\"], [\"in:in_r\", \"six:in_6\"], [\"both\", \"out\"]]\n"
    );
    let c = ok(&text);
    let widths: Vec<usize> = c.graph.nodes.iter().map(|n| n.shape.channels).collect();
    assert_eq!(widths, [1, 2, 2, 6]);
    assert_eq!(c.graph.links[0].from, Endpoint::Io { channel: Some(0) });
    assert_eq!(c.graph.links[2].from, Endpoint::Io { channel: Some(1) });
    assert_eq!(c.graph.links[2].to, Endpoint::Node { node: 3, channel: Some(5) });
    // Widths propagate down a chain whatever the order the tables are written in.
    let mono = "[ports]\naudio_in = [\"mic\"]\naudio_out = [\"o\"]\n[nodes.b]\nkind = \"limiter\"\n\
                [nodes.a]\nkind = \"compressor\"\n[links]\nchain = [\"in\", \"a\", \"b\", \"out\"]\n";
    assert!(ok(mono).graph.nodes.iter().all(|n| n.shape.channels == 1));
}

#[test]
fn several_chains_and_engine_settings() {
    let text = format!(
        "[engine]\nbackend = \"offline\"\nclient_name = \"b2\"\nsample_rate_hz = 44100\nblock_size = 64\n{STEREO}\
         [nodes.a]\nkind = \"limiter\"\n[nodes.m]\nkind = \"loudness_meter\"\n\
         [links]\nchain = [[\"in\", \"a\", \"out\"], [\"in\", \"m\"]]\n"
    );
    let c = ok(&text);
    assert_eq!(c.engine.backend, Backend::Offline);
    assert_eq!(c.engine.client_name, "b2");
    assert_eq!((c.engine.sample_rate_hz, c.engine.block_size), (44_100, 64));
    assert_eq!(c.graph.links.len(), 3);
    let d = config::parse("", "empty.toml").unwrap();
    assert_eq!(d.engine, config::EngineSettings::default());
    assert!(d.graph.nodes.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Docs and the command line

#[test]
fn readme_node_kinds_match_the_descriptors() {
    let path = repo("config/README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let spliced = docs::splice(&readme).expect("README has the generated-section markers");
    assert!(
        spliced == readme,
        "config/README.md's node-kind section is stale: run `cargo run -p ballastd -- config-docs --write config/README.md`"
    );
    for k in registry::kinds() {
        assert!(readme.contains(&format!("### `kind = \"{}\"`", k.descriptor.kind)), "{}", k.descriptor.kind);
        for p in k.descriptor.params.iter().chain(k.descriptor.band_params) {
            if !p.key.starts_with("crossover_") {
                assert!(readme.contains(&format!("| `{}` |", p.key)), "{}.{}", k.descriptor.kind, p.key);
            }
        }
    }
}

fn ballastd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ballastd")).args(args).output().expect("runs ballastd")
}

#[test]
fn check_accepts_a_good_file() {
    let path = repo("config/broadcast.toml");
    let out = ballastd(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains(": ok: 4 nodes, 5 links"), "{stdout}");
    assert!(out.stderr.is_empty());
}

#[test]
fn check_reports_every_error_and_fails() {
    let dir = std::env::temp_dir().join(format!("ballast-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[nodes.c]\nkind = \"compressor\"\nratio = 0.5\nknee = 3\n").unwrap();
    let file = bad.to_str().unwrap();
    let out = ballastd(&["check", "--config", file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines[0].starts_with(&format!("{file}:3:9: error: ratio = 0.5 is out of range 1..inf (:1)")), "{stderr}");
    assert!(lines[1].starts_with(&format!("{file}:4:1: error: unknown key `knee`")), "{stderr}");
    assert!(lines[1].contains("did you mean `knee_db`?"), "{stderr}");
    assert_eq!(lines[2], format!("{file}: 2 errors; nothing applied"));

    let missing = dir.join("missing.toml");
    let out = ballastd(&["check", "--config", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config"));
    std::fs::remove_dir_all(&dir).unwrap();

    let help = ballastd(&["check", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config <FILE>"));
    assert_eq!(ballastd(&["check"]).status.code(), Some(2), "usage errors are clap's exit 2");
}

#[test]
fn bands_as_tables_and_infinite_ratio() {
    let text = "[nodes.m]\nkind = \"multiband\"\ncrossovers_hz = [500]\n[[nodes.m.bands]]\nratio = inf\n\
                [[nodes.m.bands]]\nsolo = true\nratoi = 3\n";
    one_error(text, "8:1", &["unknown key `ratoi` in band 2", "did you mean `ratio`?"]);
    let c = ok(&text.replace("ratoi = 3\n", ""));
    assert_eq!(param(&c, "m", band_pid(0, "ratio")), Some(f32::INFINITY));
    assert_eq!(param(&c, "m", band_pid(1, "solo")), Some(1.0));
    assert_eq!(c.graph.nodes[0].shape, Shape { channels: 2, bands: 2 });
    one_error("[nodes.c]\nkind = \"compressor\"\nratio = nan\n", "3:9", &["ratio = nan is out of range 1..inf (:1)"]);
}

#[test]
fn backend_keys_for_alsa_and_jack() {
    let c = ok(r#"
[engine]
backend = "alsa"
device = "plughw:1,0"
capture_device = "hw:2"
periods = 4
rt_priority = 80
jack_server = "studio"
"#);
    assert_eq!(c.engine.backend, Backend::Alsa);
    assert_eq!(c.engine.device, "plughw:1,0");
    assert_eq!(c.engine.capture_device.as_deref(), Some("hw:2"));
    assert_eq!((c.engine.periods, c.engine.rt_priority), (4, 80));
    assert_eq!(c.engine.jack_server.as_deref(), Some("studio"));
    let d = ok("").engine;
    assert_eq!((d.device.as_str(), d.capture_device, d.periods, d.rt_priority), ("default", None, 3, 70));

    one_error("[engine]\nperiods = 1\n", "2:11", &["periods = 1", "out of range 2..16"]);
    one_error("[engine]\nrt_priority = 99\n", "2:15", &["out of range 1..95"]);
    one_error("[engine]\ndevice = \"\"\n", "2:10", &["must name an ALSA PCM"]);
    one_error("[engine]\ndevise = \"hw:0\"\n", "2:1", &["unknown key `devise`", "did you mean `device`"]);
}

#[test]
fn port_connections() {
    let c = ok(r#"
[ports]
audio_in = ["in_l", "in_r"]
audio_out = ["out_l", "out_r"]

[ports.connect]
out_l = ["system:playback_1"]
out_r = ["system:playback_2", "meter:in_*"]
in_l = ["system:capture_?"]

[links]
chain = ["in", "out"]
"#);
    assert_eq!(
        c.ports.connect,
        vec![
            ("out_l".to_string(), vec!["system:playback_1".to_string()]),
            ("out_r".to_string(), vec!["system:playback_2".to_string(), "meter:in_*".to_string()]),
            ("in_l".to_string(), vec!["system:capture_?".to_string()]),
        ]
    );
    let base = "[ports]\naudio_out = [\"out_l\"]\n[ports.connect]\n";
    one_error(&format!("{base}out_1 = [\"system:playback_1\"]\n"), "4:1", &["not one of our ports", "`out_l`"]);
    one_error(&format!("{base}out_l = [\"playback_1\"]\n"), "4:10", &["client:port"]);
    one_error(&format!("{base}out_l = \"system:playback_1\"\n"), "4:9", &["wrong type", "an array"]);
}

//! The state file: round trips of the example configs' graphs, corrupt files set aside, and a process
//! killed with SIGKILL while saving never leaves a state file that does not load.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ballast_dsp::ParamId;
use ballastd::config;
use ballastd::graph::{Endpoint, Link};
use ballastd::state::{self, LoadOutcome, SavedState, StateStore};

const CONFIGS: [&str; 3] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/../config/default.toml"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/../config/broadcast.toml"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/../config/studio-bus.toml"),
];

/// Selects the child mode of this test binary (see [`crash_child`]); its value is the state directory.
const CHILD_ENV: &str = "BALLAST_STATE_CRASH_CHILD";

/// A fresh directory under cargo's per-test-target temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn saved(path: &str, bypassed: &[&str]) -> SavedState {
    let text = fs::read_to_string(path).unwrap();
    let cfg = config::load(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    SavedState {
        config_digest: state::digest(&text),
        graph: cfg.graph,
        bypassed: bypassed.iter().map(|s| s.to_string()).collect(),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn temporaries(dir: &Path) -> usize {
    files_in(dir).iter().filter(|n| n.starts_with("state.json.tmp-")).count()
}

#[test]
fn example_configs_round_trip() {
    let tmp = TempDir::new("roundtrip");
    for path in CONFIGS {
        let first = config::load(path).unwrap().graph.nodes[0].name.clone();
        let s = saved(path, &[&first]);
        // A directory that does not exist yet: save creates it, private.
        let dir = tmp.0.join(Path::new(path).file_stem().unwrap()).join("nested");
        let store = StateStore::new(dir.clone());
        assert_eq!(store.path(), dir.join("state.json"));
        assert_eq!(store.load(), LoadOutcome::None, "{path}: nothing saved yet");
        store.save(&s).unwrap();
        assert_eq!(store.load(), LoadOutcome::Loaded(s.clone()), "{path}");
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700, "{path}: directory mode");
        assert_eq!(fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600, "{path}: file mode");
        assert_eq!(files_in(&dir), ["state.json"], "{path}: no temporary file left by a successful save");

        let text = fs::read_to_string(store.path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["config_digest"].as_str().unwrap(), s.config_digest);
        if path.ends_with("broadcast.toml") {
            // Keys, not ids: the first band's threshold from the config, by name.
            let mbc = json["graph"]["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "mbc").unwrap();
            assert_eq!(mbc["params"]["band1.threshold_db"], -24.0, "{text}");
            assert_eq!(mbc["bands"], 4);
        }
    }
}

#[test]
fn run_time_edits_round_trip() {
    let tmp = TempDir::new("edits");
    let mut s = saved(CONFIGS[1], &["level", "limit"]);
    let mbc = s.graph.nodes.iter().position(|n| n.kind == "multiband").unwrap();
    let desc = ballast_dsp::registry::find("multiband").unwrap().descriptor;
    let ratio = desc.band_params.iter().find(|p| p.key == "ratio").unwrap().id;
    let threshold = desc.band_params.iter().find(|p| p.key == "threshold_db").unwrap().id;
    // A limiting ratio (infinite: not a JSON number), a value that is not a short decimal, a band-3 edit.
    for (id, value) in &mut s.graph.nodes[mbc].params {
        if *id == ParamId::band(3, ratio) {
            *value = f32::INFINITY;
        }
    }
    s.graph.nodes[mbc].params.retain(|&(id, _)| id != ParamId::band(2, threshold));
    s.graph.nodes[mbc].params.push((ParamId::band(2, threshold), -17.123_457));
    // A per-channel link from the input bus into the output bus next to the chain.
    s.graph.links.push(Link { from: Endpoint::Io { channel: Some(1) }, to: Endpoint::Io { channel: Some(0) } });
    let store = StateStore::new(tmp.0.clone());
    store.save(&s).unwrap();
    assert_eq!(store.load(), LoadOutcome::Loaded(s.clone()));
    let text = fs::read_to_string(store.path()).unwrap();
    assert!(text.contains("\"band4.ratio\": \"inf\""), "{text}");
    assert!(text.contains("\"band3.threshold_db\": -17.123457"), "{text}");

    // A state naming an unknown kind is refused at save time and the previous file stays.
    let mut bad = s.clone();
    bad.graph.nodes[0].kind = "reverb".into();
    let e = store.save(&bad).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert_eq!(store.load(), LoadOutcome::Loaded(s.clone()));

    // So is one that would not load back (a value out of range, a band the node lacks): save never
    // writes what the next start would set aside.
    let mut out_of_range = s.clone();
    out_of_range.graph.nodes[mbc].params.retain(|&(id, _)| id != ParamId::band(0, ratio));
    out_of_range.graph.nodes[mbc].params.push((ParamId::band(0, ratio), 0.5));
    let mut no_such_band = s.clone();
    no_such_band.graph.nodes[mbc].params.push((ParamId::band(5, ratio), 2.0));
    for bad in [out_of_range, no_such_band] {
        let e = store.save(&bad).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(store.load(), LoadOutcome::Loaded(s));
}

/// A valid state file's text, edited by `f` (the parsed JSON), for corrupt-file cases.
fn edited(f: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(&state::encode(&saved(CONFIGS[1], &[])).unwrap()).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn mbc(v: &mut serde_json::Value) -> &mut serde_json::Value {
    v["graph"]["nodes"].as_array_mut().unwrap().iter_mut().find(|n| n["name"] == "mbc").unwrap()
}

#[test]
fn corrupt_files_are_set_aside() {
    let valid = state::encode(&saved(CONFIGS[1], &[])).unwrap().into_bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated JSON", valid[..valid.len() / 2].to_vec(), "not valid JSON"),
        ("empty file", Vec::new(), "not valid JSON"),
        ("garbage", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect(), "not valid JSON"),
        ("JSON of another schema", br#"{"version": 1, "hello": "world"}"#.to_vec(), "not a version-1 state file"),
        ("no version", br#"{"graph": {}}"#.to_vec(), "no numeric \"version\""),
        ("a newer version", edited(|v| v["version"] = 2.into()), "format version 2"),
        (
            "out-of-range parameter",
            edited(|v| mbc(v)["params"]["band1.threshold_db"] = 1000.into()),
            "band1.threshold_db = 1000",
        ),
        (
            "unknown parameter key",
            edited(|v| mbc(v)["params"]["band1.threshhold_db"] = 0.into()),
            "unknown parameter \"band1.threshhold_db\"",
        ),
        ("parameter of a band the node lacks", edited(|v| mbc(v)["params"]["band9.ratio"] = 2.into()), "band9.ratio"),
        ("unknown kind", edited(|v| mbc(v)["kind"] = "reverb".into()), "unknown kind \"reverb\""),
        ("too many bands", edited(|v| mbc(v)["bands"] = 9.into()), "9 bands"),
        ("unknown field", edited(|v| mbc(v)["colour"] = "red".into()), "unknown field"),
        (
            "link to a missing node",
            edited(|v| v["graph"]["links"][0]["to"] = serde_json::json!({"node": {"name": "ghost"}})),
            "\"ghost\"",
        ),
        (
            "a cycle",
            edited(|v| {
                let links = v["graph"]["links"].as_array_mut().unwrap();
                links.push(serde_json::json!({"from": {"node": {"name": "limit"}}, "to": {"node": {"name": "mbc"}}}));
            }),
            "does not compile",
        ),
        ("bypass of a missing node", edited(|v| v["bypassed"] = serde_json::json!(["ghost"])), "\"ghost\""),
    ];
    let tmp = TempDir::new("corrupt");
    for (what, bytes, expected) in cases {
        let dir = tmp.0.join(what.replace(' ', "_"));
        fs::create_dir_all(&dir).unwrap();
        let store = StateStore::new(dir.clone());
        fs::write(store.path(), &bytes).unwrap();
        match store.load() {
            LoadOutcome::SetAside { moved_to, reason } => {
                assert!(reason.contains(expected), "{what}: reason {reason:?} should mention {expected:?}");
                assert!(!store.path().exists(), "{what}: state.json still there");
                assert_eq!(moved_to.parent(), Some(dir.as_path()), "{what}");
                let name = moved_to.file_name().unwrap().to_str().unwrap();
                assert!(name.starts_with("state.json.corrupt-"), "{what}: {name}");
                assert_eq!(fs::read(&moved_to).unwrap(), bytes, "{what}: the aside file holds the original bytes");
            }
            other => panic!("{what}: expected SetAside, got {other:?}"),
        }
        assert_eq!(store.load(), LoadOutcome::None, "{what}: nothing left to load");
        // A second corrupt file in the same second gets its own name; the first is kept.
        fs::write(store.path(), &bytes).unwrap();
        assert!(matches!(store.load(), LoadOutcome::SetAside { .. }), "{what}");
        assert_eq!(files_in(&dir).iter().filter(|n| n.starts_with("state.json.corrupt-")).count(), 2, "{what}");
    }
}

#[test]
fn leftover_temporaries_are_removed() {
    let tmp = TempDir::new("leftover");
    let store = StateStore::new(tmp.0.clone());
    let s = saved(CONFIGS[0], &[]);
    store.save(&s).unwrap();
    fs::write(tmp.0.join("state.json.tmp-4242-0"), b"{\"version\": 1, \"gra").unwrap();
    assert_eq!(store.load(), LoadOutcome::Loaded(s.clone()));
    assert_eq!(temporaries(&tmp.0), 0, "load removes temporaries");
    fs::write(tmp.0.join("state.json.tmp-4242-1"), b"").unwrap();
    store.save(&s).unwrap();
    assert_eq!(files_in(&tmp.0), ["state.json"], "save removes temporaries");
}

/// Child mode of [`kill_9_while_saving_never_corrupts`]: with `BALLAST_STATE_CRASH_CHILD=DIR` set, saves
/// two different states to DIR alternately until killed (or for at most two minutes, so an orphan cannot
/// run forever). Without the variable (a normal test run) it returns at once.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let (a, b) = crash_states();
    let store = StateStore::new(PathBuf::from(dir));
    store.save(&a).unwrap();
    // On its own line: libtest has already written "test crash_child ... " without a newline.
    println!("\nchild-ready");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        store.save(&b).unwrap();
        store.save(&a).unwrap();
    }
}

/// Two states that differ in every part (graph size, bypass, digest), so a mixed or partial file is
/// caught by the equality check.
fn crash_states() -> (SavedState, SavedState) {
    (saved(CONFIGS[1], &[]), saved(CONFIGS[2], &["glue"]))
}

/// Kills the child on drop, so a failing assertion does not leave it saving.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kill_9_while_saving_never_corrupts() {
    let (a, b) = crash_states();
    assert!(a.graph.nodes.iter().all(|n| n.name != "glue") && b.graph.nodes.iter().any(|n| n.name == "glue"));
    let tmp = TempDir::new("crash");
    let store = StateStore::new(tmp.0.clone());
    let exe = std::env::current_exe().unwrap();
    // xorshift64, fixed seed: the kill moments differ run to run only by scheduling, not by choice.
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut kills, mut with_leftover, mut seen_a, mut seen_b) = (0, 0, 0, 0);
    // At least 50 kills, and more (up to 400) until 5 of them have caught a save half-way (a temporary
    // file left behind), so the interesting case is known to have been exercised.
    while kills < 50 || (with_leftover < 5 && kills < 400) {
        let child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &tmp.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = Killer(child);
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        // The child's first save is complete once it says so; EOF here means it failed.
        assert!(lines.any(|l| l.map(|l| l == "child-ready").unwrap_or(false)), "the child never became ready");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 20_000));
        drop(child); // SIGKILL, then reap.
        kills += 1;

        if temporaries(&tmp.0) > 0 {
            with_leftover += 1;
        }
        match store.load() {
            LoadOutcome::Loaded(s) if s == a => seen_a += 1,
            LoadOutcome::Loaded(s) if s == b => seen_b += 1,
            other => panic!("kill {kills}: expected one of the two states, got {other:?}"),
        }
        assert_eq!(temporaries(&tmp.0), 0, "kill {kills}: load removes what the kill left");
    }
    eprintln!("{kills} kills: {with_leftover} mid-save (temporary file left), state A {seen_a}x, state B {seen_b}x");
    assert!(with_leftover >= 5, "only {with_leftover} of {kills} kills caught a save half-way");
    assert!(seen_a > 0 && seen_b > 0, "both states should be seen: A {seen_a}, B {seen_b}");
}

//! Persistence of run-time changes: the running graph (with the parameter values changed since start)
//! and the bypassed nodes, saved to `state.json` in the state directory ([`crate::paths::state_dir`])
//! and restored at start.
//!
//! # Crash safety
//! [`StateStore::save`] writes a temporary file in the same directory, fsyncs it, renames it over
//! `state.json` and fsyncs the directory: a reader sees either the old or the new complete file, whatever
//! moment the process is killed at (`daemon/tests/state.rs` kills a saving process 50+ times to check).
//! Temporary files left by a kill are removed by the next `save` or `load`. One `ballastd` per state
//! directory is assumed (the files are not locked against another process).
//!
//! # File format, version 1
//! ```json
//! {
//!   "version": 1,
//!   "config_digest": "fnv1a64:5f0b8a3e2c7d9146",
//!   "graph": {
//!     "inputs": ["in_l", "in_r"],
//!     "outputs": ["out_l", "out_r"],
//!     "nodes": [
//!       { "name": "mbc", "kind": "multiband", "channels": 2, "bands": 4,
//!         "params": { "crossover_1_hz": 120, "band1.threshold_db": -24, "band1.ratio": 2 } },
//!       { "name": "limit", "kind": "limiter", "channels": 2, "bands": 0, "params": { "ceiling_dbtp": -1 } }
//!     ],
//!     "links": [
//!       { "from": { "io": {} }, "to": { "node": { "name": "mbc" } } },
//!       { "from": { "node": { "name": "mbc", "channel": 0 } }, "to": { "io": { "channel": 1 } } }
//!     ]
//!   },
//!   "bypassed": ["limit"]
//! }
//! ```
//! - Parameters are named by their descriptor key (`ballast_dsp::param`), never by numeric id, so a file
//!   survives id renumbering and reads like the config. Per-band parameters of a multiband are
//!   `band<N>.<key>` with bands numbered from 1, low to high (as in config diagnostics). Values are in
//!   the descriptor's unit; choices are indices, booleans 0/1; an infinite value (a limiting ratio) is
//!   the string `"inf"` (JSON has no infinity). The order of `params` is kept.
//! - A link endpoint is `{"io": {}}` (the daemon's input bus as a source, its output bus as a sink) or
//!   `{"node": {"name": …}}`; an optional `"channel"` (0-based) selects one channel, absent = the bus.
//! - `bands` is 0 for kinds without bands.
//! - `config_digest` is [`digest`] of the config text the state was made from, for the daemon to decide
//!   whether the saved graph still belongs to the config.
//!
//! Loading checks everything a config load would (kinds, shapes, keys, ranges, names, links, channel
//! counts, cycles, by the graph compiler itself); a file that fails any check is set aside as
//! `state.json.corrupt-<unix-seconds>` and reported, never fatal.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ballast_dsp::param::KindDescriptor;
use ballast_dsp::registry::{self, Shape};
use ballast_dsp::ParamId;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::graph::{self, Endpoint, GraphSpec, Link, NodeInfo, NodeSpec};

/// The state file's name inside the state directory.
pub const FILE_NAME: &str = "state.json";
/// The `"version"` this module writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// Temporary files are `state.json.tmp-<pid>-<n>`.
const TMP_PREFIX: &str = "state.json.tmp-";
/// A set-aside file is `state.json.corrupt-<unix-seconds>[-<n>]`.
const CORRUPT_PREFIX: &str = "state.json.corrupt-";
/// Longest node or port name, as the config allows (JACK's full port name must fit in 256 bytes).
const MAX_NAME_LEN: usize = 64;

/// What is persisted: the graph as it runs now and the nodes bypassed at run time.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedState {
    /// [`digest`] of the config text this state grew from.
    pub config_digest: String,
    pub graph: GraphSpec,
    /// Names of bypassed nodes (each names a node of `graph`).
    pub bypassed: Vec<String>,
}

/// The result of [`StateStore::load`]; never an error the daemon has to stop for.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadOutcome {
    /// No state file: first start, or the state was never saved.
    None,
    Loaded(SavedState),
    /// The file was unreadable as state and has been renamed to `moved_to`; `reason` says what was
    /// wrong (for a warning in the log).
    SetAside {
        moved_to: PathBuf,
        reason: String,
    },
    /// The file was unreadable as state and could not even be renamed aside (e.g. a read-only
    /// directory); it is left where it is and the daemon should start from its config.
    Failed {
        reason: String,
    },
}

/// The state file in one directory.
pub struct StateStore {
    dir: PathBuf,
    path: PathBuf,
    /// Serializes save and the temporary-file clean-up, so two threads saving at once cannot remove each
    /// other's temporary file.
    lock: Mutex<()>,
}

impl StateStore {
    /// A store in `dir`; nothing is touched until the first [`save`](Self::save) (which creates `dir`,
    /// mode 0700) or [`load`](Self::load).
    pub fn new(dir: PathBuf) -> Self {
        let path = dir.join(FILE_NAME);
        StateStore { dir, path, lock: Mutex::new(()) }
    }

    /// `dir/state.json`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and validates the state file. A missing file is [`LoadOutcome::None`]; a corrupt one is
    /// renamed to `state.json.corrupt-<unix-seconds>` and reported. Removes temporary files left by an
    /// interrupted save.
    pub fn load(&self) -> LoadOutcome {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.remove_temporaries();
        let reason = match fs::read(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return LoadOutcome::None,
            Err(e) => format!("cannot read it: {e}"),
            Ok(bytes) => match decode(&bytes) {
                Ok(state) => return LoadOutcome::Loaded(state),
                Err(reason) => reason,
            },
        };
        match self.set_aside() {
            Ok(moved_to) => LoadOutcome::SetAside { moved_to, reason },
            Err(e) => LoadOutcome::Failed { reason: format!("{reason}; and it cannot be renamed aside: {e}") },
        }
    }

    /// Saves `s` atomically: temporary file in the same directory, write, fsync, rename over
    /// `state.json`, fsync the directory. Fails (leaving the previous state in place) on an I/O error,
    /// or with `InvalidInput` for a state that [`load`](Self::load) would not accept back (an unknown
    /// kind or parameter, a value out of range, a broken link…).
    pub fn save(&self, s: &SavedState) -> io::Result<()> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let text = encode(s).map_err(invalid)?;
        // Never write a file the next start would set aside: what is saved must load back as itself.
        match decode(text.as_bytes()) {
            Ok(back) if back == *s => {}
            Ok(_) => return Err(invalid("the state does not survive its own round trip (a NaN value?)".into())),
            Err(e) => return Err(invalid(format!("the state would not load back: {e}"))),
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        self.remove_temporaries();

        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!("{TMP_PREFIX}{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The rename is durable only once the directory entry is on disk.
        File::open(&self.dir)?.sync_all()
    }

    fn remove_temporaries(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(TMP_PREFIX)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Renames `state.json` to a `state.json.corrupt-…` name not yet taken.
    fn set_aside(&self) -> io::Result<PathBuf> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut target = self.dir.join(format!("{CORRUPT_PREFIX}{secs}"));
        let mut n = 1;
        while target.symlink_metadata().is_ok() {
            n += 1;
            target = self.dir.join(format!("{CORRUPT_PREFIX}{secs}-{n}"));
        }
        fs::rename(&self.path, &target)?;
        Ok(target)
    }
}

/// A stable content hash of a config text: FNV-1a, 64 bit (written here; no crate), as
/// `fnv1a64:<16 hex digits>`. Not cryptographic: it tells whether the config changed, nothing more.
pub fn digest(text: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let h = text.bytes().fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("fnv1a64:{h:016x}")
}

/// `s` as the version-1 JSON text.
pub fn encode(s: &SavedState) -> Result<String, String> {
    let g = &s.graph;
    let mut nodes = Vec::with_capacity(g.nodes.len());
    for n in &g.nodes {
        let desc = descriptor(&n.kind)?;
        let mut params = Vec::with_capacity(n.params.len());
        for &(id, value) in &n.params {
            params.push((
                param_key(desc, id).ok_or_else(|| format!("node {}: unknown parameter id {}", n.name, id.0))?,
                value,
            ));
        }
        nodes.push(NodeV1 {
            name: n.name.clone(),
            kind: n.kind.clone(),
            channels: n.shape.channels,
            bands: n.shape.bands,
            params: Params(params),
        });
    }
    let endpoint = |e: &Endpoint| -> Result<EndpointV1, String> {
        Ok(match *e {
            Endpoint::Io { channel } => EndpointV1::Io { channel },
            Endpoint::Node { node, channel } => EndpointV1::Node {
                name: g
                    .nodes
                    .get(node)
                    .ok_or_else(|| format!("a link names node {node}, which does not exist"))?
                    .name
                    .clone(),
                channel,
            },
        })
    };
    let links = g
        .links
        .iter()
        .map(|l| Ok(LinkV1 { from: endpoint(&l.from)?, to: endpoint(&l.to)? }))
        .collect::<Result<Vec<_>, String>>()?;
    let file = FileV1 {
        version: FORMAT_VERSION,
        config_digest: s.config_digest.clone(),
        graph: GraphV1 { inputs: g.inputs.clone(), outputs: g.outputs.clone(), nodes, links },
        bypassed: s.bypassed.clone(),
    };
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// Parses and validates a version-1 state file; the error says what is wrong, for the log.
pub fn decode(bytes: &[u8]) -> Result<SavedState, String> {
    // The version first, so a file of another version is reported as such, not as a schema mismatch.
    // (Parsed twice rather than through `serde_json::Value`, whose maps would lose the params' order.)
    #[derive(Deserialize)]
    struct Probe {
        version: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    match probe.version.as_ref().and_then(|v| v.as_u64()) {
        Some(FORMAT_VERSION) => {}
        Some(v) => return Err(format!("format version {v}; this ballastd reads version {FORMAT_VERSION}")),
        None => return Err("no numeric \"version\": not a ballast state file".into()),
    }
    let file: FileV1 = serde_json::from_slice(bytes).map_err(|e| format!("not a version-1 state file: {e}"))?;
    validate(file)
}

fn validate(file: FileV1) -> Result<SavedState, String> {
    let g = file.graph;
    for (what, names) in [("input port", &g.inputs), ("output port", &g.outputs)] {
        for (i, name) in names.iter().enumerate() {
            check_name(name).map_err(|e| format!("{what} \"{name}\" {e}"))?;
            if names[..i].contains(name) {
                return Err(format!("{what} \"{name}\" appears twice"));
            }
        }
    }

    let mut nodes: Vec<NodeSpec> = Vec::with_capacity(g.nodes.len());
    let mut infos = Vec::with_capacity(g.nodes.len());
    for n in g.nodes {
        let at = format!("node \"{}\"", n.name);
        check_name(&n.name).map_err(|e| format!("{at}: name {e}"))?;
        if n.name == "in" || n.name == "out" || nodes.iter().any(|o| o.name == n.name) {
            return Err(format!("{at}: name reserved or used twice"));
        }
        let entry = registry::find(&n.kind).ok_or_else(|| format!("{at}: unknown kind \"{}\"", n.kind))?;
        if !registry::CHANNELS.contains(&n.channels) {
            return Err(format!("{at}: {} channels; allowed {:?}", n.channels, registry::CHANNELS));
        }
        if let Some(bands) = &entry.bands {
            if !bands.contains(&n.bands) {
                return Err(format!("{at}: {} bands; allowed {bands:?}", n.bands));
            }
        }
        let mut params: Vec<(ParamId, f32)> = Vec::with_capacity(n.params.0.len());
        for (key, value) in n.params.0 {
            let id = param_id(entry.descriptor, &key, n.bands)
                .ok_or_else(|| format!("{at}: unknown parameter \"{key}\""))?;
            entry.descriptor.validate(id, value).map_err(|e| format!("{at}: {key} = {value}: {e}"))?;
            if params.iter().any(|&(p, _)| p == id) {
                return Err(format!("{at}: parameter \"{key}\" appears twice"));
            }
            params.push((id, value));
        }
        let outputs = n.channels;
        infos.push(NodeInfo {
            slot: nodes.len(),
            inputs: if entry.generator { 0 } else { outputs },
            outputs,
            latency_samples: 0,
        });
        nodes.push(NodeSpec {
            name: n.name,
            kind: n.kind,
            shape: Shape { channels: n.channels, bands: n.bands },
            params,
        });
    }

    let endpoint = |e: EndpointV1| -> Result<Endpoint, String> {
        Ok(match e {
            EndpointV1::Io { channel } => Endpoint::Io { channel },
            EndpointV1::Node { name, channel } => Endpoint::Node {
                node: nodes
                    .iter()
                    .position(|n| n.name == name)
                    .ok_or_else(|| format!("a link names node \"{name}\", which does not exist"))?,
                channel,
            },
        })
    };
    let links = g
        .links
        .into_iter()
        .map(|l| Ok(Link { from: endpoint(l.from)?, to: endpoint(l.to)? }))
        .collect::<Result<Vec<_>, String>>()?;

    for (i, name) in file.bypassed.iter().enumerate() {
        if !nodes.iter().any(|n| &n.name == name) {
            return Err(format!("bypassed node \"{name}\" is not in the graph"));
        }
        if file.bypassed[..i].contains(name) {
            return Err(format!("bypassed node \"{name}\" appears twice"));
        }
    }

    let spec = GraphSpec { inputs: g.inputs, outputs: g.outputs, nodes, links };
    // The compiler's own checks (endpoints, channel counts, cycles), so a state file never gets further
    // than a config could.
    graph::compile(&spec, &infos, 64).map_err(|e| format!("graph does not compile: {e}"))?;
    Ok(SavedState { config_digest: file.config_digest, graph: spec, bypassed: file.bypassed })
}

fn descriptor(kind: &str) -> Result<&'static KindDescriptor, String> {
    registry::find(kind).map(|k| k.descriptor).ok_or_else(|| format!("unknown node kind \"{kind}\""))
}

/// `threshold_db` for a node-level id, `band2.threshold_db` for band 1 (0-based) of a per-band id.
fn param_key(desc: &KindDescriptor, id: ParamId) -> Option<String> {
    let p = desc.param(id)?;
    Some(match id.split_band() {
        None => p.key.to_string(),
        Some((band, _)) => format!("band{}.{}", band + 1, p.key),
    })
}

/// The inverse of [`param_key`]; `None` for an unknown key or a band the node does not have.
fn param_id(desc: &KindDescriptor, key: &str, bands: usize) -> Option<ParamId> {
    match key.split_once('.') {
        None => desc.param_by_key(key).map(|p| p.id),
        Some((band, inner)) => {
            let n: usize = band.strip_prefix("band")?.parse().ok()?;
            if n == 0 || n > bands || band != format!("band{n}") {
                return None;
            }
            let p = desc.band_params.iter().find(|p| p.key == inner)?;
            Some(ParamId::band(n - 1, p.id))
        }
    }
}

/// Same rule as the config's names: safe as a JACK port name and in a `node:port` link.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("must have 1 to {MAX_NAME_LEN} characters"));
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        Some(c) => Err(format!("contains {c:?}")),
        None => Ok(()),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u64,
    config_digest: String,
    graph: GraphV1,
    bypassed: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphV1 {
    inputs: Vec<String>,
    outputs: Vec<String>,
    nodes: Vec<NodeV1>,
    links: Vec<LinkV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeV1 {
    name: String,
    kind: String,
    channels: usize,
    bands: usize,
    params: Params,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkV1 {
    from: EndpointV1,
    to: EndpointV1,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum EndpointV1 {
    Io {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<usize>,
    },
    Node {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<usize>,
    },
}

/// Parameter values by key, as a JSON object whose order is kept (so a round trip is exact).
struct Params(Vec<(String, f32)>);

impl Serialize for Params {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, &Value(*value))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of parameter values by key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let mut out = Vec::new();
                while let Some((key, Value(value))) = map.next_entry::<String, Value>()? {
                    out.push((key, value));
                }
                Ok(Params(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One parameter value: a JSON number, or `"inf"`/`"-inf"` for the infinities JSON cannot write.
struct Value(f32);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_finite() => s.serialize_f32(v),
            v if v.is_nan() => Err(serde::ser::Error::custom("a parameter value is NaN")),
            v if v > 0.0 => s.serialize_str("inf"),
            _ => s.serialize_str("-inf"),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, \"inf\" or \"-inf\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                let x = v as f32;
                if x.is_finite() {
                    Ok(Value(x))
                } else {
                    Err(E::custom(format!("{v} does not fit a 32-bit float")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                match v {
                    "inf" => Ok(Value(f32::INFINITY)),
                    "-inf" => Ok(Value(f32::NEG_INFINITY)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_fnv1a_64() {
        // Reference values of FNV-1a 64 (draft-eastlake-fnv test vectors).
        assert_eq!(digest(""), "fnv1a64:cbf29ce484222325");
        assert_eq!(digest("a"), "fnv1a64:af63dc4c8601ec8c");
        assert_eq!(digest("foobar"), "fnv1a64:85944171f73967e8");
    }

    #[test]
    fn band_keys_round_trip() {
        let desc = descriptor("multiband").unwrap();
        for b in 0..4 {
            for p in desc.band_params {
                let id = ParamId::band(b, p.id);
                let key = param_key(desc, id).unwrap();
                assert_eq!(key, format!("band{}.{}", b + 1, p.key));
                assert_eq!(param_id(desc, &key, 4), Some(id));
            }
        }
        assert_eq!(param_id(desc, "band5.threshold_db", 4), None, "band beyond the node's");
        assert_eq!(param_id(desc, "band0.threshold_db", 4), None, "bands count from 1");
        assert_eq!(param_id(desc, "band01.threshold_db", 4), None, "one spelling per band");
        assert_eq!(param_id(desc, "band1.nope", 4), None);
        assert!(param_id(desc, "crossover_1_hz", 4).is_some());
    }

    #[test]
    fn f32_values_survive_json_exactly() {
        // serde_json parses through f64: check that f32 values written shortest come back bit-exact.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = f32::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let text = serde_json::to_string(&Value(v)).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back.0.to_bits(), v.to_bits(), "{v:e} written as {text}");
        }
    }
}

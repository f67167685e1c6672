//! Presets: named snapshots of the running graph (nodes, parameter values, links, bypassed nodes), kept
//! as one JSON file each in one directory (the state directory's `presets/`) and nowhere else.
//!
//! # Names
//! `[A-Za-z0-9_.-]{1,64}` without a leading dot ([`valid_name`]): a name can never be a path, climb out of
//! the directory (`..`, `a/b`) or hide a file (`.x`). The file is `NAME.json`.
//!
//! # Writes
//! [`PresetStore::save`] writes `.NAME.json.tmp-<pid>-<n>` (a name no preset can have), fsyncs it,
//! renames it over `NAME.json` and fsyncs the directory: a reader sees the old or the new preset whole.
//!
//! # Format, version 1
//! The graph part has the shape of the daemon's state file (`state.json`, version 1) so the two can
//! share a codec once that module is in this tree; until then this is its own small codec:
//! ```json
//! { "version": 1,
//!   "graph": { "inputs": ["in_l", "in_r"], "outputs": ["out_l", "out_r"],
//!              "nodes": [ { "name": "mbc", "kind": "multiband", "channels": 2, "bands": 3,
//!                           "params": { "crossover_1_hz": 120, "band2.threshold_db": -20 } } ],
//!              "links": [ { "from": { "io": {} }, "to": { "node": { "name": "mbc" } } },
//!                         { "from": { "node": { "name": "mbc", "channel": 0 } }, "to": { "io": { "channel": 1 } } } ] },
//!   "bypassed": ["mbc"] }
//! ```
//! Parameters are named by descriptor key (per-band ones `band<N>.<key>`, bands from 1), values in the
//! descriptor's unit (choices as indices, booleans 0/1, an infinite ratio as `"inf"`). Loading checks
//! kinds, shapes, keys, ranges and link names; whether the graph compiles is checked when it is applied.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ballast_dsp::param::KindDescriptor;
use ballast_dsp::registry::{self, Shape};
use ballast_dsp::ParamId;
use serde_json::{json, Map, Value};

use crate::graph::{Endpoint, GraphSpec, Link, NodeSpec};

/// The `"version"` written and read.
pub const FORMAT_VERSION: u64 = 1;
/// Longest preset name.
pub const MAX_NAME_LEN: usize = 64;
const EXTENSION: &str = ".json";

/// One preset: a graph and the nodes bypassed in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Preset {
    pub graph: GraphSpec,
    pub bypassed: Vec<String>,
}

/// Why a preset operation failed.
#[derive(Debug)]
pub enum PresetError {
    /// The name is not a valid preset name; the message says what is allowed.
    InvalidName(String),
    /// No preset of that name.
    NotFound(String),
    /// The file exists but is not a valid preset.
    Corrupt {
        name: String,
        reason: String,
    },
    Io(io::Error),
}

impl std::fmt::Display for PresetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PresetError::InvalidName(why) => write!(f, "{why}"),
            PresetError::NotFound(name) => write!(f, "no preset named \"{name}\""),
            PresetError::Corrupt { name, reason } => write!(f, "preset \"{name}\" is unreadable: {reason}"),
            PresetError::Io(e) => write!(f, "preset storage: {e}"),
        }
    }
}

impl std::error::Error for PresetError {}

impl From<io::Error> for PresetError {
    fn from(e: io::Error) -> Self {
        PresetError::Io(e)
    }
}

/// Checks a preset name: 1 to 64 of `A-Z a-z 0-9 _ . -`, not starting with a dot.
pub fn valid_name(name: &str) -> Result<(), String> {
    let allowed = "use 1 to 64 letters, digits, `_`, `-` and `.`, not starting with `.`";
    if name.is_empty() {
        return Err(format!("invalid preset name: it is empty; {allowed}"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("invalid preset name: {} characters long; {allowed}", name.len()));
    }
    if name.starts_with('.') {
        return Err(format!("invalid preset name \"{name}\": starts with `.`; {allowed}"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(format!("invalid preset name \"{}\": contains {c:?}; {allowed}", name.escape_debug()));
    }
    Ok(())
}

/// The presets in one directory.
pub struct PresetStore {
    dir: PathBuf,
}

impl PresetStore {
    /// A store in `dir` (created, mode 0700, at the first save).
    pub fn new(dir: PathBuf) -> Self {
        PresetStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf, PresetError> {
        valid_name(name).map_err(PresetError::InvalidName)?;
        Ok(self.dir.join(format!("{name}{EXTENSION}")))
    }

    /// Saves (or replaces) preset `name` atomically.
    pub fn save(&self, name: &str, preset: &Preset) -> Result<(), PresetError> {
        let path = self.path(name)?;
        let text = encode(preset).map_err(|reason| PresetError::Corrupt { name: name.into(), reason })?;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".{name}{EXTENSION}.tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        // The rename is durable only once the directory entry is on disk.
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Reads and checks preset `name`.
    pub fn load(&self, name: &str) -> Result<Preset, PresetError> {
        let path = self.path(name)?;
        let bytes = match fs::read(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(PresetError::NotFound(name.into())),
            other => other?,
        };
        decode(&bytes).map_err(|reason| PresetError::Corrupt { name: name.into(), reason })
    }

    /// The names of the stored presets, sorted.
    pub fn list(&self) -> Result<Vec<String>, PresetError> {
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other?,
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(EXTENSION)).map(str::to_string))
            .filter(|n| valid_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes preset `name`.
    pub fn delete(&self, name: &str) -> Result<(), PresetError> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(PresetError::NotFound(name.into())),
            other => Ok(other?),
        }
    }
}

fn descriptor(kind: &str) -> Result<&'static KindDescriptor, String> {
    registry::find(kind).map(|k| k.descriptor).ok_or_else(|| format!("unknown node kind \"{kind}\""))
}

/// The key of parameter `id`: the descriptor key, per-band ones as `band<N>.<key>` (bands from 1).
pub fn param_key(desc: &KindDescriptor, id: ParamId) -> Option<String> {
    let p = desc.param(id)?;
    Some(match id.split_band() {
        None => p.key.to_string(),
        Some((band, _)) => format!("band{}.{}", band + 1, p.key),
    })
}

/// The id of parameter `key` (see [`param_key`]) of a node with `bands` bands.
pub fn param_id(desc: &KindDescriptor, key: &str, bands: usize) -> Option<ParamId> {
    if let Some((band, inner)) = key.strip_prefix("band").and_then(|r| r.split_once('.')) {
        let band: usize = band.parse().ok().filter(|b| (1..=bands).contains(b))?;
        let p = desc.band_params.iter().find(|p| p.key == inner)?;
        return Some(ParamId::band(band - 1, p.id));
    }
    desc.param_by_key(key).map(|p| p.id)
}

fn number(v: f32) -> Value {
    if v.is_infinite() {
        Value::String(if v > 0.0 { "inf" } else { "-inf" }.into())
    } else {
        json!(v)
    }
}

/// `p` as version-1 JSON text.
pub fn encode(p: &Preset) -> Result<String, String> {
    let g = &p.graph;
    let mut nodes = Vec::with_capacity(g.nodes.len());
    for n in &g.nodes {
        let desc = descriptor(&n.kind)?;
        let mut params = Map::new();
        for &(id, value) in &n.params {
            let key = param_key(desc, id).ok_or_else(|| format!("node {}: unknown parameter id {}", n.name, id.0))?;
            params.insert(key, number(value));
        }
        nodes.push(json!({ "name": n.name, "kind": n.kind, "channels": n.shape.channels,
                           "bands": n.shape.bands, "params": params }));
    }
    let endpoint = |e: &Endpoint| -> Result<Value, String> {
        let (key, name, channel) = match *e {
            Endpoint::Io { channel } => ("io", None, channel),
            Endpoint::Node { node, channel } => {
                let n = g.nodes.get(node).ok_or_else(|| format!("a link names node {node}, which does not exist"))?;
                ("node", Some(n.name.clone()), channel)
            }
        };
        let mut inner = Map::new();
        if let Some(name) = name {
            inner.insert("name".into(), json!(name));
        }
        if let Some(c) = channel {
            inner.insert("channel".into(), json!(c));
        }
        Ok(json!({ key: inner }))
    };
    let links = g
        .links
        .iter()
        .map(|l| Ok(json!({ "from": endpoint(&l.from)?, "to": endpoint(&l.to)? })))
        .collect::<Result<Vec<_>, String>>()?;
    let file = json!({
        "version": FORMAT_VERSION,
        "graph": { "inputs": g.inputs, "outputs": g.outputs, "nodes": nodes, "links": links },
        "bypassed": p.bypassed,
    });
    serde_json::to_string_pretty(&file).map_err(|e| e.to_string())
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    v.and_then(Value::as_array)
        .ok_or_else(|| format!("`{what}` must be a list of strings"))?
        .iter()
        .map(|s| s.as_str().map(str::to_string).ok_or_else(|| format!("`{what}` must be a list of strings")))
        .collect()
}

fn count(v: Option<&Value>, what: &str) -> Result<usize, String> {
    v.and_then(Value::as_u64).map(|n| n as usize).ok_or_else(|| format!("`{what}` must be a count"))
}

/// Reads version-1 JSON text, checking kinds, shapes, parameter keys and ranges, and link names.
pub fn decode(bytes: &[u8]) -> Result<Preset, String> {
    let file: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let version = file.get("version").and_then(Value::as_u64);
    if version != Some(FORMAT_VERSION) {
        return Err(format!("version {version:?}; this ballastd reads version {FORMAT_VERSION}"));
    }
    let g = file.get("graph").ok_or("no `graph`")?;
    let mut graph = GraphSpec {
        inputs: strings(g.get("inputs"), "graph.inputs")?,
        outputs: strings(g.get("outputs"), "graph.outputs")?,
        ..GraphSpec::default()
    };
    for n in g.get("nodes").and_then(Value::as_array).ok_or("`graph.nodes` must be a list")? {
        let name = n.get("name").and_then(Value::as_str).ok_or("a node has no `name`")?.to_string();
        crate::config::valid_name(&name).map_err(|why| format!("node name \"{name}\" {why}"))?;
        if graph.nodes.iter().any(|m| m.name == name) {
            return Err(format!("two nodes named {name}"));
        }
        let kind = n.get("kind").and_then(Value::as_str).ok_or_else(|| format!("node {name} has no `kind`"))?;
        let shape = Shape { channels: count(n.get("channels"), "channels")?, bands: count(n.get("bands"), "bands")? };
        registry::create(kind, shape).map_err(|e| format!("node {name}: {e}"))?;
        let desc = descriptor(kind)?;
        let mut params = Vec::new();
        for (key, v) in n.get("params").and_then(Value::as_object).ok_or_else(|| format!("node {name}: no `params`"))? {
            let id = param_id(desc, key, shape.bands).ok_or_else(|| format!("node {name}: unknown parameter {key}"))?;
            let value = match v {
                Value::String(s) if s == "inf" => f32::INFINITY,
                Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
                v => v.as_f64().ok_or_else(|| format!("node {name}: {key} is not a number"))? as f32,
            };
            desc.validate(id, value).map_err(|e| format!("node {name}: {key}: {e}"))?;
            params.push((id, value));
        }
        graph.nodes.push(NodeSpec { name, kind: kind.to_string(), shape, params });
    }
    let endpoint = |v: Option<&Value>| -> Result<Endpoint, String> {
        let v = v.and_then(Value::as_object).ok_or("a link end must be {\"io\": ..} or {\"node\": ..}")?;
        let channel = |inner: &Value| inner.get("channel").and_then(Value::as_u64).map(|c| c as usize);
        if let Some(inner) = v.get("io") {
            return Ok(Endpoint::Io { channel: channel(inner) });
        }
        let inner = v.get("node").ok_or("a link end must be {\"io\": ..} or {\"node\": ..}")?;
        let name = inner.get("name").and_then(Value::as_str).ok_or("a link's node has no `name`")?;
        let node = graph.nodes.iter().position(|n| n.name == name).ok_or_else(|| format!("a link names {name}"))?;
        Ok(Endpoint::Node { node, channel: channel(inner) })
    };
    let mut links = Vec::new();
    for l in g.get("links").and_then(Value::as_array).ok_or("`graph.links` must be a list")? {
        links.push(Link { from: endpoint(l.get("from"))?, to: endpoint(l.get("to"))? });
    }
    graph.links = links;
    let bypassed = strings(file.get("bypassed"), "bypassed")?;
    if let Some(b) = bypassed.iter().find(|b| !graph.nodes.iter().any(|n| &n.name == *b)) {
        return Err(format!("bypassed node {b} is not in the graph"));
    }
    Ok(Preset { graph, bypassed })
}

//! What control clients (D-Bus, later others) may ask the daemon, and the answers, worked out over the
//! one [`Controller`] the control thread owns. Front ends never touch the controller: they send a
//! [`Request`] with a reply channel to the control thread, which builds an [`Answerer`] over its state
//! and sends back what [`Answerer::answer`] returns.
//!
//! Graph edits ([`Request::Commit`]) are checked with the config's own rules: endpoint texts resolve by
//! `config::parse_endpoint` (the same words and messages as `[links]`), node widths by the config's
//! width rule, parameter keys and ranges by the node kinds' descriptors, and the whole graph by the
//! graph compiler inside [`Controller::apply`], which applies it in one swap on the RT side with the
//! surviving nodes' state kept. Nothing is sent to the RT side unless all of it is valid.

use ballast_dsp::param::{KindDescriptor, ParamDescriptor, Scale, Unit};
use ballast_dsp::registry::{self, Shape};
use ballast_dsp::ParamId;

use crate::config::{self, EndpointScope, Side};
use crate::engine::{Controller, EngineError};
use crate::graph::{Endpoint, GraphSpec, Link, NodeSpec};
use crate::presets::{self, Preset, PresetError, PresetStore};

/// One request from a control client.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Status,
    ListNodes,
    /// Every parameter of a node: descriptor and current value.
    Params {
        node: String,
    },
    Get {
        node: String,
        param: String,
    },
    Set {
        node: String,
        param: String,
        value: f64,
    },
    Bypass {
        node: String,
        on: bool,
    },
    /// A transaction, collected by the front end per client (begin / add / remove / connect /
    /// disconnect), applied here as one [`Controller::apply`]: one swap on the RT side, surviving nodes
    /// keep their state. The operations run in order on a copy of the running graph.
    Commit {
        ops: Vec<GraphOp>,
    },
    /// Re-read the config: answered [`Answer::Reload`]; the service does the reload itself.
    Reload,
    /// Every node's meters, as they read now.
    Meters,
    PresetSave {
        name: String,
    },
    PresetLoad {
        name: String,
    },
    PresetList,
    PresetDelete {
        name: String,
    },
    /// Estimate, from a (dry, wet) pair of WAV files the daemon can read, the settings of the compressor
    /// or multiband node `node` (split at its own crossovers) and apply them as one transaction. The
    /// service runs it on an inference worker and answers when the result is in; an [`Answerer`] alone
    /// has no worker and answers [`ApiError::ModelUnavailable`].
    Learn {
        node: String,
        dry: String,
        wet: String,
    },
    /// As [`Request::Learn`], without a node: the settings per band between `crossovers_hz`.
    Estimate {
        dry: String,
        wet: String,
        crossovers_hz: Vec<f64>,
    },
}

/// One step of a graph transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphOp {
    /// A new node. `params` by key (`threshold_db`, per band `band2.threshold_db`); `channels: None`
    /// takes the config's rule (a generator 2, a processor the width of what feeds its whole input);
    /// `bands` is needed by a multiband only.
    AddNode { name: String, kind: String, params: Vec<(String, f64)>, channels: Option<u32>, bands: Option<u32> },
    /// Removes a node and every link to or from it.
    RemoveNode { name: String },
    /// A link, with endpoints written as in the config's links: `node`, `node:out_2`, `in`, `out`,
    /// `in:PORT`, `out:PORT`.
    Connect { from: String, to: String },
    /// Removes the links that `Connect { from, to }` would have made.
    Disconnect { from: String, to: String },
}

/// Why a request was refused; each message says what was wrong and what is allowed.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    UnknownNode {
        node: String,
        message: String,
    },
    UnknownParam {
        node: String,
        param: String,
        message: String,
    },
    OutOfRange {
        node: String,
        param: String,
        message: String,
    },
    InvalidGraph(String),
    /// The engine cannot take the change now (command ring full, no free slot, a transaction open).
    Busy(String),
    InvalidName(String),
    /// A model a request needs is not loaded; the message says why and where it was looked for.
    ModelUnavailable(String),
    /// The node exists but is of a kind the request does not apply to (`Learn` on a limiter).
    WrongKind(String),
    /// Input files that cannot be used: unreadable, not WAV, or a pair that does not match.
    InvalidInput(String),
    Failed(String),
}

impl ApiError {
    /// The D-Bus error name's last part (`org.ballast.Error.<this>`).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::UnknownNode { .. } => "UnknownNode",
            ApiError::UnknownParam { .. } => "UnknownParam",
            ApiError::OutOfRange { .. } => "OutOfRange",
            ApiError::InvalidGraph(_) => "InvalidGraph",
            ApiError::Busy(_) => "Busy",
            ApiError::InvalidName(_) => "InvalidName",
            ApiError::ModelUnavailable(_) => "ModelUnavailable",
            ApiError::WrongKind(_) => "WrongKind",
            ApiError::InvalidInput(_) => "InvalidInput",
            ApiError::Failed(_) => "Failed",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ApiError::UnknownNode { message, .. }
            | ApiError::UnknownParam { message, .. }
            | ApiError::OutOfRange { message, .. } => message,
            ApiError::InvalidGraph(m)
            | ApiError::Busy(m)
            | ApiError::InvalidName(m)
            | ApiError::ModelUnavailable(m)
            | ApiError::WrongKind(m)
            | ApiError::InvalidInput(m)
            | ApiError::Failed(m) => m,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ApiError {}

/// What the service knows and the controller does not; the control thread fills it for each request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    /// `jack`, `alsa`…
    pub backend: String,
    pub sample_rate_hz: u32,
    /// Frames per backend period; 0 while it is unknown (the backend has not started: JACK not connected).
    pub block_size: u32,
    /// Backend latency (period and device) in samples, without the graph's own.
    pub backend_latency_samples: u64,
    /// Share of the period the RT callback used, 0..100.
    pub dsp_load_percent: f64,
    pub xruns: u64,
    pub uptime_s: f64,
    pub version: String,
}

/// [`Request::Status`]'s answer: the service's part and the graph's.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    pub info: StatusInfo,
    /// The graph's own latency (lookaheads), in samples.
    pub graph_latency_samples: u64,
    pub nodes: usize,
    /// Each model's health. The service fills it (the workers report to it); an [`Answerer`] alone
    /// leaves it empty.
    pub models: Vec<ModelStatus>,
}

/// One model as `Status` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelStatus {
    /// `estimator`.
    pub name: String,
    /// `loading`, `ready` or `unavailable`.
    pub state: String,
    /// The file and runtime when ready; why not (and where it looked) when unavailable.
    pub detail: String,
}

/// One band's compressor settings, as the estimator gives them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandSettings {
    pub threshold_db: f64,
    pub ratio: f64,
    pub attack_ms: f64,
    pub release_ms: f64,
    pub makeup_db: f64,
    pub knee_db: f64,
}

impl BandSettings {
    /// The parameter keys (as a `compressor` names them; a multiband band prefixes `bandN.`) and values.
    pub fn entries(&self) -> [(&'static str, f64); 6] {
        [
            ("threshold_db", self.threshold_db),
            ("ratio", self.ratio),
            ("attack_ms", self.attack_ms),
            ("release_ms", self.release_ms),
            ("makeup_db", self.makeup_db),
            ("knee_db", self.knee_db),
        ]
    }
}

/// [`Request::Learn`]'s and [`Request::Estimate`]'s answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimated {
    /// Per band, low to high.
    pub bands: Vec<BandSettings>,
    /// For `Learn`: the parameters set on the node, by key (`band2.ratio`), as now in effect.
    pub applied: Vec<(String, f64)>,
    /// Seconds of audio the estimate used.
    pub seconds: f64,
    /// Time on the worker (reading the files, features, inference), in ms.
    pub worker_ms: f64,
}

/// What `Learn` needs to know about its node, taken when the request arrives and checked again when
/// the estimate comes back (the node may have been replaced meanwhile).
#[derive(Clone, Debug, PartialEq)]
pub struct LearnTarget {
    pub node: String,
    pub kind: String,
    pub shape: Shape,
    /// The node's split frequencies now (empty for a `compressor`).
    pub crossovers_hz: Vec<f64>,
}

/// One node as [`Request::ListNodes`] lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSummary {
    pub name: String,
    pub kind: String,
    pub channels: u32,
    /// 0 for kinds without bands.
    pub bands: u32,
    pub bypassed: bool,
}

/// One parameter of one node: its descriptor and its current value.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// The key `Get`/`Set` take (`band2.threshold_db` for a band's).
    pub key: String,
    pub name: String,
    /// Unit suffix (`dB`, `ms`, `:1`…), empty for plain numbers, booleans and choices.
    pub unit: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    /// `linear` or `log`.
    pub scale: String,
    pub doc: String,
    /// For a choice, its options (the value is an index); empty otherwise.
    pub choices: Vec<String>,
    /// True for a 0/1 switch.
    pub boolean: bool,
    pub value: f64,
}

/// One node's meters (`key` per band as `band2.gain_reduction_db`); NaN until the node has run.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeMeterValues {
    pub node: String,
    pub values: Vec<(String, f64)>,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Status(Status),
    Nodes(Vec<NodeSummary>),
    Params(Vec<ParamInfo>),
    /// A parameter's value (for `Set`: the value now in effect).
    Value(f64),
    /// Done, nothing to report (bypass, preset save/delete).
    Done,
    /// A graph was applied (commit, preset load).
    Applied {
        kept: usize,
        inserted: usize,
        removed: usize,
        latency_samples: u64,
    },
    /// The service must re-read its config (the control thread does it and answers in its place).
    Reload,
    Meters(Vec<NodeMeterValues>),
    Presets(Vec<String>),
    Estimated(Estimated),
}

/// Answers requests over the control thread's state. Built per request.
pub struct Answerer<'a> {
    pub controller: &'a mut Controller,
    pub status: StatusInfo,
    pub presets: &'a PresetStore,
}

impl Answerer<'_> {
    pub fn answer(&mut self, req: Request) -> Result<Answer, ApiError> {
        match req {
            Request::Status => Ok(Answer::Status(Status {
                info: self.status.clone(),
                graph_latency_samples: self.controller.latency_samples() as u64,
                nodes: self.controller.spec().nodes.len(),
                models: Vec::new(),
            })),
            Request::ListNodes => {
                let bypassed = self.controller.bypassed();
                Ok(Answer::Nodes(
                    self.controller
                        .spec()
                        .nodes
                        .iter()
                        .map(|n| NodeSummary {
                            name: n.name.clone(),
                            kind: n.kind.clone(),
                            channels: n.shape.channels as u32,
                            bands: n.shape.bands as u32,
                            bypassed: bypassed.contains(&n.name),
                        })
                        .collect(),
                ))
            }
            Request::Params { node } => self.params(&node).map(Answer::Params),
            Request::Get { node, param } => {
                let (n, id, _) = self.param(&node, &param)?;
                let value = self.controller.param(&n.name, id).unwrap_or(f32::NAN);
                Ok(Answer::Value(value as f64))
            }
            Request::Set { node, param, value } => self.set(&node, &param, value),
            Request::Bypass { node, on } => {
                self.node(&node)?;
                self.controller.bypass(&node, on).map_err(engine_error)?;
                Ok(Answer::Done)
            }
            Request::Commit { ops } => {
                let spec = edit(&self.controller.current_spec(), &ops)?;
                self.apply(&spec)
            }
            Request::Reload => Ok(Answer::Reload),
            Request::Meters => Ok(Answer::Meters(self.meters())),
            Request::PresetSave { name } => {
                let preset = Preset { graph: self.controller.current_spec(), bypassed: self.controller.bypassed() };
                self.presets.save(&name, &preset).map_err(preset_error)?;
                Ok(Answer::Done)
            }
            Request::PresetLoad { name } => {
                let preset = self.presets.load(&name).map_err(preset_error)?;
                let running = self.controller.spec();
                if preset.graph.inputs != running.inputs || preset.graph.outputs != running.outputs {
                    return Err(ApiError::InvalidGraph(format!(
                        "preset \"{name}\" was saved with ports in [{}] out [{}]; the daemon runs with in [{}] out [{}]",
                        preset.graph.inputs.join(", "),
                        preset.graph.outputs.join(", "),
                        running.inputs.join(", "),
                        running.outputs.join(", ")
                    )));
                }
                let answer = self.apply(&preset.graph)?;
                let mut failed = Vec::new();
                let now = self.controller.bypassed();
                for n in &preset.graph.nodes {
                    let on = preset.bypassed.contains(&n.name);
                    if on != now.contains(&n.name) {
                        if let Err(e) = self.controller.bypass(&n.name, on) {
                            failed.push(format!("{}: {e}", n.name));
                        }
                    }
                }
                if !failed.is_empty() {
                    return Err(ApiError::Busy(format!(
                        "preset \"{name}\" applied, but the bypass of {} could not be set; set it again",
                        failed.join("; ")
                    )));
                }
                Ok(answer)
            }
            Request::PresetList => self.presets.list().map(Answer::Presets).map_err(preset_error),
            Request::PresetDelete { name } => self.presets.delete(&name).map(|()| Answer::Done).map_err(preset_error),
            Request::Learn { .. } | Request::Estimate { .. } => Err(ApiError::ModelUnavailable(
                "this control loop runs no inference workers (ballastd's service does)".into(),
            )),
        }
    }

    /// The node `Learn` would set: a `compressor` or a `multiband`, with its crossovers as set now.
    pub fn learn_target(&self, node: &str) -> Result<LearnTarget, ApiError> {
        let n = self.node(node)?;
        let desc = descriptor(&n.kind)?;
        let crossovers_hz = match n.kind.as_str() {
            "compressor" => Vec::new(),
            "multiband" => param_keys(desc, n.shape)
                .into_iter()
                .filter(|(k, _)| crossover_index(k).is_some())
                .map(|(_, id)| self.controller.param(&n.name, id).unwrap_or(f32::NAN) as f64)
                .collect(),
            other => {
                return Err(ApiError::WrongKind(format!(
                    "node {} is a {other}; Learn sets a compressor's or a multiband's settings",
                    n.name
                )))
            }
        };
        Ok(LearnTarget { node: n.name.clone(), kind: n.kind.clone(), shape: n.shape, crossovers_hz })
    }

    /// Sets every band's settings on the node of `target` in one [`Controller::apply`] (one batch on the
    /// RT side: no block runs with half of them), values clamped to each parameter's range. Returns the
    /// keys and values set. Refused when the node was removed or replaced since `target` was taken.
    pub fn apply_estimate(
        &mut self,
        target: &LearnTarget,
        bands: &[BandSettings],
    ) -> Result<Vec<(String, f64)>, ApiError> {
        let n = self.node(&target.node)?;
        let (kind, shape) = (n.kind.clone(), n.shape);
        if kind != target.kind || shape != target.shape {
            return Err(ApiError::Failed(format!(
                "node {} was replaced while its settings were estimated; nothing was changed",
                target.node
            )));
        }
        let want = if kind == "multiband" { shape.bands } else { 1 };
        if bands.len() != want {
            return Err(ApiError::Failed(format!(
                "the estimate has {} band(s), node {} has {want}; nothing was changed",
                bands.len(),
                target.node
            )));
        }
        let desc = descriptor(&kind)?;
        let keys = param_keys(desc, shape);
        let mut spec = self.controller.current_spec();
        let Some(node) = spec.nodes.iter_mut().find(|x| x.name == target.node) else {
            return Err(unknown_node(&target.node, self.controller.spec()));
        };
        let mut applied = Vec::with_capacity(bands.len() * 6);
        for (b, band) in bands.iter().enumerate() {
            for (key, value) in band.entries() {
                let key = if kind == "multiband" { format!("band{}.{key}", b + 1) } else { key.to_string() };
                let id = keys
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|&(_, id)| id)
                    .ok_or_else(|| ApiError::Failed(format!("node kind {kind} has no parameter {key}")))?;
                let p = desc.param(id).ok_or_else(|| ApiError::Failed(format!("no descriptor for {key}")))?;
                let v = (value as f32).clamp(p.min, p.max);
                match node.params.iter_mut().find(|(i, _)| *i == id) {
                    Some(slot) => slot.1 = v,
                    None => node.params.push((id, v)),
                }
                applied.push((key, v as f64));
            }
        }
        self.controller.apply(&spec).map_err(engine_error)?;
        Ok(applied)
    }

    fn node(&self, name: &str) -> Result<&NodeSpec, ApiError> {
        let spec = self.controller.spec();
        spec.nodes.iter().find(|n| n.name == name).ok_or_else(|| unknown_node(name, spec))
    }

    /// The node, the parameter's id and descriptor for `key`.
    fn param(&self, node: &str, key: &str) -> Result<(&NodeSpec, ParamId, &'static ParamDescriptor), ApiError> {
        let n = self.node(node)?;
        let desc = descriptor(&n.kind)?;
        let id = param_keys(desc, n.shape)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, id)| id)
            .ok_or_else(|| unknown_param(n, desc, key))?;
        let p = desc.param(id).ok_or_else(|| unknown_param(n, desc, key))?;
        Ok((n, id, p))
    }

    fn params(&self, node: &str) -> Result<Vec<ParamInfo>, ApiError> {
        let n = self.node(node)?;
        let desc = descriptor(&n.kind)?;
        Ok(param_keys(desc, n.shape)
            .into_iter()
            .filter_map(|(key, id)| {
                let p = desc.param(id)?;
                let value = self.controller.param(&n.name, id).unwrap_or(p.default);
                Some(param_info(key, p, value))
            })
            .collect())
    }

    fn set(&mut self, node: &str, key: &str, value: f64) -> Result<Answer, ApiError> {
        let (n, id, p) = self.param(node, key)?;
        let name = n.name.clone();
        let v = value as f32;
        // A finite f64 beyond f32's range would turn into an infinity that an unbounded ratio accepts.
        let representable = value.is_infinite() || v.is_finite() || value.is_nan();
        if !representable || p.validate(v).is_err() {
            return Err(ApiError::OutOfRange {
                node: name.clone(),
                param: key.to_string(),
                message: format!("{name}.{key} = {value} is out of range: {}", allowed(p)),
            });
        }
        self.controller.set_param(&name, id, v).map_err(engine_error)?;
        Ok(Answer::Value(v as f64))
    }

    fn apply(&mut self, spec: &GraphSpec) -> Result<Answer, ApiError> {
        // A bypass stays with a node the edit keeps (same name, kind and shape); the controller tracks it.
        let report = self.controller.apply(spec).map_err(engine_error)?;
        Ok(Answer::Applied {
            kept: report.kept,
            inserted: report.inserted,
            removed: report.removed,
            latency_samples: report.latency_samples as u64,
        })
    }

    fn meters(&self) -> Vec<NodeMeterValues> {
        let spec = self.controller.spec();
        spec.nodes
            .iter()
            .filter_map(|n| {
                let m = self.controller.meters(&n.name)?;
                let desc = m.descriptor();
                let mut values = Vec::new();
                for (i, md) in desc.meters.iter().enumerate() {
                    if md.per_band {
                        for b in 0..n.shape.bands.max(1) {
                            let v = m.get(i, b).unwrap_or(f32::NAN);
                            values.push((format!("band{}.{}", b + 1, md.key), v as f64));
                        }
                    } else {
                        values.push((md.key.to_string(), m.get(i, 0).unwrap_or(f32::NAN) as f64));
                    }
                }
                Some(NodeMeterValues { node: n.name.clone(), values })
            })
            .collect()
    }
}

/// Every parameter key of a node of this kind and shape, in descriptor order: node-level ones (for a
/// multiband only the `bands - 1` crossovers it uses), then per band `band<N>.<key>`.
pub fn param_keys(desc: &KindDescriptor, shape: Shape) -> Vec<(String, ParamId)> {
    let bands = if desc.band_params.is_empty() { 0 } else { shape.bands };
    let mut keys = Vec::new();
    for p in desc.params {
        if let Some(k) = crossover_index(p.key) {
            if !desc.band_params.is_empty() && k >= bands {
                continue;
            }
        }
        keys.push((p.key.to_string(), p.id));
    }
    for b in 0..bands {
        for p in desc.band_params {
            keys.push((format!("band{}.{}", b + 1, p.key), ParamId::band(b, p.id)));
        }
    }
    keys
}

/// `crossover_N_hz` → N.
fn crossover_index(key: &str) -> Option<usize> {
    key.strip_prefix("crossover_")?.strip_suffix("_hz")?.parse().ok()
}

fn param_info(key: String, p: &ParamDescriptor, value: f32) -> ParamInfo {
    let choices = match p.unit {
        Unit::Choice(options) => options.iter().map(|o| o.to_string()).collect(),
        _ => Vec::new(),
    };
    ParamInfo {
        key,
        name: p.name.to_string(),
        unit: p.unit.suffix().to_string(),
        min: p.min as f64,
        max: p.max as f64,
        default: p.default as f64,
        scale: match p.scale {
            Scale::Linear => "linear",
            Scale::Log => "log",
        }
        .to_string(),
        doc: p.doc.to_string(),
        choices,
        boolean: p.unit == Unit::Bool,
        value: value as f64,
    }
}

/// What a parameter accepts, for error messages.
fn allowed(p: &ParamDescriptor) -> String {
    match p.unit {
        Unit::Bool => "0 (off) or 1 (on)".to_string(),
        Unit::Choice(options) => {
            let listed: Vec<String> = options.iter().enumerate().map(|(i, o)| format!("{i} = {o}")).collect();
            format!("an index of one of {}", listed.join(", "))
        }
        _ => config::range_text(p),
    }
}

/// `s` for a message: escaped, and cut at 64 characters so a huge name does not come back whole.
fn shown(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => s.escape_debug().to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", s[..cut].escape_debug(), s.len()),
    }
}

fn descriptor(kind: &str) -> Result<&'static KindDescriptor, ApiError> {
    registry::find(kind)
        .map(|k| k.descriptor)
        .ok_or_else(|| ApiError::Failed(format!("node kind \"{kind}\" is not in this build")))
}

fn unknown_node(name: &str, spec: &GraphSpec) -> ApiError {
    let names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
    ApiError::UnknownNode {
        node: name.to_string(),
        message: format!(
            "no node named \"{}\"; nodes: {}",
            shown(name),
            if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
        ),
    }
}

fn unknown_param(n: &NodeSpec, desc: &KindDescriptor, key: &str) -> ApiError {
    let keys: Vec<String> = param_keys(desc, n.shape).into_iter().map(|(k, _)| k).collect();
    ApiError::UnknownParam {
        node: n.name.clone(),
        param: key.to_string(),
        message: format!(
            "node {} ({}) has no parameter \"{}\"; its parameters: {}",
            n.name,
            n.kind,
            shown(key),
            keys.join(", ")
        ),
    }
}

fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::UnknownNode(n) => {
            ApiError::UnknownNode { message: format!("no node named \"{}\"", shown(&n)), node: n }
        }
        EngineError::RingFull { .. } | EngineError::NoFreeSlot { .. } => ApiError::Busy(e.to_string()),
        EngineError::Param { .. } | EngineError::Create { .. } | EngineError::Compile(_) => {
            ApiError::InvalidGraph(e.to_string())
        }
    }
}

fn preset_error(e: PresetError) -> ApiError {
    match e {
        PresetError::InvalidName(m) => ApiError::InvalidName(m),
        PresetError::NotFound(_) | PresetError::Corrupt { .. } | PresetError::Io(_) => ApiError::Failed(e.to_string()),
    }
}

/// Runs `ops` in order on a copy of `base`; the result is checked node by node here and as a whole by
/// the compiler when it is applied.
pub fn edit(base: &GraphSpec, ops: &[GraphOp]) -> Result<GraphSpec, ApiError> {
    let mut nodes = base.nodes.clone();
    // Widths still to infer: a new processor without `channels`.
    let mut open_width = vec![false; nodes.len()];
    // Links by node name, so removals need no reindexing.
    let mut links: Vec<(End, End)> = base.links.iter().map(|l| (end(base, &l.from), end(base, &l.to))).collect();

    for op in ops {
        match op {
            GraphOp::AddNode { name, kind, params, channels, bands } => {
                let (node, open) = new_node(&nodes, name, kind, params, *channels, *bands)?;
                nodes.push(node);
                open_width.push(open);
            }
            GraphOp::RemoveNode { name } => {
                let i =
                    nodes.iter().position(|n| &n.name == name).ok_or_else(|| unknown_node(name, &spec_of(&nodes)))?;
                nodes.remove(i);
                open_width.remove(i);
                links.retain(|(f, t)| f.node.as_deref() != Some(name) && t.node.as_deref() != Some(name));
            }
            GraphOp::Connect { from, to } => {
                let from = resolve(base, &nodes, from, Side::Source)?;
                let to = resolve(base, &nodes, to, Side::Sink)?;
                links.push((from, to));
            }
            GraphOp::Disconnect { from: f, to: t } => {
                let from = resolve(base, &nodes, f, Side::Source)?;
                let to = resolve(base, &nodes, t, Side::Sink)?;
                let before = links.len();
                links.retain(|l| *l != (from.clone(), to.clone()));
                if links.len() == before {
                    return Err(ApiError::InvalidGraph(format!("no link from `{f}` to `{t}` to disconnect")));
                }
            }
        }
    }

    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let index = |e: &End| -> Option<usize> { e.node.as_ref().and_then(|n| names.iter().position(|m| m == n)) };
    let ends: Vec<config::WidthLink> =
        links.iter().map(|(f, t)| ((index(f), f.channel), (index(t), t.channel))).collect();
    let fixed: Vec<Option<usize>> =
        nodes.iter().zip(&open_width).map(|(n, &open)| (!open).then_some(n.shape.channels)).collect();
    let widths = config::widths(base.inputs.len(), &fixed, &ends);
    for (n, w) in nodes.iter_mut().zip(widths) {
        n.shape.channels = w;
    }
    for (n, open) in nodes.iter().zip(&open_width) {
        if *open {
            registry::create(&n.kind, n.shape).map_err(|e| ApiError::InvalidGraph(format!("node {}: {e}", n.name)))?;
        }
    }
    let endpoint = |e: &End| match index(e) {
        None => Endpoint::Io { channel: e.channel },
        Some(node) => Endpoint::Node { node, channel: e.channel },
    };
    let links = links.iter().map(|(f, t)| Link { from: endpoint(f), to: endpoint(t) }).collect();
    Ok(GraphSpec { inputs: base.inputs.clone(), outputs: base.outputs.clone(), nodes, links })
}

/// A link end by node name (`None`: the daemon's bus).
#[derive(Clone, Debug, PartialEq)]
struct End {
    node: Option<String>,
    channel: Option<usize>,
}

fn end(spec: &GraphSpec, e: &Endpoint) -> End {
    match *e {
        Endpoint::Io { channel } => End { node: None, channel },
        Endpoint::Node { node, channel } => End { node: spec.nodes.get(node).map(|n| n.name.clone()), channel },
    }
}

fn spec_of(nodes: &[NodeSpec]) -> GraphSpec {
    GraphSpec { nodes: nodes.to_vec(), ..GraphSpec::default() }
}

fn resolve(base: &GraphSpec, nodes: &[NodeSpec], text: &str, side: Side) -> Result<End, ApiError> {
    // A node name and a port name of at most 64 characters each, and the `:` between them.
    if text.len() > 129 {
        return Err(ApiError::InvalidGraph(format!(
            "link end `{}` is too long: `NODE` or `NODE:PORT`, names of at most 64 characters",
            shown(text)
        )));
    }
    let scope = EndpointScope {
        audio_in: base.inputs.iter().map(String::as_str).collect(),
        audio_out: base.outputs.iter().map(String::as_str).collect(),
        nodes: nodes
            .iter()
            .map(|n| {
                let generator = registry::find(&n.kind).filter(|k| k.generator).map(|k| k.descriptor.kind);
                (n.name.as_str(), generator)
            })
            .collect(),
    };
    match config::parse_endpoint(&scope, text, side) {
        Ok((node, channel)) => Ok(End { node: node.map(|i| nodes[i].name.clone()), channel }),
        Err(message) => {
            let name = text.split_once(':').map_or(text, |(n, _)| n);
            if !matches!(name, "in" | "out") && !nodes.iter().any(|n| n.name == name) {
                Err(ApiError::UnknownNode { node: name.to_string(), message })
            } else {
                Err(ApiError::InvalidGraph(message))
            }
        }
    }
}

/// A node for `AddNode`, checked as the config checks a `[nodes.NAME]` table; true when its width is
/// still to be inferred from its links.
fn new_node(
    nodes: &[NodeSpec],
    name: &str,
    kind: &str,
    params: &[(String, f64)],
    channels: Option<u32>,
    bands: Option<u32>,
) -> Result<(NodeSpec, bool), ApiError> {
    config::valid_name(name).map_err(|why| ApiError::InvalidName(format!("node name \"{}\" {why}", shown(name))))?;
    if config::RESERVED.contains(&name) {
        return Err(ApiError::InvalidName(format!("`{name}` is the daemon's {name} bus; give the node another name")));
    }
    if nodes.iter().any(|n| n.name == name) {
        return Err(ApiError::InvalidGraph(format!(
            "a node named {name} exists already; remove it first or pick another name"
        )));
    }
    let Some(entry) = registry::find(kind) else {
        let names: Vec<&str> = registry::kinds().iter().map(|k| k.descriptor.kind).collect();
        return Err(ApiError::InvalidGraph(format!(
            "unknown node kind \"{}\" (known kinds: {})",
            shown(kind),
            names.join(", ")
        )));
    };
    let bands = match (&entry.bands, bands) {
        (Some(range), Some(b)) if range.contains(&(b as usize)) => b as usize,
        (Some(range), b) => {
            return Err(ApiError::InvalidGraph(format!(
                "node {name} ({kind}) needs bands in {}..={}, got {}",
                range.start(),
                range.end(),
                b.map_or("none".to_string(), |b| b.to_string())
            )))
        }
        (None, Some(b)) if b > 0 => {
            return Err(ApiError::InvalidGraph(format!("node {name}: kind \"{kind}\" has no bands (got {b})")))
        }
        (None, _) => 0,
    };
    if let Some(c) = channels {
        if !registry::CHANNELS.contains(&(c as usize)) {
            return Err(ApiError::InvalidGraph(format!(
                "node {name}: channels = {c} is out of range {}..{}",
                registry::CHANNELS.start(),
                registry::CHANNELS.end()
            )));
        }
    }
    let shape = Shape { channels: channels.map_or(config::DEFAULT_CHANNELS, |c| c as usize), bands };
    let spec = NodeSpec { name: name.to_string(), kind: kind.to_string(), shape, params: Vec::new() };
    let keys = param_keys(entry.descriptor, shape);
    let mut out = Vec::with_capacity(params.len());
    for (key, value) in params {
        let Some(&(_, id)) = keys.iter().find(|(k, _)| k == key) else {
            return Err(unknown_param(&spec, entry.descriptor, key));
        };
        let p = entry.descriptor.param(id).ok_or_else(|| unknown_param(&spec, entry.descriptor, key))?;
        let v = *value as f32;
        if p.validate(v).is_err() || (value.is_finite() && !v.is_finite()) {
            return Err(ApiError::OutOfRange {
                node: name.to_string(),
                param: key.clone(),
                message: format!("{name}.{key} = {value} is out of range: {}", allowed(p)),
            });
        }
        out.push((id, v));
    }
    let open = channels.is_none() && !entry.generator;
    Ok((NodeSpec { params: out, ..spec }, open))
}

/// The preset name check, for front ends that want to refuse a name before sending it.
pub fn check_preset_name(name: &str) -> Result<(), ApiError> {
    presets::valid_name(name).map_err(ApiError::InvalidName)
}

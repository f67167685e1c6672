//! The control side: keeps a mirror of what the RT side runs (which node is in which slot, with which
//! parameter values), makes and prepares nodes, compiles schedules and sends commands. It is the only
//! producer of the command ring; everything here may allocate.

use std::sync::Arc;

use ballast_dsp::registry::{self, CreateError, Shape};
use ballast_dsp::{ParamError, ParamId, Processor};

use super::command::{dry_lines, Command, SlotNode};
use super::meters::{EngineStats, NodeMeters, StatsSnapshot};
use crate::graph::compile::{compile, CompileError, DelayKey, NodeInfo};
use crate::graph::GraphSpec;

/// Makes an unprepared node of a kind for a shape. The default is [`registry::create`]; tests and
/// embedders may add kinds of their own.
pub type NodeFactory = Box<dyn Fn(&str, Shape) -> Result<Box<dyn Processor>, CreateError> + Send>;

/// Why the control side refused a request. Nothing was sent when any of these is returned.
#[derive(Debug)]
pub enum EngineError {
    /// A node could not be made.
    Create { node: String, error: CreateError },
    /// A parameter value was refused by the node kind's descriptor.
    Param { node: String, error: ParamError },
    /// The graph does not compile.
    Compile(CompileError),
    /// The command ring has fewer free places than the edit needs (counted in `ring_full`).
    RingFull { needed: usize, free: usize },
    /// Not enough free slots for the new nodes.
    NoFreeSlot { needed: usize, free: usize },
    /// No node of that name is running.
    UnknownNode(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Create { node, error } => write!(f, "node {node}: {error}"),
            EngineError::Param { node, error } => write!(f, "node {node}: {error}"),
            EngineError::Compile(e) => write!(f, "{e}"),
            EngineError::RingFull { needed, free } => {
                write!(f, "command ring full: the edit needs {needed} places, {free} free; try again")
            }
            EngineError::NoFreeSlot { needed, free } => write!(f, "{needed} new nodes but {free} free slots"),
            EngineError::UnknownNode(n) => write!(f, "no node named {n}"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<CompileError> for EngineError {
    fn from(e: CompileError) -> Self {
        EngineError::Compile(e)
    }
}

/// What [`Controller::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Nodes kept in their slots (state intact).
    pub kept: usize,
    /// Nodes made and inserted.
    pub inserted: usize,
    /// Nodes removed.
    pub removed: usize,
    /// Parameter changes sent to kept nodes.
    pub params_sent: usize,
    /// Total latency of the new schedule, in samples.
    pub latency_samples: usize,
}

/// A running node, as the control side remembers it.
struct Installed {
    name: String,
    kind: String,
    shape: Shape,
    slot: usize,
    /// Values set explicitly (by the spec or `set_param`); other parameters are at their defaults.
    params: Vec<(ParamId, f32)>,
    inputs: usize,
    outputs: usize,
    latency: usize,
    meters: Arc<NodeMeters>,
    /// Bypassed by [`Controller::bypass`] (the RT side holds the same state).
    bypassed: bool,
}

/// The control half of the engine.
pub struct Controller {
    commands: rtrb::Producer<Command>,
    stats: Arc<EngineStats>,
    factory: NodeFactory,
    sample_rate: f64,
    max_block: usize,
    crossfade_ms: f64,
    crossfade_samples: usize,
    /// Free slots, highest first (so `pop` hands out the lowest).
    free_slots: Vec<usize>,
    nodes: Vec<Installed>,
    spec: GraphSpec,
    delay_keys: Vec<DelayKey>,
    latency: usize,
}

/// A node of the new spec, before any command is sent.
enum Planned {
    Keep { old: usize, changes: Vec<(ParamId, f32)>, params: Vec<(ParamId, f32)>, latency: usize },
    New { node: Box<dyn Processor>, params: Vec<(ParamId, f32)> },
}

impl Controller {
    pub(crate) fn new(
        commands: rtrb::Producer<Command>,
        stats: Arc<EngineStats>,
        sample_rate: f64,
        max_block: usize,
        slots: usize,
        crossfade_ms: f64,
    ) -> Self {
        Self {
            commands,
            stats,
            factory: Box::new(registry::create),
            sample_rate,
            max_block,
            crossfade_ms,
            crossfade_samples: crossfade_samples(crossfade_ms, sample_rate),
            free_slots: (0..slots).rev().collect(),
            nodes: Vec::new(),
            spec: GraphSpec::default(),
            delay_keys: Vec::new(),
            latency: 0,
        }
    }

    /// Replaces the node factory (see [`NodeFactory`]).
    pub fn set_factory(&mut self, factory: NodeFactory) {
        self.factory = factory;
    }

    /// Sends one raw command. A full ring hands the command back (and counts the event); nothing waits.
    /// Raw commands bypass the mirror that [`Controller::apply`] diffs against: meant for backends'
    /// own needs and for tests.
    pub fn send(&mut self, cmd: Command) -> Result<(), Command> {
        self.commands.push(cmd).map_err(|rtrb::PushError::Full(c)| {
            EngineStats::bump(&self.stats.ring_full);
            c
        })
    }

    /// Free places in the command ring.
    pub fn ring_free(&self) -> usize {
        self.commands.slots()
    }

    /// The engine counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The shared counters, to read from any thread.
    pub fn stats_handle(&self) -> Arc<EngineStats> {
        self.stats.clone()
    }

    /// Total latency of the last applied graph, in samples.
    pub fn latency_samples(&self) -> usize {
        self.latency
    }

    /// The last applied graph.
    pub fn spec(&self) -> &GraphSpec {
        &self.spec
    }

    /// The meter cells of the node named `name` (clone the `Arc` to read from another thread).
    pub fn meters(&self, name: &str) -> Option<Arc<NodeMeters>> {
        self.nodes.iter().find(|n| n.name == name).map(|n| n.meters.clone())
    }

    /// The slot of the node named `name`.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().find(|n| n.name == name).map(|n| n.slot)
    }

    /// Makes and prepares a node with the given explicit parameter values, then resets it so every
    /// value is in effect.
    fn make_node(
        &self,
        name: &str,
        kind: &str,
        shape: Shape,
        params: &[(ParamId, f32)],
    ) -> Result<Box<dyn Processor>, EngineError> {
        let mut node = (self.factory)(kind, shape).map_err(|error| EngineError::Create { node: name.into(), error })?;
        node.prepare(self.sample_rate, self.max_block);
        for &(id, value) in params {
            node.set_param(id, value).map_err(|error| EngineError::Param { node: name.into(), error })?;
        }
        // Some parameters (a limiter's lookahead) take effect at a reset; a fresh node starts with all.
        node.reset();
        Ok(node)
    }

    /// Applies `spec` as a difference from the running graph: a node with the same name, kind and shape
    /// keeps its slot and its state (changed parameters are sent as `SetParam`); other nodes are made,
    /// prepared and inserted; nodes no longer named are removed. Commands are ordered inserts →
    /// parameters → schedule swap → removes, so whichever block picks them up, the running schedule
    /// only ever refers to nodes that are in place. Nothing is sent unless all of it fits the ring.
    pub fn apply(&mut self, spec: &GraphSpec) -> Result<ApplyReport, EngineError> {
        let mut planned = Vec::with_capacity(spec.nodes.len());
        let mut kept = vec![false; self.nodes.len()];
        for ns in &spec.nodes {
            let old = self.nodes.iter().position(|o| o.name == ns.name && o.kind == ns.kind && o.shape == ns.shape);
            match old {
                Some(old) if !kept[old] => {
                    kept[old] = true;
                    let o = &self.nodes[old];
                    let descriptor = o.meters.descriptor();
                    let mut changes = Vec::new();
                    let default = |id: ParamId| descriptor.param(id).map(|p| p.default);
                    let value_in = |list: &[(ParamId, f32)], id: ParamId| {
                        list.iter().rev().find(|(i, _)| *i == id).map(|&(_, v)| v)
                    };
                    for &(id, _) in ns.params.iter().chain(&o.params) {
                        if changes.iter().any(|(i, _)| *i == id) {
                            continue;
                        }
                        let new = value_in(&ns.params, id).or(default(id));
                        let cur = value_in(&o.params, id).or(default(id));
                        if let Some(new) = new {
                            descriptor
                                .validate(id, new)
                                .map_err(|error| EngineError::Param { node: ns.name.clone(), error })?;
                            if cur.map(f32::to_bits) != Some(new.to_bits()) {
                                changes.push((id, new));
                            }
                        }
                    }
                    let latency = if changes.is_empty() {
                        o.latency
                    } else {
                        self.make_node(&ns.name, &ns.kind, ns.shape, &ns.params)?.latency_samples()
                    };
                    planned.push(Planned::Keep { old, changes, params: ns.params.clone(), latency });
                }
                _ => {
                    let node = self.make_node(&ns.name, &ns.kind, ns.shape, &ns.params)?;
                    planned.push(Planned::New { node, params: ns.params.clone() });
                }
            }
        }
        let inserts = planned.iter().filter(|p| matches!(p, Planned::New { .. })).count();
        if inserts > self.free_slots.len() {
            return Err(EngineError::NoFreeSlot { needed: inserts, free: self.free_slots.len() });
        }
        let removes = kept.iter().filter(|k| !**k).count();

        // Slots for new nodes, provisionally (handed out only once everything is sent).
        let mut free = self.free_slots.clone();
        let mut infos = Vec::with_capacity(planned.len());
        let mut slots = Vec::with_capacity(planned.len());
        for p in &planned {
            let (slot, (inputs, outputs), latency) = match p {
                Planned::Keep { old, latency, .. } => {
                    let o = &self.nodes[*old];
                    (o.slot, (o.inputs, o.outputs), *latency)
                }
                Planned::New { node, .. } => {
                    (free.pop().unwrap_or(usize::MAX), node.channels(), node.latency_samples())
                }
            };
            slots.push(slot);
            infos.push(NodeInfo { slot, inputs, outputs, latency_samples: latency });
        }
        let mut schedule = compile(spec, &infos, self.max_block)?;
        schedule.plan_migration(&self.delay_keys);

        let params_sent: usize =
            planned.iter().map(|p| if let Planned::Keep { changes, .. } = p { changes.len() } else { 0 }).sum();
        let retuned = planned
            .iter()
            .filter(|p| matches!(p, Planned::Keep { old, latency, .. } if self.nodes[*old].latency != *latency))
            .count();
        let needed = inserts + params_sent + 2 * retuned + 1 + removes;
        let ring_free = self.commands.slots();
        if ring_free < needed {
            EngineStats::bump(&self.stats.ring_full);
            return Err(EngineError::RingFull { needed, free: ring_free });
        }

        // Everything fits: send, then update the mirror.
        let delay_keys = schedule.delay_keys.clone();
        let latency = schedule.latency_samples();
        let mut new_nodes = Vec::with_capacity(planned.len());
        let mut old_nodes: Vec<Option<Installed>> = std::mem::take(&mut self.nodes).into_iter().map(Some).collect();
        let mut pending = Vec::with_capacity(needed);
        for ((p, ns), slot) in planned.into_iter().zip(&spec.nodes).zip(slots) {
            match p {
                Planned::New { node, params } => {
                    let (inputs, outputs) = node.channels();
                    let latency = node.latency_samples();
                    let meters = Arc::new(NodeMeters::new(node.descriptor(), ns.shape.bands));
                    let sn = SlotNode::new(node, meters.clone(), self.crossfade_samples);
                    pending.push(Command::InsertNode { slot, node: Box::new(sn) });
                    new_nodes.push(Installed {
                        name: ns.name.clone(),
                        kind: ns.kind.clone(),
                        shape: ns.shape,
                        slot,
                        params,
                        inputs,
                        outputs,
                        latency,
                        meters,
                        bypassed: false,
                    });
                }
                Planned::Keep { old, changes, params, latency } => {
                    let mut o = old_nodes[old].take().expect("each kept node is planned once");
                    for &(id, value) in &changes {
                        pending.push(Command::SetParam { slot: o.slot, id, value });
                    }
                    if latency != o.latency {
                        // The new latency takes effect at a reset (see `make_node`).
                        pending.push(Command::ResetNode { slot: o.slot });
                        pending.push(Command::SetDryPath { slot: o.slot, lines: dry_lines(o.inputs, latency) });
                    }
                    o.params = params;
                    o.latency = latency;
                    new_nodes.push(o);
                }
            }
        }
        // Inserts first, then parameters: reorder so every insert precedes any SetParam.
        pending.sort_by_key(|c| match c {
            Command::InsertNode { .. } => 0,
            _ => 1,
        });
        pending.push(Command::SwapSchedule(Box::new(schedule)));
        let mut freed = Vec::new();
        for o in old_nodes.into_iter().flatten() {
            pending.push(Command::RemoveNode { slot: o.slot });
            freed.push(o.slot);
        }
        for cmd in pending {
            if self.commands.push(cmd).is_err() {
                // Unreachable: we are the only producer and checked the room above.
                EngineStats::bump(&self.stats.ring_full);
            }
        }
        self.free_slots = free;
        self.free_slots.extend(freed);
        self.free_slots.sort_unstable_by(|a, b| b.cmp(a));
        self.nodes = new_nodes;
        self.spec = spec.clone();
        self.delay_keys = delay_keys;
        self.latency = latency;
        Ok(ApplyReport {
            kept: kept.iter().filter(|k| **k).count(),
            inserted: inserts,
            removed: removes,
            params_sent,
            latency_samples: latency,
        })
    }

    /// Sets parameter `id` of the node named `name`. Validated here; the node smooths the change, which
    /// is audible from the next block. If the change alters the node's latency (a lookahead, which
    /// takes effect at a reset), the node is reset and its dry path and the schedule are replaced, all
    /// in the same block.
    pub fn set_param(&mut self, name: &str, id: ParamId, value: f32) -> Result<(), EngineError> {
        let idx =
            self.nodes.iter().position(|n| n.name == name).ok_or_else(|| EngineError::UnknownNode(name.into()))?;
        let o = &self.nodes[idx];
        o.meters.descriptor().validate(id, value).map_err(|error| EngineError::Param { node: name.into(), error })?;
        let mut params = o.params.clone();
        params.retain(|(i, _)| *i != id);
        params.push((id, value));
        let latency = self.make_node(name, &o.kind, o.shape, &params)?.latency_samples();
        let slot = o.slot;
        if latency == o.latency {
            self.send(Command::SetParam { slot, id, value })
                .map_err(|_| EngineError::RingFull { needed: 1, free: 0 })?;
        } else {
            let infos: Vec<NodeInfo> = self
                .spec
                .nodes
                .iter()
                .map(|ns| {
                    let n = self.nodes.iter().find(|n| n.name == ns.name).expect("mirror matches spec");
                    let latency_samples = if n.name == name { latency } else { n.latency };
                    NodeInfo { slot: n.slot, inputs: n.inputs, outputs: n.outputs, latency_samples }
                })
                .collect();
            let mut schedule = compile(&self.spec, &infos, self.max_block)?;
            schedule.plan_migration(&self.delay_keys);
            let free = self.commands.slots();
            if free < 4 {
                EngineStats::bump(&self.stats.ring_full);
                return Err(EngineError::RingFull { needed: 4, free });
            }
            self.delay_keys = schedule.delay_keys.clone();
            self.latency = schedule.latency_samples();
            let lines = dry_lines(self.nodes[idx].inputs, latency);
            // Unreachable failures: we are the only producer and checked the room above.
            let _ = self.commands.push(Command::SetParam { slot, id, value });
            let _ = self.commands.push(Command::ResetNode { slot });
            let _ = self.commands.push(Command::SetDryPath { slot, lines });
            let _ = self.commands.push(Command::SwapSchedule(Box::new(schedule)));
        }
        let o = &mut self.nodes[idx];
        o.params = params;
        o.latency = latency;
        Ok(())
    }

    /// The current value of parameter `id` of node `name` as the control side set it (the default
    /// when never set).
    pub fn param(&self, name: &str, id: ParamId) -> Option<f32> {
        let n = self.nodes.iter().find(|n| n.name == name)?;
        n.params
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|&(_, v)| v)
            .or_else(|| n.meters.descriptor().param(id).map(|p| p.default))
    }

    /// Crossfades node `name` to its (latency-aligned) input, or back. The node keeps running. The
    /// state is remembered ([`Controller::bypassed`]) for as long as the node survives applies.
    pub fn bypass(&mut self, name: &str, on: bool) -> Result<(), EngineError> {
        let idx =
            self.nodes.iter().position(|n| n.name == name).ok_or_else(|| EngineError::UnknownNode(name.into()))?;
        let slot = self.nodes[idx].slot;
        self.send(Command::Bypass { slot, on }).map_err(|_| EngineError::RingFull { needed: 1, free: 0 })?;
        self.nodes[idx].bypassed = on;
        Ok(())
    }

    /// Names of the bypassed nodes, in graph order.
    pub fn bypassed(&self) -> Vec<String> {
        self.spec
            .nodes
            .iter()
            .filter(|ns| self.nodes.iter().any(|n| n.name == ns.name && n.bypassed))
            .map(|ns| ns.name.clone())
            .collect()
    }

    /// The running graph with every node's parameters as they are now: the applied spec with
    /// [`Controller::set_param`] changes merged in (what a state file should hold).
    pub fn current_spec(&self) -> GraphSpec {
        let mut spec = self.spec.clone();
        for ns in &mut spec.nodes {
            if let Some(n) = self.nodes.iter().find(|n| n.name == ns.name) {
                ns.params = n.params.clone();
            }
        }
        spec
    }

    /// The sample rate nodes are prepared for.
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// The backend now runs at `sample_rate` (JACK restarted at another rate, ALSA imposed one).
    /// Every node is made again at the new rate with its current parameters and bypass (prepared
    /// here, off the RT thread), and the nodes and a schedule with the latencies of the new rate
    /// (compensation delays are counted in samples) are sent in one batch, which the RT side takes in
    /// one block. Node state starts afresh: filters, envelopes and meters sized for the old rate are
    /// meaningless at the new one. Later applies and bypass crossfades use the new rate. Nothing is
    /// sent, and nothing changes here, when the command ring lacks room ([`EngineError::RingFull`]) or a
    /// node cannot be made.
    pub fn set_sample_rate(&mut self, sample_rate: f64) -> Result<ApplyReport, EngineError> {
        let old_rate = std::mem::replace(&mut self.sample_rate, sample_rate);
        let made: Result<Vec<Box<dyn Processor>>, EngineError> =
            self.nodes.iter().map(|n| self.make_node(&n.name, &n.kind, n.shape, &n.params)).collect();
        self.sample_rate = old_rate;
        let made = made?;
        let infos: Vec<NodeInfo> = self
            .spec
            .nodes
            .iter()
            .map(|ns| {
                let k = self.nodes.iter().position(|n| n.name == ns.name).expect("mirror matches spec");
                let (n, node) = (&self.nodes[k], &made[k]);
                NodeInfo { slot: n.slot, inputs: n.inputs, outputs: n.outputs, latency_samples: node.latency_samples() }
            })
            .collect();
        // No delay state carries over: every compensation delay restarts with the nodes.
        let schedule = compile(&self.spec, &infos, self.max_block)?;
        let needed = made.len() + 1;
        let free = self.commands.slots();
        if free < needed {
            EngineStats::bump(&self.stats.ring_full);
            return Err(EngineError::RingFull { needed, free });
        }

        let crossfade = crossfade_samples(self.crossfade_ms, sample_rate);
        for (n, node) in self.nodes.iter_mut().zip(made) {
            n.latency = node.latency_samples();
            let mut sn = SlotNode::new(node, n.meters.clone(), crossfade);
            if n.bypassed {
                sn.start_bypassed();
            }
            // Unreachable failure: we are the only producer and checked the room above.
            let _ = self.commands.push(Command::InsertNode { slot: n.slot, node: Box::new(sn) });
        }
        self.delay_keys = schedule.delay_keys.clone();
        self.latency = schedule.latency_samples();
        let _ = self.commands.push(Command::SwapSchedule(Box::new(schedule)));
        self.sample_rate = sample_rate;
        self.crossfade_samples = crossfade;
        Ok(ApplyReport {
            kept: 0,
            inserted: self.nodes.len(),
            removed: 0,
            params_sent: 0,
            latency_samples: self.latency,
        })
    }
}

/// The bypass crossfade length in samples (at least one).
fn crossfade_samples(crossfade_ms: f64, sample_rate: f64) -> usize {
    (crossfade_ms * 1e-3 * sample_rate).round().max(1.0) as usize
}

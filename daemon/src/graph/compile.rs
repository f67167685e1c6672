//! The graph compiler: a [`GraphSpec`] plus a few facts per node ([`NodeInfo`]) become a [`Schedule`]
//! the engine runs on the RT thread. Runs off the RT thread (it allocates every buffer the schedule will
//! ever touch) and never panics on a bad spec: it reports a [`CompileError`].
//!
//! What a schedule does per block:
//! - nodes run in topological order (Kahn's algorithm, ties broken by spec order, so the order is
//!   deterministic);
//! - each node input channel is either read in place from its one source (no copy) or gathered into a
//!   scratch buffer: the sum of every link into it, each through its channel map (one-to-one, mono
//!   spread, downmix ×1/n) and, where needed, a compensation delay;
//! - latency compensation: a node's input latency is the largest output latency among its sources; every
//!   shorter source is delayed by the difference, so parallel paths (a limiter's lookahead on one branch,
//!   a plain wire on the other) arrive aligned. The output bus is aligned the same way and its latency is
//!   the graph's total ([`Schedule::latency_samples`]);
//! - buffers are reused by liveness: a node's output buffer is free again after its last reader, so a
//!   chain of any length runs in a handful of buffers.

use std::collections::VecDeque;

use super::spec::{channel_map, ChannelMap, Endpoint, GraphSpec};
use crate::engine::delay::DelayLine;

/// The most channels one node may have in a schedule; the RT side keeps per-step channel tables on
/// the stack at this size.
pub const MAX_CHANNELS: usize = 16;

/// f32 samples per 64-byte cache line.
const LINE_SAMPLES: usize = 16;

/// What the compiler needs to know of one spec node (`infos[i]` describes `spec.nodes[i]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The engine slot holding the node.
    pub slot: usize,
    /// Audio input channels (0 for generators).
    pub inputs: usize,
    /// Audio output channels.
    pub outputs: usize,
    /// The node's own delay (lookahead), from `Processor::latency_samples`.
    pub latency_samples: usize,
}

/// Why a spec could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// `infos` does not describe every spec node.
    NodeInfoCount { nodes: usize, infos: usize },
    /// Two nodes claim one slot.
    DuplicateSlot { slot: usize },
    /// A node or bus wider than [`MAX_CHANNELS`].
    TooManyChannels { what: String, channels: usize },
    /// A link names a node or channel that does not exist (`link` indexes `spec.links`).
    BadEndpoint { link: usize, reason: String },
    /// A link between widths the mono/stereo rule does not connect.
    ChannelMismatch { link: usize, from: usize, to: usize },
    /// The links form a cycle; the names of the nodes on it, in signal order.
    Cycle(Vec<String>),
    /// A bug in the compiler, caught by its own consistency check instead of reaching the RT side.
    Internal(String),
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::NodeInfoCount { nodes, infos } => {
                write!(f, "{nodes} nodes in the graph but {infos} node descriptions")
            }
            CompileError::DuplicateSlot { slot } => write!(f, "two nodes in engine slot {slot}"),
            CompileError::TooManyChannels { what, channels } => {
                write!(f, "{what} has {channels} channels; at most {MAX_CHANNELS}")
            }
            CompileError::BadEndpoint { link, reason } => write!(f, "link {link}: {reason}"),
            CompileError::ChannelMismatch { link, from, to } => write!(
                f,
                "link {link}: {from} channels into {to}; the mono/stereo rule connects equal widths, \
                 mono to any, any to mono"
            ),
            CompileError::Cycle(names) => {
                write!(f, "cycle: {} -> {}", names.join(" -> "), names.first().map_or("", |s| s.as_str()))
            }
            CompileError::Internal(what) => write!(f, "graph compiler bug: {what}"),
        }
    }
}

impl std::error::Error for CompileError {}

/// Where a signal is read from during a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Src {
    /// A channel of the engine's input bus.
    Input(usize),
    /// A schedule buffer.
    Buf(usize),
    /// Silence (an unconnected input).
    Zero,
}

/// One contribution to a sum: `gain × source`, optionally through compensation delay `delay`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Term {
    pub src: Src,
    pub gain: f32,
    pub delay: Option<usize>,
}

/// A sum written into buffer `dst` before a step runs.
#[derive(Clone, Debug)]
pub(crate) struct Gather {
    pub dst: usize,
    pub terms: Vec<Term>,
}

/// One node run. Its gathers, input sources and output buffers are ranges into the schedule's flat
/// tables (`gathers`, `srcs`, `outs`), so consecutive steps read consecutive memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub slot: usize,
    pub gathers: (usize, usize),
    pub inputs: (usize, usize),
    pub outputs: (usize, usize),
    /// Some output channel of the node never reaches the output bus (a meter-only sink, a branch that
    /// ends nowhere): the engine's bus check cannot see its NaN, so its output is checked every block.
    pub check: bool,
    /// After the last step, the node's output buffers and every buffer it read still hold this block's
    /// data (no later step reused them): a failed bus check can still judge this step afterwards.
    pub diagnosable: bool,
    /// The same inputs and outputs, inline, when the step has no gathers, reads only schedule buffers
    /// and has at most two inputs and two outputs (mono and stereo nodes in a chain): the RT side then
    /// runs it without walking the flat tables.
    pub fast: Option<FastIo>,
}

/// A step the RT side runs on its short path: the node's buffers as sample offsets from buffer 0
/// (`buffer × stride`), so building its channel tables is an add per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FastIo {
    /// Two buffers in, two out (first: the variant tested first).
    Stereo { ins: [usize; 2], outs: [usize; 2] },
    /// One buffer in, one out.
    Mono { ins: usize, outs: usize },
    /// Two input-bus channels (`ins`: channel numbers) in, two buffers out: the head of a chain.
    StereoFromBus { ins: [usize; 2], outs: [usize; 2] },
}

/// Identifies a compensation delay across schedules, so a new schedule can take over the state of an
/// identical delay in the one it replaces (audio on surviving paths does not glitch on an edit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DelayKey {
    /// Sink: `Some(slot)` for a node input, `None` for the output bus.
    pub sink: Option<usize>,
    pub sink_channel: usize,
    /// Source: `Some(slot)` for a node output, `None` for the input bus.
    pub source: Option<usize>,
    pub source_channel: usize,
    pub gain_bits: u32,
    pub delay: usize,
}

/// A compiled graph: everything the RT side needs to run one block, allocated up front.
pub struct Schedule {
    pub(crate) steps: Vec<Step>,
    pub(crate) gathers: Vec<Gather>,
    pub(crate) srcs: Vec<Src>,
    pub(crate) outs: Vec<usize>,
    /// Per output-bus channel, the sum that feeds it.
    pub(crate) out_terms: Vec<Vec<Term>>,
    /// Every audio buffer, `buffer_count` runs of `stride` samples; buffer `b` starts at
    /// `arena_offset + b * stride` (cache-line aligned, so SIMD nodes never split a load across lines). The RT side hands out disjoint slices of it (see [`Schedule::buffers_disjoint`]).
    pub(crate) arena: Vec<f32>,
    /// Samples from the arena's start to buffer 0, chosen so every buffer starts on a 64-byte line.
    pub(crate) arena_offset: usize,
    /// Samples between buffer starts: `max_block` rounded up to whole cache lines.
    pub(crate) stride: usize,
    pub(crate) buffer_count: usize,
    pub(crate) delays: Vec<DelayLine>,
    pub(crate) delay_keys: Vec<DelayKey>,
    /// `(old index, new index)` pairs of compensation delays to take over from the schedule this one
    /// replaces; set by the control side, which knows what it sent last.
    pub(crate) migrate: Vec<(usize, usize)>,
    pub(crate) inputs: usize,
    pub(crate) max_block: usize,
    latency_samples: usize,
    node_latency: Vec<(usize, usize)>,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule")
            .field("steps", &self.steps.len())
            .field("buffers", &self.buffer_count)
            .field("delays", &self.delays.len())
            .field("latency_samples", &self.latency_samples)
            .finish()
    }
}

impl Schedule {
    /// Total latency from the input bus to the output bus, in samples (all outputs are aligned to it).
    pub fn latency_samples(&self) -> usize {
        self.latency_samples
    }

    /// The largest block the schedule's buffers hold.
    pub fn max_block(&self) -> usize {
        self.max_block
    }

    /// Slots in the order they run.
    pub fn order(&self) -> Vec<usize> {
        self.steps.iter().map(|s| s.slot).collect()
    }

    /// Slots whose output the engine checks for NaN/Inf every block because some of it never reaches the
    /// output bus (see the engine's finiteness guarantee); the rest are covered by the bus check.
    pub fn checked_every_block(&self) -> Vec<usize> {
        self.steps.iter().filter(|s| s.check).map(|s| s.slot).collect()
    }

    /// Number of audio buffers the schedule allocated (after liveness reuse).
    pub fn buffer_count(&self) -> usize {
        self.buffer_count
    }

    /// Compensation delays (count, total samples).
    pub fn compensation(&self) -> (usize, usize) {
        (self.delays.len(), self.delays.iter().map(DelayLine::delay).sum())
    }

    /// Latency at the output of the node in `slot` (from the input bus), if it is in the schedule.
    pub fn node_output_latency(&self, slot: usize) -> Option<usize> {
        self.node_latency.iter().find(|(s, _)| *s == slot).map(|&(_, l)| l)
    }

    /// Input-bus channels.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output-bus channels.
    pub fn outputs(&self) -> usize {
        self.out_terms.len()
    }

    /// The invariant the RT side's unsafe slicing relies on: every buffer index is in the arena; within
    /// a step, the output buffers are distinct from each other, from every buffer the step's inputs
    /// read, and from the gather scratch; a gather's destination is none of its own sources. The arena
    /// holds exactly `buffer_count × max_block` samples.
    pub(crate) fn buffers_disjoint(&self) -> bool {
        let nb = self.buffer_count;
        if self.stride < self.max_block || self.arena.len() < self.arena_offset + nb * self.stride {
            return false;
        }
        let src_ok = |s: &Src| match s {
            Src::Buf(b) => *b < nb,
            Src::Input(_) | Src::Zero => true,
        };
        let reads = |s: &Src, b: usize| matches!(s, Src::Buf(x) if *x == b);
        let delay_ok = |t: &Term| t.delay.is_none_or(|d| d < self.delays.len());
        for step in &self.steps {
            let Some((gathers, inputs, outputs)) = self.parts(step) else { return false };
            if inputs.len() > MAX_CHANNELS || outputs.len() > MAX_CHANNELS {
                return false;
            }
            for (k, &o) in outputs.iter().enumerate() {
                if o >= nb
                    || outputs[..k].contains(&o)
                    || inputs.iter().any(|s| reads(s, o))
                    || gathers.iter().any(|g| g.dst == o || g.terms.iter().any(|t| reads(&t.src, o)))
                {
                    return false;
                }
            }
            for g in gathers {
                if g.dst >= nb || g.terms.iter().any(|t| !src_ok(&t.src) || reads(&t.src, g.dst) || !delay_ok(t)) {
                    return false;
                }
            }
            if !inputs.iter().all(src_ok) {
                return false;
            }
            if let Some(f) = step.fast {
                if fast_io(gathers, inputs, outputs, self.stride) != Some(f) {
                    return false;
                }
            }
        }
        self.out_terms.iter().flatten().all(|t| src_ok(&t.src) && delay_ok(t))
    }

    /// A step's gathers, input sources and output buffers (`None` if its ranges are out of bounds).
    pub(crate) fn parts(&self, step: &Step) -> Option<(&[Gather], &[Src], &[usize])> {
        Some((
            self.gathers.get(step.gathers.0..step.gathers.1)?,
            self.srcs.get(step.inputs.0..step.inputs.1)?,
            self.outs.get(step.outputs.0..step.outputs.1)?,
        ))
    }

    /// Plans taking over the state of compensation delays that `previous` (the keys of the schedule
    /// this one will replace) shares with this one.
    pub(crate) fn plan_migration(&mut self, previous: &[DelayKey]) {
        self.migrate.clear();
        for (new, key) in self.delay_keys.iter().enumerate() {
            if let Some(old) = previous.iter().position(|k| k == key) {
                self.migrate.push((old, new));
            }
        }
    }
}

/// A source channel while compiling: the input bus or a node output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Input(usize),
    Node(usize, usize),
}

/// One link expanded to channels: `gain × origin` into sink channel `channel`.
#[derive(Clone, Copy, Debug)]
struct Wire {
    origin: Origin,
    channel: usize,
    gain: f32,
}

/// Compiles `spec` for blocks of up to `max_block` frames. `infos[i]` describes `spec.nodes[i]`.
pub fn compile(spec: &GraphSpec, infos: &[NodeInfo], max_block: usize) -> Result<Schedule, CompileError> {
    let n = spec.nodes.len();
    if infos.len() != n {
        return Err(CompileError::NodeInfoCount { nodes: n, infos: infos.len() });
    }
    for (i, info) in infos.iter().enumerate() {
        if infos[..i].iter().any(|o| o.slot == info.slot) {
            return Err(CompileError::DuplicateSlot { slot: info.slot });
        }
        let widest = info.inputs.max(info.outputs);
        if widest > MAX_CHANNELS {
            return Err(CompileError::TooManyChannels { what: spec.nodes[i].name.clone(), channels: widest });
        }
    }

    // Expand links into per-channel wires: node_wires[i] feed node i, out_wires the output bus.
    let mut node_wires: Vec<Vec<Wire>> = vec![Vec::new(); n];
    let mut out_wires: Vec<Wire> = Vec::new();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (li, link) in spec.links.iter().enumerate() {
        let bad = |reason: String| CompileError::BadEndpoint { link: li, reason };
        let (src_width, src_channels): (usize, Vec<Origin>) = {
            let (width, make): (usize, Box<dyn Fn(usize) -> Origin>) = match link.from {
                Endpoint::Io { .. } => (spec.inputs.len(), Box::new(Origin::Input)),
                Endpoint::Node { node, .. } => {
                    let Some(info) = infos.get(node) else {
                        return Err(bad(format!("source node {node} does not exist")));
                    };
                    (info.outputs, Box::new(move |c| Origin::Node(node, c)))
                }
            };
            match endpoint_channel(&link.from) {
                None => (width, (0..width).map(&make).collect()),
                Some(c) if c < width => (1, vec![make(c)]),
                Some(c) => return Err(bad(format!("source channel {c} of {width}"))),
            }
        };
        let (sink_node, sink_width, sink_channels): (Option<usize>, usize, Vec<usize>) = {
            let (node, width) = match link.to {
                Endpoint::Io { .. } => (None, spec.outputs.len()),
                Endpoint::Node { node, .. } => match infos.get(node) {
                    Some(info) => (Some(node), info.inputs),
                    None => return Err(bad(format!("sink node {node} does not exist"))),
                },
            };
            match endpoint_channel(&link.to) {
                None => (node, width, (0..width).collect()),
                Some(c) if c < width => (node, 1, vec![c]),
                Some(c) => return Err(bad(format!("sink channel {c} of {width}"))),
            }
        };
        let map = channel_map(src_width, sink_width).ok_or(CompileError::ChannelMismatch {
            link: li,
            from: src_width,
            to: sink_width,
        })?;
        let mut wires = Vec::new();
        match map {
            ChannelMap::OneToOne => {
                for (o, c) in src_channels.iter().zip(&sink_channels) {
                    wires.push(Wire { origin: *o, channel: *c, gain: 1.0 });
                }
            }
            ChannelMap::Spread => {
                for c in &sink_channels {
                    wires.push(Wire { origin: src_channels[0], channel: *c, gain: 1.0 });
                }
            }
            ChannelMap::Downmix => {
                let gain = 1.0 / src_width as f32;
                for o in &src_channels {
                    wires.push(Wire { origin: *o, channel: sink_channels[0], gain });
                }
            }
        }
        match sink_node {
            Some(dst) => {
                if let Endpoint::Node { node: src, .. } = link.from {
                    edges[src].push(dst);
                }
                node_wires[dst].extend(wires);
            }
            None => out_wires.extend(wires),
        }
    }

    let order = topological_order(spec, &edges)?;

    // Latency: output latency per node, in topological order.
    let mut out_latency = vec![0usize; n];
    let mut in_latency = vec![0usize; n];
    let origin_latency = |o: &Origin, out_latency: &[usize]| match o {
        Origin::Input(_) => 0,
        Origin::Node(i, _) => out_latency[*i],
    };
    for &i in &order {
        in_latency[i] = node_wires[i].iter().map(|w| origin_latency(&w.origin, &out_latency)).max().unwrap_or(0);
        out_latency[i] = in_latency[i] + infos[i].latency_samples;
    }
    let total_latency = out_wires.iter().map(|w| origin_latency(&w.origin, &out_latency)).max().unwrap_or(0);

    // Last step that reads each node output (steps.len() = the output bus stage).
    let stage_of: Vec<usize> = {
        let mut s = vec![0; n];
        for (k, &i) in order.iter().enumerate() {
            s[i] = k;
        }
        s
    };
    let out_stage = order.len();
    let mut last_use: Vec<Vec<Option<usize>>> = infos.iter().map(|info| vec![None; info.outputs]).collect();
    let mut note_use = |w: &Wire, stage: usize| {
        if let Origin::Node(i, c) = w.origin {
            let slot = &mut last_use[i][c];
            *slot = Some(slot.map_or(stage, |s: usize| s.max(stage)));
        }
    };
    for (dst, wires) in node_wires.iter().enumerate() {
        for w in wires {
            note_use(w, stage_of[dst]);
        }
    }
    for w in &out_wires {
        note_use(w, out_stage);
    }

    let mut buffers = BufferPool::default();
    let mut node_bufs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut delays: Vec<DelayLine> = Vec::new();
    let mut delay_keys: Vec<DelayKey> = Vec::new();
    let mut steps = Vec::with_capacity(n);
    let (mut all_gathers, mut srcs, mut outs) = (Vec::new(), Vec::new(), Vec::new());
    let mut dying: Vec<Vec<usize>> = vec![Vec::new(); out_stage + 1];
    let stride = max_block.div_ceil(LINE_SAMPLES) * LINE_SAMPLES;

    for (stage, &i) in order.iter().enumerate() {
        let info = infos[i];
        let mut term_for = |w: &Wire, sink_latency: usize, node_bufs: &[Vec<usize>]| {
            let (src, lat, source, source_channel) = match w.origin {
                Origin::Input(c) => (Src::Input(c), 0, None, c),
                Origin::Node(j, c) => (Src::Buf(node_bufs[j][c]), out_latency[j], Some(infos[j].slot), c),
            };
            let delay = (sink_latency > lat).then(|| {
                let key = DelayKey {
                    sink: Some(info.slot),
                    sink_channel: w.channel,
                    source,
                    source_channel,
                    gain_bits: w.gain.to_bits(),
                    delay: sink_latency - lat,
                };
                delays.push(DelayLine::new(key.delay));
                delay_keys.push(key);
                delays.len() - 1
            });
            Term { src, gain: w.gain, delay }
        };
        let mut gathers = Vec::new();
        let mut inputs = Vec::with_capacity(info.inputs);
        for ch in 0..info.inputs {
            let terms: Vec<Term> = node_wires[i]
                .iter()
                .filter(|w| w.channel == ch)
                .map(|w| term_for(w, in_latency[i], &node_bufs))
                .collect();
            match terms.as_slice() {
                [] => inputs.push(Src::Zero),
                [t] if t.gain == 1.0 && t.delay.is_none() => inputs.push(t.src),
                _ => {
                    let dst = buffers.take(max_block);
                    gathers.push(Gather { dst, terms });
                    inputs.push(Src::Buf(dst));
                }
            }
        }
        let outputs: Vec<usize> = (0..info.outputs).map(|_| buffers.take(max_block)).collect();
        // Free what dies here: gather scratch now, outputs nobody reads now, sources read last here.
        for g in &gathers {
            buffers.give(g.dst);
        }
        for (c, &b) in outputs.iter().enumerate() {
            match last_use[i][c] {
                None => buffers.give(b),
                Some(s) => dying[s].push(b),
            }
        }
        for b in std::mem::take(&mut dying[stage]) {
            buffers.give(b);
        }
        node_bufs[i] = outputs.clone();
        let (g0, i0, o0) = (all_gathers.len(), srcs.len(), outs.len());
        let fast = fast_io(&gathers, &inputs, &outputs, stride);
        all_gathers.extend(gathers);
        srcs.extend(inputs);
        outs.extend(outputs);
        steps.push(Step {
            slot: info.slot,
            gathers: (g0, all_gathers.len()),
            inputs: (i0, srcs.len()),
            outputs: (o0, outs.len()),
            check: false,
            diagnosable: false,
            fast,
        });
    }

    let mut out_terms = vec![Vec::new(); spec.outputs.len()];
    for w in &out_wires {
        let (src, lat, source, source_channel) = match w.origin {
            Origin::Input(c) => (Src::Input(c), 0, None, c),
            Origin::Node(j, c) => (Src::Buf(node_bufs[j][c]), out_latency[j], Some(infos[j].slot), c),
        };
        let delay = (total_latency > lat).then(|| {
            let key = DelayKey {
                sink: None,
                sink_channel: w.channel,
                source,
                source_channel,
                gain_bits: w.gain.to_bits(),
                delay: total_latency - lat,
            };
            delays.push(DelayLine::new(key.delay));
            delay_keys.push(key);
            delays.len() - 1
        });
        out_terms[w.channel].push(Term { src, gain: w.gain, delay });
    }

    mark_checks(&mut steps, &order, infos, &node_wires, &out_wires, &srcs, &outs, &all_gathers, buffers.count);

    let node_latency = (0..n).map(|i| (infos[i].slot, out_latency[i])).collect();
    let mut schedule = Schedule {
        steps,
        gathers: all_gathers,
        srcs,
        outs,
        out_terms,
        arena: vec![0.0; LINE_SAMPLES + buffers.count * stride],
        arena_offset: 0,
        stride,
        buffer_count: buffers.count,
        delays,
        delay_keys,
        migrate: Vec::new(),
        inputs: spec.inputs.len(),
        max_block,
        latency_samples: total_latency,
        node_latency,
    };
    // f32 is 4-byte aligned, so some offset below one line lands on a 64-byte boundary.
    schedule.arena_offset = schedule.arena.as_ptr().align_offset(64).min(LINE_SAMPLES - 1);
    if !schedule.buffers_disjoint() {
        return Err(CompileError::Internal("buffer aliasing".into()));
    }
    Ok(schedule)
}

/// The short-path form of a step's inputs and outputs (see [`Step::fast`]), if it has one: no
/// gathers, one buffer in and one out, or two buffers or two input-bus channels in and two out.
fn fast_io(gathers: &[Gather], inputs: &[Src], outputs: &[usize], stride: usize) -> Option<FastIo> {
    if !gathers.is_empty() {
        return None;
    }
    match (inputs, outputs) {
        (&[Src::Buf(i)], &[o]) => Some(FastIo::Mono { ins: i * stride, outs: o * stride }),
        (&[Src::Buf(i0), Src::Buf(i1)], &[o0, o1]) => {
            Some(FastIo::Stereo { ins: [i0 * stride, i1 * stride], outs: [o0 * stride, o1 * stride] })
        }
        (&[Src::Input(c0), Src::Input(c1)], &[o0, o1]) => {
            Some(FastIo::StereoFromBus { ins: [c0, c1], outs: [o0 * stride, o1 * stride] })
        }
        _ => None,
    }
}

/// Sets [`Step::check`] (outputs that do not all reach the output bus) and [`Step::diagnosable`]
/// (buffers intact at the end of the block). Reachability assumes every input channel of a node feeds
/// every output channel.
#[allow(clippy::too_many_arguments)]
fn mark_checks(
    steps: &mut [Step],
    order: &[usize],
    infos: &[NodeInfo],
    node_wires: &[Vec<Wire>],
    out_wires: &[Wire],
    srcs: &[Src],
    outs: &[usize],
    gathers: &[Gather],
    buffer_count: usize,
) {
    let mut reach: Vec<Vec<bool>> = infos.iter().map(|info| vec![false; info.outputs]).collect();
    let mark = |wires: &[Wire], reach: &mut Vec<Vec<bool>>| {
        for w in wires {
            if let Origin::Node(j, c) = w.origin {
                reach[j][c] = true;
            }
        }
    };
    mark(out_wires, &mut reach);
    // Sinks run after their sources: walking the order backwards settles each node before its sources.
    for &i in order.iter().rev() {
        if reach[i].iter().any(|&r| r) {
            mark(&node_wires[i], &mut reach);
        }
    }
    let mut last_writer = vec![0usize; buffer_count];
    for (k, step) in steps.iter().enumerate() {
        for g in &gathers[step.gathers.0..step.gathers.1] {
            last_writer[g.dst] = k;
        }
        for &b in &outs[step.outputs.0..step.outputs.1] {
            last_writer[b] = k;
        }
    }
    for (k, (step, &i)) in steps.iter_mut().zip(order).enumerate() {
        step.check = !reach[i].iter().all(|&r| r);
        let outputs_intact = outs[step.outputs.0..step.outputs.1].iter().all(|&b| last_writer[b] == k);
        let inputs_intact = srcs[step.inputs.0..step.inputs.1].iter().all(|s| match *s {
            Src::Buf(b) => last_writer[b] <= k,
            Src::Input(_) | Src::Zero => true,
        });
        step.diagnosable = outputs_intact && inputs_intact;
    }
}

fn endpoint_channel(e: &Endpoint) -> Option<usize> {
    match e {
        Endpoint::Io { channel } | Endpoint::Node { channel, .. } => *channel,
    }
}

/// Buffer indices handed out by liveness: a freed index is reused before a new one is made.
#[derive(Default)]
struct BufferPool {
    count: usize,
    free: Vec<usize>,
}

impl BufferPool {
    fn take(&mut self, _max_block: usize) -> usize {
        self.free.pop().unwrap_or_else(|| {
            self.count += 1;
            self.count - 1
        })
    }

    fn give(&mut self, b: usize) {
        self.free.push(b);
    }
}

/// Kahn's algorithm over node-to-node edges; on a cycle, walks predecessors among the nodes left over
/// (each of which has one there) until a node repeats, and names that loop.
fn topological_order(spec: &GraphSpec, edges: &[Vec<usize>]) -> Result<Vec<usize>, CompileError> {
    let n = edges.len();
    let mut indegree = vec![0usize; n];
    for outs in edges {
        for &d in outs {
            indegree[d] += 1;
        }
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &d in &edges[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    let left: Vec<bool> = (0..n).map(|i| indegree[i] > 0).collect();
    let pred = |i: usize| (0..n).find(|&p| left[p] && edges[p].contains(&i));
    let start = (0..n).find(|&i| left[i]).unwrap_or(0);
    let mut seen = vec![None; n];
    let mut path = Vec::new();
    let mut cur = start;
    while seen[cur].is_none() {
        seen[cur] = Some(path.len());
        path.push(cur);
        match pred(cur) {
            Some(p) => cur = p,
            None => break,
        }
    }
    let from = seen[cur].unwrap_or(0);
    let mut cycle: Vec<usize> = path[from..].to_vec();
    // Walking predecessors listed the loop backwards; name it in signal order from its first node.
    cycle.reverse();
    if let Some(min_pos) = cycle.iter().enumerate().min_by_key(|(_, &v)| v).map(|(k, _)| k) {
        cycle.rotate_left(min_pos);
    }
    Err(CompileError::Cycle(cycle.into_iter().map(|i| spec.nodes[i].name.clone()).collect()))
}

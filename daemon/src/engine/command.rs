//! What travels between the control side and the RT side.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ballast_dsp::{KindDescriptor, ParamId, Processor};

use super::delay::DelayLine;
use super::meters::NodeMeters;
use crate::graph::Schedule;

/// A node as the RT side holds it in a slot: the processor, its meter cells, and what bypass needs
/// (a dry path delayed by the node's latency, so bypass keeps timing). Built and prepared off the RT
/// thread.
pub struct SlotNode {
    pub(crate) node: Box<dyn Processor>,
    pub(crate) meters: Arc<NodeMeters>,
    /// The meter cells (shared with `meters`) and the kind's descriptor, held here so publishing after
    /// each block follows no further pointers.
    pub(crate) cells: Arc<[AtomicU32]>,
    pub(crate) descriptor: &'static KindDescriptor,
    /// `(meter index, band)` of each cell, in cell order (see [`NodeMeters::new`]), so publishing is
    /// one loop of `meter` calls and stores.
    pub(crate) cell_map: Box<[(usize, usize)]>,
    /// `node.channels()`, fixed for a node's life (its shape), read once here.
    pub(crate) channels: (usize, usize),
    /// One delay per input channel when the node has latency; empty otherwise (the dry path is then
    /// the input itself).
    pub(crate) dry: Vec<DelayLine>,
    /// Wet gain now and where it is heading (1 = processed, 0 = bypassed), and the step per sample.
    pub(crate) wet: f32,
    pub(crate) wet_target: f32,
    pub(crate) wet_step: f32,
    /// Whether anything follows `process` for this node (a dry path to run, a crossfade, meters to
    /// publish): one branch per step in the common case. Kept current by [`SlotNode::refresh`].
    pub(crate) post: bool,
}

impl SlotNode {
    /// Wraps a prepared node. `crossfade_samples` is the bypass crossfade length.
    pub fn new(node: Box<dyn Processor>, meters: Arc<NodeMeters>, crossfade_samples: usize) -> Self {
        let latency = node.latency_samples();
        let channels = node.channels();
        let inputs = channels.0;
        let dry = dry_lines(inputs, latency);
        let (cells, descriptor, bands) = (meters.cells(), node.descriptor(), meters.bands());
        let cell_map = descriptor
            .meters
            .iter()
            .enumerate()
            .flat_map(|(index, m)| (0..if m.per_band { bands } else { 1 }).map(move |band| (index, band)))
            .collect();
        let mut sn = Self {
            node,
            meters,
            cells,
            descriptor,
            cell_map,
            channels,
            dry,
            wet: 1.0,
            wet_target: 1.0,
            wet_step: 1.0 / crossfade_samples.max(1) as f32,
            post: true,
        };
        sn.refresh();
        sn
    }

    /// Starts the node bypassed (resting on its dry path, no crossfade): for a node re-made with the
    /// bypass of the one it replaces.
    pub(crate) fn start_bypassed(&mut self) {
        self.wet = 0.0;
        self.wet_target = 0.0;
        self.refresh();
    }

    /// RT side: copies the node's meters into its cells.
    #[inline]
    pub(crate) fn publish_meters(&self) {
        for (cell, &(index, band)) in self.cells.iter().zip(&*self.cell_map) {
            cell.store(self.node.meter(index, band).to_bits(), Ordering::Relaxed);
        }
    }

    /// Recomputes [`SlotNode::post`] after the dry path, bypass or crossfade changed.
    #[inline]
    pub(crate) fn refresh(&mut self) {
        self.post =
            !(self.dry.is_empty() && self.wet == 1.0 && self.wet_target == 1.0 && self.descriptor.meters.is_empty());
    }

    /// The processor.
    pub fn node(&self) -> &dyn Processor {
        &*self.node
    }
}

/// The dry path of a node with `inputs` channels and `latency` samples of delay (empty without latency).
pub fn dry_lines(inputs: usize, latency: usize) -> Vec<DelayLine> {
    if latency > 0 {
        (0..inputs).map(|_| DelayLine::new(latency)).collect()
    } else {
        Vec::new()
    }
}

impl std::fmt::Debug for SlotNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotNode").field("kind", &self.node.descriptor().kind).field("wet", &self.wet).finish()
    }
}

/// A command to the RT side. Small and moved, never cloned: anything heap-allocated it carries was
/// allocated by the control side, and whatever it displaces goes back on the return ring.
#[derive(Debug)]
pub enum Command {
    /// Sets parameter `id` (in the descriptor's unit) of the node in `slot`; the node smooths it.
    SetParam { slot: usize, id: ParamId, value: f32 },
    /// Puts a prepared node into `slot` (a node already there is retired).
    InsertNode { slot: usize, node: Box<SlotNode> },
    /// Takes the node out of `slot` and retires it.
    RemoveNode { slot: usize },
    /// Runs this schedule from now on; the old one is retired.
    SwapSchedule(Box<Schedule>),
    /// Crossfades the node in `slot` to its dry input (`on`) or back; the node keeps running and the
    /// dry path is delayed by its latency, so timing never jumps.
    Bypass { slot: usize, on: bool },
    /// Resets the node in `slot` (some parameters, like a limiter's lookahead, take effect only at a
    /// reset; the control side sends this after such a change, with the new dry path and schedule).
    ResetNode { slot: usize },
    /// Replaces the dry (bypass) path of the node in `slot` after its latency changed (see
    /// [`dry_lines`]); the old lines are retired.
    SetDryPath { slot: usize, lines: Vec<DelayLine> },
}

/// Something the RT side no longer needs, on its way to the reclaimer.
#[derive(Debug)]
pub enum Retired {
    Node(Box<SlotNode>),
    Schedule(Box<Schedule>),
    DryPath(Vec<DelayLine>),
}

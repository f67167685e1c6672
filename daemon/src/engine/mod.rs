//! The graph engine: a control side ([`Controller`]) that builds, prepares and compiles off the RT
//! thread, and an RT side ([`Engine`]) that runs one block at a time, split the way fundsp splits
//! `Net`/`NetBackend`. They share only two `rtrb` rings and atomics:
//!
//! ```text
//!  Controller ──commands (rtrb)──► Engine::process (RT) ──retired (rtrb)──► Reclaimer (drops)
//!      ▲                               │
//!      └──── NodeMeters, EngineStats (atomics) ◄┘
//! ```
//!
//! Guarantees of the RT side ([`Engine::process`]):
//! - it never allocates, frees, locks, logs or blocks (checked under `assert_no_alloc` in the tests);
//! - commands are drained at the start of each block, in order; a command is taken only when the return
//!   ring has room for what it displaces, else it waits for the next block (counted in `return_full`);
//! - a send to a full command ring hands the command back to the control side (counted in `ring_full`);
//! - the output bus is always finite, and a node that makes NaN/Inf out of finite node inputs is reset
//!   and the event counted per node (`NodeMeters::nonfinite_resets`) — without scanning every node's
//!   output every block, which cost as much as a simple node. Checked every pass: the output bus, and
//!   nodes whose output does not all reach it (meter-only sinks); one more node in turn every 1024
//!   frames (for NaN that a later node absorbs). When the bus carries NaN/Inf, every node whose
//!   buffers still hold the pass's data is judged at once and the next pass checks every node, so a
//!   node whose state blew up is found within a block. A check that finds NaN resets the node only
//!   when its inputs from other nodes were finite (so a NaN is blamed on its maker, not on every node
//!   it passed through) and silences the node's outputs either way; NaN that no check could blame
//!   (input-bus NaN, or a one-block NaN whose buffers were reused before the block ended) is counted
//!   in `output_sanitized`;
//! - nodes that survive an edit stay in their slots with their state; compensation delays that exist in
//!   both the old and the new schedule carry their contents over;
//! - bypass crossfades (linear, [`EngineConfig::crossfade_ms`]) to the node's input delayed by its
//!   latency, while the node keeps running, so timing never jumps; when a parameter change alters a
//!   node's latency (a lookahead), its dry path is replaced in the same block as the new schedule.

pub mod command;
pub mod control;
pub mod delay;
pub mod meters;
pub mod reclaim;
pub mod rt;

use std::sync::Arc;

pub use command::{dry_lines, Command, Retired, SlotNode};
pub use control::{ApplyReport, Controller, EngineError, NodeFactory};
pub use meters::{EngineStats, NodeMeters, StatsSnapshot};
pub use reclaim::{Reclaimer, ReclaimerThread};
pub use rt::Engine;

/// Sizes fixed when an engine is made.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineConfig {
    pub sample_rate: f64,
    /// Largest block a schedule pass handles (longer `process` calls are split).
    pub max_block: usize,
    /// Node slots (the most nodes a graph may hold, counting nodes being replaced).
    pub slots: usize,
    /// Command ring capacity; the return ring gets twice as many places.
    pub ring_capacity: usize,
    /// Bypass crossfade length in milliseconds.
    pub crossfade_ms: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { sample_rate: 48_000.0, max_block: 1024, slots: 256, ring_capacity: 1024, crossfade_ms: 5.0 }
    }
}

/// Makes the three parts of an engine: the control side, the RT side and the reclaimer.
pub fn new(config: EngineConfig) -> (Controller, Engine, Reclaimer) {
    let max_block = config.max_block.max(1);
    let stats = Arc::new(EngineStats::default());
    let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(config.ring_capacity.max(1));
    let (ret_tx, ret_rx) = rtrb::RingBuffer::new(config.ring_capacity.max(1) * 2);
    let controller =
        Controller::new(cmd_tx, stats.clone(), config.sample_rate, max_block, config.slots, config.crossfade_ms);
    let engine = Engine::new(config.slots, max_block, cmd_rx, ret_tx, stats.clone());
    (controller, engine, Reclaimer::new(ret_rx, stats))
}

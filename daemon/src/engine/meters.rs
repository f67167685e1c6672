//! Meters and counters the RT side publishes and any other thread reads, lock-free, at its own pace.
//! Values are `f32` bits in `AtomicU32` cells (relaxed: each cell is a self-contained reading).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use ballast_dsp::KindDescriptor;

/// One node's meters: a cell per meter of its descriptor (per band for per-band meters), plus the count
/// of times the engine reset it for non-finite output. The cells are one shared allocation that the RT
/// side's slot also holds, so publishing touches a single cache line or two, not a chain of pointers.
#[derive(Debug)]
pub struct NodeMeters {
    descriptor: &'static KindDescriptor,
    bands: usize,
    cells: Arc<[AtomicU32]>,
    nonfinite_resets: AtomicU64,
}

impl NodeMeters {
    /// Cells for `descriptor`'s meters; per-band meters get `bands` cells (at least one). Every cell
    /// reads NaN until the node has run.
    pub fn new(descriptor: &'static KindDescriptor, bands: usize) -> Self {
        let bands = bands.max(1);
        let total: usize = descriptor.meters.iter().map(|m| if m.per_band { bands } else { 1 }).sum();
        let cells = (0..total).map(|_| AtomicU32::new(f32::NAN.to_bits())).collect();
        Self { descriptor, bands, cells, nonfinite_resets: AtomicU64::new(0) }
    }

    /// The node kind's descriptor (meter keys, names, units).
    pub fn descriptor(&self) -> &'static KindDescriptor {
        self.descriptor
    }

    /// The latest value of meter `index` (band `band` for per-band meters; ignored otherwise).
    pub fn get(&self, index: usize, band: usize) -> Option<f32> {
        let m = self.descriptor.meters.get(index)?;
        let base: usize = self.descriptor.meters[..index].iter().map(|m| if m.per_band { self.bands } else { 1 }).sum();
        let cell = if m.per_band {
            if band >= self.bands {
                return None;
            }
            base + band
        } else {
            base
        };
        Some(f32::from_bits(self.cells.get(cell)?.load(Ordering::Relaxed)))
    }

    /// The latest value of the meter with config key `key` (band `band` for per-band meters).
    pub fn by_key(&self, key: &str, band: usize) -> Option<f32> {
        let index = self.descriptor.meters.iter().position(|m| m.key == key)?;
        self.get(index, band)
    }

    /// How many times the engine reset this node because its output was NaN or infinite.
    pub fn nonfinite_resets(&self) -> u64 {
        self.nonfinite_resets.load(Ordering::Relaxed)
    }

    /// The cells, for the RT side's slot.
    pub(crate) fn cells(&self) -> Arc<[AtomicU32]> {
        self.cells.clone()
    }

    pub(crate) fn bands(&self) -> usize {
        self.bands
    }

    pub(crate) fn count_nonfinite(&self) {
        self.nonfinite_resets.fetch_add(1, Ordering::Relaxed);
    }
}

/// Engine-wide counters.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub(crate) blocks: AtomicU64,
    pub(crate) commands: AtomicU64,
    pub(crate) ring_full: AtomicU64,
    pub(crate) return_full: AtomicU64,
    pub(crate) nonfinite_resets: AtomicU64,
    pub(crate) output_sanitized: AtomicU64,
    pub(crate) param_refused: AtomicU64,
    pub(crate) stale_commands: AtomicU64,
    pub(crate) leaked: AtomicU64,
    pub(crate) xruns: AtomicU64,
    pub(crate) reclaimed: AtomicU64,
}

/// A copy of [`EngineStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// `Engine::process` calls.
    pub blocks: u64,
    /// Commands the RT side applied.
    pub commands: u64,
    /// Sends refused because the command ring was full (the command went back to the caller).
    pub ring_full: u64,
    /// Blocks in which the RT side left commands queued because the return ring had no room for what
    /// they would retire (they run next block; nothing is dropped on the RT thread).
    pub return_full: u64,
    /// Node resets for NaN/Inf output, all nodes together.
    pub nonfinite_resets: u64,
    /// Passes in which NaN/Inf was silenced on its way out (on the output bus, or at a node it had
    /// passed through) without the node that made it being found: a non-finite input wired through,
    /// or a one-block NaN whose buffers were reused before the block ended. A maker that keeps making
    /// it is found in the next pass and counted in `nonfinite_resets` instead.
    pub output_sanitized: u64,
    /// `SetParam` commands the node refused (out of range, unknown id).
    pub param_refused: u64,
    /// Commands naming an empty slot or a slot out of range.
    pub stale_commands: u64,
    /// Retired objects the RT side could not return and leaked rather than free (should stay 0).
    pub leaked: u64,
    /// Missed deadlines reported by a backend.
    pub xruns: u64,
    /// Objects the reclaimer dropped.
    pub reclaimed: u64,
}

impl EngineStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            blocks: r(&self.blocks),
            commands: r(&self.commands),
            ring_full: r(&self.ring_full),
            return_full: r(&self.return_full),
            nonfinite_resets: r(&self.nonfinite_resets),
            output_sanitized: r(&self.output_sanitized),
            param_refused: r(&self.param_refused),
            stale_commands: r(&self.stale_commands),
            leaked: r(&self.leaked),
            xruns: r(&self.xruns),
            reclaimed: r(&self.reclaimed),
        }
    }

    /// A backend reports a missed deadline.
    pub fn count_xrun(&self) {
        self.xruns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// `bump` for a counter only the RT thread writes: a plain load and store (no locked
    /// read-modify-write, which costs tens of cycles every block).
    pub(crate) fn bump_single_writer(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
}

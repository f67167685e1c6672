//! The RT side: owns the node slots and the running schedule, applies commands at block start, runs
//! the schedule. Nothing here allocates, frees, locks, logs or blocks: buffers are slices of the
//! schedule's preallocated arena, retired objects leave through the return ring, and a full return
//! ring leaves commands queued until the next block instead of dropping anything here.

use std::sync::Arc;

use ballast_dsp::processor::all_finite;
use ballast_dsp::DenormalGuard;

use super::command::{Command, Retired, SlotNode};
use super::delay::DelayLine;
use super::meters::EngineStats;
use crate::graph::compile::{FastIo, Gather, Src, Step, Term, MAX_CHANNELS};
use crate::graph::Schedule;

/// The RT half of the engine. Move it to the audio thread and call [`Engine::process`] once per block.
///
/// Finiteness without scanning every node every block: a NaN/Inf that a node emits either reaches the
/// output bus (checked every pass) or is caught by one of three inline checks — nodes whose output does
/// not all reach the bus (meter-only sinks) are checked every pass, one more node per pass is checked
/// in turn (covering nodes downstream of which a NaN-absorbing node hides it), and after a pass whose
/// bus carried NaN/Inf the next pass checks every node. See [`judge`] for what a check does.
pub struct Engine {
    slots: Vec<Option<Box<SlotNode>>>,
    schedule: Option<Box<Schedule>>,
    commands: rtrb::Consumer<Command>,
    retired: rtrb::Producer<Retired>,
    stats: Arc<EngineStats>,
    max_block: usize,
    zeros: Vec<f32>,
    /// Check every step in the next pass (non-finite data was seen and its source may not be known).
    check_all: bool,
    /// The step the next audit checks, and frames until it is due.
    audit: usize,
    audit_wait: usize,
}

impl Engine {
    pub(crate) fn new(
        slots: usize,
        max_block: usize,
        commands: rtrb::Consumer<Command>,
        retired: rtrb::Producer<Retired>,
        stats: Arc<EngineStats>,
    ) -> Self {
        Self {
            slots: (0..slots).map(|_| None).collect(),
            schedule: None,
            commands,
            retired,
            stats,
            max_block,
            zeros: vec![0.0; max_block],
            check_all: false,
            audit: 0,
            audit_wait: 0,
        }
    }

    /// The largest block one schedule pass handles; longer calls are cut into passes of this size.
    pub fn max_block(&self) -> usize {
        self.max_block
    }

    /// Total latency of the running schedule, in samples.
    pub fn latency_samples(&self) -> usize {
        self.schedule.as_ref().map_or(0, |s| s.latency_samples())
    }

    /// The counters (shared with the control side).
    pub fn stats(&self) -> &Arc<EngineStats> {
        &self.stats
    }

    /// Processes one block: applies pending commands, then runs the schedule. `inputs` are the input
    /// bus channels, `outputs` the output bus channels; the block length is the shortest slice. Missing
    /// inputs read as silence, outputs the schedule does not feed are silenced, and every output sample
    /// is finite.
    pub fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let _ftz = DenormalGuard::new();
        self.drain_commands();
        EngineStats::bump_single_writer(&self.stats.blocks);
        let frames = inputs.iter().map(|s| s.len()).chain(outputs.iter().map(|s| s.len())).min().unwrap_or(0);
        let mut start = 0;
        while start < frames {
            let n = (frames - start).min(self.max_block);
            self.run(inputs, outputs, start, n);
            start += n;
        }
    }

    fn retire(&mut self, r: Retired) {
        if let Err(rtrb::PushError::Full(r)) = self.retired.push(r) {
            // Unreachable by construction (a command is popped only with room to return what it
            // displaces); leaking beats freeing on the RT thread.
            std::mem::forget(r);
            EngineStats::bump(&self.stats.leaked);
        }
    }

    fn drain_commands(&mut self) {
        loop {
            if self.commands.is_empty() {
                return;
            }
            // Each command retires at most one object: pop only with room to send it back.
            if self.retired.slots() == 0 {
                EngineStats::bump(&self.stats.return_full);
                return;
            }
            let Ok(cmd) = self.commands.pop() else { return };
            EngineStats::bump(&self.stats.commands);
            match cmd {
                Command::SetParam { slot, id, value } => match self.slots.get_mut(slot) {
                    Some(Some(n)) => {
                        if n.node.set_param(id, value).is_err() {
                            EngineStats::bump(&self.stats.param_refused);
                        }
                    }
                    _ => EngineStats::bump(&self.stats.stale_commands),
                },
                Command::InsertNode { slot, node } => match self.slots.get_mut(slot) {
                    Some(s) => {
                        if let Some(old) = s.replace(node) {
                            self.retire(Retired::Node(old));
                        }
                    }
                    None => {
                        EngineStats::bump(&self.stats.stale_commands);
                        self.retire(Retired::Node(node));
                    }
                },
                Command::RemoveNode { slot } => match self.slots.get_mut(slot).and_then(Option::take) {
                    Some(old) => self.retire(Retired::Node(old)),
                    None => EngineStats::bump(&self.stats.stale_commands),
                },
                Command::SwapSchedule(mut new) => {
                    if let Some(old) = self.schedule.as_mut() {
                        for &(o, n) in &new.migrate {
                            if let (Some(a), Some(b)) = (old.delays.get_mut(o), new.delays.get_mut(n)) {
                                if a.delay() == b.delay() {
                                    std::mem::swap(a, b);
                                }
                            }
                        }
                    }
                    self.audit = 0;
                    if let Some(old) = self.schedule.replace(new) {
                        self.retire(Retired::Schedule(old));
                    }
                }
                Command::Bypass { slot, on } => match self.slots.get_mut(slot) {
                    Some(Some(n)) => {
                        n.wet_target = if on { 0.0 } else { 1.0 };
                        n.refresh();
                    }
                    _ => EngineStats::bump(&self.stats.stale_commands),
                },
                Command::ResetNode { slot } => match self.slots.get_mut(slot) {
                    Some(Some(n)) => n.node.reset(),
                    _ => EngineStats::bump(&self.stats.stale_commands),
                },
                Command::SetDryPath { slot, lines } => match self.slots.get_mut(slot) {
                    Some(Some(n)) => {
                        let old = std::mem::replace(&mut n.dry, lines);
                        n.refresh();
                        self.retire(Retired::DryPath(old));
                    }
                    _ => {
                        EngineStats::bump(&self.stats.stale_commands);
                        self.retire(Retired::DryPath(lines));
                    }
                },
            }
        }
    }

    /// One pass of the schedule over frames `start..start + n` (`n <= max_block`).
    fn run(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]], start: usize, n: usize) {
        let Engine { slots, schedule, stats, zeros, check_all, audit, audit_wait, .. } = self;
        let Some(sched) = schedule.as_deref_mut() else {
            for out in outputs.iter_mut() {
                if let Some(out) = out.get_mut(start..start + n) {
                    out.fill(0.0);
                }
            }
            return;
        };
        let n = n.min(sched.max_block);
        let (stride, offset) = (sched.stride, sched.arena_offset);
        let Schedule { steps, gathers, srcs, outs, out_terms, arena, delays, .. } = sched;
        // SAFETY: `offset < 16` and the arena holds 16 + buffer_count × stride samples.
        let arena = Arena { base: unsafe { arena.as_mut_ptr().add(offset) }, stride, n };
        let zeros = zeros.get(..n).unwrap_or(&[]);
        let bus = Bus { inputs, start, n, zeros };
        let mut pass = Pass { slots, gathers, srcs, outs, delays, arena, bus, stats, fed: false };

        let check_every = std::mem::take(check_all);
        // One step in turn is checked every `AUDIT_FRAMES` frames.
        *audit_wait = audit_wait.saturating_sub(n);
        if check_every {
            pass.run_steps::<true>(steps);
        } else if *audit_wait == 0 && !steps.is_empty() {
            *audit_wait = AUDIT_FRAMES;
            let audited = if *audit < steps.len() { *audit } else { 0 };
            *audit = audited + 1;
            let (before, from) = steps.split_at(audited);
            let (this, after) = from.split_at(1);
            pass.run_steps::<false>(before);
            pass.run_steps::<true>(this);
            pass.run_steps::<false>(after);
        } else {
            pass.run_steps::<false>(steps);
        }
        if pass.fed {
            // Someone upstream made it; the next pass checks everyone to find out who.
            *check_all = true;
        }

        let mut bus_finite = true;
        for (c, out) in outputs.iter_mut().enumerate() {
            let Some(out) = out.get_mut(start..start + n) else { continue };
            match out_terms.get(c).map(Vec::as_slice).unwrap_or(&[]) {
                // A plain wire from one buffer (a chain's last node): copy instead of clear-and-add.
                &[Term { src: Src::Buf(b), gain: 1.0, delay: None }] => {
                    // SAFETY: a term's source is in the arena (`buffers_disjoint`); nothing writes it now.
                    out.copy_from_slice(unsafe { pass.arena.read(b) });
                }
                terms => {
                    out.fill(0.0);
                    for t in terms {
                        add_term(out, t, &pass.arena, pass.delays, &pass.bus);
                    }
                }
            }
            bus_finite &= all_finite(out);
        }
        if bus_finite {
            return;
        }
        // Judge every step whose buffers still hold this pass's data; a producer found there is reset
        // and counted now, any other waits for the fully checked pass that follows.
        let mut found = false;
        for step in steps.iter().filter(|s| s.diagnosable) {
            found |= matches!(pass.judge(step), Verdict::Producer);
        }
        if !found {
            EngineStats::bump(&stats.output_sanitized);
        }
        if !check_every {
            *check_all = true;
        }
        for out in outputs.iter_mut() {
            for x in out.get_mut(start..start + n).unwrap_or(&mut []) {
                if !x.is_finite() {
                    *x = 0.0;
                }
            }
        }
    }
}

/// Frames between two audit checks (one step in turn): at most one buffer scan per this many frames
/// whatever the block size (≈ 1 % of a trivial 64-node chain's time), so a node whose NaN/Inf every
/// later node absorbs (the dynamics nodes treat non-finite input as silence) is still found within
/// `steps × AUDIT_FRAMES` frames: a five-node chain at 48 kHz in 0.11 s, 64 nodes in 1.4 s.
const AUDIT_FRAMES: usize = 1024;

/// What one pass of the schedule works with.
struct Pass<'a, 'b> {
    slots: &'a mut [Option<Box<SlotNode>>],
    gathers: &'a [Gather],
    srcs: &'a [Src],
    outs: &'a [usize],
    delays: &'a mut [DelayLine],
    arena: Arena,
    bus: Bus<'a, 'b>,
    stats: &'a EngineStats,
    /// A check found NaN/Inf that came from upstream.
    fed: bool,
}

impl Pass<'_, '_> {
    /// Runs `steps` in order; with `CHECK`, checks each one's output after it ran, and otherwise only
    /// the steps whose output does not all reach the output bus.
    #[inline(always)]
    fn run_steps<const CHECK: bool>(&mut self, steps: &[Step]) {
        for step in steps {
            let ran = match (step.fast, self.slots.get_mut(step.slot)) {
                (Some(f), Some(Some(sn))) => {
                    run_fast(sn, f, &self.arena, &self.bus);
                    true
                }
                _ => false,
            };
            if !ran {
                self.run_general(step);
            }
            if CHECK || step.check {
                if let Verdict::Fed = self.judge(step) {
                    self.fed = true;
                    EngineStats::bump(&self.stats.output_sanitized);
                }
            }
        }
    }

    /// The general path: gathers first, then the node from the step's tables (or silence when the slot
    /// is empty or the node's channel counts disagree with the schedule).
    #[inline(never)]
    fn run_general(&mut self, step: &Step) {
        for g in self.gathers.get(step.gathers.0..step.gathers.1).unwrap_or(&[]) {
            // SAFETY: `buffers_disjoint` (checked when the schedule was compiled; the schedule is
            // immutable since) guarantees `g.dst` is in the arena and read by none of its terms.
            let d = unsafe { self.arena.write(g.dst) };
            d.fill(0.0);
            for t in &g.terms {
                add_term(d, t, &self.arena, self.delays, &self.bus);
            }
        }
        let io = (
            self.srcs.get(step.inputs.0..step.inputs.1).unwrap_or(&[]),
            self.outs.get(step.outputs.0..step.outputs.1).unwrap_or(&[]),
        );
        let slot = match self.slots.get_mut(step.slot) {
            Some(Some(sn)) => Some(&mut **sn),
            _ => None,
        };
        // Channel tables live on the stack; size them to the step so mono/stereo nodes do not pay for
        // initialising sixteen entries.
        let width = io.0.len().max(io.1.len());
        if width <= 2 {
            run_node::<2>(slot, io, &self.arena, &self.bus)
        } else if width <= 8 {
            run_node::<8>(slot, io, &self.arena, &self.bus)
        } else {
            run_node::<MAX_CHANNELS>(slot, io, &self.arena, &self.bus)
        }
    }

    /// A step's input sources and output buffers.
    fn io(&self, step: &Step) -> (&[Src], &[usize]) {
        (
            self.srcs.get(step.inputs.0..step.inputs.1).unwrap_or(&[]),
            self.outs.get(step.outputs.0..step.outputs.1).unwrap_or(&[]),
        )
    }

    /// Checks one step after it ran, while its inputs and outputs still hold this pass's data: see
    /// [`Verdict`].
    #[cold]
    #[inline(never)]
    fn judge(&mut self, step: &Step) -> Verdict {
        let (step_inputs, step_outputs) = self.io(step);
        let arena = &self.arena;
        // The step's buffers are in the arena (`buffers_disjoint`) and the step has run, so no other
        // reference to them is live; none made here outlives its statement.
        // SAFETY: as above.
        let finite = |b: usize| all_finite(unsafe { arena.read(b) });
        if step_outputs.iter().all(|&b| finite(b)) {
            return Verdict::Finite;
        }
        for &b in step_outputs {
            // SAFETY: as above.
            unsafe { arena.write(b) }.fill(0.0);
        }
        let fed = step_inputs.iter().any(|s| matches!(*s, Src::Buf(b) if !finite(b)));
        if fed {
            return Verdict::Fed;
        }
        if let Some(Some(sn)) = self.slots.get_mut(step.slot) {
            sn.node.reset();
            sn.meters.count_nonfinite();
            EngineStats::bump(&self.stats.nonfinite_resets);
        }
        Verdict::Producer
    }
}

/// The input bus for one pass.
struct Bus<'a, 'b> {
    inputs: &'a [&'b [f32]],
    start: usize,
    n: usize,
    zeros: &'a [f32],
}

impl<'a> Bus<'a, '_> {
    /// Channel `c` for this pass, if the caller passed it.
    #[inline]
    fn channel(&self, c: usize) -> Option<&'a [f32]> {
        self.inputs.get(c).and_then(|s| s.get(self.start..self.start + self.n))
    }
}

/// The short path: a mono or stereo node reading schedule buffers only (see [`FastIo`]).
#[inline(always)]
fn run_fast(sn: &mut SlotNode, f: FastIo, arena: &Arena, bus: &Bus) {
    // Every `read_at`/`write_at` below: `buffers_disjoint` (checked when the schedule was compiled)
    // proves `f` matches the step's tables, whose buffers are in the arena, with outputs distinct from
    // each other and from the inputs.
    match f {
        FastIo::Stereo { ins, outs } if sn.channels == (2, 2) => {
            // SAFETY: see above.
            let ins = unsafe { [arena.read_at(ins[0]), arena.read_at(ins[1])] };
            // SAFETY: see above.
            let mut outs = unsafe { [arena.write_at(outs[0]), arena.write_at(outs[1])] };
            sn.node.process(&ins, &mut outs);
            if sn.post {
                post(sn, &ins, &mut outs, arena.n);
            }
        }
        FastIo::Mono { ins, outs } if sn.channels == (1, 1) => {
            // SAFETY: see above.
            let ins = unsafe { [arena.read_at(ins)] };
            // SAFETY: see above.
            let mut outs = unsafe { [arena.write_at(outs)] };
            sn.node.process(&ins, &mut outs);
            if sn.post {
                post(sn, &ins, &mut outs, arena.n);
            }
        }
        FastIo::StereoFromBus { ins, outs } if sn.channels == (2, 2) => {
            let ins = ins.map(|c| bus.channel(c).unwrap_or(bus.zeros));
            // SAFETY: see above.
            let mut outs = unsafe { [arena.write_at(outs[0]), arena.write_at(outs[1])] };
            sn.node.process(&ins, &mut outs);
            if sn.post {
                post(sn, &ins, &mut outs, arena.n);
            }
        }
        // The node in the slot is not the shape the schedule was compiled for.
        // SAFETY: see above.
        FastIo::Stereo { outs, .. } | FastIo::StereoFromBus { outs, .. } => unsafe { silence(arena, &outs) },
        // SAFETY: see above.
        FastIo::Mono { outs, .. } => unsafe { silence(arena, &[outs]) },
    }
}

/// Fills the buffers at sample offsets `outs` with silence.
///
/// # Safety
/// Each offset is a buffer start of the arena with no other live reference.
#[cold]
unsafe fn silence(arena: &Arena, outs: &[usize]) {
    for &o in outs {
        // SAFETY: the caller's contract.
        unsafe { arena.write_at(o) }.fill(0.0);
    }
}

/// Runs one step's node from its tables (see [`run_general`]).
#[inline(always)]
fn run_node<const N: usize>(
    slot: Option<&mut SlotNode>,
    (step_inputs, step_outputs): (&[Src], &[usize]),
    arena: &Arena,
    bus: &Bus,
) {
    let ni = step_inputs.len().min(N);
    let no = step_outputs.len().min(N);
    let mut ins: [&[f32]; N] = [&[]; N];
    for (slot, src) in ins.iter_mut().zip(step_inputs) {
        *slot = match *src {
            Src::Input(c) => bus.channel(c).unwrap_or(bus.zeros),
            // SAFETY: in the arena, and no output of this step (see `buffers_disjoint`).
            Src::Buf(b) => unsafe { arena.read(b) },
            Src::Zero => bus.zeros,
        };
    }
    let mut outs: [&mut [f32]; N] = std::array::from_fn(|_| <&mut [f32]>::default());
    for (slot, &b) in outs.iter_mut().zip(step_outputs) {
        // SAFETY: outputs of a step are distinct from each other and from everything the step reads
        // (see `buffers_disjoint`), so this is the only live reference to `b`.
        *slot = unsafe { arena.write(b) };
    }
    let ins = &ins[..ni];
    let outs = &mut outs[..no];
    match slot {
        Some(sn) if sn.channels == (ni, no) => {
            sn.node.process(ins, outs);
            if sn.post {
                post(sn, ins, outs, arena.n);
            }
        }
        _ => {
            for o in outs.iter_mut() {
                o.fill(0.0);
            }
        }
    }
}

/// What follows `process` for a node that has a dry path, is crossfading or bypassed, or has meters.
#[inline(never)]
fn post(sn: &mut SlotNode, ins: &[&[f32]], outs: &mut [&mut [f32]], n: usize) {
    if !(sn.dry.is_empty() && sn.wet == 1.0 && sn.wet_target == 1.0) {
        bypass_mix(sn, ins, outs, n);
        sn.refresh();
    }
    sn.publish_meters();
}

/// What a finiteness check of one step found.
enum Verdict {
    /// Every output sample is finite.
    Finite,
    /// The node made NaN/Inf out of finite node inputs (input-bus channels may be anything, as before
    /// this engine checked lazily): it was reset, its outputs silenced and the event counted.
    Producer,
    /// NaN/Inf came in from another node's buffer and went out: the outputs were silenced so it
    /// spreads no further, and the node was left alone (its producer is upstream).
    Fed,
}

/// The schedule's buffers for one pass: raw access so a step can hold its inputs and outputs at once.
/// The compiler proves the slices a step takes never overlap (`Schedule::buffers_disjoint`).
struct Arena {
    base: *mut f32,
    stride: usize,
    n: usize,
}

impl Arena {
    /// Buffer `b`, first `n` samples, shared.
    ///
    /// # Safety
    /// `b` is a buffer of the schedule and no `write` of `b` is live.
    #[inline]
    unsafe fn read<'a>(&self, b: usize) -> &'a [f32] {
        // SAFETY: `offset + b * stride + n` is within the arena (caller: `b < buffer_count`;
        // `n <= max_block <= stride`; see `buffers_disjoint`).
        unsafe { std::slice::from_raw_parts(self.base.add(b * self.stride), self.n) }
    }

    /// Buffer `b`, first `n` samples, exclusive.
    ///
    /// # Safety
    /// `b` is a buffer of the schedule and no other reference to `b` is live.
    #[inline]
    #[allow(clippy::mut_from_ref)] // exclusivity is the caller's contract, proved by the compiler
    unsafe fn write<'a>(&self, b: usize) -> &'a mut [f32] {
        // SAFETY: as in `read`, plus exclusivity from the caller.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(b * self.stride), self.n) }
    }

    /// The buffer starting `offset` samples after buffer 0 (`offset = b × stride`), shared.
    ///
    /// # Safety
    /// As [`Arena::read`] for that buffer.
    #[inline]
    unsafe fn read_at<'a>(&self, offset: usize) -> &'a [f32] {
        // SAFETY: the caller's contract, as in `read`.
        unsafe { std::slice::from_raw_parts(self.base.add(offset), self.n) }
    }

    /// The buffer starting `offset` samples after buffer 0, exclusive.
    ///
    /// # Safety
    /// As [`Arena::write`] for that buffer.
    #[inline]
    #[allow(clippy::mut_from_ref)] // exclusivity is the caller's contract, proved by the compiler
    unsafe fn write_at<'a>(&self, offset: usize) -> &'a mut [f32] {
        // SAFETY: the caller's contract, as in `write`.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(offset), self.n) }
    }
}

/// `dst += gain × source`, through the term's compensation delay if it has one.
#[inline]
fn add_term(dst: &mut [f32], t: &Term, arena: &Arena, delays: &mut [DelayLine], bus: &Bus) {
    let n = dst.len();
    let src: Option<&[f32]> = match t.src {
        Src::Input(c) => bus.channel(c),
        // SAFETY: a term's source buffer is in the arena and is not the gather destination
        // (`buffers_disjoint`); the output bus stage writes no buffer at all.
        Src::Buf(b) => Some(unsafe { arena.read(b) }),
        Src::Zero => None,
    };
    let g = t.gain;
    match (t.delay.and_then(|d| delays.get_mut(d)), src) {
        (Some(line), Some(src)) => line.run(&src[..n], |i, y| dst[i] += g * y),
        (Some(line), None) => line.run_silence(n, |i, y| dst[i] += g * y),
        (None, Some(src)) => {
            if g == 1.0 {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            } else {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += g * s;
                }
            }
        }
        (None, None) => {}
    }
}

/// Runs the dry path (always, when the node has latency, so it is warm when bypass engages) and
/// crossfades `out = wet·node + (1 − wet)·dry` while bypass is on or moving. The fade is linear over the
/// slot's crossfade length; `wet` is the same for every channel at a given sample.
#[inline]
fn bypass_mix(sn: &mut SlotNode, ins: &[&[f32]], outs: &mut [&mut [f32]], n: usize) {
    let idle = sn.wet == 1.0 && sn.wet_target == 1.0;
    let (w0, target, step) = (sn.wet, sn.wet_target, sn.wet_step);
    let wet_at = |i: usize| {
        let moved = step * (i + 1) as f32;
        if target > w0 {
            (w0 + moved).min(target)
        } else {
            (w0 - moved).max(target)
        }
    };
    if sn.dry.is_empty() {
        if idle {
            return;
        }
        for (c, out) in outs.iter_mut().enumerate() {
            let dry = ins.get(c).copied();
            for (i, y) in out.iter_mut().enumerate() {
                let w = wet_at(i);
                let x = dry.map_or(0.0, |d| finite_or_zero(d[i]));
                *y = w * *y + (1.0 - w) * x;
            }
        }
    } else {
        for (c, line) in sn.dry.iter_mut().enumerate() {
            let input = ins.get(c).copied().unwrap_or(&[]);
            match outs.get_mut(c) {
                Some(out) if !idle => line.run(input, |i, x| {
                    let w = wet_at(i);
                    out[i] = w * out[i] + (1.0 - w) * finite_or_zero(x);
                }),
                _ => line.run(input, |_, _| {}),
            }
        }
        if !idle {
            // Outputs without a matching input fade to silence.
            for out in outs.iter_mut().skip(sn.dry.len()) {
                for (i, y) in out.iter_mut().enumerate() {
                    *y *= wet_at(i);
                }
            }
        }
    }
    if !idle {
        sn.wet = wet_at(n.saturating_sub(1));
    }
}

/// A non-finite dry sample mixes in as silence (the dry path is input that no check has seen).
#[inline]
fn finite_or_zero(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

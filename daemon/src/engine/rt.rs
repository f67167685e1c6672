//! The RT side: owns the node slots and the running schedule, applies commands at block start, runs
//! the schedule. Nothing here allocates, frees, locks, logs or blocks: buffers are slices of the
//! schedule's preallocated arena, retired objects leave through the return ring, and a full return
//! ring leaves commands queued until the next block instead of dropping anything here.

use std::sync::Arc;

use ballast_dsp::processor::all_finite;
use ballast_dsp::DenormalGuard;

use super::command::{Command, Retired, SlotNode};
use super::delay::DelayLine;
use super::meters::{publish, EngineStats};
use crate::graph::compile::{Src, Term, MAX_CHANNELS};
use crate::graph::Schedule;

/// The RT half of the engine. Move it to the audio thread and call [`Engine::process`] once per block.
pub struct Engine {
    slots: Vec<Option<Box<SlotNode>>>,
    schedule: Option<Box<Schedule>>,
    commands: rtrb::Consumer<Command>,
    retired: rtrb::Producer<Retired>,
    stats: Arc<EngineStats>,
    max_block: usize,
    zeros: Vec<f32>,
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
        EngineStats::bump(&self.stats.blocks);
        let frames = inputs.iter().map(|s| s.len()).chain(outputs.iter().map(|s| s.len())).min().unwrap_or(0);
        let mut start = 0;
        while start < frames {
            let n = (frames - start).min(self.max_block);
            self.run(inputs, outputs, start, n);
            start += n;
        }
        let mut sanitized = false;
        for out in outputs.iter_mut() {
            let out = &mut out[..frames];
            if !all_finite(out) {
                sanitized = true;
                for x in out.iter_mut() {
                    if !x.is_finite() {
                        *x = 0.0;
                    }
                }
            }
        }
        if sanitized {
            EngineStats::bump(&self.stats.output_sanitized);
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
                    if let Some(old) = self.schedule.replace(new) {
                        self.retire(Retired::Schedule(old));
                    }
                }
                Command::Bypass { slot, on } => match self.slots.get_mut(slot) {
                    Some(Some(n)) => n.wet_target = if on { 0.0 } else { 1.0 },
                    _ => EngineStats::bump(&self.stats.stale_commands),
                },
                Command::ResetNode { slot } => match self.slots.get_mut(slot) {
                    Some(Some(n)) => n.node.reset(),
                    _ => EngineStats::bump(&self.stats.stale_commands),
                },
                Command::SetDryPath { slot, lines } => match self.slots.get_mut(slot) {
                    Some(Some(n)) => {
                        let old = std::mem::replace(&mut n.dry, lines);
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
        let Some(sched) = self.schedule.as_deref_mut() else {
            for out in outputs.iter_mut() {
                out[start..start + n].fill(0.0);
            }
            return;
        };
        let n = n.min(sched.max_block);
        let (stride, offset) = (sched.stride, sched.arena_offset);
        let Schedule { steps, gathers, srcs, outs, out_terms, arena, delays, .. } = sched;
        // SAFETY: `offset < 16` and the arena holds 16 + buffer_count × stride samples.
        let arena = Arena { base: unsafe { arena.as_mut_ptr().add(offset) }, stride, n };
        let zeros = &self.zeros[..n];
        let input = |c: usize| inputs.get(c).map(|s| &s[start..start + n]);

        for step in steps.iter() {
            // Ranges checked by `buffers_disjoint` when the schedule was compiled.
            let step_gathers = &gathers[step.gathers.0..step.gathers.1];
            let step_inputs = &srcs[step.inputs.0..step.inputs.1];
            let step_outputs = &outs[step.outputs.0..step.outputs.1];
            for g in step_gathers {
                // SAFETY: `buffers_disjoint` (checked when the schedule was compiled; the schedule is
                // immutable since) guarantees `g.dst` is in the arena and read by none of its terms.
                let d = unsafe { arena.write(g.dst) };
                d.fill(0.0);
                for t in &g.terms {
                    add_term(d, t, &arena, delays, &input);
                }
            }

            let slot = self.slots.get_mut(step.slot).and_then(|s| s.as_deref_mut());
            // Channel tables live on the stack; size them to the step so mono/stereo nodes do not pay
            // for initialising sixteen entries.
            let width = step_inputs.len().max(step_outputs.len());
            let io = (step_inputs, step_outputs);
            if width <= 2 {
                run_node::<2>(slot, io, &arena, zeros, &input, &self.stats);
            } else if width <= 8 {
                run_node::<8>(slot, io, &arena, zeros, &input, &self.stats);
            } else {
                run_node::<MAX_CHANNELS>(slot, io, &arena, zeros, &input, &self.stats);
            }
        }

        for (c, out) in outputs.iter_mut().enumerate() {
            let out = &mut out[start..start + n];
            out.fill(0.0);
            if let Some(terms) = out_terms.get(c) {
                for t in terms {
                    add_term(out, t, &arena, delays, &input);
                }
            }
        }
    }
}

/// Runs one step's node (or silences its outputs when the slot is empty or the node's channel counts
/// disagree with the schedule): `process_checked`, bypass crossfade, meters.
#[inline(always)]
fn run_node<'a, const N: usize>(
    slot: Option<&mut SlotNode>,
    (step_inputs, step_outputs): (&[Src], &[usize]),
    arena: &Arena,
    zeros: &'a [f32],
    input: &impl Fn(usize) -> Option<&'a [f32]>,
    stats: &EngineStats,
) {
    let ni = step_inputs.len().min(N);
    let no = step_outputs.len().min(N);
    let mut ins: [&[f32]; N] = [&[]; N];
    for (slot, src) in ins.iter_mut().zip(step_inputs) {
        *slot = match *src {
            Src::Input(c) => input(c).unwrap_or(zeros),
            // SAFETY: in the arena, and no output of this step (see `buffers_disjoint`).
            Src::Buf(b) => unsafe { arena.read(b) },
            Src::Zero => zeros,
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
            if !sn.node.process_checked(ins, outs) {
                sn.meters.count_nonfinite();
                EngineStats::bump(&stats.nonfinite_resets);
            }
            // The common case (no latency, not bypassed) costs two compares.
            if !(sn.dry.is_empty() && sn.wet == 1.0 && sn.wet_target == 1.0) {
                bypass_mix(sn, ins, outs, arena.n);
            }
            if !sn.descriptor.meters.is_empty() {
                publish(&sn.cells, sn.descriptor, sn.bands, &*sn.node);
            }
        }
        _ => {
            for o in outs.iter_mut() {
                o.fill(0.0);
            }
        }
    }
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
}

/// `dst += gain × source`, through the term's compensation delay if it has one.
#[inline]
fn add_term<'a>(
    dst: &mut [f32],
    t: &Term,
    arena: &Arena,
    delays: &mut [DelayLine],
    input: &impl Fn(usize) -> Option<&'a [f32]>,
) {
    let n = dst.len();
    let src: Option<&[f32]> = match t.src {
        Src::Input(c) => input(c),
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

/// A non-finite dry sample mixes in as silence (the node's own output is already checked).
#[inline]
fn finite_or_zero(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

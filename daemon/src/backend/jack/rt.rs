//! The process callback: gathers port buffers, runs the engine, ticks the heartbeat. Nothing else.
//!
//! No allocation, lock, syscall, log or panic path: the slice tables are fixed-size arrays on the
//! stack ([`MAX_CHANNELS`] wide, checked at start), the engine is borrowed by a wait-free
//! compare-exchange, and buffers come straight from `jack_port_get_buffer`. The tests run this body
//! under `assert_no_alloc` through [`set_process_guard`](super::set_process_guard).

use std::sync::Arc;

use ::jack::{AudioIn, AudioOut, Client, Control, MidiIn, Port, ProcessHandler, ProcessScope};

use super::cell::EngineCell;
use super::notify::Msg;
use super::PROCESS_GUARD;
use crate::backend::BackendStats;
use crate::graph::compile::MAX_CHANNELS;

pub(crate) struct RtHandler {
    pub(crate) inputs: Vec<Port<AudioIn>>,
    pub(crate) outputs: Vec<Port<AudioOut>>,
    /// Registered so other clients can connect to them; their events are not routed yet.
    pub(crate) _midi: Vec<Port<MidiIn>>,
    pub(crate) engine: Arc<EngineCell>,
    pub(crate) stats: Arc<BackendStats>,
    /// To the supervisor, for `buffer_size` only (JACK calls it outside the RT cycle).
    pub(crate) notices: crossbeam_channel::Sender<Msg>,
    pub(crate) generation: u64,
}

impl RtHandler {
    #[inline]
    fn run(&mut self, ps: &ProcessScope) {
        let frames = ps.n_frames();
        let mut inputs: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
        let mut outputs: [&mut [f32]; MAX_CHANNELS] = Default::default();
        for (slot, port) in inputs.iter_mut().zip(&self.inputs) {
            // SAFETY: inside the process cycle a registered audio port's buffer holds `frames` f32
            // samples and stays valid until the callback returns; input buffers are only read.
            *slot = unsafe { std::slice::from_raw_parts(port.buffer(frames) as *const f32, frames as usize) };
        }
        for (slot, port) in outputs.iter_mut().zip(&mut self.outputs) {
            // SAFETY: as above; each output port owns its own buffer, so the mutable slices never
            // alias each other or the inputs.
            *slot = unsafe { std::slice::from_raw_parts_mut(port.buffer(frames) as *mut f32, frames as usize) };
        }
        let (n_in, n_out) = (self.inputs.len(), self.outputs.len());
        let outputs = &mut outputs[..n_out];
        match self.engine.try_lock() {
            Some(mut guard) => match guard.engine() {
                Some(engine) => engine.process(&inputs[..n_in], outputs),
                None => silence(outputs),
            },
            // The supervisor holds the engine (only while stopping): one block of silence.
            None => silence(outputs),
        }
        self.stats.tick();
    }
}

fn silence(outputs: &mut [&mut [f32]]) {
    for out in outputs {
        out.fill(0.0);
    }
}

impl ProcessHandler for RtHandler {
    fn process(&mut self, _: &Client, ps: &ProcessScope) -> Control {
        match PROCESS_GUARD.get() {
            Some(guard) => guard(&mut || self.run(ps)),
            None => self.run(ps),
        }
        Control::Continue
    }

    fn buffer_size(&mut self, _: &Client, frames: ::jack::Frames) -> Control {
        // JACK calls this on the process thread but outside any cycle, where it allows allocation.
        let _ = self.notices.send(Msg::BlockSize { generation: self.generation, frames: frames as usize });
        Control::Continue
    }
}

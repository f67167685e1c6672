//! The offline backend: runs a graph over audio that is not arriving in real time (a file, a buffer),
//! through the very same [`Engine`] the real-time backends drive, so a render is what JACK or ALSA would
//! have played for the same input.
//!
//! [`Offline`] cuts whatever it is fed into blocks of a fixed size, exactly like a real-time backend
//! whose period is that size; the last block of a render may be shorter. Every node is block-size
//! invariant (`ballast_dsp`'s contract) and the engine adds no block-dependent state, so the output is
//! bit-identical for every block size.
//!
//! Latency: the graph's total latency `L` ([`Offline::latency_samples`]) is what the engine's output
//! lags its input. Without compensation the output is what a real-time backend would emit for the same
//! frames: `L` frames of the graph's start-up response first, and the last `L` frames of the programme
//! never come out. With compensation the first `L` output frames are dropped and `L` frames of silence
//! are fed after the end, so the output has the input's length and lines up with it sample for sample.
//!
//! [`file::render`] is the `ballastd render` command: WAV in, WAV out (written atomically).

pub mod file;

use crate::engine::{self, Controller, Engine, EngineConfig, EngineError, Reclaimer, StatsSnapshot};
use crate::graph::compile::MAX_CHANNELS;
use crate::graph::GraphSpec;

/// A graph ready to render: engine, its control side, and the block buffers.
pub struct Offline {
    controller: Controller,
    engine: Engine,
    reclaimer: Reclaimer,
    block: usize,
    inputs: usize,
    outputs: usize,
    in_bufs: Vec<Vec<f32>>,
    out_bufs: Vec<Vec<f32>>,
    /// Frames gathered in `in_bufs` towards the next block.
    fill: usize,
    latency: usize,
    compensate: bool,
    /// Output frames still to drop (latency compensation).
    skip: usize,
    frames_in: u64,
    frames_out: u64,
}

impl Offline {
    /// Builds, prepares and compiles `graph` for `sample_rate`, to run in blocks of `block` frames.
    pub fn new(
        graph: &GraphSpec,
        sample_rate: f64,
        block: usize,
        compensate_latency: bool,
    ) -> Result<Self, EngineError> {
        let block = block.max(1);
        let (mut controller, mut engine, reclaimer) = engine::new(EngineConfig {
            sample_rate,
            max_block: block,
            slots: graph.nodes.len() + 8,
            ring_capacity: 2 * graph.nodes.len() + 16,
            ..EngineConfig::default()
        });
        let report = controller.apply(graph)?;
        // The engine picks the graph up at the start of its next block; an empty pass takes it now,
        // so nothing depends on when the first real block comes.
        engine.process(&[], &mut []);
        let (inputs, outputs) = (graph.inputs.len(), graph.outputs.len());
        let latency = report.latency_samples;
        Ok(Self {
            controller,
            engine,
            reclaimer,
            block,
            inputs,
            outputs,
            in_bufs: vec![vec![0.0; block]; inputs],
            out_bufs: vec![vec![0.0; block]; outputs],
            fill: 0,
            latency,
            compensate: compensate_latency,
            skip: if compensate_latency { latency } else { 0 },
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Total latency of the graph, in samples.
    pub fn latency_samples(&self) -> usize {
        self.latency
    }

    /// Channels the graph takes (its `audio_in` ports).
    pub fn input_channels(&self) -> usize {
        self.inputs
    }

    /// Channels the graph produces (its `audio_out` ports).
    pub fn output_channels(&self) -> usize {
        self.outputs
    }

    /// The block size.
    pub fn block(&self) -> usize {
        self.block
    }

    /// The control side (meters, parameters) of the running engine.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The engine's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.controller.stats()
    }

    /// Frames fed so far (not counting the compensation flush).
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Frames handed to the sink so far.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }

    /// Feeds planar input (one slice per input channel; the shortest sets the frame count) and hands
    /// every finished output block to `sink`. Missing channels read as silence, extra ones are ignored.
    pub fn push<E>(&mut self, input: &[&[f32]], sink: &mut impl FnMut(&[&[f32]]) -> Result<(), E>) -> Result<(), E> {
        let frames = input.iter().take(self.inputs).map(|c| c.len()).min().unwrap_or(0);
        self.feed(frames, Some(input), sink)?;
        self.frames_in += frames as u64;
        Ok(())
    }

    /// Feeds `frames` frames of silence (for graphs without inputs: the generators run that long).
    pub fn push_silence<E>(
        &mut self,
        frames: usize,
        sink: &mut impl FnMut(&[&[f32]]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.feed(frames, None, sink)?;
        self.frames_in += frames as u64;
        Ok(())
    }

    /// Ends the render: processes the last, partial block and, with latency compensation, flushes the
    /// graph's tail (the output then has exactly as many frames as were fed). Returns the counters.
    pub fn finish<E>(mut self, sink: &mut impl FnMut(&[&[f32]]) -> Result<(), E>) -> Result<StatsSnapshot, E> {
        if self.compensate {
            let mut left = self.latency;
            while left > 0 {
                let n = left.min(self.block);
                self.feed(n, None, sink)?;
                left -= n;
            }
        }
        if self.fill > 0 {
            self.run_block(self.fill, sink)?;
        }
        self.reclaimer.collect();
        Ok(self.controller.stats())
    }

    fn feed<E>(
        &mut self,
        mut frames: usize,
        input: Option<&[&[f32]]>,
        sink: &mut impl FnMut(&[&[f32]]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut at = 0;
        while frames > 0 {
            let k = (self.block - self.fill).min(frames);
            for (c, buf) in self.in_bufs.iter_mut().enumerate() {
                let dst = &mut buf[self.fill..self.fill + k];
                match input.and_then(|i| i.get(c)) {
                    Some(src) => dst.copy_from_slice(&src[at..at + k]),
                    None => dst.fill(0.0),
                }
            }
            self.fill += k;
            at += k;
            frames -= k;
            if self.fill == self.block {
                self.run_block(self.block, sink)?;
            }
        }
        Ok(())
    }

    /// Runs the engine over the `n` gathered frames and passes on what is not skipped.
    fn run_block<E>(&mut self, n: usize, sink: &mut impl FnMut(&[&[f32]]) -> Result<(), E>) -> Result<(), E> {
        self.fill = 0;
        {
            let mut ins: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            for (r, b) in ins.iter_mut().zip(&self.in_bufs) {
                *r = &b[..n];
            }
            let mut outs: [&mut [f32]; MAX_CHANNELS] = std::array::from_fn(|_| <&mut [f32]>::default());
            for (r, b) in outs.iter_mut().zip(self.out_bufs.iter_mut()) {
                *r = &mut b[..n];
            }
            let ni = self.inputs.min(MAX_CHANNELS);
            let no = self.outputs.min(MAX_CHANNELS);
            if ni == 0 && no == 0 {
                return Ok(());
            }
            self.engine.process(&ins[..ni], &mut outs[..no]);
        }
        let drop = self.skip.min(n);
        self.skip -= drop;
        if drop == n {
            return Ok(());
        }
        let mut outs: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
        for (r, b) in outs.iter_mut().zip(&self.out_bufs) {
            *r = &b[drop..n];
        }
        self.frames_out += (n - drop) as u64;
        sink(&outs[..self.outputs.min(MAX_CHANNELS)])
    }
}

//! The audio thread's loop: read a period from capture (if any), run the engine, write the period to
//! playback; recover from xruns in place. Everything it touches was allocated before the loop starts
//! ([`Buffers`]); it takes no lock, logs nothing and allocates nothing (checked under `assert_no_alloc`
//! in `daemon/tests/alsa.rs`). Its only system calls are ALSA's own: read, write, recover, prepare,
//! start, drop, plus a vDSO clock read for the DSP load.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ::alsa::pcm::{State, IO, PCM};

use super::device::{SampleFormat, Session};
use super::RtGuard;
use crate::backend::BackendStats;
use crate::engine::Engine;
use crate::graph::compile::MAX_CHANNELS;

/// Flags shared by the backend handle, the supervisor and the audio thread.
#[derive(Default)]
pub(crate) struct Shared {
    pub stop: AtomicBool,
    /// An errno the next playback write reports instead of writing (0: none). See
    /// [`AlsaBackend::inject_write_error`](super::AlsaBackend::inject_write_error).
    pub inject: AtomicI32,
    pub stats: Arc<BackendStats>,
}

/// Why the loop returned.
pub(crate) enum Outcome {
    /// `stop` was set.
    Stopped,
    /// An error recovery cannot handle (the device went away: ENODEV, or a failed recover). ALSA's
    /// error is `Copy` and formats without the loop's help, so the supervisor turns it into text.
    Lost(::alsa::Error),
}

/// The loop's buffers, sized for one session's period and channel counts before the loop starts.
pub(crate) struct Buffers {
    inputs: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
    /// Interleaved device samples, in the device's format.
    capture_bytes: Vec<u8>,
    playback_bytes: Vec<u8>,
    /// One period of playback silence (all formats used are signed: zero bytes are silence).
    silence: Vec<u8>,
}

impl Buffers {
    pub fn new(session: &Session, inputs: usize, outputs: usize) -> Self {
        let f = &session.format;
        let cap_bytes = f.capture_format.map_or(0, |c| c.bytes() * inputs * f.period);
        let play_bytes = f.playback_format.bytes() * outputs * f.period;
        Self {
            inputs: vec![vec![0.0; f.period]; if f.capture_format.is_some() { inputs } else { 0 }],
            outputs: vec![vec![0.0; f.period]; outputs],
            capture_bytes: vec![0; cap_bytes],
            playback_bytes: vec![0; play_bytes],
            silence: vec![0; play_bytes],
        }
    }
}

/// The PCMs of a session with their I/O handles, and what the loop needs to know about them.
struct Streams<'a> {
    playback: &'a PCM,
    play_io: IO<'a, u8>,
    play_format: SampleFormat,
    capture: Option<(&'a PCM, IO<'a, u8>, SampleFormat)>,
    linked: bool,
    period: usize,
    buffer: usize,
}

impl Streams<'_> {
    /// Fills the playback buffer with silence (so the first real period has a full buffer of slack),
    /// then starts both streams. Used at session start and after every xrun.
    fn prime_and_start(&self, silence: &[u8]) -> Result<(), ::alsa::Error> {
        let frame_bytes = silence.len() / self.period;
        let mut left = self.buffer;
        while left > 0 {
            let n = left.min(self.period);
            let written = self.play_io.writei(&silence[..n * frame_bytes])?;
            if written == 0 {
                break;
            }
            left -= written;
        }
        self.playback.start()?;
        if let Some((capture, _, _)) = &self.capture {
            if !self.linked {
                capture.start()?;
            }
        }
        Ok(())
    }

    /// `snd_pcm_recover` on the stream that failed, then both streams prepared afresh, primed and
    /// started, so capture and playback stay a fixed distance apart. `Err` when it cannot recover.
    fn recover(
        &self,
        failed: &PCM,
        err: ::alsa::Error,
        silence: &[u8],
        stats: &BackendStats,
    ) -> Result<(), ::alsa::Error> {
        match err.errno() {
            libc::EPIPE | libc::ESTRPIPE => {
                stats.count_xrun();
                failed.try_recover(err, true)?;
                let capture = self.capture.as_ref().map(|(c, _, _)| *c);
                for pcm in std::iter::once(self.playback).chain(capture) {
                    if pcm.state() != State::Prepared {
                        // Dropping a linked stream drops both; preparing then prepares both.
                        let _ = pcm.drop();
                        pcm.prepare()?;
                    }
                }
                self.prime_and_start(silence)
            }
            // A signal interrupted the call: the period is lost, the stream is fine.
            libc::EINTR | libc::EAGAIN => Ok(()),
            _ => Err(err),
        }
    }
}

/// Runs the loop until `shared.stop` is set or the device is lost. `guard` wraps every cycle (tests
/// pass `assert_no_alloc`).
pub(crate) fn run(
    session: &Session,
    engine: &mut Engine,
    bufs: &mut Buffers,
    shared: &Shared,
    guard: RtGuard,
) -> Outcome {
    let f = &session.format;
    // I/O handles are made once here: `PCM::io_*` with a format check reads hw params (allocates).
    let streams = Streams {
        playback: &session.playback,
        play_io: session.playback.io_bytes(),
        play_format: f.playback_format,
        capture: match (&session.capture, f.capture_format) {
            (Some(c), Some(fmt)) => Some((c, c.io_bytes(), fmt)),
            _ => None,
        },
        linked: f.linked,
        period: f.period,
        buffer: f.buffer_frames,
    };
    if let Err(e) = streams.prime_and_start(&bufs.silence) {
        return Outcome::Lost(e);
    }
    let period_s = f.period as f32 / f.sample_rate as f32;
    let mut load_percent = 0.0f32;
    let mut lost = None;
    while !shared.stop.load(Ordering::Acquire) {
        guard(&mut || {
            let mut busy_s = 0.0f32;
            if let Err(e) = cycle(&streams, engine, bufs, shared, &mut busy_s) {
                lost = Some(e);
            }
            let now = 100.0 * busy_s / period_s;
            // One-pole smoothing over ~16 periods: a steady figure to read, still quick to follow.
            load_percent += (now - load_percent) * (1.0 / 16.0);
            shared.stats.set_dsp_load(load_percent);
            shared.stats.tick();
        });
        if let Some(e) = lost {
            return Outcome::Lost(e);
        }
    }
    Outcome::Stopped
}

/// One period. `Err` only for errors recovery cannot handle. `busy_s` gets the time spent computing
/// (conversions and the engine), not the time blocked in ALSA's read and write.
fn cycle(
    s: &Streams,
    engine: &mut Engine,
    bufs: &mut Buffers,
    shared: &Shared,
    busy_s: &mut f32,
) -> Result<(), ::alsa::Error> {
    let period = s.period;
    if let Some((capture, io, _)) = &s.capture {
        // A read that ends early (the `file` plugin at the end of its `infile`) leaves silence.
        bufs.capture_bytes.fill(0);
        let frame_bytes = bufs.capture_bytes.len() / period;
        let mut got = 0;
        while got < period {
            match io.readi(&mut bufs.capture_bytes[got * frame_bytes..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return s.recover(capture, e, &bufs.silence, &shared.stats),
            }
        }
    }

    let started = Instant::now();
    if let Some((_, _, fmt)) = &s.capture {
        deinterleave(&bufs.capture_bytes, *fmt, &mut bufs.inputs);
    }
    {
        let (n_in, n_out) = (bufs.inputs.len(), bufs.outputs.len());
        let mut ins: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
        for (slot, b) in ins.iter_mut().zip(&bufs.inputs) {
            *slot = b;
        }
        let mut outs: [&mut [f32]; MAX_CHANNELS] = Default::default();
        for (slot, b) in outs.iter_mut().zip(bufs.outputs.iter_mut()) {
            *slot = b;
        }
        engine.process(&ins[..n_in], &mut outs[..n_out]);
    }
    interleave(&bufs.outputs, s.play_format, &mut bufs.playback_bytes);
    *busy_s = started.elapsed().as_secs_f32();

    let frame_bytes = bufs.playback_bytes.len() / period;
    let mut done = 0;
    while done < period {
        let result = match shared.inject.load(Ordering::Relaxed) {
            0 => s.play_io.writei(&bufs.playback_bytes[done * frame_bytes..]),
            errno => {
                shared.inject.store(0, Ordering::Relaxed);
                Err(::alsa::Error::new("snd_pcm_writei", errno))
            }
        };
        match result {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => return s.recover(s.playback, e, &bufs.silence, &shared.stats),
        }
    }
    Ok(())
}

/// Device samples (interleaved, `fmt`) to the engine's channel buffers. Integers scale by 1/2^(bits-1).
fn deinterleave(bytes: &[u8], fmt: SampleFormat, channels: &mut [Vec<f32>]) {
    let n = channels.len();
    if n == 0 {
        return;
    }
    let bps = fmt.bytes();
    for (i, frame) in bytes.chunks_exact(bps * n).enumerate() {
        for (c, sample) in frame.chunks_exact(bps).enumerate() {
            channels[c][i] = match fmt {
                SampleFormat::F32 => f32::from_ne_bytes([sample[0], sample[1], sample[2], sample[3]]),
                SampleFormat::S32 => {
                    (i32::from_ne_bytes([sample[0], sample[1], sample[2], sample[3]]) as f64 / 2_147_483_648.0) as f32
                }
                SampleFormat::S16 => i16::from_ne_bytes([sample[0], sample[1]]) as f32 / 32_768.0,
            };
        }
    }
}

/// The engine's channel buffers to device samples. Integers: clamped to ±1, scaled by 2^(bits-1) − 1
/// and rounded, so full scale maps to the largest code and the scale is symmetric.
fn interleave(channels: &[Vec<f32>], fmt: SampleFormat, bytes: &mut [u8]) {
    let n = channels.len();
    let bps = fmt.bytes();
    for (i, frame) in bytes.chunks_exact_mut(bps * n).enumerate() {
        for (c, sample) in frame.chunks_exact_mut(bps).enumerate() {
            let x = channels[c][i];
            match fmt {
                SampleFormat::F32 => sample.copy_from_slice(&x.to_ne_bytes()),
                SampleFormat::S32 => {
                    let v = (x.clamp(-1.0, 1.0) as f64 * 2_147_483_647.0).round() as i32;
                    sample.copy_from_slice(&v.to_ne_bytes());
                }
                SampleFormat::S16 => {
                    let v = (x.clamp(-1.0, 1.0) * 32_767.0).round() as i16;
                    sample.copy_from_slice(&v.to_ne_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_formats_round_trip_within_one_code() {
        let xs = [0.0f32, 0.5, -0.5, 1.0, -1.0, 0.123_456, 2.0, -2.0];
        for fmt in [SampleFormat::F32, SampleFormat::S32, SampleFormat::S16] {
            let chans = vec![xs.to_vec(), xs.iter().map(|x| -x).collect::<Vec<_>>()];
            let mut bytes = vec![0u8; xs.len() * 2 * fmt.bytes()];
            interleave(&chans, fmt, &mut bytes);
            let mut back = vec![vec![0.0f32; xs.len()]; 2];
            deinterleave(&bytes, fmt, &mut back);
            let code = match fmt {
                SampleFormat::F32 => 0.0,
                SampleFormat::S32 => 1.0 / 2_147_483_648.0 * 2.0,
                SampleFormat::S16 => 1.0 / 32_768.0 * 1.5,
            };
            for c in 0..2 {
                for (x, y) in chans[c].iter().zip(&back[c]) {
                    // Float passes through as it is; integers clip at full scale.
                    let want = if fmt == SampleFormat::F32 { *x } else { x.clamp(-1.0, 1.0) };
                    assert!((want - y).abs() <= code + 1e-7, "{fmt:?}: {want} came back as {y}");
                }
            }
        }
    }
}

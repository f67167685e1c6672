//! Closed-loop loudness controller (node kind `"loudness"`): a slowly moving gain that brings a
//! programme to a target loudness (EBU R128 / BS.1770-4 LUFS), meant to sit before a true-peak limiter.
//!
//! Control law (evaluated every 100 ms sub-block `k`; the gain itself moves every sample):
//!
//! 1. Measurement: the input's K-weighted power per 100 ms sub-block, `P_k` (BS.1770-4, via
//!    [`crate::loudness::kweight::KWeightedPower`]; the meter's code, not a copy).
//! 2. Pause gate: sub-block `k` is *active* when `L(P_k) >= -70 LUFS` (BS.1770's absolute gate) and
//!    `L(P_k) >= L_in - gate_lu`, where `L_in` is the current windowed input loudness (a relative gate
//!    like BS.1770's, but against the recent programme, so quiet programme is not mistaken for a pause).
//!    Inactive sub-blocks freeze the gain and the integrator and are left out of every window. Because
//!    the window only ever holds active sub-blocks, after a pause it still describes the programme before
//!    the pause, so the gain resumes where it stopped: there is no jump at the restart.
//! 3. Feed-forward (open loop, as in broadcast loudness processors and in the "loudness normalisation by
//!    gating" of EBU R128 s1, i.e. gain = target − measured): `G_ff = T − L_in`, with `L_in` the mean
//!    power of the last `window_s` of active sub-blocks.
//! 4. Integral trim (closed loop): `L_out` is the gated loudness of the *output* over its last 30 s of
//!    active 400 ms blocks (BS.1770-4 relative gate −10 LU); `trim += (T − L_out) · Δt / τ` with
//!    `τ = 30 s`, clamped to ±6 dB, and not integrated further while the gain sits at a limit
//!    (anti-windup). It removes the steady bias between the windowed, ungated feed-forward measure and the
//!    gated integrated loudness R128 specifies. A classic PI arrangement (Åström & Murray, *Feedback
//!    Systems*, ch. 10–11: feed-forward plus integral action, integrator clamping for anti-windup); τ is
//!    kept well above the 30 s measurement window so the loop stays non-oscillatory.
//! 5. Gain target `G = clamp(G_ff + trim, −max_cut_db, +max_gain_db)`. The applied gain (dB) moves
//!    towards it at no more than `slew_db_per_s`, on a 32-sample grid with the linear gain interpolated
//!    inside each grid step (at 3 dB/s a grid step is 0.002 dB: inaudible, and bit-identical for any
//!    block size because the grid counter carries across blocks).
//!
//! Latency: none (the measurement looks only at the past).

use crate::loudness::gating::{PowerRing, RING};
use crate::loudness::kweight::{power_to_lufs, KWeightedPower};
use crate::loudness::{bs1770_weights, subblock_frames};
use crate::param::{KindDescriptor, MeterDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;

pub const PARAM_TARGET_LUFS: ParamId = ParamId(0);
pub const PARAM_WINDOW_S: ParamId = ParamId(1);
pub const PARAM_MAX_GAIN_DB: ParamId = ParamId(2);
pub const PARAM_MAX_CUT_DB: ParamId = ParamId(3);
pub const PARAM_SLEW_DB_PER_S: ParamId = ParamId(4);
pub const PARAM_GATE_LU: ParamId = ParamId(5);

/// Frames per gain-ramp grid step.
const GRID: usize = 32;
/// Most channels a controller handles (stack arrays for the output measurement).
pub const MAX_CHANNELS: usize = 16;
/// Integral trim time constant (s) and limit (dB).
const TRIM_TAU_S: f64 = 30.0;
const TRIM_LIMIT_DB: f64 = 6.0;
/// Output 400 ms blocks the integrator's gated loudness spans (30 s at 10 per second).
const LONG_BLOCKS: usize = RING;
/// Active output blocks needed before the integrator starts (3 s).
const TRIM_MIN_BLOCKS: u64 = 30;
const ABSOLUTE_GATE_LUFS: f64 = -70.0;

static PARAMS: [ParamDescriptor; 6] = [
    ParamDescriptor {
        id: PARAM_TARGET_LUFS,
        key: "target_lufs",
        name: "Target loudness",
        unit: Unit::Lufs,
        min: -36.0,
        max: -5.0,
        default: -23.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Integrated loudness the output is steered to (the gain slews there at slew_db_per_s).",
    },
    ParamDescriptor {
        id: PARAM_WINDOW_S,
        key: "window_s",
        name: "Measurement window",
        unit: Unit::Seconds,
        min: 0.4,
        max: 30.0,
        default: 3.0,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc: "Length of programme (pauses excluded) the input loudness is averaged over: 0.4 momentary, 3 short-term.",
    },
    ParamDescriptor {
        id: PARAM_MAX_GAIN_DB,
        key: "max_gain_db",
        name: "Maximum boost",
        unit: Unit::Db,
        min: 0.0,
        max: 30.0,
        default: 12.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Largest gain the controller applies.",
    },
    ParamDescriptor {
        id: PARAM_MAX_CUT_DB,
        key: "max_cut_db",
        name: "Maximum cut",
        unit: Unit::Db,
        min: 0.0,
        max: 40.0,
        default: 24.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Largest attenuation the controller applies (a positive number of dB).",
    },
    ParamDescriptor {
        id: PARAM_SLEW_DB_PER_S,
        key: "slew_db_per_s",
        name: "Slew rate",
        unit: Unit::DbPerSecond,
        min: 0.1,
        max: 60.0,
        default: 3.0,
        scale: Scale::Log,
        smoothing: Smoothing::None,
        doc: "Fastest the gain may change.",
    },
    ParamDescriptor {
        id: PARAM_GATE_LU,
        key: "gate_lu",
        name: "Pause gate",
        unit: Unit::Lu,
        min: 6.0,
        max: 40.0,
        default: 20.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "100 ms stretches this far below the windowed input loudness (or below -70 LUFS) freeze the gain.",
    },
];

static METERS: [MeterDescriptor; 3] = [
    MeterDescriptor { key: "gain_db", name: "Gain", unit: Unit::Db, per_band: false },
    MeterDescriptor { key: "input_lufs", name: "Input loudness (window)", unit: Unit::Lufs, per_band: false },
    MeterDescriptor { key: "output_lufs", name: "Output loudness (window)", unit: Unit::Lufs, per_band: false },
];

/// The `"loudness"` kind.
pub static DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "loudness",
    doc: "Slow closed-loop gain steering the programme to a target loudness (EBU R128), frozen in pauses.",
    params: &PARAMS,
    band_params: &[],
    meters: &METERS,
};

/// Parameter values, in descriptor units.
#[derive(Clone, Copy, Debug)]
struct Settings {
    target_lufs: f64,
    window_s: f64,
    max_gain_db: f64,
    max_cut_db: f64,
    slew_db_per_s: f64,
    gate_lu: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            target_lufs: PARAMS[0].default as f64,
            window_s: PARAMS[1].default as f64,
            max_gain_db: PARAMS[2].default as f64,
            max_cut_db: PARAMS[3].default as f64,
            slew_db_per_s: PARAMS[4].default as f64,
            gate_lu: PARAMS[5].default as f64,
        }
    }
}

/// Control state updated once per 100 ms sub-block.
#[derive(Clone, Debug)]
struct Control {
    /// Active input sub-block powers (the feed-forward window).
    input: PowerRing,
    /// Output sub-block powers of the same active sub-blocks (the output meter's window).
    output: PowerRing,
    /// Every output sub-block (active or not), to form 400 ms blocks.
    output_all: PowerRing,
    /// Active output 400 ms block powers (the integrator's gated loudness).
    output_long: PowerRing,
    trim_db: f64,
    /// Gain the ramp heads for.
    desired_db: f64,
    /// Whether the last sub-block was a pause (gain frozen).
    frozen: bool,
}

impl Control {
    fn new() -> Self {
        Self {
            input: PowerRing::new(),
            output: PowerRing::new(),
            output_all: PowerRing::new(),
            output_long: PowerRing::new(),
            trim_db: 0.0,
            desired_db: 0.0,
            frozen: true,
        }
    }

    fn window_blocks(s: &Settings) -> usize {
        ((s.window_s * 10.0).round() as usize).clamp(4, RING)
    }

    fn input_lufs(&self, s: &Settings) -> f64 {
        power_to_lufs(self.input.mean_recent(Self::window_blocks(s)))
    }

    fn output_lufs(&self, s: &Settings) -> f64 {
        power_to_lufs(self.output.mean_recent(Self::window_blocks(s)))
    }

    /// One sub-block: input power `p_in`, output power `p_out`, the gain now applied `gain_db`.
    fn update(&mut self, s: &Settings, p_in: f64, p_out: f64, gain_db: f64) {
        self.output_all.push(p_out);
        let l = power_to_lufs(p_in);
        let l_win = self.input_lufs(s);
        let relative = if self.input.filled() > 0 { l_win - s.gate_lu } else { f64::NEG_INFINITY };
        let active = l.is_finite() && l >= ABSOLUTE_GATE_LUFS && l >= relative;
        self.frozen = !active;
        if !active {
            // Hold the gain where it is now, not where it was heading.
            self.desired_db = gain_db;
            return;
        }
        self.input.push(p_in);
        self.output.push(p_out);
        self.output_long.push(self.output_all.mean(4));
        let ff = s.target_lufs - self.input_lufs(s);
        let (lo, hi) = (-s.max_cut_db, s.max_gain_db);
        if self.output_long.filled() >= TRIM_MIN_BLOCKS {
            let l_out = power_to_lufs(self.output_long.gated_mean_recent(LONG_BLOCKS, -10.0));
            if l_out.is_finite() {
                let err = s.target_lufs - l_out;
                let unclamped = ff + self.trim_db;
                // Anti-windup: no further integration into a limit.
                let pushing_into_limit = (unclamped >= hi && err > 0.0) || (unclamped <= lo && err < 0.0);
                if !pushing_into_limit {
                    self.trim_db = (self.trim_db + err * 0.1 / TRIM_TAU_S).clamp(-TRIM_LIMIT_DB, TRIM_LIMIT_DB);
                }
            }
        }
        let g = (ff + self.trim_db).clamp(lo, hi);
        self.desired_db = if g.is_finite() { g } else { gain_db };
    }
}

/// The gain ramp: dB at grid points, linear gain interpolated between them.
#[derive(Clone, Copy, Debug)]
struct Ramp {
    /// Gain (dB) at the end of the current grid step.
    db: f64,
    /// Linear gains at the start and end of the current grid step.
    g0: f64,
    g1: f64,
    /// Frames done in the current grid step (`GRID` = start a new one).
    phase: usize,
}

impl Ramp {
    fn new() -> Self {
        Self { db: 0.0, g0: 1.0, g1: 1.0, phase: GRID }
    }

    /// Starts the next grid step towards `target_db`, moving at most `max_step_db`.
    fn next_step(&mut self, target_db: f64, max_step_db: f64) {
        let step = (target_db - self.db).clamp(-max_step_db, max_step_db);
        self.db += step;
        self.g0 = self.g1;
        self.g1 = 10f64.powf(self.db / 20.0);
        self.phase = 0;
    }
}

/// Loudness controller node: [`Processor`] of kind `"loudness"`.
#[derive(Clone, Debug)]
pub struct LoudnessControl {
    channels: usize,
    sample_rate: f64,
    settings: Settings,
    front_in: KWeightedPower,
    front_out: KWeightedPower,
    control: Control,
    ramp: Ramp,
}

impl LoudnessControl {
    /// A controller for `channels` channels (at most [`MAX_CHANNELS`]) with BS.1770 weights.
    pub fn new(channels: usize) -> Self {
        let channels = channels.clamp(1, MAX_CHANNELS);
        let w = bs1770_weights(channels);
        let sr = 48_000.0;
        Self {
            channels,
            sample_rate: sr,
            settings: Settings::default(),
            front_in: KWeightedPower::new(&w, sr, subblock_frames(sr), false),
            front_out: KWeightedPower::new(&w, sr, subblock_frames(sr), false),
            control: Control::new(),
            ramp: Ramp::new(),
        }
    }

    /// Gain applied at the end of the last processed sample's grid step (dB).
    pub fn gain_db(&self) -> f64 {
        self.ramp.db
    }

    /// Windowed input loudness over active sub-blocks (LUFS).
    pub fn input_lufs(&self) -> f64 {
        self.control.input_lufs(&self.settings)
    }

    /// Windowed output loudness over the same sub-blocks (LUFS).
    pub fn output_lufs(&self) -> f64 {
        self.control.output_lufs(&self.settings)
    }

    /// Whether the gain is frozen (the last sub-block was a pause).
    pub fn frozen(&self) -> bool {
        self.control.frozen
    }
}

impl Processor for LoudnessControl {
    fn descriptor(&self) -> &'static KindDescriptor {
        &DESCRIPTOR
    }

    fn prepare(&mut self, sample_rate: f64, _max_block: usize) {
        let sr = if sample_rate.is_finite() && sample_rate > 0.0 { sample_rate } else { 48_000.0 };
        self.sample_rate = sr;
        let w = bs1770_weights(self.channels);
        self.front_in = KWeightedPower::new(&w, sr, subblock_frames(sr), false);
        self.front_out = KWeightedPower::new(&w, sr, subblock_frames(sr), false);
        self.reset();
    }

    fn reset(&mut self) {
        self.front_in.reset();
        self.front_out.reset();
        self.control = Control::new();
        self.ramp = Ramp::new();
    }

    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = DESCRIPTOR.validate(id, value)? as f64;
        let s = &mut self.settings;
        match id {
            PARAM_TARGET_LUFS => s.target_lufs = v,
            PARAM_WINDOW_S => s.window_s = v,
            PARAM_MAX_GAIN_DB => s.max_gain_db = v,
            PARAM_MAX_CUT_DB => s.max_cut_db = v,
            PARAM_SLEW_DB_PER_S => s.slew_db_per_s = v,
            PARAM_GATE_LU => s.gate_lu = v,
            _ => return Err(ParamError::UnknownParam(id)),
        }
        // Limits apply at once to where the gain is heading (the slew still applies on the way).
        let c = &mut self.control;
        c.desired_db = c.desired_db.clamp(-s.max_cut_db, s.max_gain_db);
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        let s = &self.settings;
        Some(match id {
            PARAM_TARGET_LUFS => s.target_lufs,
            PARAM_WINDOW_S => s.window_s,
            PARAM_MAX_GAIN_DB => s.max_gain_db,
            PARAM_MAX_CUT_DB => s.max_cut_db,
            PARAM_SLEW_DB_PER_S => s.slew_db_per_s,
            PARAM_GATE_LU => s.gate_lu,
            _ => return None,
        } as f32)
    }

    fn channels(&self) -> (usize, usize) {
        (self.channels, self.channels)
    }

    fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let n_ch = self.channels.min(inputs.len()).min(outputs.len());
        let frames_in = inputs.iter().take(n_ch).map(|c| c.len()).min();
        let frames_out = outputs.iter().take(n_ch).map(|c| c.len()).min();
        let frames = frames_in.unwrap_or(0).min(frames_out.unwrap_or(0));
        for out in outputs.iter_mut().skip(n_ch) {
            out.fill(0.0);
        }
        let block_len = self.front_in.block_len();
        let max_step_db = self.settings.slew_db_per_s * GRID as f64 / self.sample_rate;
        let mut done = 0;
        while done < frames {
            // Segments end at sub-block boundaries, so a control update only affects later samples.
            let n = (block_len - self.front_in.position()).min(frames - done);
            // Gain.
            let mut ramp = self.ramp;
            for i in 0..n {
                if ramp.phase == GRID {
                    let target = if self.control.frozen { ramp.db } else { self.control.desired_db };
                    ramp.next_step(target, max_step_db);
                }
                ramp.phase += 1;
                let g = ramp.g0 + (ramp.g1 - ramp.g0) * (ramp.phase as f64 / GRID as f64);
                for ch in 0..n_ch {
                    let x = inputs[ch][done + i];
                    let x = if x.is_finite() { x } else { 0.0 };
                    // Clamped so a huge finite input times a boost cannot overflow to infinity.
                    outputs[ch][done + i] = (x as f64 * g).clamp(-(f32::MAX as f64), f32::MAX as f64) as f32;
                }
            }
            self.ramp = ramp;
            // Measurement of this segment, in and out.
            let mut ins: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            for (d, c) in ins.iter_mut().zip(inputs.iter().take(n_ch)) {
                *d = &c[done..done + n];
            }
            let mut p_in = None;
            self.front_in.process(&ins[..n_ch], |p| p_in = Some(p));
            let mut outs: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            for (d, c) in outs.iter_mut().zip(outputs.iter().take(n_ch)) {
                *d = &c[done..done + n];
            }
            let mut p_out = None;
            self.front_out.process(&outs[..n_ch], |p| p_out = Some(p));
            if let (Some(pi), Some(po)) = (p_in, p_out) {
                self.control.update(&self.settings, pi, po, self.ramp.db);
            }
            done += n;
        }
        if !(self.ramp.db.is_finite() && self.control.trim_db.is_finite() && self.control.desired_db.is_finite()) {
            self.control = Control::new();
            self.ramp = Ramp::new();
        }
    }

    fn meter(&self, index: usize, _band: usize) -> f32 {
        (match index {
            0 => self.gain_db(),
            1 => self.input_lufs(),
            2 => self.output_lufs(),
            _ => f64::NAN,
        }) as f32
    }
}

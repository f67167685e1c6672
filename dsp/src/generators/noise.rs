//! Seeded white and pink noise, and the `noise` node.
//!
//! - Random numbers: SplitMix64 (G. Steele, D. Lea, C. Flood, "Fast splittable pseudorandom number
//!   generators", OOPSLA 2014): one add and a 64-bit mix per sample, passes BigCrush, and any seed
//!   (including 0) starts a full-period stream, so a seed fully determines the output.
//! - White: uniform in `[-√3, √3)`, i.e. unit RMS with a bounded peak (+4.77 dB over RMS).
//! - Pink: Paul Kellet's "refined" pinking filter (musicdsp.org archive, "Filter to make pink noise from
//!   white", 1999): six one-pole sections plus a direct path that follow −3.01 dB/octave within
//!   ±0.05 dB above 9.2 Hz at 44.1 kHz. At other rates each pole `p` is mapped to `p^(44100/fs)`
//!   (same corner frequency in Hz) and its gain scaled to keep the section's DC gain, so the
//!   −3 dB/octave region stays where it is in Hz.

use super::{block_len, fan_out, LEVEL_MIN_DB, LEVEL_SMOOTHING};
use crate::level::db_to_gain;
use crate::param::{KindDescriptor, ParamDescriptor, ParamError, ParamId, Scale, Smoothing, Unit};
use crate::processor::Processor;
use crate::smoother::Smoother;

/// Noise color, by choice index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseColor {
    White,
    Pink,
}

/// SplitMix64 step (Steele, Lea & Flood 2014).
#[inline(always)]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in `[-√3, √3)` (unit variance) from the top 53 bits.
#[inline(always)]
fn white_sample(state: &mut u64) -> f64 {
    const SCALE: f64 = 2.0 * 1.732_050_807_568_877_2 / (1u64 << 53) as f64;
    // Through i64: the value fits in 53 bits, and the signed conversion is one instruction on x86-64.
    ((splitmix64(state) >> 11) as i64) as f64 * SCALE - 1.732_050_807_568_877_2
}

/// Kellet's refined pinking filter (see the module doc), poles and gains for 44.1 kHz.
const KELLET_POLES: [f64; 5] = [0.99886, 0.99332, 0.96900, 0.86650, 0.55000];
const KELLET_GAINS: [f64; 5] = [0.055_517_9, 0.075_075_9, 0.153_852_0, 0.310_485_6, 0.532_952_2];
/// The sixth section: a pole near Nyquist that trims the top octave.
const KELLET_HF_POLE: f64 = -0.7616;
const KELLET_HF_GAIN: f64 = -0.016_898_0;
/// Direct path and one-sample-delayed path.
const KELLET_DIRECT: f64 = 0.5362;
const KELLET_DELAYED: f64 = 0.115_926;

/// Kellet's pinking filter with its poles mapped to the sample rate, normalised to unit RMS output
/// for unit-variance white input.
#[derive(Clone, Copy, Debug)]
pub struct PinkFilter {
    poles: [f64; 6],
    gains: [f64; 6],
    direct: f64,
    delayed: f64,
    state: [f64; 6],
    last_white: f64,
}

impl PinkFilter {
    /// The filter for `sample_rate`, scaled so that its output has unit RMS for unit-variance white
    /// input (the power gain is summed from the impulse response once here).
    pub fn new(sample_rate: f64) -> Self {
        let ratio = 44_100.0 / sample_rate;
        let mut poles = [0.0; 6];
        let mut gains = [0.0; 6];
        for i in 0..5 {
            let p = KELLET_POLES[i].powf(ratio);
            poles[i] = p;
            // Keep the section's DC gain g / (1 − p): the pink region is fixed in Hz, not in samples.
            gains[i] = KELLET_GAINS[i] * (1.0 - p) / (1.0 - KELLET_POLES[i]);
        }
        poles[5] = KELLET_HF_POLE;
        gains[5] = KELLET_HF_GAIN;
        let mut f =
            Self { poles, gains, direct: KELLET_DIRECT, delayed: KELLET_DELAYED, state: [0.0; 6], last_white: 0.0 };
        // Power gain = Σ h[n]². The slowest pole at 192 kHz is 0.99974 (time constant ~3.8k samples):
        // 2^19 samples leave a tail below 1e-50.
        let mut energy = 0.0;
        let mut probe = f;
        for n in 0..(1usize << 19) {
            let h = probe.tick(if n == 0 { 1.0 } else { 0.0 });
            energy += h * h;
        }
        let norm = 1.0 / energy.sqrt();
        for g in f.gains.iter_mut() {
            *g *= norm;
        }
        f.direct *= norm;
        f.delayed *= norm;
        f
    }

    /// One sample of pink noise for white input `w`.
    #[inline(always)]
    pub fn tick(&mut self, w: f64) -> f64 {
        let mut y = self.direct * w + self.delayed * self.last_white;
        for i in 0..6 {
            self.state[i] = self.poles[i] * self.state[i] + self.gains[i] * w;
            y += self.state[i];
        }
        self.last_white = w;
        y
    }

    /// Clears the filter memory.
    pub fn reset(&mut self) {
        self.state = [0.0; 6];
        self.last_white = 0.0;
    }

    /// Flushes subnormal state and resets state that is not finite.
    fn sanitize(&mut self) {
        if !(self.state.iter().all(|s| s.is_finite()) && self.last_white.is_finite()) {
            self.reset();
        }
        for s in self.state.iter_mut() {
            if s.abs() < 1e-30 {
                *s = 0.0;
            }
        }
    }
}

const P_COLOR: ParamId = ParamId(0);
const P_LEVEL: ParamId = ParamId(1);
const P_SEED: ParamId = ParamId(2);

/// Largest seed: integers up to 2^24 are exact in the `f32` parameter value.
const MAX_SEED: f32 = 16_777_215.0;

static NOISE_PARAMS: [ParamDescriptor; 3] = [
    ParamDescriptor {
        id: P_COLOR,
        key: "color",
        name: "Color",
        unit: Unit::Choice(&["white", "pink"]),
        min: 0.0,
        max: 1.0,
        default: 0.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "White (flat spectrum) or pink (−3.01 dB per octave, Kellet's filter).",
    },
    ParamDescriptor {
        id: P_LEVEL,
        key: "level_db",
        name: "Level",
        unit: Unit::Db,
        min: LEVEL_MIN_DB,
        max: 0.0,
        default: -20.0,
        scale: Scale::Linear,
        smoothing: LEVEL_SMOOTHING,
        doc: "RMS level in dB relative to full scale (white peaks 4.77 dB higher; pink's peaks are unbounded).",
    },
    ParamDescriptor {
        id: P_SEED,
        key: "seed",
        name: "Seed",
        unit: Unit::Scalar,
        min: 0.0,
        max: MAX_SEED,
        default: 1.0,
        scale: Scale::Linear,
        smoothing: Smoothing::None,
        doc: "Seed of the random sequence (fractions are dropped); a change restarts the sequence at once.",
    },
];

/// Descriptor of the `noise` kind.
pub static NOISE_DESCRIPTOR: KindDescriptor = KindDescriptor {
    kind: "noise",
    doc: "Seeded, deterministic white or pink noise.",
    params: &NOISE_PARAMS,
    band_params: &[],
    meters: &[],
};

/// The `noise` node.
pub struct Noise {
    channels: usize,
    color: NoiseColor,
    seed: u64,
    rng: u64,
    pink: PinkFilter,
    gain: Smoother,
    level_db: f32,
}

impl Noise {
    /// A noise node with `channels` identical outputs, at the descriptor's defaults.
    pub fn new(channels: usize) -> Self {
        let level_db = NOISE_PARAMS[1].default;
        let seed = NOISE_PARAMS[2].default as u64;
        Self {
            channels,
            color: NoiseColor::White,
            seed,
            rng: seed,
            pink: PinkFilter::new(48_000.0),
            gain: Smoother::new(LEVEL_SMOOTHING, db_to_gain(level_db)),
            level_db,
        }
    }
}

impl Processor for Noise {
    fn descriptor(&self) -> &'static KindDescriptor {
        &NOISE_DESCRIPTOR
    }

    fn prepare(&mut self, sample_rate: f64, _max_block: usize) {
        self.pink = PinkFilter::new(sample_rate);
        self.gain.prepare(sample_rate);
        self.reset();
    }

    fn reset(&mut self) {
        self.rng = self.seed;
        self.pink.reset();
        self.gain.reset(self.gain.target());
    }

    fn set_param(&mut self, id: ParamId, value: f32) -> Result<(), ParamError> {
        let v = NOISE_DESCRIPTOR.validate(id, value)?;
        match id {
            P_COLOR => self.color = if v >= 1.0 { NoiseColor::Pink } else { NoiseColor::White },
            P_LEVEL => {
                self.level_db = v;
                self.gain.set_target(db_to_gain(v));
            }
            P_SEED => {
                self.seed = v as u64;
                self.rng = self.seed;
            }
            _ => return Err(ParamError::UnknownParam(id)),
        }
        Ok(())
    }

    fn param(&self, id: ParamId) -> Option<f32> {
        match id {
            P_COLOR => Some(self.color as u8 as f32),
            P_LEVEL => Some(self.level_db),
            P_SEED => Some(self.seed as f32),
            _ => None,
        }
    }

    fn channels(&self) -> (usize, usize) {
        (0, self.channels)
    }

    fn process(&mut self, _inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let n = block_len(outputs);
        let Some(first) = outputs.first_mut() else { return };
        let out = &mut first[..n];
        let mut rng = self.rng;
        let moving = self.gain.is_smoothing();
        let g = self.gain.current() as f64;
        match (self.color, moving) {
            (NoiseColor::White, false) => {
                for y in out.iter_mut() {
                    *y = (white_sample(&mut rng) * g) as f32;
                }
            }
            (NoiseColor::Pink, false) => {
                let mut pink = self.pink;
                for y in out.iter_mut() {
                    *y = (pink.tick(white_sample(&mut rng)) * g) as f32;
                }
                self.pink = pink;
            }
            (color, true) => {
                for y in out.iter_mut() {
                    let w = white_sample(&mut rng);
                    let v = if color == NoiseColor::Pink { self.pink.tick(w) } else { w };
                    *y = (v * self.gain.next() as f64) as f32;
                }
            }
        }
        self.rng = rng;
        self.pink.sanitize();
        fan_out(outputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_has_unit_rms() {
        let mut s = 3u64;
        let n = 1 << 20;
        let ms: f64 = (0..n).map(|_| white_sample(&mut s).powi(2)).sum::<f64>() / n as f64;
        // Standard error of a mean square of uniform noise over 2^20 samples is ~0.9e-3 (relative).
        assert!((ms - 1.0).abs() < 4e-3, "{ms}");
    }

    #[test]
    fn pink_filter_is_normalised() {
        for sr in [8_000.0, 44_100.0, 192_000.0] {
            let mut f = PinkFilter::new(sr);
            let e: f64 = (0..(1 << 19)).map(|n| f.tick(if n == 0 { 1.0 } else { 0.0 }).powi(2)).sum();
            assert!((e - 1.0).abs() < 1e-9, "{sr}: {e}");
        }
    }
}

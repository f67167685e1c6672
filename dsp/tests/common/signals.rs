//! Deterministic test signals.

use std::f64::consts::PI;

/// Sine of `amp` (peak, linear) at `freq` Hz.
pub fn sine(freq: f64, amp: f64, sample_rate: f64, frames: usize) -> Vec<f32> {
    (0..frames).map(|n| (amp * (2.0 * PI * freq * n as f64 / sample_rate).sin()) as f32).collect()
}

/// Sine with a phase offset in radians.
pub fn sine_phase(freq: f64, amp: f64, phase: f64, sample_rate: f64, frames: usize) -> Vec<f32> {
    (0..frames).map(|n| (amp * (2.0 * PI * freq * n as f64 / sample_rate + phase).sin()) as f32).collect()
}

/// Small deterministic PRNG (xorshift64*), so tests need no crate and repeat exactly.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn bipolar(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.bipolar() * 0.5 + 0.5)
    }
}

/// White noise, uniform in [-amp, amp).
pub fn noise(seed: u64, amp: f64, frames: usize) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..frames).map(|_| (amp * r.bipolar()) as f32).collect()
}

/// Noise whose level jumps every `segment` frames (program-like dynamics for block-size tests).
pub fn bursty_noise(seed: u64, frames: usize, segment: usize) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let mut amp = 0.5;
    (0..frames)
        .map(|i| {
            if i % segment == 0 {
                amp = 10f64.powf(r.range(-40.0, 6.0) / 20.0);
            }
            (amp * r.bipolar()) as f32
        })
        .collect()
}

/// Amplitude of the `freq` Hz component of `x[range]` (a single-bin DFT; exact when the range holds
/// whole cycles).
pub fn amplitude_at(x: &[f32], freq: f64, sample_rate: f64, range: std::ops::Range<usize>) -> f64 {
    let (mut a, mut b) = (0.0, 0.0);
    for n in range.clone() {
        let w = 2.0 * PI * freq * n as f64 / sample_rate;
        a += x[n] as f64 * w.sin();
        b += x[n] as f64 * w.cos();
    }
    2.0 * a.hypot(b) / range.len() as f64
}

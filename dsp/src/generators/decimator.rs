//! The 2:1 decimation filter of the oversampled `tone` node.
//!
//! A linear-phase FIR lowpass designed by the window method with a Kaiser window (J. F. Kaiser, "Nonrecursive
//! digital filter design using the I0-sinh window function", Proc. IEEE ISCAS 1974; design formulas for β
//! and the length as in A. V. Oppenheim and R. W. Schafer, "Discrete-Time Signal Processing", 3rd ed.,
//! §7.6): passband to 0.4167 fs (20 kHz at 48 kHz), stopband from 0.5 fs, 80 dB attenuation → β = 7.857
//! and 124 taps at the doubled rate. Its whole transition band lies below the output Nyquist
//! frequency, so the harmonics the oscillator produces between fs/2 and fs are removed rather than
//! folded back: what aliases is only what the PolyBLEP oscillator itself folds at 2 fs, from harmonics
//! above 1.5 fs, where its residuals attenuate most.

/// Filter length (at the doubled rate). A multiple of 4 for the four-lane dot product.
pub const TAPS: usize = 124;
/// Output frequencies up to this fraction of the (output) sample rate pass (ripple < 0.001 dB).
pub const PASSBAND_EDGE: f64 = 20.0 / 48.0;
/// Stopband attenuation the design asks for, dB.
const ATTENUATION_DB: f64 = 80.0;

/// Modified Bessel function of the first kind, order 0, by its power series (converges fast for the
/// arguments of a Kaiser window, |x| < 20).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Decimates by two: takes two samples at 2 fs, returns one at fs. State carries across calls, so the
/// output does not depend on how the calls are grouped into blocks.
#[derive(Clone, Debug)]
pub struct Decimator {
    h: Vec<f64>,
    /// The last `TAPS` input samples, stored twice so that the window is always contiguous.
    buf: Vec<f64>,
    pos: usize,
}

impl Default for Decimator {
    fn default() -> Self {
        Self::new()
    }
}

impl Decimator {
    /// Designs the filter (allocates; not for the RT thread).
    pub fn new() -> Self {
        // Kaiser's β for the attenuation A > 50 dB (Oppenheim & Schafer eq. 7.62).
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        // Cutoff halfway through the transition band, in cycles per sample at the doubled rate.
        let fc = 0.5 * (PASSBAND_EDGE + 0.5) / 2.0;
        let mid = (TAPS - 1) as f64 / 2.0;
        let mut h: Vec<f64> = (0..TAPS)
            .map(|n| {
                let m = n as f64 - mid;
                let sinc = if m == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * m).sin() / (std::f64::consts::PI * m)
                };
                let r = m / mid;
                sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
            })
            .collect();
        // Unity gain at DC exactly.
        let sum: f64 = h.iter().sum();
        for c in h.iter_mut() {
            *c /= sum;
        }
        Self { h, buf: vec![0.0; 2 * TAPS], pos: 0 }
    }

    /// Clears the history.
    pub fn reset(&mut self) {
        self.buf.fill(0.0);
        self.pos = 0;
    }

    #[inline(always)]
    fn push(&mut self, x: f64) {
        // Flush what the filter cannot resolve (and denormals) so a silent oscillator decays to 0.
        let x = if x.abs() < 1e-30 || !x.is_finite() { 0.0 } else { x };
        self.buf[self.pos] = x;
        self.buf[self.pos + TAPS] = x;
        self.pos += 1;
        if self.pos == TAPS {
            self.pos = 0;
        }
    }

    /// Pushes two samples at the doubled rate (`a` first) and returns the output sample.
    #[inline(always)]
    pub fn push2(&mut self, a: f64, b: f64) -> f64 {
        self.push(a);
        self.push(b);
        // The window, oldest first; the impulse response is symmetric, so no reversal is needed.
        let w = &self.buf[self.pos..self.pos + TAPS];
        let mut acc = [0.0f64; 4];
        for (hc, wc) in self.h.chunks_exact(4).zip(w.chunks_exact(4)) {
            for i in 0..4 {
                acc[i] += hc[i] * wc[i];
            }
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }

    /// Magnitude response at `f_over_fs` (frequency as a fraction of the OUTPUT sample rate).
    pub fn magnitude(&self, f_over_fs: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * f_over_fs / 2.0;
        let (mut re, mut im) = (0.0, 0.0);
        for (n, &c) in self.h.iter().enumerate() {
            re += c * (w * n as f64).cos();
            im -= c * (w * n as f64).sin();
        }
        (re * re + im * im).sqrt()
    }

    /// Delay from input to output, in output samples.
    pub fn delay_samples(&self) -> f64 {
        (TAPS - 1) as f64 / 4.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meets_its_specification() {
        let d = Decimator::new();
        let db = |x: f64| 20.0 * x.log10();
        let mut worst_pass: f64 = 0.0;
        let mut worst_stop = f64::MIN;
        for i in 0..=2000 {
            let f = i as f64 / 2000.0; // 0 … fs (output rate): everything the doubled rate holds
            let m = db(d.magnitude(f));
            if f <= PASSBAND_EDGE {
                worst_pass = worst_pass.max(m.abs());
            } else if f >= 0.5 {
                worst_stop = worst_stop.max(m);
            }
        }
        // Kaiser designs meet the attenuation they are sized for to within ~1 dB; ripple δ = 1e-4
        // in the passband is 0.0009 dB.
        assert!(worst_pass < 0.002, "passband ripple {worst_pass} dB");
        assert!(worst_stop < -78.0, "stopband {worst_stop} dB");
    }

    #[test]
    fn passes_dc_and_delays_by_its_group_delay() {
        let mut d = Decimator::new();
        let mut y = 0.0;
        for _ in 0..200 {
            y = d.push2(1.0, 1.0);
        }
        assert!((y - 1.0).abs() < 1e-12);
        assert_eq!(d.delay_samples(), 30.75);
    }
}

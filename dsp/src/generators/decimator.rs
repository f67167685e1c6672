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

/// Filter length (at the doubled rate).
pub const TAPS: usize = 124;
/// Stored length: the taps padded with zeros (on the oldest side) to a multiple of the 16-lane dot
/// product.
const LEN: usize = 128;
const LANES: usize = 16;
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

/// Sums 16 lane accumulators in a fixed order (the same for every instruction set).
#[inline(always)]
fn reduce16(acc: &[f64; LANES]) -> f64 {
    let mut half = [0.0f64; LANES / 2];
    for i in 0..LANES / 2 {
        half[i] = acc[i] + acc[i + LANES / 2];
    }
    ((half[0] + half[4]) + (half[2] + half[6])) + ((half[1] + half[5]) + (half[3] + half[7]))
}

/// Dot product in 16 independent lanes: lane `i` accumulates elements `i, i + 16, …`, so the adds do
/// not form one long dependency chain. Separate multiply and add (no FMA), so the portable, SSE2 and
/// AVX versions give the same bits.
#[inline(always)]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn dot16(h: &[f64], w: &[f64]) -> f64 {
    let mut acc = [0.0f64; LANES];
    for (hc, wc) in h.chunks_exact(LANES).zip(w.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += hc[i] * wc[i];
        }
    }
    reduce16(&acc)
}

/// [`dot16`] with SSE2 (baseline on x86-64): 8 registers of 2 lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn dot16_sse2(h: &[f64], w: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let n = h.len().min(w.len()) / LANES * LANES;
    // SAFETY: SSE2 is part of the x86-64 baseline; every load reads 2 f64 at `c + 2r <= n - 2`, inside
    // both slices (n is at most their common length, rounded down to whole chunks).
    unsafe {
        let mut acc = [_mm_setzero_pd(); 8];
        let mut c = 0;
        while c < n {
            for (r, a) in acc.iter_mut().enumerate() {
                let x = _mm_loadu_pd(h.as_ptr().add(c + 2 * r));
                let y = _mm_loadu_pd(w.as_ptr().add(c + 2 * r));
                *a = _mm_add_pd(*a, _mm_mul_pd(x, y));
            }
            c += LANES;
        }
        let mut lanes = [0.0f64; LANES];
        for (r, a) in acc.iter().enumerate() {
            _mm_storeu_pd(lanes.as_mut_ptr().add(2 * r), *a);
        }
        reduce16(&lanes)
    }
}

/// [`dot16`] with AVX: 4 registers of 4 lanes. Call only when the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn dot16_avx(h: &[f64], w: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    let n = h.len().min(w.len()) / LANES * LANES;
    // SAFETY: the caller guarantees AVX; every load reads 4 f64 at `c + 4r <= n - 4`, inside both slices.
    unsafe {
        let mut acc = [_mm256_setzero_pd(); 4];
        let mut c = 0;
        while c < n {
            for (r, a) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_pd(h.as_ptr().add(c + 4 * r));
                let y = _mm256_loadu_pd(w.as_ptr().add(c + 4 * r));
                *a = _mm256_add_pd(*a, _mm256_mul_pd(x, y));
            }
            c += LANES;
        }
        let mut lanes = [0.0f64; LANES];
        for (r, a) in acc.iter().enumerate() {
            _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * r), *a);
        }
        reduce16(&lanes)
    }
}

/// Decimates by two: takes two samples at 2 fs, returns one at fs. State carries across calls, so the
/// output does not depend on how the calls are grouped into blocks.
#[derive(Clone, Debug)]
pub struct Decimator {
    /// Coefficients, `LEN` long: zeros, then the `TAPS` taps (symmetric, so oldest-first equals
    /// newest-first).
    h: Vec<f64>,
    /// The last `LEN` input samples, stored twice so that the window is always contiguous.
    buf: Vec<f64>,
    pos: usize,
    avx: bool,
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
        let mut padded = vec![0.0; LEN - TAPS];
        padded.extend_from_slice(&h);
        #[cfg(target_arch = "x86_64")]
        let avx = std::arch::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let avx = false;
        Self { h: padded, buf: vec![0.0; 2 * LEN], pos: 0, avx }
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
        self.buf[self.pos + LEN] = x;
        self.pos += 1;
        if self.pos == LEN {
            self.pos = 0;
        }
    }

    /// Pushes two samples at the doubled rate (`a` first) and returns the output sample.
    #[inline(always)]
    pub fn push2(&mut self, a: f64, b: f64) -> f64 {
        self.push(a);
        self.push(b);
        // The window, oldest first; the impulse response is symmetric, so no reversal is needed.
        let w = &self.buf[self.pos..self.pos + LEN];
        #[cfg(target_arch = "x86_64")]
        {
            if self.avx {
                // SAFETY: `avx` is true only when the CPU reports AVX (checked in `new`).
                return unsafe { dot16_avx(&self.h, w) };
            }
            dot16_sse2(&self.h, w)
        }
        #[cfg(not(target_arch = "x86_64"))]
        dot16(&self.h, w)
    }

    /// Magnitude response at `f_over_fs` (frequency as a fraction of the OUTPUT sample rate).
    pub fn magnitude(&self, f_over_fs: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * f_over_fs / 2.0;
        let (mut re, mut im) = (0.0, 0.0);
        for (n, &c) in self.h[LEN - TAPS..].iter().enumerate() {
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
    fn avx_and_portable_kernels_agree_bit_for_bit() {
        let h: Vec<f64> = (0..LEN).map(|i| ((i * 7919) % 1000) as f64 / 997.0 - 0.5).collect();
        let w: Vec<f64> = (0..LEN).map(|i| ((i * 104_729) % 1000) as f64 / 991.0 - 0.5).collect();
        let portable = dot16(&h, &w);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(portable.to_bits(), dot16_sse2(&h, &w).to_bits());
            if std::arch::is_x86_feature_detected!("avx") {
                // SAFETY: AVX was just detected.
                let avx = unsafe { dot16_avx(&h, &w) };
                assert_eq!(portable.to_bits(), avx.to_bits());
            }
        }
        let naive: f64 = h.iter().zip(&w).map(|(a, b)| a * b).sum();
        assert!((portable - naive).abs() < 1e-12);
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

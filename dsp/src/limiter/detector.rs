//! Block-wise true-peak detection with the BS.1770-4 interpolator, in SIMD lanes.
//!
//! [`crate::true_peak::TruePeak`] works one sample at a time and compiles to scalar code (52 scalar
//! multiply-adds per sample); the limiter runs it on every input and output sample, so it was the bulk
//! of the node's cost. This is the same filter — the Hann-windowed sinc of `12 F + 1` taps that
//! `TruePeak` uses (after libebur128), recomputed here with the identical formula because its table is
//! private — evaluated a block at a time with the four phases in one SSE register. Each phase sums its
//! taps in the same order with the same IEEE operations (multiply, then add; no FMA contraction), so
//! the result is bit-identical to `TruePeak::push` (checked in the tests below). That matters: the
//! limiter's bound is stated against exactly this measurement.

/// Taps per phase (13 at every rate: `12 F + 1` taps over `F` phases, zero-padded).
pub const TAPS: usize = 13;
/// Samples of history a block needs in front of it.
pub const HISTORY: usize = TAPS - 1;

/// The interpolator's table, tap-major with one lane per phase.
#[derive(Clone, Copy, Debug)]
pub struct Detector {
    h: [[f32; 4]; TAPS],
}

impl Detector {
    /// The BS.1770-4 interpolator for `sample_rate`: 4 phases below 96 kHz, 2 from 96 kHz (the unused
    /// lanes hold zeros and so never raise the maximum).
    pub fn new(sample_rate: f64) -> Self {
        let factor = crate::true_peak::factor_for(sample_rate);
        let taps = 12 * factor + 1;
        let mut h = [[0.0f32; 4]; TAPS];
        for j in 0..taps {
            // Same expression as `true_peak::Interpolator::new`, so the same f32 coefficients.
            let m = j as f64 - (taps - 1) as f64 / 2.0;
            let x = m * std::f64::consts::PI / factor as f64;
            let sinc = if m.abs() < 1e-9 { 1.0 } else { x.sin() / x };
            let window = 0.5 * (1.0 - (2.0 * std::f64::consts::PI * j as f64 / (taps - 1) as f64).cos());
            h[j / factor][j % factor] = (sinc * window) as f32;
        }
        Self { h }
    }

    /// `ext` holds [`HISTORY`] earlier samples followed by a block of `peak.len()` samples. For each
    /// block sample `i`, raises `peak[i]` to the largest |value| among the oversampled points that
    /// sample completes (what `TruePeak::push` returns for it).
    #[inline]
    pub fn max_into(&self, ext: &[f32], peak: &mut [f32]) {
        let n = peak.len().min(ext.len().saturating_sub(HISTORY));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86_64 baseline, so the target feature is always present.
        unsafe {
            self.max_into_sse(&ext[..n + HISTORY], &mut peak[..n]);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.max_into_scalar(&ext[..n + HISTORY], &mut peak[..n]);
        }
    }

    #[cfg(any(not(target_arch = "x86_64"), test))]
    fn max_into_scalar(&self, ext: &[f32], peak: &mut [f32]) {
        for (i, pk) in peak.iter_mut().enumerate() {
            let mut acc = [0.0f32; 4];
            for (k, hk) in self.h.iter().enumerate() {
                let x = ext[i + HISTORY - k];
                for p in 0..4 {
                    acc[p] += hk[p] * x;
                }
            }
            *pk = acc.iter().fold(*pk, |m, &y| m.max(y.abs()));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse2")]
    fn max_into_sse(&self, ext: &[f32], peak: &mut [f32]) {
        use std::arch::x86_64::*;
        let mut h = [_mm_setzero_ps(); TAPS];
        for (hv, hk) in h.iter_mut().zip(&self.h) {
            *hv = _mm_set_ps(hk[3], hk[2], hk[1], hk[0]);
        }
        let abs_mask = _mm_castsi128_ps(_mm_set1_epi32(0x7fff_ffff));
        for (i, pk) in peak.iter_mut().enumerate() {
            let window = &ext[i..i + TAPS];
            let mut acc = _mm_setzero_ps();
            // Tap k multiplies x[n - k], the newest sample first, as in `TruePeak::push`.
            for (k, hv) in h.iter().enumerate() {
                acc = _mm_add_ps(acc, _mm_mul_ps(*hv, _mm_set1_ps(window[TAPS - 1 - k])));
            }
            let a = _mm_and_ps(acc, abs_mask);
            let m = _mm_max_ps(a, _mm_movehl_ps(a, a));
            let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
            *pk = pk.max(_mm_cvtss_f32(m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::true_peak::TruePeak;

    #[test]
    fn bit_identical_to_true_peak() {
        for sr in [8_000.0, 44_100.0, 48_000.0, 96_000.0, 192_000.0] {
            let det = Detector::new(sr);
            let mut tp = TruePeak::new(sr);
            let mut seed = 7u32;
            let xs: Vec<f32> = (0..3000)
                .map(|i| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let r = (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                    r * if i % 500 < 250 { 1.0 } else { 1e4 }
                })
                .collect();
            let want: Vec<f32> = xs.iter().map(|&x| tp.push(x)).collect();
            let mut ext = vec![0.0f32; HISTORY];
            ext.extend_from_slice(&xs);
            let mut got = vec![0.0f32; xs.len()];
            det.max_into(&ext, &mut got);
            let mut scalar = vec![0.0f32; xs.len()];
            det.max_into_scalar(&ext, &mut scalar);
            for i in 0..xs.len() {
                assert_eq!(got[i].to_bits(), want[i].to_bits(), "{sr} Hz sample {i}");
                assert_eq!(scalar[i].to_bits(), want[i].to_bits(), "{sr} Hz sample {i} (scalar)");
            }
        }
    }
}

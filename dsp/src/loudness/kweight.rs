//! K-weighting (ITU-R BS.1770-4, Annex 1) for any sample rate, and the multi-channel front end that
//! turns audio into mean K-weighted power per fixed-length sub-block, with sample and true peaks.
//!
//! BS.1770-4 tabulates the two K-weighting biquads only at 48 kHz. Like libebur128
//! (`ebur128_init_filter` in `ebur128.c`, Jan Kokemüller, MIT), we derive them for any rate by the
//! bilinear transform (with frequency pre-warping, `K = tan(pi f0 / fs)`) of the analog prototypes whose
//! parameters reproduce the 48 kHz table: a high shelf (f0 = 1681.974450955533 Hz, G = +3.999843853973347
//! dB, Q = 0.7071752369554196) followed by a high-pass (f0 = 38.13547087602444 Hz, Q = 0.5003270373238773,
//! numerator `1 - 2 z^-1 + z^-2` left unnormalised as in the table).

use crate::biquad::Coeffs;
use crate::denormal::flush;
use crate::processor::all_finite;
use crate::true_peak::TruePeakPair;

/// Stage 1 of K-weighting: the head-related high shelf, for `sample_rate`.
pub fn shelf_coeffs(sample_rate: f64) -> Coeffs {
    let f0 = 1681.974450955533;
    let g_db = 3.999843853973347;
    let q = 0.7071752369554196;
    let k = (std::f64::consts::PI * f0 / sample_rate).tan();
    let vh = 10f64.powf(g_db / 20.0);
    let vb = vh.powf(0.4996667741545416);
    let a0 = 1.0 + k / q + k * k;
    Coeffs {
        b0: (vh + vb * k / q + k * k) / a0,
        b1: 2.0 * (k * k - vh) / a0,
        b2: (vh - vb * k / q + k * k) / a0,
        a1: 2.0 * (k * k - 1.0) / a0,
        a2: (1.0 - k / q + k * k) / a0,
    }
}

/// Stage 2 of K-weighting: the RLB high-pass, for `sample_rate`.
pub fn highpass_coeffs(sample_rate: f64) -> Coeffs {
    let f0 = 38.13547087602444;
    let q = 0.5003270373238773;
    let k = (std::f64::consts::PI * f0 / sample_rate).tan();
    let a0 = 1.0 + k / q + k * k;
    Coeffs { b0: 1.0, b1: -2.0, b2: 1.0, a1: 2.0 * (k * k - 1.0) / a0, a2: (1.0 - k / q + k * k) / a0 }
}

/// Loudness (LUFS) of a mean weighted power: BS.1770-4 eq. (2), `L = -0.691 + 10 log10(sum G_i z_i)`.
#[inline]
pub fn power_to_lufs(power: f64) -> f64 {
    if power > 0.0 {
        -0.691 + 10.0 * power.log10()
    } else {
        f64::NEG_INFINITY
    }
}

/// Inverse of [`power_to_lufs`].
#[inline]
pub fn lufs_to_power(lufs: f64) -> f64 {
    10f64.powf((lufs + 0.691) / 10.0)
}

/// Most frames the kernel handles at once: the size of the scratch used to replace non-finite input by
/// silence.
const CHUNK: usize = 512;
static ZEROS: [f32; CHUNK] = [0.0; CHUNK];

/// Filter state and accumulators of two channels processed in lanes (the second lane is silent for an
/// odd channel count).
#[derive(Clone, Debug)]
struct PairState {
    /// Transposed direct form II state: `[shelf s1, shelf s2, high-pass s1, high-pass s2]`, per lane.
    s: [[f64; 2]; 4],
    /// Sum of squared K-weighted samples in the current sub-block, per lane.
    energy: [f64; 2],
    sample_peak: [f32; 2],
    tp: TruePeakPair,
    /// Running max |oversampled value|, lanes as in [`TruePeakPair::push_max`].
    tp_peak: [f32; 8],
}

impl PairState {
    fn new(sample_rate: f64) -> Self {
        Self {
            s: [[0.0; 2]; 4],
            energy: [0.0; 2],
            sample_peak: [0.0; 2],
            tp: TruePeakPair::new(sample_rate),
            tp_peak: [0.0; 8],
        }
    }
}

/// Both K-weighting stages' coefficients in one place for the kernel.
#[derive(Clone, Copy, Debug)]
struct KCoeffs {
    shelf: Coeffs,
    hp: Coeffs,
}

/// `a * b + c`, fused (one rounding, and 4 instead of 8 cycles of latency on the biquads' recursive path)
/// when `FMA`; only instantiated with `FMA = true` inside `#[target_feature(enable = "fma")]` code.
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// One sub-block segment of one channel pair: K-weighting (transposed direct form II), energy, sample
/// peak and (if `TP`) true peak. Every lane does the same arithmetic in the same order whatever the
/// segment length, so results do not depend on how the signal is cut into blocks.
#[inline(always)]
fn kernel<const TP: bool, const FMA: bool>(st: &mut PairState, c: &KCoeffs, a: &[f32], b: &[f32]) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (sh, hp) = (c.shelf, c.hp);
    let mut s = st.s;
    let mut e = st.energy;
    let mut sp = st.sample_peak;
    let mut tpk = st.tp_peak;
    for i in 0..n {
        let x = [a[i], b[i]];
        for l in 0..2 {
            let xl = x[l] as f64;
            let y1 = madd::<FMA>(sh.b0, xl, s[0][l]);
            s[0][l] = madd::<FMA>(-sh.a1, y1, madd::<FMA>(sh.b1, xl, s[1][l]));
            s[1][l] = madd::<FMA>(-sh.a2, y1, sh.b2 * xl);
            let y2 = madd::<FMA>(hp.b0, y1, s[2][l]);
            s[2][l] = madd::<FMA>(-hp.a1, y2, madd::<FMA>(hp.b1, y1, s[3][l]));
            s[3][l] = madd::<FMA>(-hp.a2, y2, hp.b2 * y1);
            e[l] = madd::<FMA>(y2, y2, e[l]);
            sp[l] = sp[l].max(x[l].abs());
        }
        if TP {
            st.tp.push_max_with::<FMA>(x[0], x[1], &mut tpk);
        }
    }
    for lane in s.iter_mut() {
        for v in lane.iter_mut() {
            *v = flush(*v);
        }
    }
    st.s = s;
    st.energy = e;
    st.sample_peak = sp;
    st.tp_peak = tpk;
}

fn kernel_generic(st: &mut PairState, c: &KCoeffs, a: &[f32], b: &[f32], tp: bool) {
    if tp {
        kernel::<true, false>(st, c, a, b)
    } else {
        kernel::<false, false>(st, c, a, b)
    }
}

/// The same kernel compiled for AVX2 + FMA: the 8-lane true-peak taps become single fused AVX
/// instructions and the biquads' recursive path gets shorter. Fused rounding makes its readings differ
/// from the generic path's in the last bits (far below any tolerance); a meter uses one path for its
/// whole life, so its block-size invariance is unaffected.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(st: &mut PairState, c: &KCoeffs, a: &[f32], b: &[f32], tp: bool) {
    if tp {
        kernel::<true, true>(st, c, a, b)
    } else {
        kernel::<false, true>(st, c, a, b)
    }
}

/// Channel `idx`'s frames `start..start + n`, or silence for a missing channel; copied into `scratch` with
/// non-finite samples replaced by silence when there are any (so NaN never reaches filter state).
fn lane_input<'a>(
    inputs: &[&'a [f32]],
    idx: usize,
    n_ch: usize,
    start: usize,
    n: usize,
    scratch: &'a mut [f32; CHUNK],
) -> &'a [f32] {
    match inputs.get(idx) {
        Some(ch) if idx < n_ch => {
            let src = &ch[start..start + n];
            if all_finite(src) {
                src
            } else {
                for (d, &x) in scratch.iter_mut().zip(src) {
                    *d = if x.is_finite() { x } else { 0.0 };
                }
                &scratch[..n]
            }
        }
        _ => &ZEROS[..n],
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Multi-channel K-weighted power meter front end: calls back once per sub-block of `block_len` frames
/// with the channel-weighted mean square `sum_i G_i mean(y_i^2)` (BS.1770-4 eq. (2) before the log).
/// Also tracks sample peak and (optionally) true peak per channel. Allocates only in `new`.
#[derive(Clone, Debug)]
pub struct KWeightedPower {
    coeffs: KCoeffs,
    pairs: Vec<PairState>,
    weights: Vec<f64>,
    block_len: usize,
    pos: usize,
    true_peak: bool,
    avx2: bool,
    /// Two channels' sanitised copies (heap, allocated in `new`: zeroing 4 kB of stack on every call
    /// cost more than the kernel at 64-frame blocks).
    scratch: Box<[[f32; CHUNK]; 2]>,
}

impl KWeightedPower {
    /// `weights[i]` is channel `i`'s BS.1770 weight `G_i` (0 excludes it from the power, not from the
    /// peaks). `block_len` frames per sub-block (at least 1).
    pub fn new(weights: &[f64], sample_rate: f64, block_len: usize, true_peak: bool) -> Self {
        let n_pairs = weights.len().div_ceil(2).max(1);
        Self {
            coeffs: KCoeffs { shelf: shelf_coeffs(sample_rate), hp: highpass_coeffs(sample_rate) },
            pairs: (0..n_pairs).map(|_| PairState::new(sample_rate)).collect(),
            weights: weights.iter().map(|&w| if w.is_finite() && w > 0.0 { w } else { 0.0 }).collect(),
            block_len: block_len.max(1),
            pos: 0,
            true_peak,
            avx2: has_avx2(),
            scratch: Box::new([[0.0; CHUNK]; 2]),
        }
    }

    pub fn channels(&self) -> usize {
        self.weights.len()
    }

    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// Frames into the current sub-block.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Clears filter state, the partial sub-block and the peaks.
    pub fn reset(&mut self) {
        for p in self.pairs.iter_mut() {
            p.s = [[0.0; 2]; 4];
            p.energy = [0.0; 2];
            p.tp.reset();
        }
        self.pos = 0;
        self.reset_peaks();
    }

    /// Clears sample and true peaks only.
    pub fn reset_peaks(&mut self) {
        for p in self.pairs.iter_mut() {
            p.sample_peak = [0.0; 2];
            p.tp_peak = [0.0; 8];
        }
    }

    /// Largest |sample| seen on channel `ch` (linear).
    pub fn sample_peak(&self, ch: usize) -> f32 {
        self.pairs.get(ch / 2).map_or(0.0, |p| p.sample_peak[ch % 2])
    }

    /// Largest |oversampled value| seen on channel `ch` (linear); 0 when true peak is off.
    pub fn true_peak(&self, ch: usize) -> f32 {
        self.pairs.get(ch / 2).map_or(0.0, |p| {
            let (a, b) = TruePeakPair::split_peak(&p.tp_peak);
            if ch % 2 == 0 {
                a
            } else {
                b
            }
        })
    }

    /// Measures `inputs` (missing channels are silent; the shortest slice sets the length). Non-finite
    /// samples count as silence. `on_block` receives each completed sub-block's weighted mean square.
    pub fn process(&mut self, inputs: &[&[f32]], mut on_block: impl FnMut(f64)) {
        let n_ch = self.weights.len();
        let frames = inputs.iter().take(n_ch).map(|c| c.len()).min().unwrap_or(0);
        let scratch = &mut self.scratch;
        let mut done = 0;
        while done < frames {
            let n = CHUNK.min(frames - done).min(self.block_len - self.pos);
            for (p, st) in self.pairs.iter_mut().enumerate() {
                let (sa, sb) = scratch.split_at_mut(1);
                let a = lane_input(inputs, 2 * p, n_ch, done, n, &mut sa[0]);
                let b = lane_input(inputs, 2 * p + 1, n_ch, done, n, &mut sb[0]);
                #[cfg(target_arch = "x86_64")]
                if self.avx2 {
                    // SAFETY: `avx2` is true only when the CPU reported AVX2 and FMA at construction.
                    unsafe { kernel_avx2(st, &self.coeffs, a, b, self.true_peak) };
                    continue;
                }
                kernel_generic(st, &self.coeffs, a, b, self.true_peak);
            }
            self.pos += n;
            done += n;
            if self.pos == self.block_len {
                self.pos = 0;
                let mut power = 0.0;
                for (p, st) in self.pairs.iter_mut().enumerate() {
                    for l in 0..2 {
                        let w = self.weights.get(2 * p + l).copied().unwrap_or(0.0);
                        power += w * st.energy[l];
                    }
                    if !st.s.iter().flatten().all(|v| v.is_finite()) {
                        st.s = [[0.0; 2]; 4];
                    }
                    st.energy = [0.0; 2];
                }
                let power = power / self.block_len as f64;
                on_block(if power.is_finite() { power } else { 0.0 });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_bs1770_table_at_48k() {
        // BS.1770-4 Table 1 and Table 2 (48 kHz), given there to 14 decimals.
        let s = shelf_coeffs(48_000.0);
        let h = highpass_coeffs(48_000.0);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(s.b0, 1.53512485958697), "{}", s.b0);
        assert!(close(s.b1, -2.69169618940638), "{}", s.b1);
        assert!(close(s.b2, 1.19839281085285), "{}", s.b2);
        assert!(close(s.a1, -1.69065929318241), "{}", s.a1);
        assert!(close(s.a2, 0.73248077421585), "{}", s.a2);
        assert!(close(h.a1, -1.99004745483398), "{}", h.a1);
        assert!(close(h.a2, 0.99007225036621), "{}", h.a2);
    }

    #[test]
    fn unity_at_1k_any_rate() {
        // A 997 Hz-ish tone is near 0 dB through K-weighting at every rate (the shelf is only starting).
        for sr in [8_000.0, 44_100.0, 48_000.0, 96_000.0, 192_000.0] {
            let m = shelf_coeffs(sr).magnitude(1000.0, sr) * highpass_coeffs(sr).magnitude(1000.0, sr);
            let db = 20.0 * m.log10();
            // BS.1770 calibration: -0.691 dB offset cancels K-weighting's +0.691 dB at 997 Hz; 0.1 dB slack
            // covers 1000 vs 997 Hz and bilinear warping at 8 kHz.
            assert!((db - 0.691).abs() < 0.1, "{sr}: {db}");
        }
    }
}

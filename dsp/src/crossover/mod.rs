//! Linkwitz-Riley 4th-order crossover, 2 to 6 bands, whose bands sum to an allpass.
//!
//! Each split is an LR4 pair: two cascaded 2nd-order Butterworth sections per side (S. H. Linkwitz,
//! "Active Crossover Networks for Noncoincident Drivers", JAES 24(1), 1976; sections from R.
//! Bristow-Johnson's cookbook). With `D(s) = s² + √2 ωc s + ωc²`, `LP² + HP² = D(−s)/D(s)`, the
//! 2nd-order allpass with the Butterworth pole pair; the bilinear transform keeps that identity exactly.
//!
//! Topology: a chain (as in nih-plug's crossover plugin). Split 0 takes the input; every further split
//! takes the high side of the previous one:
//!
//! ```text
//! x ─ split0 ─┬─ LP → band 0 → AP(f1) … AP(f_{N-2})
//!             └─ HP ─ split1 ─┬─ LP → band 1 → AP(f2) … AP(f_{N-2})
//!                             └─ HP ─ …           └─ HP → band N-1
//! ```
//!
//! Four bands (the broadcast case) use a balanced tree instead, which is shallower and packs better into
//! lanes: split at `f1`; the low half through `AP(f2)`, the high half through `AP(f0)` (one four-lane
//! section); then the low half split at `f0` and the high half at `f2` side by side. The sum is the same
//! `AP(f0)·AP(f1)·AP(f2)`; band 0 is `LP(f1)²·AP(f2)·LP(f0)²` (an extra low-pass far above its band).
//!
//! In the chain, band `j` is compensated by the allpasses of all splits above `j+1` (J. A. D'Appolito, "Testing
//! Loudspeakers", 1998, on summing LR sections; the same scheme as nih-plug's allpass compensation), so
//! the sum of all bands is `AP(f0)·AP(f1)·…·AP(f_{N-2})`: magnitude exactly 1 for any frequencies, in
//! any order. All arithmetic is f64 (f32 coefficients limit flatness to ~4e-3 dB, see STACK.md).
//!
//! Split frequencies are clamped to `[MIN_SPLIT_HZ, 0.45 × Nyquist]`: above that the bilinear warping
//! squeezes the upper band into a sliver and the LR4 slopes no longer fit below Nyquist. Frequency
//! changes glide in the log domain over [`FREQ_GLIDE_MS`]; coefficients are recomputed every
//! [`COEFF_PERIOD`] samples while a glide runs (TDF-II state stays valid across small coefficient
//! steps, so nothing clicks).
//!
//! Speed: two channels run together in four f64 lanes (`[L, R] × [LP, HP]` for a split, two bands'
//! allpasses at once for the compensation), compiled once for any x86-64 and once for AVX2+FMA,
//! chosen at run time.

pub(crate) mod lanes;

use crate::biquad::{complex_mul, Coeffs, BUTTERWORTH_Q};
use crate::param::Smoothing;
use crate::smoother::Smoother;
use lanes::{Bq4, State4};

/// Band count built as a balanced tree instead of a chain (see the module doc).
pub const TREE_BANDS: usize = 4;
/// Most bands a crossover makes.
pub const MAX_BANDS: usize = 6;
/// Most split frequencies.
pub const MAX_SPLITS: usize = MAX_BANDS - 1;
/// Lowest split frequency used, in Hz.
pub const MIN_SPLIT_HZ: f64 = 10.0;
/// Highest split frequency as a fraction of the sample rate (0.45 × Nyquist).
pub const MAX_SPLIT_FRACTION: f64 = 0.45 * 0.5;
/// Time for a split frequency to glide to a new value.
pub const FREQ_GLIDE_MS: f32 = 50.0;
/// Samples between coefficient updates while a frequency glides.
pub const COEFF_PERIOD: usize = 32;
/// Allpass sections of four lanes for 6 bands: 10 band allpasses, two per section.
pub(crate) const MAX_AP_PAIRS: usize = 5;

/// One compensation section: band `a` through the allpass of split `sa` in lanes 0–1, band `b` through
/// split `sb` in lanes 2–3 (`b == MAX_BANDS`: a scratch slot, identity coefficients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ApPair {
    pub a: usize,
    pub sa: usize,
    pub b: usize,
    pub sb: usize,
}

/// Which allpasses go into which four-lane section for `bands` bands. Band `j` needs the allpasses of
/// splits `j+1 ..= bands-2`; their order does not matter (they commute), but two allpasses of one band
/// cannot share a section (they are in series). Greedy: always pair the two bands with the most left.
pub(crate) const fn ap_plan(bands: usize) -> ([ApPair; MAX_AP_PAIRS], usize) {
    let mut rem = [0usize; MAX_BANDS];
    let mut j = 0;
    while j + 2 < bands && j < MAX_BANDS {
        rem[j] = bands - 2 - j;
        j += 1;
    }
    let none = ApPair { a: MAX_BANDS, sa: 0, b: MAX_BANDS, sb: 0 };
    let mut plan = [none; MAX_AP_PAIRS];
    let mut n = 0;
    while n < MAX_AP_PAIRS {
        let (mut i1, mut i2) = (MAX_BANDS, MAX_BANDS);
        let mut k = 0;
        while k < MAX_BANDS {
            if rem[k] > 0 {
                if i1 == MAX_BANDS || rem[k] > rem[i1] {
                    i2 = i1;
                    i1 = k;
                } else if i2 == MAX_BANDS || rem[k] > rem[i2] {
                    i2 = k;
                }
            }
            k += 1;
        }
        if i1 == MAX_BANDS {
            break;
        }
        let sa = i1 + rem[i1];
        rem[i1] -= 1;
        let (b, sb) = if i2 == MAX_BANDS {
            (MAX_BANDS, 0)
        } else {
            let s = i2 + rem[i2];
            rem[i2] -= 1;
            (i2, s)
        };
        plan[n] = ApPair { a: i1, sa, b, sb };
        n += 1;
    }
    (plan, n)
}

/// Coefficients shared by every channel pair.
#[derive(Clone, Debug)]
pub(crate) struct Bank {
    /// Per split: LP in lanes 0–1, HP in lanes 2–3 (both LR4 sections use the same Butterworth pair).
    pub split: [Bq4; MAX_SPLITS],
    pub ap: [Bq4; MAX_AP_PAIRS],
}

/// Filter state of one channel pair.
#[derive(Clone, Debug, Default)]
pub(crate) struct PairState {
    /// Per split, the two cascaded sections.
    split: [[State4; 2]; MAX_SPLITS],
    ap: [State4; MAX_AP_PAIRS],
}

impl PairState {
    /// Flushes denormals; zeroes and reports non-finite state.
    pub fn sanitize(&mut self) -> bool {
        let mut ok = true;
        for s in self.split.iter_mut().flatten().chain(self.ap.iter_mut()) {
            ok &= lanes::sanitize(s);
        }
        ok
    }
}

/// One sample of two channels through a `B`-band crossover; returns `[band][channel]` (slot
/// `MAX_BANDS` is scratch).
#[inline(always)]
pub(crate) fn tick<const B: usize, const F: bool>(
    bank: &Bank,
    st: &mut PairState,
    x: [f64; 2],
) -> [[f64; 2]; MAX_BANDS + 1] {
    let mut band = [[0.0f64; 2]; MAX_BANDS + 1];
    if B == TREE_BANDS {
        let t = |c: &Bq4, st: &mut State4, v: [f64; 4]| lanes::tick::<F>(c, st, v);
        let [m_a, m_b] = &mut st.split[1];
        let v = t(&bank.split[1], m_b, t(&bank.split[1], m_a, [x[0], x[1], x[0], x[1]]));
        let v = t(&bank.ap[0], &mut st.ap[0], v);
        let [l_a, l_b] = &mut st.split[0];
        let lo = t(&bank.split[0], l_b, t(&bank.split[0], l_a, [v[0], v[1], v[0], v[1]]));
        let [h_a, h_b] = &mut st.split[2];
        let hi = t(&bank.split[2], h_b, t(&bank.split[2], h_a, [v[2], v[3], v[2], v[3]]));
        band[0] = [lo[0], lo[1]];
        band[1] = [lo[2], lo[3]];
        band[2] = [hi[0], hi[1]];
        band[3] = [hi[2], hi[3]];
        return band;
    }
    let mut hi = x;
    for s in 0..B - 1 {
        let v = [hi[0], hi[1], hi[0], hi[1]];
        let [s_a, s_b] = &mut st.split[s];
        let v = lanes::tick::<F>(&bank.split[s], s_a, v);
        let v = lanes::tick::<F>(&bank.split[s], s_b, v);
        band[s] = [v[0], v[1]];
        hi = [v[2], v[3]];
    }
    band[B - 1] = hi;
    let (plan, n) = const { ap_plan(B) };
    for p in 0..n {
        let ApPair { a, b, .. } = plan[p];
        let v = [band[a][0], band[a][1], band[b][0], band[b][1]];
        let v = lanes::tick::<F>(&bank.ap[p], &mut st.ap[p], v);
        band[a] = [v[0], v[1]];
        band[b] = [v[2], v[3]];
    }
    band
}

/// [`tick`] with explicit AVX2+FMA intrinsics (the same operations as `tick::<B, true>`), returning
/// each band's two channels in one 128-bit register; slots from `B` on are zero.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tick_avx_raw<const B: usize>(
    bank: &Bank,
    st: &mut PairState,
    x: [f64; 2],
) -> [std::arch::x86_64::__m128d; MAX_BANDS + 2] {
    use lanes::avx;
    let mut band = [avx::pair([0.0; 2]); MAX_BANDS + 2];
    if B == TREE_BANDS {
        let xx = avx::pair(x);
        let [m_a, m_b] = &mut st.split[1];
        let v = avx::tick(&bank.split[1], m_a, avx::join(xx, xx));
        let v = avx::tick(&bank.split[1], m_b, v);
        let v = avx::tick(&bank.ap[0], &mut st.ap[0], v);
        let (l, h) = (avx::lo(v), avx::hi(v));
        let [l_a, l_b] = &mut st.split[0];
        let lo = avx::tick(&bank.split[0], l_b, avx::tick(&bank.split[0], l_a, avx::join(l, l)));
        let [h_a, h_b] = &mut st.split[2];
        let hi = avx::tick(&bank.split[2], h_b, avx::tick(&bank.split[2], h_a, avx::join(h, h)));
        band[0] = avx::lo(lo);
        band[1] = avx::hi(lo);
        band[2] = avx::lo(hi);
        band[3] = avx::hi(hi);
        return band;
    }
    let mut hi = avx::pair(x);
    for s in 0..B - 1 {
        let v = avx::join(hi, hi);
        let [s_a, s_b] = &mut st.split[s];
        let v = avx::tick(&bank.split[s], s_a, v);
        let v = avx::tick(&bank.split[s], s_b, v);
        band[s] = avx::lo(v);
        hi = avx::hi(v);
    }
    band[B - 1] = hi;
    let (plan, n) = const { ap_plan(B) };
    for p in 0..n {
        let ApPair { a, b, .. } = plan[p];
        let v = avx::tick(&bank.ap[p], &mut st.ap[p], avx::join(band[a], band[b]));
        band[a] = avx::lo(v);
        band[b] = avx::hi(v);
    }
    // The scratch slot only ever sees identity sections fed with zeros, so it stays zero; clear it anyway
    // so callers can rely on "zero from B on".
    band[MAX_BANDS] = avx::pair([0.0; 2]);
    band
}

/// [`tick_avx_raw`] as plain arrays.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tick_avx<const B: usize>(bank: &Bank, st: &mut PairState, x: [f64; 2]) -> [[f64; 2]; MAX_BANDS + 1] {
    let band = tick_avx_raw::<B>(bank, st, x);
    let mut out = [[0.0f64; 2]; MAX_BANDS + 1];
    for (o, v) in out.iter_mut().zip(band).take(B) {
        *o = lanes::avx::unpair(v);
    }
    out
}

/// True when this CPU runs the AVX2+FMA kernels.
pub(crate) fn have_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A Linkwitz-Riley crossover for `channels` channels and `bands` bands (see the module doc).
#[derive(Clone, Debug)]
pub struct Crossover {
    channels: usize,
    bands: usize,
    sample_rate: f64,
    glide: [Smoother; MAX_SPLITS],
    /// The frequencies the coefficients were computed for (after clamping).
    current_hz: [f64; MAX_SPLITS],
    pub(crate) bank: Bank,
    pub(crate) pairs: Vec<PairState>,
    counter: usize,
    zeros: Vec<f32>,
    fma: bool,
}

/// Default split frequencies (Hz) for `bands` bands: the broadcast example's 120/1000/6000 Hz, then
/// higher splits for more bands.
pub const DEFAULT_SPLITS_HZ: [f32; MAX_SPLITS] = [120.0, 1000.0, 6000.0, 10_000.0, 15_000.0];

impl Crossover {
    /// A crossover with `bands` bands (clamped to 2..=6) for `channels` channels (at least 1), split at
    /// [`DEFAULT_SPLITS_HZ`]. Call [`Crossover::prepare`] before processing.
    pub fn new(channels: usize, bands: usize) -> Self {
        let bands = bands.clamp(2, MAX_BANDS);
        let channels = channels.max(1);
        let glide = DEFAULT_SPLITS_HZ.map(|f| Smoother::new(Smoothing::Logarithmic { ms: FREQ_GLIDE_MS }, f));
        let mut x = Self {
            channels,
            bands,
            sample_rate: 48_000.0,
            glide,
            current_hz: [0.0; MAX_SPLITS],
            bank: Bank { split: [Bq4::IDENTITY; MAX_SPLITS], ap: [Bq4::IDENTITY; MAX_AP_PAIRS] },
            pairs: vec![PairState::default(); channels.div_ceil(2)],
            counter: 0,
            zeros: Vec::new(),
            fma: have_avx2_fma(),
        };
        x.update_coeffs();
        x
    }

    pub fn bands(&self) -> usize {
        self.bands
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Sizes buffers for blocks of up to `max_block` frames; snaps glides and clears state.
    pub fn prepare(&mut self, sample_rate: f64, max_block: usize) {
        self.sample_rate = sample_rate;
        for g in self.glide.iter_mut() {
            g.prepare(sample_rate / COEFF_PERIOD as f64);
        }
        self.zeros = vec![0.0; max_block];
        self.update_coeffs();
        self.reset();
    }

    /// Clears filter state and finishes any glide. RT-safe.
    pub fn reset(&mut self) {
        for g in self.glide.iter_mut() {
            g.reset(g.target());
        }
        self.update_coeffs();
        for p in self.pairs.iter_mut() {
            *p = PairState::default();
        }
        self.counter = 0;
    }

    /// Starts a glide of split `index` (0-based, below band `index + 1`) to `hz`. Ignored for an index
    /// the crossover does not have or a non-positive or NaN frequency. RT-safe.
    pub fn set_frequency(&mut self, index: usize, hz: f64) {
        if let Some(g) = self.glide.get_mut(index) {
            if hz > 0.0 {
                g.set_target(hz.clamp(MIN_SPLIT_HZ, 1e6) as f32);
            }
        }
    }

    /// Sets the split frequencies, low to high (extra values are ignored).
    pub fn set_frequencies(&mut self, hz: &[f64]) {
        for (i, &f) in hz.iter().enumerate() {
            self.set_frequency(i, f);
        }
    }

    /// The split frequencies the filters currently use (after clamping), Hz.
    pub fn frequencies(&self) -> &[f64] {
        &self.current_hz[..self.bands - 1]
    }

    /// Frequency actually used for a requested one at this sample rate.
    pub fn clamp_frequency(&self, hz: f64) -> f64 {
        hz.clamp(MIN_SPLIT_HZ, MAX_SPLIT_FRACTION * self.sample_rate)
    }

    fn update_coeffs(&mut self) {
        let mut ap = [Coeffs::IDENTITY; MAX_SPLITS];
        for s in 0..self.bands - 1 {
            let f = self.clamp_frequency(self.glide[s].current() as f64);
            self.current_hz[s] = f;
            let lp = Coeffs::lowpass(f, BUTTERWORTH_Q, self.sample_rate);
            let hp = Coeffs::highpass(f, BUTTERWORTH_Q, self.sample_rate);
            self.bank.split[s] = Bq4::pair(&lp, &hp);
            ap[s] = Coeffs::allpass(f, BUTTERWORTH_Q, self.sample_rate);
        }
        if self.bands == TREE_BANDS {
            // Low half compensated for the top split, high half for the bottom one.
            self.bank.ap[0] = Bq4::pair(&ap[2], &ap[0]);
            return;
        }
        let (plan, n) = ap_plan(self.bands);
        for (p, pair) in plan.iter().enumerate().take(n) {
            let hi = if pair.b < MAX_BANDS { ap[pair.sb] } else { Coeffs::IDENTITY };
            self.bank.ap[p] = Bq4::pair(&ap[pair.sa], &hi);
        }
    }

    /// Advances the frequency glides by one coefficient period (the dynamics engine calls this on its
    /// own control grid; [`Crossover::process`] calls it every [`COEFF_PERIOD`] samples).
    pub(crate) fn control_tick(&mut self) {
        let mut moved = false;
        for g in self.glide.iter_mut().take(self.bands - 1) {
            if g.is_smoothing() {
                g.next();
                moved = true;
            }
        }
        if moved {
            self.update_coeffs();
        }
    }

    /// Flushes denormals at a block end; resets state that went non-finite.
    pub(crate) fn sanitize(&mut self) {
        for p in self.pairs.iter_mut() {
            if !p.sanitize() {
                *p = PairState::default();
            }
        }
    }

    pub(crate) fn uses_fma(&self) -> bool {
        self.fma
    }

    /// Complex response of band `band` at `freq_hz` with the current coefficients: the analytic product
    /// of the sections' [`Coeffs::response`]. The sum over bands is the crossover's total response.
    pub fn response(&self, band: usize, freq_hz: f64) -> (f64, f64) {
        let sr = self.sample_rate;
        let splits = self.bands - 1;
        let f = &self.current_hz;
        let mut h = (1.0, 0.0);
        let mut mul = |c: Coeffs, squared: bool| {
            let r = c.response(freq_hz, sr);
            h = complex_mul(h, if squared { complex_mul(r, r) } else { r });
        };
        let lp = |f: f64| Coeffs::lowpass(f, BUTTERWORTH_Q, sr);
        let hp = |f: f64| Coeffs::highpass(f, BUTTERWORTH_Q, sr);
        let ap = |f: f64| Coeffs::allpass(f, BUTTERWORTH_Q, sr);
        if self.bands == TREE_BANDS {
            let (outer, inner, comp) = if band < 2 { (lp(f[1]), 0, ap(f[2])) } else { (hp(f[1]), 2, ap(f[0])) };
            mul(outer, true);
            mul(comp, false);
            mul(if band % 2 == 0 { lp(f[inner]) } else { hp(f[inner]) }, true);
            return h;
        }
        for &fs in f.iter().take(band.min(splits)) {
            mul(hp(fs), true);
        }
        if band < splits {
            mul(lp(f[band]), true);
            for &fs in f.iter().take(splits).skip(band + 1) {
                mul(ap(fs), false);
            }
        }
        h
    }

    /// Splits `inputs` (one slice per channel) into bands: `outputs[band * channels + channel]`. Blocks
    /// of any length up to the prepared maximum; missing inputs read as silence, missing outputs are
    /// skipped. Output does not depend on how the signal is cut into blocks. RT-safe.
    pub fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let frames = inputs
            .iter()
            .map(|c| c.len())
            .chain(outputs.iter().map(|c| c.len()))
            .min()
            .unwrap_or(0)
            .min(self.zeros.len());
        let mut pos = 0;
        while pos < frames {
            let seg = (frames - pos).min(COEFF_PERIOD - self.counter);
            for pair in 0..self.pairs.len() {
                self.segment(pair, inputs, outputs, pos, seg);
            }
            self.counter += seg;
            if self.counter == COEFF_PERIOD {
                self.counter = 0;
                self.control_tick();
            }
            pos += seg;
        }
        self.sanitize();
    }

    fn segment(&mut self, pair: usize, inputs: &[&[f32]], outputs: &mut [&mut [f32]], pos: usize, n: usize) {
        let c0 = 2 * pair;
        let input = |c: usize| inputs.get(c).map_or(&self.zeros[..n], |s| &s[pos..pos + n]);
        let (x0, x1) = (input(c0), input(c0 + 1));
        let mut out = [[0.0f64; 2]; MAX_BANDS];
        let st = &mut self.pairs[pair];
        for i in 0..n {
            let b = run_tick(self.bands, self.fma, &self.bank, st, [x0[i] as f64, x1[i] as f64]);
            out[..self.bands].copy_from_slice(&b[..self.bands]);
            for (band, v) in out.iter().enumerate().take(self.bands) {
                for (k, &y) in v.iter().enumerate() {
                    if let Some(o) = outputs.get_mut(band * self.channels + c0 + k) {
                        if c0 + k < self.channels {
                            o[pos + i] = y as f32;
                        }
                    }
                }
            }
        }
    }
}

/// Dispatches one sample to the kernel for `bands` bands; the standalone crossover is not the hot path
/// (the multiband engine runs its own fused loop), so a per-sample match is fine here.
#[inline]
fn run_tick(bands: usize, fma: bool, bank: &Bank, st: &mut PairState, x: [f64; 2]) -> [[f64; 2]; MAX_BANDS + 1] {
    macro_rules! go {
        ($b:literal) => {
            if fma {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `fma` is true only when the CPU reported AVX2 and FMA (`have_avx2_fma`).
                unsafe {
                    tick_avx_outlined::<$b>(bank, st, x)
                }
                #[cfg(not(target_arch = "x86_64"))]
                tick::<$b, false>(bank, st, x)
            } else {
                tick::<$b, false>(bank, st, x)
            }
        };
    }
    match bands {
        2 => go!(2),
        3 => go!(3),
        4 => go!(4),
        5 => go!(5),
        _ => go!(6),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tick_avx_outlined<const B: usize>(bank: &Bank, st: &mut PairState, x: [f64; 2]) -> [[f64; 2]; MAX_BANDS + 1] {
    tick_avx::<B>(bank, st, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_covers_every_allpass_once() {
        for bands in 2..=MAX_BANDS {
            let (plan, n) = ap_plan(bands);
            let mut seen = [[false; MAX_SPLITS]; MAX_BANDS + 1];
            for p in &plan[..n] {
                assert_ne!(p.a, p.b);
                assert!(!seen[p.a][p.sa]);
                seen[p.a][p.sa] = true;
                if p.b < MAX_BANDS {
                    assert!(!seen[p.b][p.sb]);
                    seen[p.b][p.sb] = true;
                }
            }
            for j in 0..bands {
                for s in 0..bands - 1 {
                    assert_eq!(seen[j][s], s > j && s <= bands - 2, "bands {bands} band {j} split {s}");
                }
            }
            let items = (bands.saturating_sub(2)) * bands.saturating_sub(1) / 2;
            assert_eq!(n, items.div_ceil(2), "bands {bands}: pairs optimal");
        }
    }
}

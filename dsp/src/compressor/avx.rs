//! The engine's per-sample loop written with AVX2+FMA intrinsics (chosen at run time).
//!
//! Same algorithm as the portable `engine::kernel`: crossover in f64 (two bands × two channels per
//! 256-bit register), then eight f32 lanes per register for detection, lookahead delay and gain.
//! Lanes are `band × 2 + channel`, padded to whole registers (`NV` = 1 for up to four bands, 2 above);
//! padded lanes carry zeros. The band sum is a fixed tree (high half + low half, then the two band
//! pairs), so the result does not depend on where blocks start.

use super::engine::{Group, ScCoeffs, MAX_LANES};
use crate::crossover::{self, lanes::avx as d4, Bank, PairState, MAX_BANDS};
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma")]
fn ld8(s: &[f32]) -> __m256 {
    assert!(s.len() >= 8);
    // SAFETY: `s` holds at least eight f32 (checked above); loadu has no alignment requirement.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn st8(s: &mut [f32], v: __m256) {
    assert!(s.len() >= 8);
    // SAFETY: `s` holds at least eight f32 (checked above); storeu has no alignment requirement.
    unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn ld4d(s: &[f64]) -> __m256d {
    assert!(s.len() >= 4);
    // SAFETY: `s` holds at least four f64 (checked above).
    unsafe { _mm256_loadu_pd(s.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn st4d(s: &mut [f64], v: __m256d) {
    assert!(s.len() >= 4);
    // SAFETY: `s` holds at least four f64 (checked above).
    unsafe { _mm256_storeu_pd(s.as_mut_ptr(), v) }
}

/// One segment (inside a control period) of one channel pair; see the module doc.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn kernel<const B: usize, const NV: usize, const SC: bool>(
    bank: &Bank,
    xo: &mut PairState,
    grp: &mut Group,
    sc: &ScCoeffs,
    delay: usize,
    x0: &[f32],
    x1: &[f32],
    y0: &mut [f32],
    y1: &mut [f32],
) {
    const { assert!(NV * 8 <= MAX_LANES && 2 * B <= NV * 8 && NV >= 1 && NV <= 2) };
    let n = x0.len().min(x1.len()).min(y0.len()).min(y1.len());
    let stride = 8 * NV;
    let mask = grp.mask;
    if grp.ring.len() < (mask + 1) * stride {
        return;
    }
    let mut pk = [ld8(&grp.pk[0..]), ld8(&grp.pk[8..])];
    let mut ms = [ld8(&grp.ms[0..]), ld8(&grp.ms[8..])];
    let mut g = [ld8(&grp.g[0..]), ld8(&grp.g[8..])];
    let dg = [ld8(&grp.dg[0..]), ld8(&grp.dg[8..])];
    let mut s1: [__m256d; 4] = std::array::from_fn(|q| ld4d(&grp.sc[0][4 * q..]));
    let mut s2: [__m256d; 4] = std::array::from_fn(|q| ld4d(&grp.sc[1][4 * q..]));
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut w = grp.pos;
    let ring = &mut grp.ring[..];
    for i in 0..n {
        let x = [x0[i] as f64, x1[i] as f64];
        let bands = if B == 1 {
            let mut b = [d4::pair([0.0; 2]); MAX_BANDS + 2];
            b[0] = d4::pair(x);
            b
        } else {
            crossover::tick_avx_raw::<B>(bank, xo, x)
        };
        // f64 band pairs → f32 lanes [b0L b0R b1L b1R b2L b2R b3L b3R] (+ bands 4–7).
        let mut v = [_mm256_setzero_ps(); 2];
        let mut dv = [_mm256_setzero_ps(); 2];
        for k in 0..NV {
            let lo = d4::join(bands[4 * k], bands[4 * k + 1]);
            let hi = d4::join(bands[4 * k + 2], bands[4 * k + 3]);
            v[k] = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
            dv[k] = v[k];
            if SC {
                // Sidechain high-pass in f64, four lanes (two bands × two channels) at a time.
                let mut half = [_mm_setzero_ps(); 2];
                for (h, xin) in [lo, hi].into_iter().enumerate() {
                    let q = 2 * k + h;
                    let l = 4 * q;
                    let y = _mm256_fmadd_pd(ld4d(&sc.b0[l..]), xin, s1[q]);
                    let t = _mm256_fmadd_pd(ld4d(&sc.b1[l..]), xin, s2[q]);
                    s1[q] = _mm256_fmadd_pd(ld4d(&sc.na1[l..]), y, t);
                    s2[q] = _mm256_fmadd_pd(ld4d(&sc.na2[l..]), y, _mm256_mul_pd(ld4d(&sc.b2[l..]), xin));
                    half[h] = _mm256_cvtpd_ps(y);
                }
                dv[k] = _mm256_set_m128(half[1], half[0]);
            }
            pk[k] = _mm256_max_ps(pk[k], _mm256_and_ps(dv[k], abs_mask));
            ms[k] = _mm256_fmadd_ps(dv[k], dv[k], ms[k]);
        }
        let wi = w * stride;
        let ri = (w.wrapping_sub(delay) & mask) * stride;
        let mut acc = _mm256_setzero_ps();
        for k in 0..NV {
            st8(&mut ring[wi + 8 * k..], v[k]);
            let p = ld8(&ring[ri + 8 * k..]);
            g[k] = _mm256_add_ps(g[k], dg[k]);
            acc = _mm256_fmadd_ps(p, g[k], acc);
        }
        // [b0+b2, b1+b3] per channel, then the two pairs: lane 0 = left, lane 1 = right.
        let s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let s2v = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        y0[i] = _mm_cvtss_f32(s2v);
        y1[i] = _mm_cvtss_f32(_mm_movehdup_ps(s2v));
        w = (w + 1) & mask;
    }
    for k in 0..2 {
        st8(&mut grp.pk[8 * k..], pk[k]);
        st8(&mut grp.ms[8 * k..], ms[k]);
        st8(&mut grp.g[8 * k..], g[k]);
    }
    for q in 0..4 {
        st4d(&mut grp.sc[0][4 * q..], s1[q]);
        st4d(&mut grp.sc[1][4 * q..], s2[q]);
    }
    grp.pos = w;
}

//! Four f64 lanes of transposed-direct-form-II biquads, written as plain array code so that LLVM packs
//! each lane loop into one 256-bit operation when the caller is compiled with AVX2+FMA (see
//! [`crate::crossover::Crossover`] and the dynamics engine, which instantiate the kernels twice: once
//! inside a `#[target_feature(enable = "avx2,fma")]` wrapper chosen at run time, once for any x86-64).
//!
//! Difference equations: the biquad of R. Bristow-Johnson's cookbook in transposed direct form II,
//! `y = b0 x + s1; s1 = b1 x - a1 y + s2; s2 = b2 x - a2 y`.

use crate::biquad::Coeffs;

/// `a * b + c`, fused when `F` (the caller runs with FMA enabled), plain otherwise: `f64::mul_add`
/// without hardware FMA is a slow library call.
#[inline(always)]
pub(crate) fn madd<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Coefficients for four lanes; `a1`, `a2` are stored negated so every update is a multiply-add.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bq4 {
    pub b0: [f64; 4],
    pub b1: [f64; 4],
    pub b2: [f64; 4],
    pub na1: [f64; 4],
    pub na2: [f64; 4],
}

impl Bq4 {
    pub const IDENTITY: Bq4 = Bq4 { b0: [1.0; 4], b1: [0.0; 4], b2: [0.0; 4], na1: [0.0; 4], na2: [0.0; 4] };

    /// Lanes 0 and 1 get `lo`, lanes 2 and 3 get `hi` (two channels of two filters).
    pub fn pair(lo: &Coeffs, hi: &Coeffs) -> Bq4 {
        let l = |a: f64, b: f64| [a, a, b, b];
        Bq4 {
            b0: l(lo.b0, hi.b0),
            b1: l(lo.b1, hi.b1),
            b2: l(lo.b2, hi.b2),
            na1: l(-lo.a1, -hi.a1),
            na2: l(-lo.a2, -hi.a2),
        }
    }
}

/// State of one four-lane section: `[s1, s2]`.
pub(crate) type State4 = [[f64; 4]; 2];

/// One sample through a four-lane section. The order of operations keeps the loop-carried path at two
/// multiply-adds (`y`, then `s1`), so consecutive samples overlap in the pipeline.
#[inline(always)]
pub(crate) fn tick<const F: bool>(c: &Bq4, s: &mut State4, x: [f64; 4]) -> [f64; 4] {
    let mut y = [0.0; 4];
    for i in 0..4 {
        y[i] = madd::<F>(c.b0[i], x[i], s[0][i]);
        let t = madd::<F>(c.b1[i], x[i], s[1][i]);
        s[0][i] = madd::<F>(c.na1[i], y[i], t);
        s[1][i] = madd::<F>(c.na2[i], y[i], c.b2[i] * x[i]);
    }
    y
}

/// Flushes tiny state to zero and reports whether it was finite (non-finite state is zeroed).
pub(crate) fn sanitize(s: &mut State4) -> bool {
    let mut ok = true;
    for row in s.iter_mut() {
        for v in row.iter_mut() {
            if !v.is_finite() {
                ok = false;
                *v = 0.0;
            }
            *v = crate::denormal::flush(*v);
        }
    }
    ok
}

/// Explicit AVX2+FMA versions: LLVM's automatic packing of the array code above mixes 128- and 256-bit
/// halves across sections; with intrinsics every section is exactly four FMAs and one multiply.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx {
    use super::{Bq4, State4};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn load(a: &[f64; 4]) -> __m256d {
        // SAFETY: `a` is valid for reading four f64 (32 bytes); loadu has no alignment requirement.
        unsafe { _mm256_loadu_pd(a.as_ptr()) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn store(a: &mut [f64; 4], v: __m256d) {
        // SAFETY: `a` is valid for writing four f64; storeu has no alignment requirement.
        unsafe { _mm256_storeu_pd(a.as_mut_ptr(), v) }
    }

    /// One sample through a four-lane section (same arithmetic as [`super::tick`] with `F = true`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn tick(c: &Bq4, s: &mut State4, x: __m256d) -> __m256d {
        let y = _mm256_fmadd_pd(load(&c.b0), x, load(&s[0]));
        let t = _mm256_fmadd_pd(load(&c.b1), x, load(&s[1]));
        store(&mut s[0], _mm256_fmadd_pd(load(&c.na1), y, t));
        store(&mut s[1], _mm256_fmadd_pd(load(&c.na2), y, _mm256_mul_pd(load(&c.b2), x)));
        y
    }

    /// `[lo0, lo1, hi0, hi1]`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn join(lo: __m128d, hi: __m128d) -> __m256d {
        _mm256_set_m128d(hi, lo)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn lo(v: __m256d) -> __m128d {
        _mm256_castpd256_pd128(v)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn hi(v: __m256d) -> __m128d {
        _mm256_extractf128_pd::<1>(v)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn pair(x: [f64; 2]) -> __m128d {
        _mm_set_pd(x[1], x[0])
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn unpair(v: __m128d) -> [f64; 2] {
        let mut out = [0.0; 2];
        // SAFETY: `out` is valid for writing two f64; storeu has no alignment requirement.
        unsafe { _mm_storeu_pd(out.as_mut_ptr(), v) };
        out
    }
}

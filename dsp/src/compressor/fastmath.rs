//! Branch-free `log2` / `exp2` for the gain computer, so the control-rate loop vectorises across lanes
//! and never calls libm (whose results could also differ between machines).
//!
//! `log2`: split `x = m·2^e` with `m` in `[√½, √2)` (the exponent trick of musl's `logf`), then
//! `log2 m = (2/ln 2)·atanh(t)`, `t = (m−1)/(m+1)`, `|t| ≤ 0.1716`, by its series to `t⁷`; the first
//! omitted term bounds the error by `2.885·0.1716⁹/9 ≈ 4e-8` (2.6e-7 dB), below f32 rounding.
//! `exp2`: `y = n + f` with `|f| ≤ ½`, `2^f = e^{f ln 2}` by its Taylor series to degree 6; the first
//! omitted term is `0.347⁷/7! ≈ 1.2e-7` relative (1e-6 dB).

use std::f32::consts::LN_2;

/// dB per unit of log2 of an amplitude: `20·log10(2)`.
pub const DB_PER_LOG2: f32 = 6.020_6;

/// Base-2 logarithm; values below the smallest normal f32 (0, negatives, NaN) give −126.
#[inline(always)]
pub fn log2(x: f32) -> f32 {
    // `max` returns the non-NaN operand, so NaN maps to MIN_POSITIVE too.
    let x = x.max(f32::MIN_POSITIVE);
    let bits = x.to_bits();
    // Exponent of x/√½, so that the rescaled mantissa falls in [√½, √2).
    let e = (bits.wrapping_sub(0x3f35_04f3) as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e as u32) << 23));
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    const C1: f32 = 2.0 / LN_2;
    const C3: f32 = 2.0 / (3.0 * LN_2);
    const C5: f32 = 2.0 / (5.0 * LN_2);
    const C7: f32 = 2.0 / (7.0 * LN_2);
    e as f32 + t * (C1 + t2 * (C3 + t2 * (C5 + t2 * C7)))
}

/// `2^y`, for `y` clamped to `[−126, 126]` (NaN gives 2^−126).
#[inline(always)]
pub fn exp2(y: f32) -> f32 {
    // `max` first: NaN becomes −126.
    let y = y.max(-126.0).min(126.0);
    // Round to nearest by the 1.5·2^23 trick: the integer lands in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let t = y + MAGIC;
    let n = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let f = (y - (t - MAGIC)) * LN_2;
    const K2: f32 = 1.0 / 2.0;
    const K3: f32 = 1.0 / 6.0;
    const K4: f32 = 1.0 / 24.0;
    const K5: f32 = 1.0 / 120.0;
    const K6: f32 = 1.0 / 720.0;
    let p = 1.0 + f * (1.0 + f * (K2 + f * (K3 + f * (K4 + f * (K5 + f * K6)))));
    f32::from_bits(p.to_bits().wrapping_add((n as u32) << 23))
}

/// `20·log10(x)`.
#[inline(always)]
pub fn amp_to_db(x: f32) -> f32 {
    DB_PER_LOG2 * log2(x)
}

/// `10·log10(x)` of a power.
#[inline(always)]
pub fn power_to_db(x: f32) -> f32 {
    0.5 * DB_PER_LOG2 * log2(x)
}

/// `10^(db/20)`.
#[inline(always)]
pub fn db_to_amp(db: f32) -> f32 {
    exp2(db * (1.0 / DB_PER_LOG2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_accuracy() {
        let mut x = 1e-30f32;
        let mut worst = 0.0f64;
        while x < 1e30 {
            let err = (log2(x) as f64 - (x as f64).log2()).abs();
            worst = worst.max(err);
            x *= 1.013;
        }
        // Series bound 4e-8 plus f32 rounding of the exponent sum (|log2| up to 100 → ulp 7.6e-6).
        assert!(worst < 1e-5, "{worst}");
        assert_eq!(log2(1.0), 0.0);
        assert_eq!(log2(0.0), -126.0);
        assert_eq!(log2(f32::NAN), -126.0);
    }

    #[test]
    fn exp2_accuracy() {
        let mut y = -120.0f32;
        let mut worst = 0.0f64;
        while y < 120.0 {
            let rel = (exp2(y) as f64 / (y as f64).exp2() - 1.0).abs();
            worst = worst.max(rel);
            y += 0.0137;
        }
        // Series bound 1.2e-7 plus a few f32 roundings (6e-8 each).
        assert!(worst < 5e-7, "{worst}");
        assert_eq!(exp2(0.0), 1.0);
        assert!(exp2(f32::NAN) > 0.0);
        assert!(exp2(f32::INFINITY).is_finite());
    }

    #[test]
    fn db_round_trip() {
        for db in [-100.0f32, -20.0, -6.0206, 0.0, 3.0, 24.0] {
            assert!((amp_to_db(db_to_amp(db)) - db).abs() < 1e-4, "{db}");
        }
        assert!((power_to_db(0.5) + 3.0103).abs() < 1e-4);
    }
}

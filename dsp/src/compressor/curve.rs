//! The compressor's static curve and ballistics coefficients.
//!
//! Static curve (DESIGN.md; D. Giannoulis, M. Massberg, J. D. Reiss, "Digital Dynamic Range Compressor
//! Design — A Tutorial and Analysis", JAES 60(6), 2012, eq. 4): input level `x` dB, threshold `T`,
//! ratio `R`, knee width `W`:
//! `y = x` for `2(x−T) < −W`; `y = x + (1/R − 1)(x − T + W/2)²/(2W)` for `|2(x−T)| ≤ W`;
//! `y = T + (x−T)/R` for `2(x−T) > W`.

/// Output level (dB) of the static curve for input level `x` (dB). `ratio` may be `f32::INFINITY`
/// (limiting: `y = T` above the knee). `knee_db = 0` is a hard knee.
#[inline]
pub fn static_curve(x: f32, threshold_db: f32, ratio: f32, knee_db: f32) -> f32 {
    x - gain_reduction_db(x, threshold_db, 1.0 - 1.0 / ratio, knee_db)
}

/// `x − y` of the static curve (≥ 0), with `slope = 1 − 1/R` (0 for R = 1, 1 for R = ∞). Written as
/// the reduction so that R = 1 gives exactly 0 dB and the unity-gain paths stay bit-exact.
#[inline(always)]
pub fn gain_reduction_db(x: f32, threshold_db: f32, slope: f32, knee_db: f32) -> f32 {
    let d = x - threshold_db;
    if knee_db > 0.0 && (2.0 * d).abs() <= knee_db {
        let k = d + 0.5 * knee_db;
        slope * k * k / (2.0 * knee_db)
    } else if d > 0.0 {
        slope * d
    } else {
        0.0
    }
}

/// Per-step coefficient of a one-pole smoother that covers `1 − 1/e` of a step in `time_ms` when
/// updated every `step_samples` samples: `exp(−step / (τ·fs))` (GMR 2012, eq. 7, at control rate).
pub fn control_coeff(time_ms: f64, sample_rate: f64, step_samples: usize) -> f32 {
    if time_ms <= 0.0 {
        0.0
    } else {
        (-(step_samples as f64) / (time_ms * 1e-3 * sample_rate)).exp() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_regions() {
        // Hard knee, 4:1 at −20 dB.
        assert_eq!(static_curve(-30.0, -20.0, 4.0, 0.0), -30.0);
        assert!((static_curve(-12.0, -20.0, 4.0, 0.0) - -18.0).abs() < 1e-6);
        // Soft knee edges meet the straight parts (continuity of the DESIGN.md formula).
        let (t, r, w) = (-20.0f32, 4.0f32, 10.0f32);
        let lo = t - w / 2.0;
        let hi = t + w / 2.0;
        assert!((static_curve(lo, t, r, w) - lo).abs() < 1e-6);
        assert!((static_curve(hi, t, r, w) - (t + (hi - t) / r)).abs() < 1e-5);
        // At the threshold a soft knee reduces by (1 − 1/R)·W/8.
        assert!((static_curve(t, t, r, w) - (t - 0.75 * w / 8.0)).abs() < 1e-6);
        // Infinite ratio holds the threshold.
        assert!((static_curve(0.0, -10.0, f32::INFINITY, 0.0) - -10.0).abs() < 1e-6);
        // Ratio 1 is exactly transparent.
        assert_eq!(static_curve(-3.3, -20.0, 1.0, 6.0), -3.3);
    }
}

//! Level conversions shared by every node. dBFS convention: a full-scale sine peaks at 0 dBFS.

/// Amplitude ratio for a level in dB (`10^(db/20)`).
#[inline]
pub fn db_to_gain(db: f32) -> f32 {
    // exp is cheaper than powf and exact enough for gains (rel. error ~1e-7).
    (db * (std::f32::consts::LN_10 / 20.0)).exp()
}

/// Level in dB of an amplitude ratio; `-inf` for 0.
#[inline]
pub fn gain_to_db(gain: f32) -> f32 {
    20.0 * gain.log10()
}

/// Level in dB of a power (mean square) ratio; `-inf` for 0.
#[inline]
pub fn power_to_db(power: f64) -> f64 {
    10.0 * power.log10()
}

/// Power ratio for a level in dB.
#[inline]
pub fn db_to_power(db: f64) -> f64 {
    10f64.powf(db / 10.0)
}

/// Coefficient of a one-pole smoother that covers `1 - 1/e` of a step in `time_ms`.
///
/// Returns 0 (instant) for times at or below zero.
pub fn one_pole_coeff(time_ms: f64, sample_rate: f64) -> f64 {
    if time_ms <= 0.0 {
        0.0
    } else {
        (-1.0 / (time_ms * 1e-3 * sample_rate)).exp()
    }
}

/// Samples in `time_ms` at `sample_rate`, rounded to nearest.
pub fn ms_to_samples(time_ms: f64, sample_rate: f64) -> usize {
    (time_ms * 1e-3 * sample_rate).round().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for db in [-120.0f32, -60.0, -6.0206, 0.0, 6.0, 40.0] {
            assert!((gain_to_db(db_to_gain(db)) - db).abs() < 1e-4, "{db}");
        }
        assert!((db_to_gain(-6.0206) - 0.5).abs() < 1e-5);
        assert_eq!(gain_to_db(0.0), f32::NEG_INFINITY);
        assert!((power_to_db(db_to_power(-23.0)) + 23.0).abs() < 1e-12);
    }

    #[test]
    fn one_pole_reaches_63_percent_after_time_constant() {
        let sr = 48_000.0;
        let a = one_pole_coeff(10.0, sr);
        let mut y = 0.0;
        for _ in 0..480 {
            y = a * y + (1.0 - a);
        }
        // One time constant: 1 - e^-1 = 0.632; the discrete recursion differs by < 1e-4.
        assert!((y - (1.0 - (-1.0f64).exp())).abs() < 1e-4, "{y}");
    }
}

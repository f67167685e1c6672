//! Synthetic training material: signals whose level moves in steps, so every example shows attacks and
//! releases clearly (music alone under-represents isolated transients and long holds).

use crate::rng::Rng;

/// Kinds of synthetic material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Low-passed noise (random cutoff) in bursts of random length and level, with quiet gaps.
    BurstyNoise,
    /// Sine tone bursts of random frequency, length and level.
    ToneBursts,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::BurstyNoise, Kind::ToneBursts];

    pub fn name(self) -> &'static str {
        match self {
            Kind::BurstyNoise => "synthetic:bursty_noise",
            Kind::ToneBursts => "synthetic:tone_bursts",
        }
    }
}

/// Level of the next segment, dBFS RMS: a quarter of segments are gaps (−70…−40 dB), the rest −40…0 dB.
fn segment_level_db(rng: &mut Rng) -> f64 {
    if rng.unit() < 0.25 {
        rng.uniform(-70.0, -40.0)
    } else {
        rng.uniform(-40.0, 0.0)
    }
}

/// `n` samples of stereo `kind` at `sample_rate` (planar: `[left, right]`).
pub fn render(kind: Kind, rng: &mut Rng, sample_rate: f64, n: usize) -> [Vec<f32>; 2] {
    let mut l = vec![0.0f32; n];
    let mut r = vec![0.0f32; n];
    let mut pos = 0;
    // Noise colour: a one-pole low-pass, cutoff 500 Hz…20 kHz (per example).
    let fc = rng.log_uniform(500.0, 20_000.0).min(0.45 * sample_rate);
    let a = (-2.0 * std::f64::consts::PI * fc / sample_rate).exp();
    // One-pole low-pass lowers white noise's RMS by sqrt((1-a)/(1+a)); undo it so levels are as drawn.
    let colour_gain = ((1.0 + a) / (1.0 - a)).sqrt();
    let (mut yl, mut yr) = (0.0f64, 0.0f64);
    let mut phase = 0.0f64;
    while pos < n {
        let len = ((rng.log_uniform(0.02, 1.5) * sample_rate) as usize).clamp(1, n - pos);
        let amp = 10f64.powf(segment_level_db(rng) / 20.0);
        match kind {
            Kind::BurstyNoise => {
                // Uniform noise on ±√3 has unit RMS.
                let g = amp * colour_gain * 3f64.sqrt();
                for i in pos..pos + len {
                    yl = a * yl + (1.0 - a) * rng.uniform(-1.0, 1.0);
                    yr = a * yr + (1.0 - a) * rng.uniform(-1.0, 1.0);
                    l[i] = (g * yl) as f32;
                    r[i] = (g * yr) as f32;
                }
            }
            Kind::ToneBursts => {
                let f = rng.log_uniform(60.0, 4000.0);
                let step = 2.0 * std::f64::consts::PI * f / sample_rate;
                // A sine of RMS `amp` has peak amp·√2.
                let peak = amp * 2f64.sqrt();
                for i in pos..pos + len {
                    let v = (peak * phase.sin()) as f32;
                    l[i] = v;
                    r[i] = v;
                    phase = (phase + step) % (2.0 * std::f64::consts::PI);
                }
            }
        }
        pos += len;
    }
    [l, r]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_finite_and_bounded() {
        for kind in Kind::ALL {
            let a = render(kind, &mut Rng::new(11), 48_000.0, 48_000 * 3);
            let b = render(kind, &mut Rng::new(11), 48_000.0, 48_000 * 3);
            assert_eq!(a, b);
            assert!(a.iter().flatten().all(|x| x.is_finite()));
            // Levels ≤ 0 dB RMS; noise peaks stay within a few times RMS (uniform input, ≤ √3 after a
            // low-pass with gain 1; the colour correction at most ×√((1+a)/(1−a)) on a filtered value).
            let peak = a.iter().flatten().fold(0.0f32, |m, x| m.max(x.abs()));
            assert!(peak < 8.0, "{kind:?}: {peak}");
        }
    }
}

//! The compressor settings the estimator predicts, their sampling ranges and the normalisation the
//! network's head uses — one definition for the dataset builder, training (through `meta.json`) and
//! inference.
//!
//! Ranges are the `compressor` descriptor's, except ratio, capped at [`RATIO_MAX`] (the descriptor allows
//! infinity; above 20:1 a compressor is a limiter, and ±20% of "infinity" is not a measurable target).
//! Parameters on a logarithmic scale in the descriptor (ratio, attack, release) are sampled
//! log-uniformly and normalised on a log axis; the dB parameters uniformly and linearly.

use ballast_dsp::compressor::DESCRIPTOR;
use ballast_dsp::{Processor, Scale};

use crate::rng::Rng;

/// The parameter keys, in the order of every array (`y` in the dataset, the head's outputs).
pub const KEYS: [&str; 6] = ["threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db"];

/// Highest ratio sampled and predicted.
pub const RATIO_MAX: f32 = 20.0;

/// One parameter's range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub key: &'static str,
    pub min: f32,
    pub max: f32,
    /// Sampled log-uniformly and normalised on a log axis.
    pub log: bool,
}

impl Range {
    /// Maps `v` to [0, 1] (clamped).
    pub fn normalise(&self, v: f32) -> f32 {
        let v = v.clamp(self.min, self.max);
        if self.log {
            (v.ln() - self.min.ln()) / (self.max.ln() - self.min.ln())
        } else {
            (v - self.min) / (self.max - self.min)
        }
    }

    /// Inverse of [`Range::normalise`] (input clamped to [0, 1]). The result is clamped to the range too:
    /// `exp(ln(0.1))` is 0.099999994 in f32, which the descriptor refuses.
    pub fn denormalise(&self, u: f32) -> f32 {
        let u = u.clamp(0.0, 1.0);
        // The ends exactly (f32 exp(ln) misses them by a rounding).
        if u == 0.0 {
            return self.min;
        }
        if u == 1.0 {
            return self.max;
        }
        let v = if self.log {
            (self.min.ln() + u * (self.max.ln() - self.min.ln())).exp()
        } else {
            self.min + u * (self.max - self.min)
        };
        v.clamp(self.min, self.max)
    }

    pub fn sample(&self, rng: &mut Rng) -> f32 {
        let v = if self.log {
            rng.log_uniform(f64::from(self.min), f64::from(self.max))
        } else {
            rng.uniform(f64::from(self.min), f64::from(self.max))
        };
        v as f32
    }
}

/// The ranges of [`KEYS`], in order, read from the compressor's descriptor.
pub fn ranges() -> [Range; 6] {
    KEYS.map(|key| {
        let d = DESCRIPTOR.param_by_key(key).expect("compressor descriptor has every KEYS entry");
        let max = if key == "ratio" { RATIO_MAX } else { d.max };
        Range { key, min: d.min, max, log: d.scale == Scale::Log }
    })
}

/// One compressor setting, in the descriptor's units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompressorParams {
    pub threshold_db: f32,
    pub ratio: f32,
    pub attack_ms: f32,
    pub release_ms: f32,
    pub knee_db: f32,
    pub makeup_db: f32,
}

impl CompressorParams {
    pub fn to_array(self) -> [f32; 6] {
        [self.threshold_db, self.ratio, self.attack_ms, self.release_ms, self.knee_db, self.makeup_db]
    }

    pub fn from_array(a: [f32; 6]) -> Self {
        Self { threshold_db: a[0], ratio: a[1], attack_ms: a[2], release_ms: a[3], knee_db: a[4], makeup_db: a[5] }
    }

    /// A random setting over [`ranges`].
    pub fn sample(rng: &mut Rng) -> Self {
        Self::from_array(ranges().map(|r| r.sample(rng)))
    }

    /// Normalised to [0, 1] per parameter (the head's targets).
    pub fn normalised(self) -> [f32; 6] {
        let r = ranges();
        let a = self.to_array();
        std::array::from_fn(|i| r[i].normalise(a[i]))
    }

    /// From the head's normalised outputs.
    pub fn from_normalised(u: [f32; 6]) -> Self {
        let r = ranges();
        Self::from_array(std::array::from_fn(|i| r[i].denormalise(u[i])))
    }

    /// Sets these values on a `compressor` node (by the descriptor's keys).
    pub fn apply(self, node: &mut dyn Processor) -> Result<(), ballast_dsp::ParamError> {
        for (key, v) in KEYS.iter().zip(self.to_array()) {
            let id = DESCRIPTOR.param_by_key(key).expect("known key").id;
            node.set_param(id, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_descriptor() {
        let r = ranges();
        assert_eq!(r[0], Range { key: "threshold_db", min: -80.0, max: 0.0, log: false });
        assert_eq!(r[1], Range { key: "ratio", min: 1.0, max: 20.0, log: true });
        assert_eq!(r[2], Range { key: "attack_ms", min: 0.1, max: 500.0, log: true });
        assert_eq!(r[3], Range { key: "release_ms", min: 1.0, max: 5000.0, log: true });
        assert_eq!(r[4], Range { key: "knee_db", min: 0.0, max: 24.0, log: false });
        assert_eq!(r[5], Range { key: "makeup_db", min: -24.0, max: 24.0, log: false });
    }

    #[test]
    fn normalisation_round_trips() {
        let mut rng = Rng::new(5);
        for _ in 0..1000 {
            let p = CompressorParams::sample(&mut rng);
            let u = p.normalised();
            assert!(u.iter().all(|x| (0.0..=1.0).contains(x)));
            let q = CompressorParams::from_normalised(u).to_array();
            for (a, b) in p.to_array().iter().zip(q) {
                // f32 ln/exp over ranges up to 5000: relative error ~1e-6.
                assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
        // The ends map to the ends exactly (the descriptor refuses 0.099999994 ms of attack).
        for r in ranges() {
            assert_eq!((r.denormalise(0.0), r.denormalise(1.0)), (r.min, r.max), "{}", r.key);
        }
        // Geometric midpoint of attack's range normalises to 0.5.
        assert!((ranges()[2].normalise((0.1f32 * 500.0).sqrt()) - 0.5).abs() < 1e-5);
    }
}

//! The one parameter smoother every node uses, so that a change is audible within one block and never
//! zippers.

use crate::param::Smoothing;

/// Ramps a value towards a target over a fixed time: linearly, or with a constant ratio per sample
/// (`Logarithmic`, for gains). The last step lands exactly on the target, so a settled smoother
/// returns the target bit for bit.
#[derive(Clone, Debug)]
pub struct Smoother {
    style: Smoothing,
    ramp_samples: u32,
    current: f32,
    target: f32,
    /// Additive step (linear) or multiplicative step (logarithmic), per sample.
    step: f64,
    value: f64,
    steps_left: u32,
}

impl Smoother {
    /// A smoother resting at `value`. Call [`Smoother::prepare`] before use to set the ramp length.
    pub fn new(style: Smoothing, value: f32) -> Self {
        Self { style, ramp_samples: 0, current: value, target: value, step: 0.0, value: value as f64, steps_left: 0 }
    }

    /// Sets the ramp length for `sample_rate`. Any ramp in progress snaps to its target.
    pub fn prepare(&mut self, sample_rate: f64) {
        let ms = match self.style {
            Smoothing::None => 0.0,
            Smoothing::Linear { ms } | Smoothing::Logarithmic { ms } => ms as f64,
        };
        self.ramp_samples = (ms * 1e-3 * sample_rate).round().max(0.0) as u32;
        self.reset(self.target);
    }

    /// Jumps to `value` with no ramp.
    pub fn reset(&mut self, value: f32) {
        self.current = value;
        self.target = value;
        self.value = value as f64;
        self.steps_left = 0;
    }

    /// Starts a ramp from the current value to `target`. RT-safe.
    pub fn set_target(&mut self, target: f32) {
        if target == self.target && self.steps_left == 0 {
            return;
        }
        self.target = target;
        let n = self.ramp_samples;
        let log = matches!(self.style, Smoothing::Logarithmic { .. }) && self.current > 0.0 && target > 0.0;
        if n == 0 || !target.is_finite() || !self.current.is_finite() {
            self.reset(target);
            return;
        }
        self.value = self.current as f64;
        self.step = if log {
            ((target as f64).ln() - self.value.ln()) / n as f64
        } else {
            (target as f64 - self.value) / n as f64
        };
        if log {
            self.step = self.step.exp();
        }
        self.steps_left = n;
    }

    /// The value the smoother is heading to.
    #[inline]
    pub fn target(&self) -> f32 {
        self.target
    }

    /// The current value (without advancing).
    #[inline]
    pub fn current(&self) -> f32 {
        self.current
    }

    /// True while a ramp is in progress.
    #[inline]
    pub fn is_smoothing(&self) -> bool {
        self.steps_left > 0
    }

    /// Advances one sample and returns the new value.
    // Not `Iterator`: a smoother never ends, and `next` matches the smoother APIs audio developers know.
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> f32 {
        if self.steps_left > 0 {
            self.steps_left -= 1;
            if self.steps_left == 0 {
                self.value = self.target as f64;
            } else if matches!(self.style, Smoothing::Logarithmic { .. }) && self.step > 0.0 && self.value > 0.0 {
                self.value *= self.step;
            } else {
                self.value += self.step;
            }
            self.current = self.value as f32;
        }
        self.current
    }

    /// Fills `out` with the next `out.len()` values; equal to calling [`Smoother::next`] per sample.
    #[inline]
    pub fn next_block(&mut self, out: &mut [f32]) {
        if self.steps_left == 0 {
            out.fill(self.current);
            return;
        }
        for v in out {
            *v = self.next();
        }
    }

    /// Advances `n` samples, returning the value reached (for control-rate consumers).
    #[inline]
    pub fn skip(&mut self, n: u32) -> f32 {
        if self.steps_left == 0 {
            return self.current;
        }
        for _ in 0..n.min(self.steps_left) {
            self.next();
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ramp_lands_exactly() {
        let mut s = Smoother::new(Smoothing::Linear { ms: 1.0 }, 0.0);
        s.prepare(48_000.0);
        s.set_target(1.0);
        let mut last = 0.0;
        for i in 0..48 {
            let v = s.next();
            assert!(v > last, "monotonic at {i}");
            last = v;
        }
        assert_eq!(last, 1.0);
        assert!(!s.is_smoothing());
        assert!((s.next() - 1.0).abs() == 0.0);
    }

    #[test]
    fn log_ramp_has_constant_ratio() {
        let mut s = Smoother::new(Smoothing::Logarithmic { ms: 1.0 }, 0.01);
        s.prepare(48_000.0);
        s.set_target(1.0);
        let v: Vec<f32> = (0..48).map(|_| s.next()).collect();
        let r0 = v[1] / v[0];
        let r1 = v[40] / v[39];
        assert!((r0 - r1).abs() < 1e-4, "{r0} {r1}");
        assert_eq!(*v.last().unwrap(), 1.0);
    }

    #[test]
    fn block_equals_per_sample() {
        let mut a = Smoother::new(Smoothing::Linear { ms: 2.0 }, 0.0);
        let mut b = a.clone();
        a.prepare(44_100.0);
        b.prepare(44_100.0);
        a.set_target(-3.0);
        b.set_target(-3.0);
        let mut block = [0.0f32; 200];
        a.next_block(&mut block);
        for x in block {
            assert_eq!(x, b.next());
        }
    }

    #[test]
    fn none_is_instant() {
        let mut s = Smoother::new(Smoothing::None, 0.0);
        s.prepare(48_000.0);
        s.set_target(5.0);
        assert_eq!(s.next(), 5.0);
    }
}

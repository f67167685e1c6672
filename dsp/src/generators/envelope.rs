//! A sample-accurate ADSR envelope with linear segments.
//!
//! Segments are straight lines in amplitude (the piecewise-linear envelope generator of M. Puckette,
//! "The Theory and Technique of Electronic Music", 2007, §4.1), each with an exact length in samples:
//! - attack: from the level the voice has when (re)triggered to `peak` (the note's velocity) in
//!   `attack` samples — so a retrigger or a stolen voice continues from where it is instead of
//!   jumping to 0, and a new velocity is reached by a ramp, not a step;
//! - decay: from `peak` to `sustain · peak` in `decay` samples;
//! - sustain: `sustain · peak`, followed sample by sample (the caller smooths `sustain`);
//! - release: from the level at note-off to 0 in `release` samples.
//!
//! Every segment starts at the value the previous one ended on, so the envelope is continuous
//! whatever the events (a zero-length stage is skipped, which is the one deliberate jump).
//! A change of the stage times applies from the next stage on.

/// Stage lengths in samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdsrTimes {
    pub attack: u32,
    pub decay: u32,
    pub release: u32,
}

/// Where an envelope is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stage {
    #[default]
    Idle,
    Attack,
    Decay,
    Sustain,
    Release,
}

/// One envelope's state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Adsr {
    stage: Stage,
    /// The value last returned by [`Adsr::next`] (0 once idle).
    level: f32,
    /// Level the current attack or release started from.
    start: f32,
    /// Level the attack rises to (the velocity).
    peak: f32,
    /// Samples into the current stage, and its length and reciprocal.
    k: u32,
    n: u32,
    inv_n: f32,
}

impl Adsr {
    /// Current stage.
    #[inline]
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The value last returned by [`Adsr::next`] (0 when idle).
    #[inline]
    pub fn level(&self) -> f32 {
        self.level
    }

    /// True when the envelope is silent and finished.
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    /// Back to silence at once.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    fn enter(&mut self, stage: Stage, n: u32) {
        self.stage = stage;
        self.k = 0;
        self.n = n;
        self.inv_n = if n > 0 { 1.0 / n as f32 } else { 0.0 };
    }

    /// Starts (or restarts) the attack from the current level towards `peak` (0–1).
    pub fn trigger(&mut self, times: &AdsrTimes, peak: f32) {
        self.start = self.level;
        self.peak = peak;
        self.enter(Stage::Attack, times.attack);
        if times.attack == 0 {
            self.enter_decay(times);
        }
    }

    fn enter_decay(&mut self, times: &AdsrTimes) {
        self.enter(Stage::Decay, times.decay);
        if times.decay == 0 {
            self.stage = Stage::Sustain;
        }
    }

    /// Starts the release from the current level (no-op when idle or already releasing).
    pub fn release(&mut self, times: &AdsrTimes) {
        if matches!(self.stage, Stage::Idle | Stage::Release) {
            return;
        }
        self.start = self.level;
        self.enter(Stage::Release, times.release);
        if times.release == 0 {
            self.clear();
        }
    }

    /// The envelope value for this sample, then advances one sample. `sustain` is the sustain level
    /// (linear, 0–1, relative to the peak) at this sample.
    #[inline(always)]
    pub fn next(&mut self, times: &AdsrTimes, sustain: f32) -> f32 {
        let v = match self.stage {
            Stage::Idle => 0.0,
            Stage::Attack => {
                let v = self.start + (self.peak - self.start) * (self.k as f32 * self.inv_n);
                self.k += 1;
                if self.k >= self.n {
                    self.enter_decay(times);
                }
                v
            }
            Stage::Decay => {
                let v = self.peak * (1.0 - (1.0 - sustain) * (self.k as f32 * self.inv_n));
                self.k += 1;
                if self.k >= self.n {
                    self.stage = Stage::Sustain;
                }
                v
            }
            Stage::Sustain => self.peak * sustain,
            Stage::Release => {
                let v = self.start * (1.0 - self.k as f32 * self.inv_n);
                self.k += 1;
                if self.k >= self.n {
                    self.stage = Stage::Idle;
                }
                v
            }
        };
        // Once idle the envelope is at 0, whatever its last output was: a new note starts from silence.
        self.level = if self.stage == Stage::Idle { 0.0 } else { v };
        v
    }
}

impl Adsr {
    /// Writes the envelope of the next samples into `out` (`sustain[i]` is the sustain level at
    /// `out[i]`), stage run by stage run so the inner loops vectorise. Returns how many samples are
    /// valid: `out.len()`, or fewer when the envelope goes idle (the rest of `out` is left untouched).
    /// Bit-identical to calling [`Adsr::next`] per sample.
    pub fn fill(&mut self, times: &AdsrTimes, sustain: &[f32], out: &mut [f32]) -> usize {
        let n = out.len().min(sustain.len());
        let mut i = 0;
        while i < n {
            let run = (n - i).min(self.n.saturating_sub(self.k) as usize);
            let (start, peak, k0, inv_n) = (self.start, self.peak, self.k, self.inv_n);
            match self.stage {
                Stage::Idle => return i,
                Stage::Sustain => {
                    for (o, &s) in out[i..n].iter_mut().zip(&sustain[i..n]) {
                        *o = peak * s;
                    }
                    i = n;
                }
                Stage::Attack => {
                    for (j, o) in out[i..i + run].iter_mut().enumerate() {
                        *o = start + (peak - start) * ((k0 + j as u32) as f32 * inv_n);
                    }
                    i += run;
                    self.k += run as u32;
                    if self.k >= self.n {
                        self.enter_decay(times);
                    }
                }
                Stage::Decay => {
                    for (j, (o, &s)) in out[i..i + run].iter_mut().zip(&sustain[i..i + run]).enumerate() {
                        *o = peak * (1.0 - (1.0 - s) * ((k0 + j as u32) as f32 * inv_n));
                    }
                    i += run;
                    self.k += run as u32;
                    if self.k >= self.n {
                        self.stage = Stage::Sustain;
                    }
                }
                Stage::Release => {
                    for (j, o) in out[i..i + run].iter_mut().enumerate() {
                        *o = start * (1.0 - (k0 + j as u32) as f32 * inv_n);
                    }
                    i += run;
                    self.k += run as u32;
                    if self.k >= self.n {
                        self.stage = Stage::Idle;
                    }
                }
            }
            if i > 0 {
                self.level = if self.stage == Stage::Idle { 0.0 } else { out[i - 1] };
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_last_exactly_their_length() {
        let t = AdsrTimes { attack: 10, decay: 20, release: 30 };
        let mut e = Adsr::default();
        e.trigger(&t, 1.0);
        let v: Vec<f32> = (0..40).map(|_| e.next(&t, 0.5)).collect();
        assert_eq!(v[0], 0.0);
        assert_eq!(v[10], 1.0);
        assert!(v[9] < 1.0);
        assert_eq!(v[30], 0.5);
        assert!(v[29] > 0.5);
        assert_eq!(e.stage(), Stage::Sustain);
        e.release(&t);
        let r: Vec<f32> = (0..31).map(|_| e.next(&t, 0.5)).collect();
        assert_eq!(r[0], 0.5);
        assert!(r[29] > 0.0);
        assert_eq!(r[30], 0.0);
        assert!(e.is_idle());
    }

    #[test]
    fn fill_equals_next() {
        let t = AdsrTimes { attack: 37, decay: 50, release: 61 };
        let sus: Vec<f32> = (0..400).map(|i| 0.3 + 0.001 * i as f32).collect();
        let (mut a, mut b) = (Adsr::default(), Adsr::default());
        a.trigger(&t, 0.8);
        b.trigger(&t, 0.8);
        let mut got = vec![0.0f32; 400];
        let mut pos = 0;
        for (step, len) in [7usize, 64, 1, 100, 28].iter().cycle().enumerate() {
            if pos >= 400 {
                break;
            }
            if step == 3 {
                a.release(&t);
                b.release(&t);
            }
            let end = (pos + len).min(400);
            let valid = a.fill(&t, &sus[pos..end], &mut got[pos..end]);
            for i in pos..end {
                let want = b.next(&t, sus[i]);
                if i < pos + valid {
                    assert_eq!(got[i].to_bits(), want.to_bits(), "sample {i}");
                } else {
                    assert!(b.is_idle() || want == 0.0);
                }
            }
            pos = end;
        }
        assert!(a.is_idle() && b.is_idle());
    }

    #[test]
    fn retrigger_is_continuous() {
        let t = AdsrTimes { attack: 100, decay: 100, release: 100 };
        let mut e = Adsr::default();
        e.trigger(&t, 1.0);
        for _ in 0..250 {
            e.next(&t, 0.3);
        }
        let before = e.level();
        e.trigger(&t, 1.0);
        let after = e.next(&t, 0.3);
        assert_eq!(before, after);
    }
}

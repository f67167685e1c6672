//! Program-dependent (two-stage) release of the held gain.
//!
//! A single release time is a compromise: short, and sustained limiting pumps (the gain swings back up
//! between every pair of peaks, a 2–10 Hz modulation the ear hears as "breathing"); long, and one
//! isolated transient ducks the programme for a long time. Broadcast limiters therefore split the
//! release in two (the "dual release" of e.g. the Orban Optimod and the "auto release" of many mastering
//! limiters): a fast stage recovers from short transients, and a slow envelope that only follows
//! *sustained* gain reduction sets the level the fast stage may recover to.
//!
//! State, in linear gain (1 = no reduction):
//! - `gain`: the output of this stage, never above its input (the held required gain), so it never
//!   weakens the limiter's bound;
//! - `sustained`: the slow envelope. While the held requirement is below it, it falls towards the
//!   requirement with time constant `release / 4` — a short dip barely moves it, sustained limiting
//!   drags it down — otherwise it recovers towards 1 with `release`.
//!
//! `gain` recovers towards `sustained` with time constant `release / 20`; at or above it, it rides on
//! the slow envelope. Each stage is a one-pole recursion `y += (t - y)(1 - a)` with `a = exp(-1/(τ fs))`
//! (the RC time constant, [`crate::level::one_pole_coeff`]).

use crate::level::one_pole_coeff;

/// How the release behaves (the naive mode exists to measure the two-stage one against it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseMode {
    /// Fast recovery from transients, slow recovery from sustained reduction.
    ProgramDependent,
    /// One time constant (`release_ms`), recovering straight towards unity gain.
    Single,
}

/// The release stage; see the module documentation.
#[derive(Clone, Debug)]
pub struct Release {
    mode: ReleaseMode,
    a_fast: f32,
    a_slow: f32,
    a_sustain: f32,
    gain: f32,
    sustained: f32,
}

impl Release {
    pub fn new(mode: ReleaseMode) -> Self {
        Self { mode, a_fast: 0.0, a_slow: 0.0, a_sustain: 0.0, gain: 1.0, sustained: 1.0 }
    }

    /// Sets the time constants for `release_ms` at `sample_rate`. RT-safe (no allocation; `exp` only).
    pub fn set_time(&mut self, release_ms: f64, sample_rate: f64) {
        self.a_slow = one_pole_coeff(release_ms, sample_rate) as f32;
        match self.mode {
            ReleaseMode::ProgramDependent => {
                self.a_fast = one_pole_coeff(release_ms / 20.0, sample_rate) as f32;
                self.a_sustain = one_pole_coeff(release_ms / 4.0, sample_rate) as f32;
            }
            ReleaseMode::Single => {
                self.a_fast = self.a_slow;
                self.a_sustain = 0.0;
            }
        }
    }

    pub fn reset(&mut self) {
        self.gain = 1.0;
        self.sustained = 1.0;
    }

    /// Advances one sample with the held required gain `held` (in `[0, 1]`); returns a gain `<= held`.
    #[inline]
    pub fn next(&mut self, held: f32) -> f32 {
        let g = match self.mode {
            ReleaseMode::ProgramDependent => {
                let s = self.sustained;
                let recovered = if self.gain < s { s - (s - self.gain) * self.a_fast } else { s };
                // The envelope follows the requirement itself (not the recovering gain, which sits
                // below it by design and would drag it down for ever).
                self.sustained =
                    if held < s { held + (s - held) * self.a_sustain } else { 1.0 - (1.0 - s) * self.a_slow };
                held.min(recovered)
            }
            ReleaseMode::Single => held.min(1.0 - (1.0 - self.gain) * self.a_slow),
        };
        self.gain = g;
        g
    }

    /// Replaces non-finite state (cannot arise from finite input; a cheap guard for long-memory state).
    pub fn sanitise(&mut self) {
        if !(self.gain.is_finite() && self.sustained.is_finite()) {
            self.reset();
        }
        self.gain = self.gain.clamp(0.0, 1.0);
        self.sustained = self.sustained.clamp(0.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_above_input_and_recovers() {
        let mut r = Release::new(ReleaseMode::ProgramDependent);
        r.set_time(200.0, 48_000.0);
        // A short dip (1 ms at -6 dB) recovers quickly: within 100 ms most of the way back.
        for _ in 0..48 {
            assert!(r.next(0.5) <= 0.5);
        }
        let mut g = 0.0;
        for _ in 0..4800 {
            g = r.next(1.0);
        }
        assert!(g > 0.97, "{g}");
        // A sustained dip (2 s at -6 dB) recovers slowly: 100 ms later still well below unity.
        for _ in 0..96_000 {
            r.next(0.5);
        }
        for _ in 0..4800 {
            g = r.next(1.0);
        }
        assert!(g < 0.85, "{g}");
    }
}

//! A fixed integer delay, used for latency compensation (where paths meet) and for a bypassed node's
//! dry path (so bypass keeps the node's latency). Sized off the RT thread; running it allocates nothing.

/// A delay of `delay` samples: a ring of `delay + 1` samples. After writing sample `t` at `write`, the
/// slot after it holds sample `t - delay`.
#[derive(Clone, Debug)]
pub struct DelayLine {
    ring: Vec<f32>,
    write: usize,
}

impl DelayLine {
    /// A delay of `delay` samples, silent at first (allocates).
    pub fn new(delay: usize) -> Self {
        Self { ring: vec![0.0; delay + 1], write: 0 }
    }

    /// The delay in samples.
    pub fn delay(&self) -> usize {
        self.ring.len() - 1
    }

    /// Pushes `input` through the delay, handing each delayed sample to `out(i, y)`.
    #[inline]
    pub fn run(&mut self, input: &[f32], mut out: impl FnMut(usize, f32)) {
        let len = self.ring.len();
        let mut w = self.write;
        for (i, &x) in input.iter().enumerate() {
            self.ring[w] = x;
            w += 1;
            if w == len {
                w = 0;
            }
            out(i, self.ring[w]);
        }
        self.write = w;
    }

    /// Pushes silence through the delay (a source that is not there this block).
    pub fn run_silence(&mut self, frames: usize, mut out: impl FnMut(usize, f32)) {
        let len = self.ring.len();
        let mut w = self.write;
        for i in 0..frames {
            self.ring[w] = 0.0;
            w += 1;
            if w == len {
                w = 0;
            }
            out(i, self.ring[w]);
        }
        self.write = w;
    }

    /// Silences the line; a non-finite sample must never circulate.
    pub fn clear(&mut self) {
        self.ring.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_by_exactly_n_across_blocks() {
        for delay in [0usize, 1, 5, 70] {
            let mut d = DelayLine::new(delay);
            let input: Vec<f32> = (0..200).map(|i| i as f32 + 1.0).collect();
            let mut out = vec![0.0; 200];
            for (k, chunk) in input.chunks(7).enumerate() {
                d.run(chunk, |i, y| out[k * 7 + i] = y);
            }
            for (t, &y) in out.iter().enumerate() {
                let want = if t >= delay { (t - delay) as f32 + 1.0 } else { 0.0 };
                assert_eq!(y, want, "delay {delay} t {t}");
            }
        }
    }
}

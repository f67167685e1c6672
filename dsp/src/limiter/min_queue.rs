//! Sliding-window minimum in O(1) time per sample, branch-free, with no allocation after construction.
//!
//! The van Herk / Gil–Werman algorithm (M. van Herk, "A fast algorithm for local minimum and maximum
//! filters on rectangular and octagonal kernels", Pattern Recognition Letters 13(7), 1992; J. Gil and
//! M. Werman, IEEE PAMI 15(5), 1993), streamed: the input is cut into blocks of the window length `W`.
//! A window ending at offset `j` of the current block covers offsets `j + 1 ..` of the previous block
//! and `..= j` of the current one, so its minimum is `min(suffix_min_prev[j + 1], prefix_min_cur)`.
//! The previous block's suffix minima are computed once, backwards, when a block completes: two `min`s
//! per sample plus one per sample amortised, and no data-dependent branch (a monotonic deque's pop loop
//! mispredicts on noisy input, which made it the costliest part of the gain computer).

/// Minimum over the last `window` values pushed.
#[derive(Clone, Debug)]
pub struct SlidingMin {
    /// Values of the current block (`window` used).
    cur: Vec<f32>,
    /// Suffix minima of the previous block; entry `window` is +inf (a window that starts past it).
    prev_suffix: Vec<f32>,
    prefix: f32,
    pos: usize,
    window: usize,
}

impl SlidingMin {
    /// Allocates for windows of up to `max_window` samples (at least 1).
    pub fn new(max_window: usize) -> Self {
        let cap = max_window.max(1);
        let mut s = Self {
            cur: vec![0.0; cap],
            prev_suffix: vec![f32::INFINITY; cap + 1],
            prefix: f32::INFINITY,
            pos: 0,
            window: 1,
        };
        s.reset(1);
        s
    }

    /// Empties the window (values before it count as +inf) and sets its length, clamped to
    /// `1..=max_window`. RT-safe.
    pub fn reset(&mut self, window: usize) {
        self.window = window.clamp(1, self.max_window());
        self.prev_suffix.fill(f32::INFINITY);
        self.prefix = f32::INFINITY;
        self.pos = 0;
    }

    /// The largest window this queue was allocated for.
    pub fn max_window(&self) -> usize {
        self.cur.len()
    }

    /// The active window length.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Pushes `v` and returns the minimum of the last `window` values (fewer right after a reset).
    #[inline]
    pub fn push(&mut self, v: f32) -> f32 {
        let j = self.pos;
        self.cur[j] = v;
        self.prefix = self.prefix.min(v);
        let out = self.prev_suffix[j + 1].min(self.prefix);
        if j + 1 == self.window {
            // Block complete: it becomes the previous block.
            let w = self.window;
            let mut m = f32::INFINITY;
            for (s, &x) in self.prev_suffix[..w].iter_mut().zip(&self.cur[..w]).rev() {
                m = m.min(x);
                *s = m;
            }
            self.prev_suffix[w] = f32::INFINITY;
            self.prefix = f32::INFINITY;
            self.pos = 0;
        } else {
            self.pos = j + 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        let mut seed = 12345u32;
        let xs: Vec<f32> = (0..5000)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Few distinct values, so ties are exercised.
                ((seed >> 24) % 17) as f32
            })
            .collect();
        for window in [1usize, 2, 3, 13, 72, 200] {
            let mut q = SlidingMin::new(200);
            q.reset(window);
            for (n, &x) in xs.iter().enumerate() {
                let got = q.push(x);
                let lo = (n + 1).saturating_sub(window);
                let want = xs[lo..=n].iter().cloned().fold(f32::INFINITY, f32::min);
                assert_eq!(got, want, "window {window} at {n}");
            }
            // After a reset the window restarts empty.
            q.reset(window);
            assert_eq!(q.push(100.0), 100.0);
        }
    }

    #[test]
    fn window_is_clamped_to_capacity() {
        let mut q = SlidingMin::new(8);
        q.reset(1000);
        assert_eq!(q.window(), 8);
        q.reset(0);
        assert_eq!(q.window(), 1);
    }
}

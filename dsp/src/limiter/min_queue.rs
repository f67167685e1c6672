//! Sliding-window minimum in O(1) amortised time with no allocation after construction.
//!
//! The classic monotonic deque (Lemire, "Streaming maximum-minimum filter using no more than three
//! comparisons per element", Nordic Journal of Computing 13(4), 2006): the queue holds, in index order,
//! the samples that can still become the window minimum, with strictly increasing values. Each sample is
//! pushed once and popped at most once, so a push costs O(1) amortised. The deque lives in a fixed ring
//! sized for the largest window, so it never grows.

/// Minimum over the last `window` values pushed.
#[derive(Clone, Debug)]
pub struct SlidingMin {
    /// Ring of (sample index, value); `head` is the oldest entry, `len` entries follow it.
    idx: Vec<u64>,
    val: Vec<f32>,
    head: usize,
    len: usize,
    window: u64,
    /// Index the next pushed sample gets.
    next: u64,
}

impl SlidingMin {
    /// Allocates for windows of up to `max_window` samples (at least 1).
    pub fn new(max_window: usize) -> Self {
        let cap = max_window.max(1) + 1;
        Self { idx: vec![0; cap], val: vec![0.0; cap], head: 0, len: 0, window: 1, next: 0 }
    }

    /// Empties the queue and sets the window length, clamped to `1..=max_window`. RT-safe.
    pub fn reset(&mut self, window: usize) {
        self.window = window.clamp(1, self.idx.len() - 1) as u64;
        self.head = 0;
        self.len = 0;
        self.next = 0;
    }

    /// The active window length.
    pub fn window(&self) -> usize {
        self.window as usize
    }

    /// Pushes `v` and returns the minimum of the last `window` values (fewer right after a reset).
    /// `v` must not be NaN (the caller sanitises its input), else the ordering argument fails.
    #[inline]
    pub fn push(&mut self, v: f32) -> f32 {
        let cap = self.idx.len();
        let n = self.next;
        self.next += 1;
        // Values at or above `v` can never be a minimum again: `v` is newer and no larger.
        while self.len > 0 {
            let back = (self.head + self.len - 1) % cap;
            if self.val[back] >= v {
                self.len -= 1;
            } else {
                break;
            }
        }
        // The window holds at most `window` entries and `cap > window`, so this slot is free.
        let slot = (self.head + self.len) % cap;
        self.idx[slot] = n;
        self.val[slot] = v;
        self.len += 1;
        // Drop the front once it has slid out of the window.
        if self.idx[self.head] + self.window <= n {
            self.head = (self.head + 1) % cap;
            self.len -= 1;
        }
        self.val[self.head]
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

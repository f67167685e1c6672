//! Gated statistics over loudness blocks in bounded memory: integrated loudness (BS.1770-4 Annex 1,
//! section 5: absolute gate -70 LUFS, relative gate -10 LU) and loudness range (EBU Tech 3342: absolute
//! gate -70 LUFS, relative gate -20 LU, 10th to 95th percentile), plus the ring of recent sub-block powers
//! that sliding windows (momentary, short-term, any length up to [`RING`]) are built from.
//!
//! Blocks go into a fixed histogram of 0.01 LU bins from -70 to +5 LUFS (blocks above +5 share the top
//! bin), as in x42 meters' `ebu_r128_proc` (0.1 LU bins) and libebur128's histogram mode (0.1 LU bins).
//! Each bin keeps its block count AND the sum of its blocks' powers: means over whole bins are therefore
//! exact, and only the one bin that the relative gate cuts is treated as a point at its mean power.

use super::kweight::power_to_lufs;

/// Lower edge of the histogram: the absolute gate.
pub const ABSOLUTE_GATE_LUFS: f64 = -70.0;
const TOP_LUFS: f64 = 5.0;
const BINS_PER_LU: f64 = 100.0;
const BINS: usize = ((TOP_LUFS - ABSOLUTE_GATE_LUFS) * BINS_PER_LU) as usize;

/// Fixed-size histogram of block powers above the absolute gate.
#[derive(Clone, Debug)]
pub struct GatingHistogram {
    count: Vec<u64>,
    power: Vec<f64>,
    total_count: u64,
    total_power: f64,
}

impl Default for GatingHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl GatingHistogram {
    /// Allocates the bins (about 120 kB); nothing allocates afterwards.
    pub fn new() -> Self {
        Self { count: vec![0; BINS], power: vec![0.0; BINS], total_count: 0, total_power: 0.0 }
    }

    pub fn clear(&mut self) {
        self.count.fill(0);
        self.power.fill(0.0);
        self.total_count = 0;
        self.total_power = 0.0;
    }

    /// Number of blocks above the absolute gate.
    pub fn len(&self) -> u64 {
        self.total_count
    }

    pub fn is_empty(&self) -> bool {
        self.total_count == 0
    }

    fn bin(lufs: f64) -> usize {
        let b = ((lufs - ABSOLUTE_GATE_LUFS) * BINS_PER_LU).floor();
        if b >= (BINS - 1) as f64 {
            BINS - 1
        } else if b > 0.0 {
            b as usize
        } else {
            0
        }
    }

    /// Adds a block of mean weighted power `power`; dropped when at or below the absolute gate (or not
    /// finite). Returns whether it was kept.
    pub fn add(&mut self, power: f64) -> bool {
        let l = power_to_lufs(power);
        if !(l.is_finite() && l >= ABSOLUTE_GATE_LUFS) {
            return false;
        }
        let b = Self::bin(l);
        self.count[b] += 1;
        self.power[b] += power;
        self.total_count += 1;
        self.total_power += power;
        true
    }

    /// First bin whose blocks (taken at their mean power) pass a gate at `threshold_power`.
    fn first_bin_at_or_above(&self, threshold_power: f64) -> usize {
        let start = Self::bin(power_to_lufs(threshold_power)).saturating_sub(1);
        (start..BINS)
            .find(|&b| self.count[b] > 0 && self.power[b] / self.count[b] as f64 >= threshold_power)
            .unwrap_or(BINS)
    }

    /// Mean power of the blocks that pass the relative gate `rel_lu` (negative, in LU) below the mean
    /// of all blocks above the absolute gate, and their count. `None` when no block passes.
    fn relative_gated(&self, rel_lu: f64) -> Option<(usize, u64, f64)> {
        if self.total_count == 0 {
            return None;
        }
        let threshold = self.total_power / self.total_count as f64 * 10f64.powf(rel_lu / 10.0);
        let first = self.first_bin_at_or_above(threshold);
        let (mut n, mut p) = (0u64, 0.0f64);
        for b in first..BINS {
            n += self.count[b];
            p += self.power[b];
        }
        (n > 0).then_some((first, n, p / n as f64))
    }

    /// Integrated loudness (BS.1770-4 Annex 1, eq. (7)): `-inf` when no block is above the gates.
    pub fn integrated_lufs(&self) -> f64 {
        self.relative_gated(-10.0).map_or(f64::NEG_INFINITY, |(_, _, p)| power_to_lufs(p))
    }

    /// Loudness range (EBU Tech 3342): the spread between the 10th and 95th percentiles of the blocks
    /// passing a -20 LU relative gate. Percentile ranks as libebur128 (`round((n - 1) p)`, 0-based);
    /// 0 with fewer than two blocks.
    pub fn loudness_range_lu(&self) -> f64 {
        let Some((first, n, _)) = self.relative_gated(-20.0) else {
            return 0.0;
        };
        if n < 2 {
            return 0.0;
        }
        let rank = |p: f64| ((n - 1) as f64 * p + 0.5) as u64;
        let (lo, hi) = (rank(0.10), rank(0.95));
        let (mut seen, mut l_lo, mut l_hi) = (0u64, f64::NAN, f64::NAN);
        for b in first..BINS {
            let c = self.count[b];
            if c == 0 {
                continue;
            }
            let l = power_to_lufs(self.power[b] / c as f64);
            if l_lo.is_nan() && lo < seen + c {
                l_lo = l;
            }
            if hi < seen + c {
                l_hi = l;
                break;
            }
            seen += c;
        }
        if l_lo.is_finite() && l_hi.is_finite() {
            l_hi - l_lo
        } else {
            0.0
        }
    }
}

/// Sub-blocks the power ring holds: 60 s of 100 ms sub-blocks, the longest window anything here uses
/// (the loudness controller's bias estimate).
pub const RING: usize = 600;

/// The most recent sub-block powers, for sliding windows that are whole numbers of sub-blocks.
#[derive(Clone, Debug)]
pub struct PowerRing {
    buf: [f64; RING],
    /// Index the next sub-block goes to.
    next: usize,
    /// Sub-blocks pushed since the last clear (saturating).
    filled: u64,
}

impl Default for PowerRing {
    fn default() -> Self {
        Self::new()
    }
}

impl PowerRing {
    pub fn new() -> Self {
        Self { buf: [0.0; RING], next: 0, filled: 0 }
    }

    pub fn clear(&mut self) {
        *self = Self::new();
    }

    pub fn push(&mut self, power: f64) {
        self.buf[self.next] = power;
        self.next = (self.next + 1) % RING;
        self.filled = self.filled.saturating_add(1);
    }

    /// Sub-blocks pushed since the last clear.
    pub fn filled(&self) -> u64 {
        self.filled
    }

    /// Mean power over the last `n` sub-blocks (1..=[`RING`]), counting sub-blocks not yet seen as
    /// silence, as libebur128's zero-initialised buffer does at the start.
    pub fn mean(&self, n: usize) -> f64 {
        let n = n.clamp(1, RING);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += self.buf[(self.next + RING - k) % RING];
        }
        sum / n as f64
    }
}

impl PowerRing {
    /// Mean power over the last `n` sub-blocks actually pushed (fewer while the ring fills); 0 when empty.
    pub fn mean_recent(&self, n: usize) -> f64 {
        let n = (n.clamp(1, RING) as u64).min(self.filled) as usize;
        if n == 0 {
            0.0
        } else {
            self.mean(n)
        }
    }

    /// BS.1770-style relatively gated mean over the last `n` pushed entries (fewer while filling):
    /// the mean of the entries not more than `-rel_lu` LU below the plain mean. 0 when empty.
    pub fn gated_mean_recent(&self, n: usize, rel_lu: f64) -> f64 {
        let n = (n.clamp(1, RING) as u64).min(self.filled) as usize;
        if n == 0 {
            return 0.0;
        }
        let threshold = self.mean(n) * 10f64.powf(rel_lu / 10.0);
        let (mut sum, mut count) = (0.0, 0usize);
        for k in 1..=n {
            let p = self.buf[(self.next + RING - k) % RING];
            if p >= threshold {
                sum += p;
                count += 1;
            }
        }
        if count == 0 {
            0.0
        } else {
            sum / count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loudness::kweight::lufs_to_power;

    #[test]
    fn integrated_gates() {
        let mut h = GatingHistogram::new();
        assert_eq!(h.integrated_lufs(), f64::NEG_INFINITY);
        // 10 blocks at -20, 10 at -40 (below the relative gate of about -33 LU), 10 at -80 (absolute gate).
        for _ in 0..10 {
            h.add(lufs_to_power(-20.0));
            h.add(lufs_to_power(-40.0));
            h.add(lufs_to_power(-80.0));
        }
        assert_eq!(h.len(), 20);
        assert!((h.integrated_lufs() + 20.0).abs() < 1e-9, "{}", h.integrated_lufs());
    }

    #[test]
    fn lra_percentiles() {
        let mut h = GatingHistogram::new();
        // 101 blocks evenly from -30 to -20 LUFS: 10th percentile -29, 95th -20.5 (exact values, each alone
        // in its 0.01 LU bin).
        for i in 0..=100 {
            h.add(lufs_to_power(-30.0 + 0.1 * i as f64));
        }
        assert!((h.loudness_range_lu() - 8.5).abs() < 1e-9, "{}", h.loudness_range_lu());
        let mut one = GatingHistogram::new();
        one.add(lufs_to_power(-20.0));
        assert_eq!(one.loudness_range_lu(), 0.0);
    }

    #[test]
    fn ring_means() {
        let mut r = PowerRing::new();
        for i in 0..305 {
            r.push(i as f64);
        }
        assert_eq!(r.mean(4), (301.0 + 302.0 + 303.0 + 304.0) / 4.0);
        assert_eq!(r.mean(300), (5..305).sum::<i32>() as f64 / 300.0);
        let mut q = PowerRing::new();
        assert_eq!(q.mean_recent(30), 0.0);
        q.push(1.0);
        q.push(3.0);
        assert_eq!(q.mean_recent(30), 2.0);
        q.push(0.001);
        // Mean 1.3337; the -10 LU gate (0.13337) drops 0.001.
        assert_eq!(q.gated_mean_recent(30, -10.0), 2.0);
    }
}

//! Envelope features of a (dry, wet) pair, written once for both the dataset builder and inference so the
//! two cannot drift.
//!
//! Both signals are split into bands with ballast-dsp's own LR4 [`Crossover`] (the multiband node's
//! filter; a single band skips it), then cut into frames of [`HOP_MS`] (10 ms, no overlap). Per frame,
//! band and signal, [`FEATURES`] values, all in dB and floored at [`FLOOR_DB`]:
//!
//! | index | name | definition |
//! |---|---|---|
//! | 0 | `rms_db` | 10·log10 of the mean square over the frame, averaged over channels (a full-scale sine reads −3.01 dB, DESIGN.md) |
//! | 1 | `peak_db` | 20·log10 of the largest \|x\| over the frame and channels |
//! | 2 | `sub_rms_max_db` | the loudest of the frame's [`SUB_WINDOWS`] equal sub-windows (2.5 ms at 10 ms), as `rms_db` |
//! | 3 | `sub_rms_min_db` | the quietest of those sub-windows |
//!
//! Levels are absolute (dBFS), not normalised: a compressor's threshold is an absolute level, so the
//! network must see it. The wet signal's `rms_db` minus the dry's is the gain trajectory the compressor
//! applied ([`Features::gain_db`]); the sub-window extremes carry what happens inside a frame, which is
//! where attacks shorter than the hop show.
//!
//! The network takes a fixed window of [`WINDOW_S`] = 4 s ([`FRAMES`] = 400 frames): long enough to hold
//! several attack/release cycles of music at every attack and most release settings (release times
//! above ~1.5 s only show partly in 4 s), short enough that a training example is 12.8 KB per band. The
//! layout of one band's window is `[2, FRAMES, FEATURES]`, dry first.

use ballast_dsp::crossover::{Crossover, MAX_BANDS};
use ndarray::{s, Array4, ArrayView3};

/// Frame hop (and frame length), ms.
pub const HOP_MS: f64 = 10.0;
/// Sub-windows per frame for the short-window statistics.
pub const SUB_WINDOWS: usize = 4;
/// Values per frame, band and signal (see the module doc for the table).
pub const FEATURES: usize = 4;
/// Names of the features, in order.
pub const FEATURE_NAMES: [&str; FEATURES] = ["rms_db", "peak_db", "sub_rms_max_db", "sub_rms_min_db"];
/// The network's window, seconds.
pub const WINDOW_S: f64 = 4.0;
/// Frames in the network's window.
pub const FRAMES: usize = 400;
/// Lowest level reported, dB (digital silence reads this).
pub const FLOOR_DB: f32 = -100.0;
/// Signals per pair: dry (0), wet (1).
pub const SIGNALS: usize = 2;

/// Samples processed per crossover call: a multiple of any hop, so frames never straddle chunks.
const CHUNK_FRAMES: usize = 32;

/// Why features cannot be computed.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureError {
    SampleRate(f64),
    Channels { dry: usize, wet: usize },
    Length { dry: usize, wet: usize },
    Bands(usize),
}

impl std::fmt::Display for FeatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeatureError::SampleRate(sr) => write!(f, "sample rate {sr} Hz is outside 8000..=192000"),
            FeatureError::Channels { dry, wet } => {
                write!(f, "dry has {dry} channels and wet {wet}; both need the same count, 1 or 2")
            }
            FeatureError::Length { dry, wet } => write!(f, "dry has {dry} samples and wet {wet}; they must match"),
            FeatureError::Bands(n) => write!(f, "{n} crossover frequencies; at most {} allowed", MAX_BANDS - 1),
        }
    }
}

impl std::error::Error for FeatureError {}

/// Features of one pair: `[bands, SIGNALS, frames, FEATURES]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    pub data: Array4<f32>,
}

impl Features {
    pub fn bands(&self) -> usize {
        self.data.shape()[0]
    }

    pub fn frames(&self) -> usize {
        self.data.shape()[2]
    }

    /// One band's `[SIGNALS, frames, FEATURES]`.
    pub fn band(&self, band: usize) -> ArrayView3<'_, f32> {
        self.data.slice(s![band, .., .., ..])
    }

    /// The network's input for `band`: [`FRAMES`] frames from `start`, `[SIGNALS, FRAMES, FEATURES]`.
    /// `None` when the pair is shorter than that.
    pub fn window(&self, band: usize, start: usize) -> Option<ArrayView3<'_, f32>> {
        (start + FRAMES <= self.frames()).then(|| self.data.slice(s![band, .., start..start + FRAMES, ..]))
    }

    /// The gain the processing applied per frame, dB: wet `rms_db` minus dry `rms_db`.
    pub fn gain_db(&self, band: usize) -> Vec<f32> {
        (0..self.frames()).map(|t| self.data[[band, 1, t, 0]] - self.data[[band, 0, t, 0]]).collect()
    }
}

/// Computes [`Features`]. Holds its crossovers and band buffers, so repeated calls allocate only the
/// result (and not even that with [`FeatureExtractor::extract_into`] on a result of the right size).
#[derive(Clone, Debug)]
pub struct FeatureExtractor {
    sample_rate: f64,
    channels: usize,
    bands: usize,
    hop: usize,
    /// One per signal (dry, wet); `None` for a single band.
    crossovers: Option<[Crossover; SIGNALS]>,
    /// `bands × channels` planar buffers of one chunk, per signal.
    band_buf: [Vec<Vec<f32>>; SIGNALS],
}

impl FeatureExtractor {
    /// An extractor for `channels` (1 or 2) channels at `sample_rate`, splitting at `crossovers_hz` (low
    /// to high; empty = one band).
    pub fn new(sample_rate: f64, channels: usize, crossovers_hz: &[f64]) -> Result<Self, FeatureError> {
        if !(8_000.0..=192_000.0).contains(&sample_rate) {
            return Err(FeatureError::SampleRate(sample_rate));
        }
        if !(1..=2).contains(&channels) {
            return Err(FeatureError::Channels { dry: channels, wet: channels });
        }
        if crossovers_hz.len() >= MAX_BANDS {
            return Err(FeatureError::Bands(crossovers_hz.len()));
        }
        let bands = crossovers_hz.len() + 1;
        let hop = ((sample_rate * HOP_MS / 1000.0).round() as usize).max(SUB_WINDOWS);
        let chunk = hop * CHUNK_FRAMES;
        let crossovers = (bands > 1).then(|| {
            let make = || {
                let mut x = Crossover::new(channels, bands);
                x.set_frequencies(crossovers_hz);
                // prepare() snaps the frequency glides: the split is at its target from the first sample.
                x.prepare(sample_rate, chunk);
                x
            };
            [make(), make()]
        });
        let bufs = || vec![vec![0.0f32; chunk]; bands * channels];
        Ok(Self { sample_rate, channels, bands, hop, crossovers, band_buf: [bufs(), bufs()] })
    }

    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn bands(&self) -> usize {
        self.bands
    }

    /// Samples per frame.
    pub fn hop_samples(&self) -> usize {
        self.hop
    }

    /// Whole frames in `samples` samples (a partial last frame is dropped).
    pub fn frames_for(&self, samples: usize) -> usize {
        samples / self.hop
    }

    /// Features of `dry` and `wet` (planar: one slice per channel, all the same length).
    pub fn extract(&mut self, dry: &[&[f32]], wet: &[&[f32]]) -> Result<Features, FeatureError> {
        let n = dry.first().map_or(0, |c| c.len());
        let mut out = Features { data: Array4::zeros((self.bands, SIGNALS, self.frames_for(n), FEATURES)) };
        self.extract_into(dry, wet, &mut out)?;
        Ok(out)
    }

    /// As [`FeatureExtractor::extract`], reusing `out`'s storage when it already has the right shape.
    /// Filter state starts from silence on every call, so the result depends only on the inputs.
    pub fn extract_into(&mut self, dry: &[&[f32]], wet: &[&[f32]], out: &mut Features) -> Result<(), FeatureError> {
        if dry.len() != self.channels || wet.len() != self.channels {
            return Err(FeatureError::Channels { dry: dry.len(), wet: wet.len() });
        }
        let n = dry[0].len();
        for c in dry.iter().chain(wet) {
            if c.len() != n {
                return Err(FeatureError::Length { dry: n, wet: c.len() });
            }
        }
        let frames = self.frames_for(n);
        let shape = (self.bands, SIGNALS, frames, FEATURES);
        if out.data.dim() != shape {
            out.data = Array4::zeros(shape);
        }
        if let Some(x) = self.crossovers.as_mut() {
            x[0].reset();
            x[1].reset();
        }
        let chunk = self.hop * CHUNK_FRAMES;
        let mut frame0 = 0;
        while frame0 < frames {
            let chunk_frames = (frames - frame0).min(CHUNK_FRAMES);
            let (a, len) = (frame0 * self.hop, chunk_frames * self.hop);
            debug_assert!(len <= chunk);
            for (sig, input) in [dry, wet].into_iter().enumerate() {
                self.split(sig, input, a, len);
                for band in 0..self.bands {
                    for f in 0..chunk_frames {
                        let v = frame_features(
                            &self.band_buf[sig][band * self.channels..][..self.channels],
                            f * self.hop,
                            self.hop,
                        );
                        for (k, x) in v.into_iter().enumerate() {
                            out.data[[band, sig, frame0 + f, k]] = x;
                        }
                    }
                }
            }
            frame0 += chunk_frames;
        }
        Ok(())
    }

    /// Band-splits `input[a..a+len]` of signal `sig` into `band_buf[sig]`.
    fn split(&mut self, sig: usize, input: &[&[f32]], a: usize, len: usize) {
        let bufs = &mut self.band_buf[sig];
        match self.crossovers.as_mut() {
            None => {
                for (c, ch) in input.iter().enumerate() {
                    bufs[c][..len].copy_from_slice(&ch[a..a + len]);
                }
            }
            Some(x) => {
                let mut ins = [&[][..]; 2];
                for (c, ch) in input.iter().enumerate() {
                    ins[c] = &ch[a..a + len];
                }
                // A dozen pointers per 320 ms chunk: not worth a fixed-size dance off the RT thread.
                let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| &mut b[..len]).collect();
                x[sig].process(&ins[..self.channels], &mut outs);
            }
        }
    }
}

/// The [`FEATURES`] of one frame `[start, start + hop)` of `channels` planar buffers.
fn frame_features(channels: &[Vec<f32>], start: usize, hop: usize) -> [f32; FEATURES] {
    let mut sum_sq = 0.0f64;
    let mut peak = 0.0f32;
    let mut sub_max = f64::NEG_INFINITY;
    let mut sub_min = f64::INFINITY;
    for w in 0..SUB_WINDOWS {
        // Integer sub-window bounds, so a hop that SUB_WINDOWS does not divide still covers every sample once.
        let (lo, hi) = (start + w * hop / SUB_WINDOWS, start + (w + 1) * hop / SUB_WINDOWS);
        let mut sub = 0.0f64;
        for ch in channels {
            for &x in &ch[lo..hi] {
                sub += f64::from(x) * f64::from(x);
                peak = peak.max(x.abs());
            }
        }
        sum_sq += sub;
        let ms = sub / ((hi - lo) * channels.len()) as f64;
        sub_max = sub_max.max(ms);
        sub_min = sub_min.min(ms);
    }
    let ms = sum_sq / (hop * channels.len()) as f64;
    [power_db(ms), amplitude_db(peak), power_db(sub_max), power_db(sub_min)]
}

/// 10·log10 of a mean square, floored at [`FLOOR_DB`].
pub fn power_db(ms: f64) -> f32 {
    ((10.0 * ms.log10()) as f32).max(FLOOR_DB)
}

/// 20·log10 of an amplitude, floored at [`FLOOR_DB`].
pub fn amplitude_db(a: f32) -> f32 {
    ((20.0 * f64::from(a).log10()) as f32).max(FLOOR_DB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq_hz: f64, amp: f32, sr: f64, n: usize) -> Vec<f32> {
        (0..n).map(|i| amp * (2.0 * std::f64::consts::PI * freq_hz * i as f64 / sr).sin() as f32).collect()
    }

    /// Deterministic white-ish noise (xorshift32), ±1.
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn sine_rms_matches_the_formula() {
        // 1 kHz at 48 kHz: a 10 ms frame holds exactly 10 periods, so its mean square is A²/2.
        let (sr, amp) = (48_000.0, 0.5f32);
        let x = sine(1000.0, amp, sr, 48_000);
        let mut fx = FeatureExtractor::new(sr, 1, &[]).unwrap();
        let f = fx.extract(&[&x], &[&x]).unwrap();
        assert_eq!(f.frames(), 100);
        let want_rms = 20.0 * (amp as f64).log10() - 10.0 * 2f64.log10(); // −6.0206 − 3.0103 dB
        let want_peak = 20.0 * (amp as f64).log10();
        for t in 0..f.frames() {
            let rms = f.data[[0, 0, t, 0]] as f64;
            assert!((rms - want_rms).abs() < 0.01, "frame {t}: {rms} vs {want_rms}");
            // Samples land within 2π·1000/48000 rad of the crest: peak within 0.01 dB of A.
            let peak = f.data[[0, 0, t, 1]] as f64;
            assert!((peak - want_peak).abs() < 0.01, "frame {t}: {peak} vs {want_peak}");
            // Sub-windows of 2.5 periods: between the formula ± a half period's worth.
            assert!(f.data[[0, 0, t, 2]] as f64 >= want_rms - 1e-3);
            assert!(f.data[[0, 0, t, 3]] as f64 <= want_rms + 1e-3);
        }
    }

    #[test]
    fn stereo_rms_averages_channels() {
        let sr = 48_000.0;
        let l = sine(1000.0, 1.0, sr, 4800);
        let r = vec![0.0f32; 4800];
        let mut fx = FeatureExtractor::new(sr, 2, &[]).unwrap();
        let f = fx.extract(&[&l, &r], &[&l, &r]).unwrap();
        // Mean square (1/2 + 0)/2 = 1/4 -> −6.02 dB; peak from the louder channel, 0 dB.
        for t in 0..f.frames() {
            assert!((f.data[[0, 0, t, 0]] + 6.0206).abs() < 0.01);
            assert!(f.data[[0, 0, t, 1]].abs() < 0.01);
        }
    }

    #[test]
    fn constant_gain_gives_a_constant_difference() {
        let sr = 48_000.0;
        let dry = noise(96_000, 7);
        let g_db = -7.5f32;
        let g = 10f32.powf(g_db / 20.0);
        let wet: Vec<f32> = dry.iter().map(|x| x * g).collect();
        for splits in [&[][..], &[200.0, 2000.0, 8000.0][..]] {
            let mut fx = FeatureExtractor::new(sr, 1, splits).unwrap();
            let f = fx.extract(&[&dry], &[&wet]).unwrap();
            for band in 0..f.bands() {
                for (t, d) in f.gain_db(band).into_iter().enumerate() {
                    // The crossover is linear, so each band scales by g too; f32 rounding of x·g and of the
                    // filter state leaves ~1e-5 dB.
                    assert!((d - g_db).abs() < 1e-3, "band {band} frame {t}: {d}");
                    let dp = f.data[[band, 1, t, 1]] - f.data[[band, 0, t, 1]];
                    assert!((dp - g_db).abs() < 1e-3, "peak band {band} frame {t}: {dp}");
                }
            }
        }
    }

    #[test]
    fn crossover_puts_a_low_tone_in_the_low_band() {
        let sr = 48_000.0;
        let x = sine(100.0, 0.5, sr, 48_000);
        let mut fx = FeatureExtractor::new(sr, 1, &[1000.0]).unwrap();
        let f = fx.extract(&[&x], &[&x]).unwrap();
        let t = 50; // after the filters settle
                    // 100 Hz is a decade below the 1 kHz split: LR4 passes it at ~0 dB low and −80 dB high (24 dB/oct
                    // for ~3.3 octaves, plus the LR −6 dB at the split).
        assert!((f.data[[0, 0, t, 0]] - (-9.03)).abs() < 0.1, "{}", f.data[[0, 0, t, 0]]);
        assert!(f.data[[1, 0, t, 0]] < -60.0, "{}", f.data[[1, 0, t, 0]]);
    }

    #[test]
    fn silence_reads_the_floor_and_windows_fit() {
        let z = vec![0.0f32; 48_000 * 5];
        let mut fx = FeatureExtractor::new(48_000.0, 1, &[]).unwrap();
        let f = fx.extract(&[&z], &[&z]).unwrap();
        assert_eq!(f.frames(), 500);
        assert!(f.data.iter().all(|&v| v == FLOOR_DB));
        assert_eq!(f.window(0, 100).unwrap().shape(), &[SIGNALS, FRAMES, FEATURES]);
        assert!(f.window(0, 101).is_none());
    }

    #[test]
    fn repeatable_and_reusing_storage_gives_the_same_result() {
        let dry = noise(50_000, 3);
        let wet: Vec<f32> = dry.iter().map(|x| (x * 3.0).tanh() * 0.5).collect();
        let mut fx = FeatureExtractor::new(44_100.0, 1, &[300.0, 3000.0]).unwrap();
        let a = fx.extract(&[&dry], &[&wet]).unwrap();
        let mut b = a.clone();
        b.data.fill(123.0);
        fx.extract_into(&[&dry], &[&wet], &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(fx.hop_samples(), 441);
        assert_eq!(a.frames(), 50_000 / 441);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(FeatureExtractor::new(1000.0, 1, &[]), Err(FeatureError::SampleRate(_))));
        assert!(matches!(FeatureExtractor::new(48_000.0, 3, &[]), Err(FeatureError::Channels { .. })));
        assert!(matches!(FeatureExtractor::new(48_000.0, 1, &[1.0; 6]), Err(FeatureError::Bands(6))));
        let mut fx = FeatureExtractor::new(48_000.0, 1, &[]).unwrap();
        let (a, b) = (vec![0.0f32; 10], vec![0.0f32; 11]);
        assert!(matches!(fx.extract(&[&a], &[&b]), Err(FeatureError::Length { .. })));
        assert!(matches!(fx.extract(&[&a, &a], &[&a]), Err(FeatureError::Channels { .. })));
    }
}

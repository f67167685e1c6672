//! Linkwitz-Riley crossover: allpass sum (analytic and through the real process code), band isolation,
//! click-free frequency glides, block-size invariance.

mod common;

use ballast_dsp::crossover::{Crossover, MAX_SPLIT_FRACTION};
use common::signals::{sine, Rng};
use std::f64::consts::PI;

const RATES: [f64; 4] = [44_100.0, 48_000.0, 96_000.0, 192_000.0];

/// Flatness bound of the brief: ±0.01 dB.
const FLAT_DB: f64 = 0.01;

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// Log-spaced test frequencies from 20 Hz to 20 kHz (and below Nyquist).
fn test_freqs(sr: f64, n: usize) -> Vec<f64> {
    let top = 20_000f64.min(0.49 * sr);
    (0..n).map(|i| 20.0 * (top / 20.0).powf(i as f64 / (n - 1) as f64)).collect()
}

/// Sorted split sets: 1–5 splits, 20 Hz … 0.45 × Nyquist, at least 1/3 octave apart.
fn random_splits(rng: &mut Rng, sr: f64) -> Vec<f64> {
    let max = MAX_SPLIT_FRACTION * sr;
    loop {
        let n = 1 + (rng.next_u64() % 5) as usize;
        let mut f: Vec<f64> = (0..n).map(|_| 20.0 * (max / 20.0).powf(rng.range(0.0, 1.0))).collect();
        f.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if f.windows(2).all(|w| w[1] / w[0] >= 2f64.powf(1.0 / 3.0)) {
            return f;
        }
    }
}

fn split_sets(sr: f64, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(seed);
    let mut sets: Vec<Vec<f64>> = (0..6).map(|_| random_splits(&mut rng, sr)).collect();
    // Extremes: the lowest split of the brief, and 18 kHz (clamped to 0.45 × Nyquist at 44.1/48 kHz).
    sets.push(vec![30.0]);
    sets.push(vec![18_000.0]);
    sets.push(vec![30.0, 18_000.0]);
    sets.push(vec![30.0, 120.0, 1000.0, 6000.0, 18_000.0]);
    sets
}

fn make(sr: f64, splits: &[f64], block: usize) -> Crossover {
    let mut x = Crossover::new(1, splits.len() + 1);
    x.set_frequencies(splits);
    x.prepare(sr, block);
    x
}

/// Impulse response of every band through `Crossover::process`, `[band][n]`.
fn impulse_bands(x: &mut Crossover, len: usize, block: usize) -> Vec<Vec<f32>> {
    let bands = x.bands();
    let mut input = vec![0.0f32; len];
    input[0] = 1.0;
    let mut out = vec![vec![0.0f32; len]; bands];
    let mut pos = 0;
    while pos < len {
        let n = block.min(len - pos);
        let ins = [&input[pos..pos + n]];
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|b| &mut b[pos..pos + n]).collect();
        x.process(&ins, &mut outs);
        pos += n;
    }
    out
}

/// |DFT| of `h` at `f` (direct sum in f64).
fn dft_mag(h: &[f64], f: f64, sr: f64) -> f64 {
    let w = 2.0 * PI * f / sr;
    let (mut re, mut im) = (0.0, 0.0);
    let (c, s) = (w.cos(), -w.sin());
    let (mut pr, mut pi) = (1.0f64, 0.0f64);
    for (n, &v) in h.iter().enumerate() {
        re += v * pr;
        im += v * pi;
        let t = pr * c - pi * s;
        pi = pr * s + pi * c;
        pr = t;
        if n % 4096 == 4095 {
            // Renormalise the rotating phasor against drift.
            let m = pr.hypot(pi);
            pr /= m;
            pi /= m;
        }
    }
    re.hypot(im)
}

#[test]
fn analytic_sum_is_flat_for_random_splits() {
    let mut worst = 0.0f64;
    for (k, &sr) in RATES.iter().enumerate() {
        for splits in split_sets(sr, 11 + k as u64) {
            let x = make(sr, &splits, 64);
            for f in test_freqs(sr, 400) {
                let (mut re, mut im) = (0.0, 0.0);
                for b in 0..x.bands() {
                    let h = x.response(b, f);
                    re += h.0;
                    im += h.1;
                }
                let dev = db(re.hypot(im)).abs();
                worst = worst.max(dev);
                assert!(dev < FLAT_DB, "sr {sr} splits {splits:?} f {f}: {dev} dB");
            }
        }
    }
    // f64 sections: the product of allpasses is 1 to rounding (3e-9 dB measured, worst for a 20 Hz split
    // at 192 kHz where the poles sit closest to z = 1).
    assert!(worst < 1e-7, "analytic worst {worst} dB");
    eprintln!("analytic sum: worst deviation {worst:e} dB");
}

#[test]
fn impulse_sum_through_process_is_flat() {
    let mut worst = 0.0f64;
    for (k, &sr) in RATES.iter().enumerate() {
        // Long enough for a 20 Hz LR4 allpass to ring down below f32 resolution (~0.35 s).
        let len = ((0.35 * sr) as usize).next_power_of_two();
        for splits in split_sets(sr, 11 + k as u64) {
            let mut x = make(sr, &splits, 256);
            let bands = impulse_bands(&mut x, len, 256);
            let sum: Vec<f64> = (0..len).map(|n| bands.iter().map(|b| b[n] as f64).sum()).collect();
            for f in test_freqs(sr, 60) {
                let dev = db(dft_mag(&sum, f, sr)).abs();
                worst = worst.max(dev);
                // Same ±0.01 dB bound; f32 band outputs add ~1e-6 dB of rounding.
                assert!(dev < FLAT_DB, "sr {sr} splits {splits:?} f {f}: {dev} dB");
            }
        }
    }
    eprintln!("impulse-response sum: worst deviation {worst:e} dB");
}

#[test]
fn sine_sum_through_process_is_flat() {
    // Steady-state sines at integer frequencies, one-second analysis window (whole cycles), summed bands.
    let sr = 48_000.0;
    let splits = [30.0, 120.0, 1000.0, 6000.0, 18_000.0];
    let mut worst = 0.0f64;
    for f in [20.0, 30.0, 77.0, 120.0, 440.0, 1000.0, 3001.0, 6000.0, 12_000.0, 18_000.0, 20_000.0] {
        let mut x = make(sr, &splits, 512);
        let len = 96_000;
        let input = sine(f, 0.5, sr, len);
        let mut bands = vec![vec![0.0f32; len]; 6];
        let mut pos = 0;
        while pos < len {
            let n = 512.min(len - pos);
            let ins = [&input[pos..pos + n]];
            let mut outs: Vec<&mut [f32]> = bands.iter_mut().map(|b| &mut b[pos..pos + n]).collect();
            x.process(&ins, &mut outs);
            pos += n;
        }
        let tail = 48_000..96_000;
        let (mut a, mut b) = (0.0, 0.0);
        for n in tail.clone() {
            let y: f64 = bands.iter().map(|band| band[n] as f64).sum();
            let w = 2.0 * PI * f * n as f64 / sr;
            a += y * w.sin();
            b += y * w.cos();
        }
        let amp = 2.0 * a.hypot(b) / tail.len() as f64;
        let dev = db(amp / 0.5).abs();
        worst = worst.max(dev);
        assert!(dev < FLAT_DB, "{f} Hz: {dev} dB");
    }
    eprintln!("sine sum: worst deviation {worst:e} dB");
}

#[test]
fn bands_cross_at_minus_6db_with_24db_per_octave_slopes() {
    // Splits a decade apart (all below 0.45 × Nyquist at 44.1 kHz), so a neighbouring split changes a band's level at its own split by at most
    // 10·log10(1 + 10^-4) = 4e-4 dB; LR4 is |H|² = 1/2 per Butterworth pair at fc, i.e. −6.02 dB.
    // Bound ±0.01 dB leaves room for that and for bilinear warping of the neighbours.
    for &sr in &RATES {
        let splits = [50.0, 500.0, 5000.0];
        let x = make(sr, &splits, 64);
        let mag = |b: usize, f: f64| {
            let h = x.response(b, f);
            db(h.0.hypot(h.1))
        };
        for (s, &fc) in splits.iter().enumerate() {
            for b in [s, s + 1] {
                let m = mag(b, fc);
                assert!((m + 6.0206).abs() < 0.01, "sr {sr} band {b} at {fc}: {m} dB");
            }
            // Two octaves into each stopband. Analog LR4: 1/(1 + 4⁴) = −48.2 dB; the bilinear transform only
            // deepens the low-pass stopband (zero at Nyquist) and the high-pass one is at fc/4 where warping
            // is negligible, so ≥ 47 dB leaves 1.2 dB for the neighbouring sections (allpass: none).
            let below = mag(s + 1, fc / 4.0);
            let above = mag(s, fc * 4.0);
            if fc * 4.0 < 0.49 * sr {
                assert!(above < -47.0, "sr {sr} band {s} at {}: {above} dB", fc * 4.0);
            }
            assert!(below < -47.0, "sr {sr} band {} at {}: {below} dB", s + 1, fc / 4.0);
        }
    }
}

#[test]
fn isolation_holds_in_the_time_domain() {
    // Same slopes measured on the impulse response of the real filters (2-band, 1 kHz split, 48 kHz).
    let sr = 48_000.0;
    let mut x = make(sr, &[1000.0], 64);
    let bands = impulse_bands(&mut x, 1 << 15, 64);
    let h = |b: usize| bands[b].iter().map(|&v| v as f64).collect::<Vec<f64>>();
    let (lo, hi) = (h(0), h(1));
    assert!((db(dft_mag(&lo, 1000.0, sr)) + 6.0206).abs() < 0.01);
    assert!((db(dft_mag(&hi, 1000.0, sr)) + 6.0206).abs() < 0.01);
    assert!(db(dft_mag(&lo, 4000.0, sr)) < -47.0);
    assert!(db(dft_mag(&hi, 250.0, sr)) < -47.0);
}

#[test]
fn frequencies_are_clamped_below_0_45_nyquist() {
    let x = make(44_100.0, &[18_000.0], 64);
    assert!((x.frequencies()[0] - MAX_SPLIT_FRACTION * 44_100.0).abs() < 1e-9);
    let x = make(192_000.0, &[18_000.0], 64);
    assert_eq!(x.frequencies()[0], 18_000.0);
}

#[test]
fn frequency_glide_does_not_click() {
    // A 1 kHz sine through the summed crossover while the split jumps 300 Hz → 3 kHz. The sum is an
    // allpass whose phase moves during the 50 ms glide; a click (filter state meeting abruptly changed
    // coefficients) shows as a sample step of the order of the amplitude (0.5), ~8× the sine's own
    // largest step (0.065). Bound: 10 % above the steady maximum step; the glide's phase and amplitude
    // modulation of a time-varying allpass measured +5 %.
    let sr = 48_000.0;
    let mut x = make(sr, &[300.0, 8000.0], 64);
    let len = 48_000;
    let input = sine(1000.0, 0.5, sr, len);
    let mut y = vec![0.0f64; len];
    let mut bands = vec![vec![0.0f32; 64]; 3];
    for start in (0..len).step_by(64) {
        if start == 24_000 {
            x.set_frequency(0, 3000.0);
        }
        let ins = [&input[start..start + 64]];
        let mut outs: Vec<&mut [f32]> = bands.iter_mut().map(|b| &mut b[..]).collect();
        x.process(&ins, &mut outs);
        for n in 0..64 {
            y[start + n] = bands.iter().map(|b| b[n] as f64).sum();
        }
    }
    let step = |r: std::ops::Range<usize>| r.map(|n| (y[n] - y[n - 1]).abs()).fold(0.0, f64::max);
    let steady = step(12_000..24_000);
    let glide = step(24_000..36_000);
    assert!(glide < steady * 1.10, "glide step {glide} vs steady {steady}");
    assert!((x.frequencies()[0] - 3000.0).abs() < 1e-3, "glide finished");
}

#[test]
fn block_size_does_not_change_output() {
    let sr = 48_000.0;
    let len = 10_000;
    let input: Vec<f32> = common::signals::bursty_noise(5, len, 700);
    let run = |block: usize| {
        let mut x = Crossover::new(1, 5);
        x.set_frequencies(&[80.0, 500.0, 2500.0, 9000.0]);
        x.prepare(sr, 512);
        let mut out = vec![vec![0.0f32; len]; 5];
        let mut pos = 0;
        while pos < len {
            if pos == 3000 {
                x.set_frequency(1, 700.0);
            }
            // Blocks are cut at sample 3000 so the change lands on the same sample for every block size.
            let end = if pos < 3000 { 3000 } else { len };
            let n = block.min(end - pos);
            let ins = [&input[pos..pos + n]];
            let mut outs: Vec<&mut [f32]> = out.iter_mut().map(|b| &mut b[pos..pos + n]).collect();
            x.process(&ins, &mut outs);
            pos += n;
        }
        out
    };
    let reference = run(1);
    for block in [7, 64, 500] {
        let out = run(block);
        for (a, b) in reference.iter().zip(&out) {
            assert!(a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()), "block {block}");
        }
    }
}

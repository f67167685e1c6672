//! Tests of the `tone`, `noise` and `sweep` generators against formulas: pitch, level, aliasing,
//! spectral slope, sweep frequency law; plus RT safety, block-size invariance and reset determinism.
mod common;

use ballast_dsp::generators::{BlepOscillator, Decimator, Noise, Sweep, Tone, Waveform};
use ballast_dsp::{ParamId, Processor};
use common::{assert_block_size_invariant, rt, run_generator};
use std::f64::consts::PI;

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

const SR: f64 = 48_000.0;
/// Saw alias bounds, dB re fundamental, f0 up to 5 kHz at 48 kHz, for aliases [anywhere, below 20 kHz,
/// below 10 kHz]. Measured worst over the four pitches: PolyBLEP at fs −22.3, −27.8, −46.5; the tone
/// node −47.6, −50.0, −68.7 (naive saw −14.0, −15.6, −18.1).
const BLEP_BOUND: [f64; 3] = [-20.0, -26.0, -44.0];
const TONE_BOUND: [f64; 3] = [-45.0, -48.0, -66.0];

// Parameter ids, from the descriptors (stable).
const TONE_WAVE: ParamId = ParamId(0);
const TONE_FREQ: ParamId = ParamId(1);
const TONE_LEVEL: ParamId = ParamId(2);
const TONE_PW: ParamId = ParamId(3);
const NOISE_COLOR: ParamId = ParamId(0);
const NOISE_LEVEL: ParamId = ParamId(1);
const NOISE_SEED: ParamId = ParamId(2);
const SWEEP_START: ParamId = ParamId(0);
const SWEEP_END: ParamId = ParamId(1);
const SWEEP_DURATION: ParamId = ParamId(2);
const SWEEP_LEVEL: ParamId = ParamId(3);
const SWEEP_REPEAT: ParamId = ParamId(4);

fn tone(wave: Waveform, freq: f32, level_db: f32, sr: f64) -> Tone {
    let mut t = Tone::new(2);
    t.set_param(TONE_WAVE, wave.index()).unwrap();
    t.set_param(TONE_FREQ, freq).unwrap();
    t.set_param(TONE_LEVEL, level_db).unwrap();
    t.prepare(sr, 512);
    t
}

fn render(node: &mut dyn Processor, frames: usize) -> Vec<f32> {
    let out = run_generator(node, frames, 256);
    for ch in &out[1..] {
        assert_eq!(ch, &out[0], "all outputs carry the same signal");
    }
    out.into_iter().next().unwrap()
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

/// Times (in samples, linearly interpolated) of the upward zero crossings.
fn upward_crossings(x: &[f32]) -> Vec<f64> {
    let mut t = Vec::new();
    for i in 1..x.len() {
        let (a, b) = (x[i - 1] as f64, x[i] as f64);
        if a < 0.0 && b >= 0.0 {
            t.push(i as f64 - 1.0 + a / (a - b));
        }
    }
    t
}

/// 4-term Blackman-Harris window (F. J. Harris, "On the use of windows for harmonic analysis with the
/// discrete Fourier transform", Proc. IEEE 66(1), 1978): sidelobes below −92 dB, so a component 92 dB
/// down is still seen next to a full-scale one.
fn blackman_harris(n: usize) -> Vec<f64> {
    let (a0, a1, a2, a3) = (0.35875, 0.48829, 0.14128, 0.01168);
    (0..n)
        .map(|i| {
            let x = 2.0 * PI * i as f64 / n as f64;
            a0 - a1 * x.cos() + a2 * (2.0 * x).cos() - a3 * (3.0 * x).cos()
        })
        .collect()
}

/// Amplitude of the sinusoid at `freq` in `x` (windowed single-bin DFT, normalised by the window sum so a
/// sine of amplitude A reads A).
fn amplitude_at(x: &[f64], w: &[f64], freq: f64, sr: f64) -> f64 {
    let omega = 2.0 * PI * freq / sr;
    // Goertzel recursion.
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for (xi, wi) in x.iter().zip(w) {
        let s0 = xi * wi + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let re = s1 - s2 * omega.cos();
    let im = s2 * omega.sin();
    let wsum: f64 = w.iter().sum();
    2.0 * (re * re + im * im).sqrt() / wsum
}

/// In-place radix-2 FFT (Cooley–Tukey), `re`/`im` of power-of-two length.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (ang * k as f64).sin_cos();
                let (a, b) = (start + k, start + k + len / 2);
                let tr = re[b] * c - im[b] * s;
                let ti = re[b] * s + im[b] * c;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

/// Welch power spectral density (Hann window, 50 % overlap), `nfft / 2 + 1` bins.
fn welch_psd(x: &[f32], nfft: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..nfft).map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / nfft as f64).cos()).collect();
    let mut psd = vec![0.0; nfft / 2 + 1];
    let mut frames = 0;
    let mut start = 0;
    let (mut re, mut im) = (vec![0.0; nfft], vec![0.0; nfft]);
    while start + nfft <= x.len() {
        for i in 0..nfft {
            re[i] = x[start + i] as f64 * w[i];
            im[i] = 0.0;
        }
        fft(&mut re, &mut im);
        for (k, p) in psd.iter_mut().enumerate() {
            *p += re[k] * re[k] + im[k] * im[k];
        }
        frames += 1;
        start += nfft / 2;
    }
    for p in psd.iter_mut() {
        *p /= frames as f64;
    }
    psd
}

/// Mean PSD in dB over each octave band `[f, 2f)` for f = lo, 2 lo, … while 2f ≤ hi (band centres
/// returned as the geometric mean √2 f).
fn octave_bands(psd: &[f64], nfft: usize, sr: f64, lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let bin_hz = sr / nfft as f64;
    let mut bands = Vec::new();
    let mut f = lo;
    while 2.0 * f <= hi * 1.0001 {
        let (k0, k1) = ((f / bin_hz).ceil() as usize, (2.0 * f / bin_hz).floor() as usize);
        let mean = psd[k0..=k1].iter().sum::<f64>() / (k1 - k0 + 1) as f64;
        bands.push((f * 2f64.sqrt(), 10.0 * mean.log10()));
        f *= 2.0;
    }
    bands
}

/// Least-squares slope of band level (dB) against log2(frequency): dB per octave.
fn slope_db_per_octave(bands: &[(f64, f64)]) -> f64 {
    let n = bands.len() as f64;
    let xs: Vec<f64> = bands.iter().map(|b| b.0.log2()).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = bands.iter().map(|b| b.1).sum::<f64>() / n;
    let sxy: f64 = xs.iter().zip(bands).map(|(x, b)| (x - mx) * (b.1 - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

/// Asserts block-size invariance when a parameter change is made right after `prepare` (so smoothers
/// ramp across block boundaries).
fn assert_invariant_with_change(make: impl Fn() -> Box<dyn Processor>, change: impl Fn(&mut dyn Processor)) {
    let frames = 6000;
    let mut reference = make();
    reference.prepare(SR, 512);
    change(reference.as_mut());
    let want = run_generator(reference.as_mut(), frames, 1);
    for block in [7, 64, 256, 512] {
        let mut n = make();
        n.prepare(SR, 512);
        change(n.as_mut());
        let got = run_generator(n.as_mut(), frames, block);
        for (a, b) in want.iter().zip(&got) {
            if let Some(i) = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()) {
                panic!("block {block}: differs at {i}: {} vs {}", a[i], b[i]);
            }
        }
    }
}

fn assert_reset_deterministic(node: &mut dyn Processor) {
    let a = run_generator(node, 5000, 100);
    node.reset();
    let b = run_generator(node, 5000, 100);
    assert_eq!(a, b, "{}: reset then the same run must repeat bit for bit", node.descriptor().kind);
}

// ---------------------------------------------------------------- tone

#[test]
fn tone_frequency_is_exact() {
    for wave in [Waveform::Sine, Waveform::Saw, Waveform::Square, Waveform::Triangle] {
        for freq in [100.0f32, 1000.0, 7919.3] {
            let mut t = tone(wave, freq, -6.0, SR);
            let x = render(&mut t, 480_000);
            // From sample 256 on: the decimator's start-up (31 samples) rises from 0 with tiny wiggles.
            let c = upward_crossings(&x[256..]);
            let est = (c.len() - 1) as f64 * SR / (c[c.len() - 1] - c[0]);
            // One upward crossing per cycle for every waveform; the f64 phase accumulator is exact to
            // ~1e-13 and interpolated crossing times are within ~0.05 sample, over a 10 s span: 1e-6 relative.
            let err = (est / freq as f64 - 1.0).abs();
            assert!(err < 1e-6, "{wave:?} {freq} Hz: measured {est} Hz");
        }
    }
}

#[test]
fn tone_frequency_is_held_below_nyquist() {
    let mut t = tone(Waveform::Sine, 20_000.0, -6.0, 8_000.0);
    let x = render(&mut t, 80_000);
    let c = upward_crossings(&x[256..]);
    let est = (c.len() - 1) as f64 * 8_000.0 / (c[c.len() - 1] - c[0]);
    // Held at the decimator's passband edge 20/48 fs = 3333.3 Hz; 2.4 samples per cycle make the
    // interpolated crossings coarse (0.1 %).
    assert!((est / 3333.333 - 1.0).abs() < 1e-3, "{est}");
    assert!(x.iter().all(|v| v.is_finite()));
}

/// RMS of the tone (peak 1) as its band-limiting shapes it: every PolyBLEP/PolyBLAMP waveform is the
/// naive one convolved with a triangular kernel two samples wide (the residuals are that kernel's
/// integrals), so at the oscillator's rate 2 fs harmonic k is scaled by sinc²(k f0 / 2 fs); the
/// decimator then scales it by its response |H(k f0)|. Aliases are more than 40 dB down and add
/// < 0.001 dB; they are left out.
fn bandlimited_rms(wave: Waveform, f0: f64, sr: f64) -> f64 {
    let decim = Decimator::new();
    let kmax = ((sr / 2.0) / f0).floor() as usize;
    let p: f64 = (1..=kmax)
        .map(|k| {
            let k = k as f64;
            let a = match wave {
                Waveform::Sine => {
                    if k == 1.0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                Waveform::Saw => 2.0 / (PI * k),
                Waveform::Square => {
                    if k as usize % 2 == 1 {
                        4.0 / (PI * k)
                    } else {
                        0.0
                    }
                }
                Waveform::Triangle => {
                    if k as usize % 2 == 1 {
                        8.0 / (PI * PI * k * k)
                    } else {
                        0.0
                    }
                }
            };
            let x = PI * k * f0 / (2.0 * sr);
            let a = if wave == Waveform::Sine { a } else { a * (x.sin() / x).powi(2) };
            let a = a * decim.magnitude(k * f0 / sr);
            a * a / 2.0
        })
        .sum();
    p.sqrt()
}

#[test]
fn tone_level_matches_parameter() {
    for wave in [Waveform::Sine, Waveform::Saw, Waveform::Square, Waveform::Triangle] {
        for level in [-6.0f32, -30.0] {
            let mut t = tone(wave, 480.0, level, SR);
            // 480 Hz: exactly 100 samples per cycle, so the RMS is over whole cycles (after the
            // decimator's start-up, 31 samples).
            let x = render(&mut t, 48_480);
            let got = db(rms(&x[480..]));
            let want = level as f64 + db(bandlimited_rms(wave, 480.0, SR));
            eprintln!("tone {wave:?} {level} dB: rms {got:.4} dB, model {want:.4} dB");
            // Aliases add < 0.005 dB; f32 output and the RMS over 480 whole cycles add < 0.001 dB.
            assert!((got - want).abs() < 0.02, "{wave:?} {level} dB: rms {got:.4} dB, ideal {want:.4} dB");
        }
    }
    // Sine peak equals the level.
    let mut t = tone(Waveform::Sine, 1000.0, -6.0, SR);
    let x = render(&mut t, 4800);
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    // 48 samples per cycle put a sample within 3.75° of the crest: cos(3.75°) = 0.9979 → −0.019 dB.
    assert!((db(peak) + 6.0).abs() < 0.02, "{}", db(peak));
}

/// Worst alias components of a saw at `f0`, in dB relative to the fundamental: `[tone, polyblep, naive]`
/// for the `tone` node (PolyBLEP at 2 fs, decimated), the PolyBLEP oscillator at fs (as the synth's
/// voices use it) and a naive (trivial) saw, each as `[anywhere below Nyquist, below 20 kHz, below
/// 10 kHz]`.
fn saw_alias_levels(f0: f64) -> [[f64; 3]; 3] {
    let n = 1 << 16;
    let mut t = tone(Waveform::Saw, f0 as f32, 0.0, SR);
    // Skip the decimator's start-up (31 samples) so the window sees the steady tone only.
    let tone_out: Vec<f64> = render(&mut t, n + 256)[256..].iter().map(|&v| v as f64).collect();
    let mut osc = BlepOscillator::default();
    osc.set_inc(f0 / SR);
    let blep: Vec<f64> = (0..n).map(|_| osc.next(Waveform::Saw, 0.5)).collect();
    let inc = f0 / SR;
    let mut p = 0.0f64;
    let naive: Vec<f64> = (0..n)
        .map(|_| {
            let y = 2.0 * p - 1.0;
            p += inc;
            if p >= 1.0 {
                p -= 1.0;
            }
            y
        })
        .collect();
    let w = blackman_harris(n);
    let signals = [&tone_out, &blep, &naive];
    let fund: Vec<f64> = signals.iter().map(|x| amplitude_at(x, &w, f0, SR)).collect();
    let harmonics: Vec<f64> = (1..).map(|k| k as f64 * f0).take_while(|&f| f < SR / 2.0).collect();
    let mut worst = [[f64::MIN; 3]; 3];
    // Harmonics up to 10·fs: the naive saw's harmonic there is 20·log10(1/k) < −46 dB… and it is the
    // near-Nyquist folds that dominate either way.
    let mut k = harmonics.len() + 1;
    while (k as f64) * f0 < 10.0 * SR {
        let f = k as f64 * f0;
        let folded = {
            let m = f % SR;
            if m > SR / 2.0 {
                SR - m
            } else {
                m
            }
        };
        // Skip aliases that land on a harmonic (within the window's main lobe, ±4 bins of 0.73 Hz).
        let clear = harmonics.iter().all(|h| (h - folded).abs() > 5.0) && folded > 5.0;
        if clear {
            for (s, x) in signals.iter().enumerate() {
                let a = db(amplitude_at(x, &w, folded, SR) / fund[s]);
                for (i, limit) in [SR / 2.0, 20_000.0, 10_000.0].into_iter().enumerate() {
                    if folded < limit {
                        worst[s][i] = worst[s][i].max(a);
                    }
                }
            }
        }
        k += 1;
    }
    worst
}

#[test]
fn saw_aliasing_is_suppressed() {
    // Fundamentals chosen off the 48 kHz grid so that aliases fall between harmonics.
    for f0 in [1000.7, 2500.3, 4000.9, 4999.7] {
        let [tone, blep, naive] = saw_alias_levels(f0);
        eprintln!(
            "saw {f0} Hz, worst alias re fundamental, [all, < 20 kHz, < 10 kHz] dB: tone {tone:.1?}, \
             PolyBLEP at fs {blep:.1?}, naive {naive:.1?}"
        );
        // Bounds: the levels measured (see the report) plus ~2 dB.
        // The tone node: oversampled, so only harmonics above 1.5 fs fold into the output band.
        for i in 0..3 {
            assert!(tone[i] < TONE_BOUND[i], "{f0}: tone alias {:.1} dB, bound {}", tone[i], TONE_BOUND[i]);
            assert!(blep[i] < BLEP_BOUND[i], "{f0}: PolyBLEP alias {:.1} dB, bound {}", blep[i], BLEP_BOUND[i]);
        }
        // Against the naive saw. PolyBLEP at fs attenuates an alias by sinc²(f_harmonic / fs): little for
        // harmonics just above Nyquist that fold to just below it (−7.8 dB at fs/2), much more for those
        // that fold far down into the audible band.
        assert!(blep[0] < naive[0] - 6.0 && blep[1] < naive[1] - 10.0 && blep[2] < naive[2] - 20.0);
        assert!(tone[0] < naive[0] - 20.0 && tone[1] < naive[1] - 20.0 && tone[2] < naive[2] - 30.0);
    }
}

#[test]
fn level_change_does_not_zipper() {
    let mut t = tone(Waveform::Sine, 100.0, -40.0, SR);
    let _ = render(&mut t, 1000);
    t.set_param(TONE_LEVEL, 0.0).unwrap();
    let x = render(&mut t, 4800);
    let max_step = x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0f32, f32::max);
    eprintln!("level change: max step {max_step}");
    // A full-scale 100 Hz sine moves at most 2π·100/48000 = 0.0131 per sample; the 20 ms gain ramp
    // adds at most 1/960 per sample. An unsmoothed 40 dB jump would step by up to 0.99.
    assert!(max_step < 0.0131 + 0.0011, "{max_step}");
    // Reached within 20 ms (960 samples) plus a cycle to see the crest.
    let peak = x[960..].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!((peak - 1.0).abs() < 1e-3, "{peak}");
}

#[test]
fn waveform_change_crossfades() {
    let mut t = tone(Waveform::Sine, 100.0, 0.0, SR);
    let _ = render(&mut t, 1234);
    t.set_param(TONE_WAVE, Waveform::Triangle.index()).unwrap();
    let x = render(&mut t, 2400);
    let max_step = x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0f32, f32::max);
    eprintln!("waveform change: max step {max_step}");
    // Sine and triangle at 100 Hz both move < 0.0131 per sample; the 5 ms (240-sample) crossfade adds at
    // most |sine − triangle| / 240 ≤ 2 / 240 = 0.0083.
    assert!(max_step < 0.0131 + 0.0084, "{max_step}");
}

#[test]
fn pulse_width_sets_duty_cycle() {
    let mut t = tone(Waveform::Square, 480.0, 0.0, SR);
    t.set_param(TONE_PW, 25.0).unwrap();
    let _ = render(&mut t, 4800); // let the 20 ms width ramp settle
    let x = render(&mut t, 48_000);
    // DC is removed: a 25 % pulse sits at +1.5 / −0.5 around a zero mean.
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
    assert!(mean.abs() < 1e-4, "{mean}");
    let high = x.iter().filter(|&&v| v > 0.5).count() as f64 / x.len() as f64;
    eprintln!("pulse width 25 %: mean {mean:e}, high fraction {high}");
    // 25 samples of 100 per cycle are high, the edge samples straddle the threshold: ±1 sample per cycle.
    assert!((high - 0.25).abs() < 0.011, "{high}");
}

#[test]
fn tone_rt_invariance_and_reset() {
    rt::exercise(&mut Tone::new(2), SR, 512, 0);
    for wave in [Waveform::Sine, Waveform::Saw, Waveform::Square, Waveform::Triangle] {
        assert_block_size_invariant(
            || {
                let mut t = Tone::new(2);
                t.set_param(TONE_WAVE, wave.index()).unwrap();
                t.set_param(TONE_FREQ, 3_333.3).unwrap();
                Box::new(t)
            },
            SR,
            512,
            &[],
        );
        assert_invariant_with_change(
            || {
                let mut t = Tone::new(1);
                t.set_param(TONE_WAVE, wave.index()).unwrap();
                Box::new(t)
            },
            |n| {
                n.set_param(TONE_FREQ, 5_000.0).unwrap();
                n.set_param(TONE_LEVEL, -3.0).unwrap();
                n.set_param(TONE_PW, 30.0).unwrap();
                n.set_param(TONE_WAVE, 3.0 - wave.index()).unwrap();
            },
        );
        let mut t = tone(wave, 440.0, -10.0, SR);
        assert_reset_deterministic(&mut t);
    }
}

// ---------------------------------------------------------------- noise

fn noise(color: f32, seed: f32, sr: f64) -> Noise {
    let mut n = Noise::new(2);
    n.set_param(NOISE_COLOR, color).unwrap();
    n.set_param(NOISE_SEED, seed).unwrap();
    n.set_param(NOISE_LEVEL, -20.0).unwrap();
    n.prepare(sr, 512);
    n
}

#[test]
fn pink_noise_falls_3_db_per_octave() {
    for sr in [44_100.0, 48_000.0, 96_000.0] {
        let mut n = noise(1.0, 42.0, sr);
        let nfft = 8192;
        let x = render(&mut n, nfft * 200);
        let psd = welch_psd(&x, nfft);
        // Octave bands 50 Hz … 12.8 kHz (the last band ends at 12.8 kHz, just past the 10 kHz asked for).
        let bands = octave_bands(&psd, nfft, sr, 50.0, 12_800.0);
        let slope = slope_db_per_octave(&bands);
        // Kellet's filter is within ±0.05 dB of −3.01 dB/octave; 400 averaged periodograms leave a
        // statistical error of ~0.02 dB/octave on a fit over 8 octaves.
        assert!((slope + 3.0103).abs() < 0.1, "{sr}: slope {slope:.3} dB/octave");
        // Each octave band within ±0.5 dB of the ideal −3.01 dB/octave line through the bands' mean.
        let mean_x = bands.iter().map(|b| b.0.log2()).sum::<f64>() / bands.len() as f64;
        let mean_y = bands.iter().map(|b| b.1).sum::<f64>() / bands.len() as f64;
        for &(f, l) in &bands {
            let ideal = mean_y - 3.0103 * (f.log2() - mean_x);
            assert!((l - ideal).abs() < 0.5, "{sr}: band {f:.0} Hz {l:.2} dB vs ideal {ideal:.2} dB");
        }
        eprintln!("pink at {sr}: slope {slope:.3} dB/octave, bands {bands:.2?}");
        // RMS equals the level: a pink spectrum's RMS converges slowly (its power is spread over all
        // octaves evenly); 34 s of it reads within 0.1 dB.
        assert!((db(rms(&x)) + 20.0).abs() < 0.1, "{sr}: rms {}", db(rms(&x)));
    }
}

#[test]
fn white_noise_is_flat_and_at_level() {
    let mut n = noise(0.0, 7.0, SR);
    let nfft = 8192;
    let x = render(&mut n, nfft * 200);
    let psd = welch_psd(&x, nfft);
    let bands = octave_bands(&psd, nfft, SR, 50.0, 12_800.0);
    let slope = slope_db_per_octave(&bands);
    eprintln!("white: slope {slope:.4} dB/octave, bands {bands:.2?}, rms {:.4} dB", db(rms(&x)));
    // Flat: zero slope, every octave band within ±0.5 dB of the mean (statistical error ~0.1 dB in
    // the lowest band of 9 bins × 400 periodograms).
    assert!(slope.abs() < 0.1, "slope {slope}");
    let mean = bands.iter().map(|b| b.1).sum::<f64>() / bands.len() as f64;
    for &(f, l) in &bands {
        assert!((l - mean).abs() < 0.5, "band {f:.0} Hz: {l:.2} dB vs mean {mean:.2} dB");
    }
    // RMS = level within 0.02 dB (standard error of 1.6 M samples of uniform noise: 0.003 dB).
    assert!((db(rms(&x)) + 20.0).abs() < 0.02, "{}", db(rms(&x)));
    // Uniform: the peak is bounded by √3 · RMS (+4.77 dB).
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    assert!(db(peak) <= -20.0 + 4.772, "{}", db(peak));
    assert!(db(peak) > -20.0 + 4.7, "{}", db(peak));
}

#[test]
fn noise_is_seeded() {
    let a = render(&mut noise(1.0, 5.0, SR), 4096);
    let b = render(&mut noise(1.0, 5.0, SR), 4096);
    let c = render(&mut noise(1.0, 6.0, SR), 4096);
    assert_eq!(a, b, "same seed, same noise");
    assert_ne!(a, c, "another seed, other noise");
    // Changing the seed restarts the sequence at once: the output from there equals a fresh node's.
    let mut n = noise(1.0, 5.0, SR);
    let _ = render(&mut n, 1000);
    n.set_param(NOISE_SEED, 6.0).unwrap();
    n.reset(); // also clears the pink filter, so the comparison is exact
    assert_eq!(render(&mut n, 4096), c);
}

#[test]
fn noise_rt_invariance_and_reset() {
    rt::exercise(&mut Noise::new(3), SR, 512, 0);
    for color in [0.0, 1.0] {
        assert_block_size_invariant(
            || {
                let mut n = Noise::new(2);
                n.set_param(NOISE_COLOR, color).unwrap();
                Box::new(n)
            },
            SR,
            512,
            &[],
        );
        assert_invariant_with_change(
            || {
                let mut n = Noise::new(1);
                n.set_param(NOISE_COLOR, color).unwrap();
                Box::new(n)
            },
            |n| n.set_param(NOISE_LEVEL, -1.0).unwrap(),
        );
        assert_reset_deterministic(&mut noise(color, 9.0, SR));
    }
}

// ---------------------------------------------------------------- sweep

fn sweep(f1: f32, f2: f32, dur: f32, repeat: bool, sr: f64) -> Sweep {
    let mut s = Sweep::new(2);
    s.set_param(SWEEP_START, f1).unwrap();
    s.set_param(SWEEP_END, f2).unwrap();
    s.set_param(SWEEP_DURATION, dur).unwrap();
    s.set_param(SWEEP_LEVEL, -6.0).unwrap();
    s.set_param(SWEEP_REPEAT, if repeat { 1.0 } else { 0.0 }).unwrap();
    s.prepare(sr, 512);
    s
}

#[test]
fn sweep_follows_the_exponential_law() {
    let (f1, f2, dur): (f64, f64, f64) = (20.0, 10_000.0, 2.0);
    let mut s = sweep(f1 as f32, f2 as f32, dur as f32, false, SR);
    let x = render(&mut s, (dur * SR) as usize);
    let l = dur / (f2 / f1).ln();
    let c = upward_crossings(&x);
    // Crossing k of sin(2π φ(t)) is where φ(t) = f1 L (e^{t/L} − 1) = k (cycles): t_k = L ln(1 + k/(f1 L)).
    // The crossing at φ = 0 (t = 0) is inside the fade and not detected; the first one seen is k = 1.
    let predicted = |k: f64| l * (1.0 + k / (f1 * l)).ln() * SR;
    let fade = 0.002 * SR;
    for (i, &t) in c.iter().enumerate() {
        let k = (i + 1) as f64;
        if t > x.len() as f64 - fade {
            // Inside the 2 ms fade-out the envelope moves the crossings of the faded sine.
            continue;
        }
        // Linear interpolation of a sine crossing errs by up to ~0.02 sample at 10 kHz (4.8 samples per
        // cycle) and far less below; 0.05 sample is 1 µs.
        assert!((t - predicted(k)).abs() < 0.05, "crossing {k}: {t} vs {}", predicted(k));
    }
    // Instantaneous frequency at the start, middle and end against f1 e^{t/L}: whole cycles counted
    // over at least 10 ms (at least one cycle), assigned to the middle of that span.
    let last = c.iter().rposition(|&t| t < x.len() as f64 - fade).unwrap();
    let mid = c.iter().position(|&t| t >= 0.5 * dur * SR).unwrap();
    let span = 0.01 * SR;
    let first_after = |i: usize| (i + 1..c.len()).find(|&j| c[j] - c[i] >= span).unwrap();
    let last_before = |j: usize| (0..j).rev().find(|&i| c[j] - c[i] >= span).unwrap();
    for (name, i, j) in
        [("start", 0, first_after(0)), ("middle", mid, first_after(mid)), ("end", last_before(last), last)]
    {
        let t_mid = 0.5 * (c[i] + c[j]) / SR;
        let measured = (j - i) as f64 * SR / (c[j] - c[i]);
        let formula = f1 * (t_mid / l).exp();
        // Counting cycles averages an exponentially rising frequency: against the value at the middle of
        // the span that errs by (span / L)² / 24 = 1.2e-3 relative for the first 20 Hz cycle (50 ms,
        // L = 0.32 s) and 4e-5 for 10 ms spans; crossing times add < 0.05 sample / 480 samples = 1e-4.
        assert!((measured / formula - 1.0).abs() < 2e-3, "{name}: {measured} Hz vs {formula} Hz at t = {t_mid}");
        eprintln!("sweep {name}: t = {t_mid:.4} s measured {measured:.3} Hz, formula {formula:.3} Hz");
    }
    assert!((s.instantaneous_freq_hz(dur) - f2).abs() < 1e-9);
    // Not repeating: silence afterwards.
    let after = render(&mut s, 4800);
    assert!(after.iter().all(|&v| v == 0.0));
    // Peak level −6 dBFS.
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    assert!((db(peak) + 6.0).abs() < 0.01, "{}", db(peak));
}

#[test]
fn sweep_downwards_and_repeat() {
    let mut s = sweep(8_000.0, 100.0, 0.5, true, SR);
    let total = 24_000;
    let x = render(&mut s, 3 * total);
    // Repeating restarts phase and fades: the signal is exactly periodic.
    assert_eq!(&x[..total], &x[total..2 * total]);
    assert_eq!(&x[..total], &x[2 * total..]);
    // Ends are faded: the first and last samples of a sweep are 0 (raised cosine from 0 over 2 ms).
    assert_eq!(x[0], 0.0);
    assert!(x[total - 1].abs() < 1e-6);
    // Downward: more crossings in the first half than in the second.
    let c1 = upward_crossings(&x[..total / 2]).len();
    let c2 = upward_crossings(&x[total / 2..total]).len();
    assert!(c1 > 3 * c2, "{c1} {c2}");
}

#[test]
fn sweep_rt_invariance_and_reset() {
    rt::exercise(&mut Sweep::new(2), SR, 512, 0);
    assert_block_size_invariant(|| Box::new(sweep(30.0, 15_000.0, 0.05, true, SR)), SR, 512, &[]);
    assert_invariant_with_change(
        || Box::new(Sweep::new(1)),
        |n| {
            n.set_param(SWEEP_DURATION, 0.03).unwrap();
            n.set_param(SWEEP_LEVEL, 0.0).unwrap();
        },
    );
    assert_reset_deterministic(&mut sweep(50.0, 5_000.0, 0.07, true, SR));
}

//! Multiband compressor: unity bands sum to the crossover's allpass, per-band gain reduction, solo /
//! mute / bypass without clicks, RT safety with 4 and 6 bands, block-size invariance, reset.

mod common;

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

use ballast_dsp::crossover::Crossover;
use ballast_dsp::multiband::{ids, Multiband};
use ballast_dsp::{ParamId, Processor};
use common::signals::{bursty_noise, sine};
use common::{assert_block_size_invariant, run_blocks};
use std::f64::consts::PI;

const SR: f64 = 48_000.0;

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

fn amp_at(x: &[f32], f: f64, range: std::ops::Range<usize>) -> f64 {
    common::signals::amplitude_at(x, f, SR, range)
}

fn dft_mag(h: &[f32], f: f64) -> f64 {
    let w = 2.0 * PI * f / SR;
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &v) in h.iter().enumerate() {
        re += v as f64 * (w * n as f64).cos();
        im -= v as f64 * (w * n as f64).sin();
    }
    re.hypot(im)
}

fn set_all(m: &mut Multiband, id: ParamId, v: f32) {
    for b in 0..m.bands() {
        m.set_param(ParamId::band(b, id), v).unwrap();
    }
}

fn prepared(bands: usize, f: impl Fn(&mut Multiband)) -> Multiband {
    let mut m = Multiband::new(2, bands);
    f(&mut m);
    m.prepare(SR, 512);
    m
}

#[test]
fn unity_bands_sum_to_the_crossover_allpass() {
    // Ratio 1 everywhere, or a threshold of 0 dB with the signal far below the knee: every band gain is
    // exactly 1, so the output is the crossover's allpass sum: flat ±0.01 dB (DESIGN.md) and equal to the
    // standalone crossover's summed bands to f32 rounding.
    let len = 1 << 15;
    let mut imp = vec![0.0f32; len];
    imp[0] = 0.25;
    let splits = [90.0, 700.0, 3000.0, 11_000.0, 16_000.0];
    for bands in [2usize, 4, 6] {
        for variant in 0..2 {
            let mut m = prepared(bands, |m| {
                for (i, &f) in splits.iter().enumerate() {
                    m.set_param(ParamId(i as u32 + 1), f).unwrap();
                }
                if variant == 0 {
                    set_all(m, ids::band::RATIO, 1.0);
                } else {
                    set_all(m, ids::band::THRESHOLD_DB, 0.0);
                }
            });
            let y = run_blocks(&mut m, &[imp.clone(), imp.clone()], 256);
            let mut x = Crossover::new(1, bands);
            x.set_frequencies(&splits.map(|f| f as f64));
            x.prepare(SR, 256);
            let mut xb = vec![vec![0.0f32; len]; bands];
            {
                let mut outs: Vec<&mut [f32]> = xb.iter_mut().map(|b| &mut b[..]).collect();
                let mut pos = 0;
                while pos < len {
                    let n = 256.min(len - pos);
                    let mut o: Vec<&mut [f32]> = outs.iter_mut().map(|b| &mut b[pos..pos + n]).collect();
                    x.process(&[&imp[pos..pos + n]], &mut o);
                    pos += n;
                }
            }
            let reference: Vec<f32> = (0..len).map(|n| xb.iter().map(|b| b[n]).sum()).collect();
            for y_ch in y.iter().take(2) {
                let max_diff = y_ch.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                // f32 band sums in a different order: a few ulps of 0.25.
                assert!(max_diff < 1e-6, "bands {bands} variant {variant}: differs from crossover by {max_diff}");
            }
            for k in 0..60 {
                let f = 20.0 * 1000f64.powf(k as f64 / 59.0);
                let dev = db(dft_mag(&y[0], f) / 0.25).abs();
                assert!(dev < 0.01, "bands {bands} variant {variant} {f} Hz: {dev} dB");
            }
        }
    }
}

/// Complex response of each band of the default 4-band split (120/1000/6000 Hz) at `f`.
fn default_bands(f: f64) -> Vec<(f64, f64)> {
    let mut x = Crossover::new(1, 4);
    x.prepare(SR, 64);
    (0..4).map(|b| x.response(b, f)).collect()
}

/// |Σ g_b H_b(f)| in dB.
fn weighted_db(h: &[(f64, f64)], g: &[f64]) -> f64 {
    let (re, im) = h.iter().zip(g).fold((0.0, 0.0), |(r, i), (hb, gb)| (r + gb * hb.0, i + gb * hb.1));
    db(re.hypot(im))
}

#[test]
fn tone_in_one_band_reduces_only_that_band() {
    // Defaults (DESIGN.md broadcast example): splits 120/1000/6000 Hz, band 2 at −20 dB, 3:1, knee 6.
    // A 0 dBFS 2.5 kHz tone reaches band 2 at |H_2| (−0.24 dB): reduction (1 − 1/3)·(level + 20) dB.
    // The peak detector reads a sampled sine (19.2 samples per cycle) up to 0.11 dB low, i.e. up to
    // 0.07 dB less reduction: bound 0.1 dB. The neighbours see the tone ≥ 30 dB down through their LR4
    // skirts, below their thresholds: no reduction.
    let f = 2500.0;
    let h = default_bands(f);
    let level = db(h[2].0.hypot(h[2].1));
    let expected = (2.0 / 3.0) * (level + 20.0);
    let mut m = prepared(4, |_| {});
    let x = sine(f, 1.0, SR, 48_000);
    let y = run_blocks(&mut m, &[x.clone(), x.clone()], 256);
    let gr: Vec<f32> = (0..4).map(|b| m.meter(0, b)).collect();
    assert!((gr[2] as f64 - expected).abs() < 0.1, "band 2 GR {gr:?}, expected {expected}");
    for b in [0, 1, 3] {
        assert!(gr[b] < 0.01, "band {b} GR {gr:?}");
    }
    // Output: the other bands at unity, band 2 at its (smoothed) gain: |Σ g_b H_b| ± 0.1 dB.
    let g2 = 10f64.powf(-gr[2] as f64 / 20.0);
    let out = db(amp_at(&y[0], f, 36_000..48_000));
    let want = weighted_db(&h, &[1.0, 1.0, g2, 1.0]);
    assert!((out - want).abs() < 0.1, "output {out} dB, expected {want}");
    assert!(m.meter(0, 7).is_nan() && m.meter(1, 0).is_nan());
}

#[test]
fn solo_and_mute_select_bands() {
    // Ratio 1 (no compression); tones at 50 Hz (band 0), 2.5 kHz (band 2) and 16 kHz (band 3). Each
    // tone's output level must match the analytic response of the bands left on, |Σ_on H_b(f)|, to
    // ±0.05 dB (f32 processing and the 0.5 s analysis window resolve far better than that).
    let tones = [50.0, 2500.0, 16_000.0];
    let x: Vec<f32> = {
        let parts: Vec<Vec<f32>> = tones.iter().map(|&f| sine(f, 0.2, SR, 48_000)).collect();
        (0..48_000).map(|n| parts.iter().map(|p| p[n]).sum()).collect()
    };
    let check = |m: &mut Multiband, on: [f64; 4], what: &str| {
        let y = run_blocks(m, &[x.clone(), x.clone()], 128);
        for f in tones {
            let got = db(amp_at(&y[1], f, 24_000..48_000) / 0.2);
            let want = weighted_db(&default_bands(f), &on);
            let tol = if want < -60.0 { 1.0 } else { 0.05 };
            assert!((got - want).abs() < tol || (want < -100.0 && got < -100.0), "{what} {f} Hz: {got} vs {want}");
        }
    };
    let mut m = prepared(4, |m| set_all(m, ids::band::RATIO, 1.0));
    check(&mut m, [1.0; 4], "all");
    let mut m = prepared(4, |m| {
        set_all(m, ids::band::RATIO, 1.0);
        m.set_param(ParamId::band(2, ids::band::SOLO), 1.0).unwrap();
    });
    check(&mut m, [0.0, 0.0, 1.0, 0.0], "solo 2");
    let mut m = prepared(4, |m| {
        set_all(m, ids::band::RATIO, 1.0);
        m.set_param(ParamId::band(2, ids::band::MUTE), 1.0).unwrap();
    });
    check(&mut m, [1.0, 1.0, 0.0, 1.0], "mute 2");
    let mut m = prepared(4, |m| {
        set_all(m, ids::band::RATIO, 1.0);
        m.set_param(ParamId::band(0, ids::band::SOLO), 1.0).unwrap();
        m.set_param(ParamId::band(3, ids::band::SOLO), 1.0).unwrap();
        m.set_param(ParamId::band(3, ids::band::MUTE), 1.0).unwrap();
    });
    check(&mut m, [1.0, 0.0, 0.0, 0.0], "solo 0+3, mute 3");
}

/// Largest sample-to-sample step of channel 0 in `r`.
fn max_step(y: &[f32], r: std::ops::Range<usize>) -> f32 {
    r.map(|n| (y[n] - y[n - 1]).abs()).fold(0.0, f32::max)
}

#[test]
fn switching_mute_solo_bypass_is_click_free() {
    // A 2.5 kHz tone in band 2 (compressed 7 dB: −20 dB threshold, 2:1). Each switch fades over
    // 10 ms, so no output step exceeds the tone's own steepest step (±5 %: the fading envelope adds a
    // slope of amplitude / 480 samples per sample, 0.1 % of the tone's).
    let x = sine(2500.0, 0.5, SR, 96_000);
    for (id, on) in [(ids::band::MUTE, 1.0f32), (ids::band::SOLO, 1.0), (ids::band::BYPASS, 1.0)] {
        let mut m = prepared(4, |m| {
            m.set_param(ParamId::band(2, ids::band::THRESHOLD_DB), -20.0).unwrap();
            m.set_param(ParamId::band(2, ids::band::RATIO), 2.0).unwrap();
            if id == ids::band::SOLO {
                // Solo another band, so soloing band 2 later switches it on.
                m.set_param(ParamId::band(0, ids::band::SOLO), 1.0).unwrap();
            }
        });
        let mut y = vec![vec![0.0f32; 96_000]; 2];
        for start in (0..96_000).step_by(64) {
            if start == 48_000 {
                m.set_param(ParamId::band(2, id), on).unwrap();
            }
            let (l, r) = y.split_at_mut(1);
            m.process(
                &[&x[start..start + 64], &x[start..start + 64]],
                &mut [&mut l[0][start..start + 64], &mut r[0][start..start + 64]],
            );
        }
        let steady_before = amp_at(&y[0], 2500.0, 36_000..48_000);
        let steady_after = amp_at(&y[0], 2500.0, 72_000..96_000);
        let biggest = steady_before.max(steady_after) as f32;
        // The steepest step of a sine of amplitude A at 2.5 kHz / 48 kHz is A·2·sin(π·2500/48000).
        let tone_step = biggest * 2.0 * (PI * 2500.0 / SR).sin() as f32;
        let step = max_step(&y[0], 47_000..60_000);
        assert!(step < tone_step * 1.05, "{id:?}: step {step} vs tone {tone_step}");
        // The switch did something audible.
        assert!((db(steady_after / steady_before)).abs() > 6.0, "{id:?}: {steady_before} → {steady_after}");
    }
}

#[test]
fn bypass_gives_unity_and_keeps_latency() {
    // Every band compressing hard, then all bypassed: output is the unity allpass sum again (±0.01 dB),
    // and the lookahead latency stays the same.
    let mut m = prepared(4, |m| {
        set_all(m, ids::band::THRESHOLD_DB, -60.0);
        set_all(m, ids::band::RATIO, f32::INFINITY);
        set_all(m, ids::band::BYPASS, 1.0);
        m.set_param(ids::LOOKAHEAD_MS, 2.0).unwrap();
    });
    assert_eq!(m.latency_samples(), 96);
    let x = sine(1000.0, 0.5, SR, 48_000);
    let y = run_blocks(&mut m, &[x.clone(), x], 256);
    let g = db(amp_at(&y[0], 1000.0, 24_000..48_000) / 0.5);
    assert!(g.abs() < 0.01, "{g} dB");
    assert_eq!(m.latency_samples(), 96);
}

#[test]
fn crossover_params_move_the_splits() {
    let mut m = prepared(4, |m| m.set_param(ids::CROSSOVER_2_HZ, 2000.0).unwrap());
    assert_eq!(m.crossover_frequencies(), &[120.0, 2000.0, 6000.0]);
    m.set_param(ids::CROSSOVER_1_HZ, 200.0).unwrap();
    assert_eq!(m.param(ids::CROSSOVER_1_HZ), Some(200.0));
    // 50 ms glide: done after 0.1 s.
    run_blocks(&mut m, &[vec![0.0; 4800], vec![0.0; 4800]], 256);
    assert!((m.crossover_frequencies()[0] - 200.0).abs() < 1e-3);
    assert!(m.set_param(ids::CROSSOVER_1_HZ, 5.0).is_err());
    assert!(m.set_param(ParamId::band(4, ids::band::RATIO), 2.0).is_err(), "band 4 of 4");
}

#[test]
fn defaults_follow_the_broadcast_example() {
    let m = Multiband::new(2, 4);
    let table =
        [(-24.0, 2.0, 30.0, 300.0), (-22.0, 3.0, 15.0, 200.0), (-20.0, 3.0, 8.0, 150.0), (-20.0, 4.0, 3.0, 100.0)];
    for (b, (t, r, a, rel)) in table.into_iter().enumerate() {
        assert_eq!(m.param(ParamId::band(b, ids::band::THRESHOLD_DB)), Some(t));
        assert_eq!(m.param(ParamId::band(b, ids::band::RATIO)), Some(r));
        assert_eq!(m.param(ParamId::band(b, ids::band::ATTACK_MS)), Some(a));
        assert_eq!(m.param(ParamId::band(b, ids::band::RELEASE_MS)), Some(rel));
        assert_eq!(m.param(ParamId::band(b, ids::band::KNEE_DB)), Some(6.0));
    }
    assert_eq!(m.param(ids::CROSSOVER_1_HZ), Some(120.0));
    assert_eq!(m.param(ids::CROSSOVER_2_HZ), Some(1000.0));
    assert_eq!(m.param(ids::CROSSOVER_3_HZ), Some(6000.0));
}

#[test]
fn rt_exercise_4_and_6_bands() {
    common::rt::exercise(&mut Multiband::new(2, 4), 48_000.0, 512, 4);
    common::rt::exercise(&mut Multiband::new(2, 6), 96_000.0, 256, 6);
    common::rt::exercise(&mut Multiband::new(1, 3), 8_000.0, 64, 3);
}

fn busy(bands: usize) -> Multiband {
    let mut m = Multiband::new(2, bands);
    m.set_param(ids::LOOKAHEAD_MS, 1.5).unwrap();
    m.set_param(ids::CROSSOVER_2_HZ, 1500.0).unwrap();
    set_all(&mut m, ids::band::THRESHOLD_DB, -35.0);
    m.set_param(ParamId::band(0, ids::band::SIDECHAIN_HPF_HZ), 60.0).unwrap();
    m.set_param(ParamId::band(1, ids::band::DETECTOR), 1.0).unwrap();
    m.set_param(ParamId::band(1, ids::band::STEREO_LINK_PCT), 30.0).unwrap();
    m.set_param(ParamId::band(bands - 1, ids::band::MAKEUP_DB), 4.0).unwrap();
    m
}

#[test]
fn block_size_invariant() {
    let input = vec![bursty_noise(11, 20_000, 1300), bursty_noise(12, 20_000, 800)];
    for bands in [2, 4, 6] {
        assert_block_size_invariant(|| Box::new(busy(bands)), SR, 512, &input);
    }
}

#[test]
fn reset_is_deterministic() {
    let input = vec![bursty_noise(13, 20_000, 1100), bursty_noise(14, 20_000, 600)];
    for bands in [4, 6] {
        let mut m = busy(bands);
        m.prepare(SR, 512);
        let a = run_blocks(&mut m, &input, 128);
        m.reset();
        let b = run_blocks(&mut m, &input, 128);
        assert_eq!(a, b, "bands {bands}");
    }
}

/// 20 s of real music (Debian's wesnoth-1.16-music), 48 kHz stereo.
fn music() -> Vec<Vec<f32>> {
    common::music::wesnoth("battle-epic.ogg", SR, 20.0)
}

#[test]
fn real_music_broadcast_defaults_and_unity_energy() {
    let input = music();
    // Broadcast defaults: output finite, the bands with content above their thresholds reduce, and with
    // no makeup the bands only ever attenuate, so the energy drops.
    let mut m = prepared(4, |_| {});
    let mut max_gr = [0.0f32; 4];
    let frames = input[0].len();
    let mut out = vec![vec![0.0f32; frames]; 2];
    for start in (0..frames).step_by(256) {
        let n = 256.min(frames - start);
        let (l, r) = out.split_at_mut(1);
        m.process(
            &[&input[0][start..start + n], &input[1][start..start + n]],
            &mut [&mut l[0][start..start + n], &mut r[0][start..start + n]],
        );
        for (b, g) in max_gr.iter_mut().enumerate() {
            *g = g.max(m.meter(0, b));
        }
    }
    assert!(out.iter().flatten().all(|v| v.is_finite()));
    // Orchestral material: little energy above 6 kHz, so not every band reaches its threshold.
    eprintln!("largest gain reduction per band: {max_gr:?} dB");
    assert!(max_gr.iter().filter(|&&g| g > 1.0).count() >= 2, "bands compress: {max_gr:?}");
    let energy = |x: &[Vec<f32>]| x.iter().flatten().map(|&v| v as f64 * v as f64).sum::<f64>();
    assert!(energy(&out) < energy(&input), "compression lowers the energy");
    // Unity bands: an allpass keeps the energy (Parseval) once its tail is included: ±0.01 dB.
    let mut m = prepared(4, |m| set_all(m, ids::band::RATIO, 1.0));
    let mut padded = input.clone();
    for c in padded.iter_mut() {
        c.extend(std::iter::repeat_n(0.0, 48_000));
    }
    let y = run_blocks(&mut m, &padded, 512);
    let ratio_db = 10.0 * (energy(&y) / energy(&padded)).log10();
    assert!(ratio_db.abs() < 0.01, "unity energy ratio {ratio_db} dB");
    // Block-size invariance on the first 5 s of the music as well.
    let short: Vec<Vec<f32>> = input.iter().map(|c| c[..240_000].to_vec()).collect();
    assert_block_size_invariant(|| Box::new(busy(4)), SR, 512, &short);
}

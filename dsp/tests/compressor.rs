//! Compressor: static curve against DESIGN.md's formula, ballistics against the time constants, limiting,
//! stereo link, lookahead latency, sidechain high-pass, makeup, hostile input, RT safety, block-size
//! invariance and reset determinism.

mod common;

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

use ballast_dsp::compressor::{ids, static_curve, Compressor, CONTROL_PERIOD};
use ballast_dsp::{ParamId, Processor};
use common::signals::{bursty_noise, sine};
use common::{assert_block_size_invariant, run_blocks};
use std::f64::consts::PI;

const SR: f64 = 48_000.0;

fn comp(channels: usize, params: &[(ParamId, f32)]) -> Compressor {
    let mut c = Compressor::new(channels);
    for &(id, v) in params {
        c.set_param(id, v).unwrap();
    }
    c.prepare(SR, 512);
    c
}

fn amp_at(x: &[f32], f: f64, range: std::ops::Range<usize>) -> f64 {
    common::signals::amplitude_at(x, f, SR, range)
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// Steady-state gain (dB) the compressor applies to a 1 kHz sine of peak level `level_db`.
fn measured_gain_db(c: &mut Compressor, level_db: f64) -> f64 {
    let amp = 10f64.powf(level_db / 20.0);
    let x = sine(1000.0, amp, SR, 48_000);
    let y = run_blocks(c, std::slice::from_ref(&x), 256);
    // Last 0.25 s (250 whole cycles): the detector and ballistics have settled.
    let r = 36_000..48_000;
    db(amp_at(&y[0], 1000.0, r.clone()) / amp_at(&x, 1000.0, r))
}

#[test]
fn static_curve_matches_design_formula() {
    // 1 kHz at 48 kHz: 48 samples per cycle, so every 32-sample detector period holds an exact peak
    // (peak detector reads the level exactly) and the RMS detector's 10 ms mean square has ±0.8 %
    // ripple at 2 kHz, i.e. < 0.04 dB. Attack 1 ms / release 1 s keep the ballistics' ripple far below
    // the ±0.1 dB bound of the brief.
    let mut worst = 0.0f64;
    let mut cases = 0;
    for (det, det_offset) in [(0.0f32, 0.0f64), (1.0, -3.0103)] {
        for &t in &[-30.0f32, -20.0, -10.0] {
            for &r in &[1.5f32, 2.0, 4.0, 10.0, f32::INFINITY] {
                for &w in &[0.0f32, 6.0, 12.0] {
                    for k in 0..12 {
                        let level = -50.0 + 4.5 * k as f64;
                        let mut c = comp(
                            1,
                            &[
                                (ids::THRESHOLD_DB, t),
                                (ids::RATIO, r),
                                (ids::KNEE_DB, w),
                                (ids::ATTACK_MS, 1.0),
                                (ids::RELEASE_MS, 1000.0),
                                (ids::DETECTOR, det),
                            ],
                        );
                        let x = (level + det_offset) as f32;
                        let expected = (static_curve(x, t, r, w) - x) as f64;
                        let got = measured_gain_db(&mut c, level);
                        let err = (got - expected).abs();
                        worst = worst.max(err);
                        cases += 1;
                        assert!(
                            err < 0.1,
                            "det {det} T {t} R {r} W {w} level {level}: got {got:.3} dB, expected {expected:.3} dB"
                        );
                    }
                }
            }
        }
    }
    eprintln!("static curve: {cases} cases, worst error {worst:.4} dB");
}

#[test]
fn rms_detector_reads_full_scale_sine_at_minus_3_01() {
    // Threshold exactly at the RMS of a 0 dBFS sine with a hard knee: no reduction; 0.5 dB lower:
    // (1 − 1/R)·0.5 dB of reduction at R = ∞, i.e. exactly 0.5 dB, ±0.05 dB (detector ripple).
    for (t, expected) in [(-3.0103f32, 0.0f64), (-3.5103, -0.5)] {
        let mut c = comp(
            1,
            &[
                (ids::DETECTOR, 1.0),
                (ids::THRESHOLD_DB, t),
                (ids::RATIO, f32::INFINITY),
                (ids::KNEE_DB, 0.0),
                (ids::ATTACK_MS, 5.0),
                (ids::RELEASE_MS, 1000.0),
            ],
        );
        let g = measured_gain_db(&mut c, 0.0);
        assert!((g - expected).abs() < 0.05, "T {t}: {g} dB");
    }
}

/// Time (s) for the gain-reduction meter to cover `1 − 1/e` of its way from `from` to `to`.
/// `to` is the theoretical end value (the meter needs many time constants to get there).
fn time_constant(c: &mut Compressor, step_at: usize, amp_before: f64, amp_after: f64, to: f64) -> (f64, f64, f64) {
    let len = step_at + 96_000;
    let x: Vec<f32> = (0..len)
        .map(|n| {
            let a = if n < step_at { amp_before } else { amp_after };
            (a * (2.0 * PI * 1000.0 * n as f64 / SR).sin()) as f32
        })
        .collect();
    // Per-sample processing so the meter is read on every sample.
    let mut gr = vec![0.0f32; len];
    let mut out = [0.0f32];
    for n in 0..len {
        c.process(&[&x[n..n + 1]], &mut [&mut out[..]]);
        gr[n] = c.gain_reduction_db();
    }
    let from = gr[step_at - 1] as f64;
    let target = to + (from - to) / std::f64::consts::E;
    let cross =
        (step_at..len).find(|&n| if to > from { gr[n] as f64 >= target } else { gr[n] as f64 <= target }).unwrap();
    ((cross - step_at) as f64 / SR, from, to)
}

#[test]
fn attack_and_release_follow_their_time_constants() {
    // Tolerance: two control periods (2 × 32 samples = 1.33 ms at 48 kHz): the step lands anywhere
    // inside a detector period (up to one period before it is seen) and the meter moves once per
    // period (up to one period of quantisation). Everything else is the exact one-pole recursion.
    let tol = 2.0 * CONTROL_PERIOD as f64 / SR;
    for &(attack, release) in &[(5.0f32, 50.0f32), (20.0, 200.0), (50.0, 500.0)] {
        let params = [
            (ids::THRESHOLD_DB, -30.0),
            (ids::RATIO, f32::INFINITY),
            (ids::KNEE_DB, 0.0),
            (ids::ATTACK_MS, attack),
            (ids::RELEASE_MS, release),
        ];
        // Attack: −40 dB → 0 dB (reduction 0 → 30 dB).
        let mut c = comp(1, &params);
        let (t, from, _) = time_constant(&mut c, 24_000, 0.01, 1.0, 30.0);
        assert!(from.abs() < 1e-6, "attack starts from {from}");
        assert!((t - attack as f64 * 1e-3).abs() <= tol, "attack {attack} ms: measured {:.3} ms", t * 1e3);
        eprintln!("attack {attack} ms: measured {:.3} ms", t * 1e3);
        // Release: 0 dB → −40 dB (reduction 30 → 0 dB); settle on the loud part first.
        let mut c = comp(1, &params);
        let (t, from, _) = time_constant(&mut c, 48_000, 1.0, 0.01, 0.0);
        assert!((from - 30.0).abs() < 0.01, "release starts from {from}");
        assert!((t - release as f64 * 1e-3).abs() <= tol, "release {release} ms: measured {:.3} ms", t * 1e3);
        eprintln!("attack {attack} ms / release {release} ms: measured release {:.3} ms", t * 1e3);
    }
}

#[test]
fn infinite_ratio_limits_to_the_threshold() {
    // Peak detector, hard knee: output peak = threshold for every louder input (±0.01 dB: f32 gain
    // arithmetic and fast log/exp, < 1e-4 dB, plus the sampled sine's exact peak at 1 kHz / 48 kHz).
    for level in [-10.0f64, 0.0, 6.0, 20.0] {
        let mut c = comp(
            1,
            &[(ids::THRESHOLD_DB, -12.0), (ids::RATIO, f32::INFINITY), (ids::KNEE_DB, 0.0), (ids::RELEASE_MS, 500.0)],
        );
        let x = sine(1000.0, 10f64.powf(level / 20.0), SR, 48_000);
        let y = run_blocks(&mut c, &[x], 256);
        let peak = y[0][36_000..].iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert!((db(peak) + 12.0).abs() < 0.01, "input {level} dB: output peak {} dB", db(peak));
    }
}

#[test]
fn stereo_link_off_and_full() {
    // L at 0 dBFS, R at −30 dBFS; T −20 dB, 4:1, hard knee: L alone needs 15 dB of reduction, R none.
    let x = [sine(1000.0, 1.0, SR, 48_000), sine(1000.0, 10f64.powf(-1.5), SR, 48_000)];
    let r = 36_000..48_000;
    for (link, expect_r) in [(0.0f32, 0.0f64), (100.0, -15.0), (50.0, -7.5)] {
        let mut c = comp(
            2,
            &[
                (ids::THRESHOLD_DB, -20.0),
                (ids::RATIO, 4.0),
                (ids::KNEE_DB, 0.0),
                (ids::STEREO_LINK_PCT, link),
                (ids::ATTACK_MS, 1.0),
                (ids::RELEASE_MS, 1000.0),
            ],
        );
        let y = run_blocks(&mut c, &x, 256);
        let gl = db(amp_at(&y[0], 1000.0, r.clone()) / amp_at(&x[0], 1000.0, r.clone()));
        let gr = db(amp_at(&y[1], 1000.0, r.clone()) / amp_at(&x[1], 1000.0, r.clone()));
        // ±0.05 dB: the measurement of the static curve above is good to a few thousandths of a dB.
        assert!((gl + 15.0).abs() < 0.05, "link {link}: left {gl} dB");
        assert!((gr - expect_r).abs() < 0.05, "link {link}: right {gr} dB, expected {expect_r}");
    }
}

#[test]
fn lookahead_latency_is_exact() {
    for (sr, ms) in [(48_000.0, 5.0f32), (44_100.0, 5.0), (96_000.0, 1.3), (48_000.0, 0.0), (192_000.0, 20.0)] {
        let mut c = Compressor::new(1);
        c.set_param(ids::LOOKAHEAD_MS, ms).unwrap();
        c.prepare(sr, 256);
        let expected = (ms as f64 * 1e-3 * sr).round() as usize;
        assert_eq!(c.latency_samples(), expected, "{sr} Hz {ms} ms");
        // An impulse far below threshold comes out unchanged, exactly `latency` samples later.
        let mut x = vec![0.0f32; expected + 1000];
        x[100] = 0.01;
        let y = run_blocks(&mut c, &[x], 64);
        let pos = y[0].iter().position(|&v| v != 0.0).unwrap();
        assert_eq!(pos, 100 + expected, "{sr} Hz {ms} ms");
        assert_eq!(y[0][pos], 0.01);
    }
}

#[test]
fn lookahead_catches_a_transient() {
    // With lookahead longer than the attack, a burst is already reduced when it reaches the output.
    let mut fast = comp(
        1,
        &[
            (ids::THRESHOLD_DB, -20.0),
            (ids::RATIO, f32::INFINITY),
            (ids::KNEE_DB, 0.0),
            (ids::ATTACK_MS, 0.5),
            (ids::LOOKAHEAD_MS, 5.0),
        ],
    );
    let x: Vec<f32> =
        (0..24_000).map(|n| if n >= 12_000 { (2.0 * PI * 1000.0 * n as f64 / SR).sin() as f32 } else { 0.0 }).collect();
    let y = run_blocks(&mut fast, &[x], 64);
    let peak = y[0].iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
    // 5 ms lookahead = 7.5 control periods + 10 attack constants: the first cycle is already at the
    // threshold within 0.5 dB.
    assert!(db(peak) < -19.5, "peak {} dB", db(peak));
}

#[test]
fn sidechain_high_pass_reduces_low_frequency_reduction() {
    // 50 Hz at 0 dBFS, T −20 dB, 4:1: full-band detection reduces ~15 dB; a 200 Hz 12 dB/oct sidechain
    // high-pass sees the tone 24 dB down (−24 dBFS, below the knee), so almost no reduction.
    let x = sine(50.0, 1.0, SR, 96_000);
    let gr = |hpf: f32| {
        let mut c = comp(1, &[(ids::THRESHOLD_DB, -20.0), (ids::RATIO, 4.0), (ids::SIDECHAIN_HPF_HZ, hpf)]);
        let mut out = vec![0.0f32; 256];
        let mut max_gr = 0.0f32;
        for (i, chunk) in x.chunks(256).enumerate() {
            c.process(&[chunk], &mut [&mut out[..]]);
            if i * 256 > 48_000 {
                max_gr = max_gr.max(c.gain_reduction_db());
            }
        }
        max_gr
    };
    let (off, on) = (gr(0.0), gr(200.0));
    assert!(off > 14.0, "without HPF: {off} dB");
    assert!(on < 1.0, "with HPF: {on} dB");
}

#[test]
fn makeup_gain_is_exact() {
    // Below threshold the only gain is makeup: +6 dB ± 0.001 dB (f32 exp2 is good to 1e-6 dB).
    let mut c = comp(1, &[(ids::THRESHOLD_DB, -10.0), (ids::MAKEUP_DB, 6.0)]);
    let g = measured_gain_db(&mut c, -40.0);
    assert!((g - 6.0).abs() < 1e-3, "{g}");
    // A makeup change ramps (no step): the largest sample-to-sample gain change stays small.
    c.set_param(ids::MAKEUP_DB, -6.0).unwrap();
    let x = vec![0.1f32; 4800];
    let y = run_blocks(&mut c, &[x], 64);
    let max_step = y[0].windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0f32, f32::max);
    // 12 dB over 20 ms (960 samples): steps ≈ 0.15/960 per sample; a step change would be 0.15.
    assert!(max_step < 1e-3, "max step {max_step}");
    assert!((db(y[0][4799] as f64 / 0.1) + 6.0).abs() < 1e-3);
}

#[test]
fn non_finite_input_never_reaches_output_or_state() {
    let mut c = comp(2, &[(ids::LOOKAHEAD_MS, 2.0), (ids::SIDECHAIN_HPF_HZ, 80.0), (ids::DETECTOR, 1.0)]);
    let mut reference = comp(2, &[(ids::LOOKAHEAD_MS, 2.0), (ids::SIDECHAIN_HPF_HZ, 80.0), (ids::DETECTOR, 1.0)]);
    let mut x = [sine(440.0, 0.5, SR, 4096), sine(660.0, 0.5, SR, 4096)];
    let clean = x.clone();
    for (i, v) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY].into_iter().enumerate() {
        x[i % 2][1000 + 7 * i] = v;
    }
    let y = run_blocks(&mut c, &x, 256);
    assert!(y.iter().flatten().all(|v| v.is_finite()));
    // Afterwards the node behaves like one that never saw the poison, apart from the three zeroed samples:
    // the loud program converges to the same output.
    let mut cleaned = clean.clone();
    for (i, _) in [0, 1, 2].iter().enumerate() {
        cleaned[i % 2][1000 + 7 * i] = 0.0;
    }
    let expected = run_blocks(&mut reference, &cleaned, 256);
    assert_eq!(y, expected);
}

#[test]
fn rt_exercise() {
    common::rt::exercise(&mut Compressor::new(2), 48_000.0, 512, 0);
    common::rt::exercise(&mut Compressor::new(1), 44_100.0, 64, 0);
    common::rt::exercise(&mut Compressor::new(3), 192_000.0, 256, 0);
}

fn busy_params() -> [(ParamId, f32); 7] {
    [
        (ids::THRESHOLD_DB, -30.0),
        (ids::RATIO, 6.0),
        (ids::ATTACK_MS, 2.0),
        (ids::RELEASE_MS, 80.0),
        (ids::LOOKAHEAD_MS, 3.0),
        (ids::STEREO_LINK_PCT, 60.0),
        (ids::SIDECHAIN_HPF_HZ, 120.0),
    ]
}

#[test]
fn block_size_invariant() {
    let input = vec![bursty_noise(1, 20_000, 1500), bursty_noise(2, 20_000, 900)];
    for detector in [0.0f32, 1.0] {
        assert_block_size_invariant(
            || {
                let mut c = Compressor::new(2);
                for (id, v) in busy_params() {
                    c.set_param(id, v).unwrap();
                }
                c.set_param(ids::DETECTOR, detector).unwrap();
                Box::new(c)
            },
            SR,
            512,
            &input,
        );
    }
}

#[test]
fn reset_is_deterministic() {
    let input = vec![bursty_noise(3, 20_000, 1200), bursty_noise(4, 20_000, 700)];
    let mut c = comp(2, &busy_params());
    let a = run_blocks(&mut c, &input, 100);
    c.reset();
    let b = run_blocks(&mut c, &input, 100);
    assert_eq!(a, b);
    assert!(a[0].iter().any(|&v| v != 0.0));
}

#[test]
fn parameters_validate_and_round_trip() {
    let mut c = Compressor::new(2);
    for p in c.descriptor().params {
        assert_eq!(c.param(p.id), Some(p.default), "{}", p.key);
    }
    assert!(c.set_param(ids::RATIO, f32::INFINITY).is_ok());
    assert_eq!(c.param(ids::RATIO), Some(f32::INFINITY));
    assert!(c.set_param(ids::RATIO, 0.5).is_err());
    assert_eq!(c.param(ids::RATIO), Some(f32::INFINITY), "refused value leaves the node unchanged");
    assert!(c.set_param(ids::DETECTOR, 2.0).is_err());
    assert!(c.set_param(ParamId(999), 1.0).is_err());
}

//! The loudness controller alone (no limiter): convergence to the target on steady noise and on real
//! music, measured by our BS.1770 meter; slew, max gain and max cut limits; freezing through a pause;
//! RT safety, block-size invariance and reset determinism.
mod common;

use ballast_dsp::limiter::Limiter;
use ballast_dsp::loudness::LoudnessMeter;
use ballast_dsp::loudness_control::{
    LoudnessControl, PARAM_CEILING_DBTP, PARAM_GATE_LU, PARAM_LIMITER_FOLLOWS, PARAM_MAX_CUT_DB, PARAM_MAX_GAIN_DB,
    PARAM_SLEW_DB_PER_S, PARAM_TARGET_LUFS, PARAM_WINDOW_S,
};
use ballast_dsp::Processor;
use common::signals;

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

const SR: f64 = 48_000.0;
/// The brief's convergence requirement: output integrated loudness within ±0.5 LU of target.
const TOL_LU: f64 = 0.5;

/// A controller judged on its own output: no limiter follows, so its loudness model is switched off
/// (the chain with a limiter is tested in `limiter_model_*` here and in tests/broadcast_chain.rs).
fn controller() -> LoudnessControl {
    let mut c = LoudnessControl::new(2);
    c.prepare(SR, 1024);
    c.set_param(PARAM_LIMITER_FOLLOWS, 0.0).unwrap();
    c
}

/// Runs stereo `input` through `c` in blocks of `block`; returns the output and the gain meter after
/// every block.
fn run(c: &mut LoudnessControl, input: &[Vec<f32>], block: usize) -> (Vec<Vec<f32>>, Vec<f64>) {
    let frames = input[0].len();
    let mut out = vec![vec![0.0f32; frames]; 2];
    let mut gains = Vec::with_capacity(frames / block + 1);
    let mut pos = 0;
    while pos < frames {
        let n = block.min(frames - pos);
        let (o0, o1) = out.split_at_mut(1);
        c.process(
            &[&input[0][pos..pos + n], &input[1][pos..pos + n]],
            &mut [&mut o0[0][pos..pos + n], &mut o1[0][pos..pos + n]],
        );
        gains.push(c.gain_db());
        pos += n;
    }
    (out, gains)
}

fn integrated(chs: &[Vec<f32>]) -> f64 {
    let mut m = LoudnessMeter::new(chs.len());
    m.prepare(SR, 1024);
    let planes: Vec<&[f32]> = chs.iter().map(|c| &c[..]).collect();
    m.feed(&planes);
    m.integrated_lufs()
}

/// Stereo noise with slow level wander (±3 dB over seconds) around `level_db` dBFS peak.
fn program_noise(seed: u64, seconds: f64, level_db: f64) -> Vec<Vec<f32>> {
    let n = (seconds * SR) as usize;
    let a = signals::noise(seed, 1.0, n);
    let b = signals::noise(seed + 1, 1.0, n);
    let wander = |i: usize| 10f64.powf((level_db + 3.0 * (i as f64 / SR * 0.37).sin()) / 20.0) as f32;
    vec![
        a.iter().enumerate().map(|(i, v)| v * wander(i)).collect(),
        b.iter().enumerate().map(|(i, v)| v * wander(i)).collect(),
    ]
}

fn wesnoth(track: &str, seconds: u32) -> Vec<Vec<f32>> {
    common::music::wesnoth(track, SR, seconds as f64)
}

#[test]
fn converges_on_steady_noise() {
    // Noise with a slow ±3 dB wander: quiet (needs about +5 dB), loud (needs about -17 dB) and a -16 LUFS
    // target; 60 s each. What R128 judges is the whole programme's integrated loudness: asserted over the
    // whole 60 s. The last 20 s are printed and held only to the programme goal's ±2 LU: in the loud case
    // the start runs over target while the gain slews down from -6 dB at 3 dB/s, and the controller pays
    // that back by running under target afterwards (module doc, step 4).
    for (level_db, target) in [(-30.0, -23.0), (-8.0, -23.0), (-25.0, -16.0)] {
        let x = program_noise(11, 60.0, level_db);
        let mut c = controller();
        c.set_param(PARAM_TARGET_LUFS, target as f32).unwrap();
        let (y, gains) = run(&mut c, &x, 256);
        let (i_in, i_out) = (integrated(&x), integrated(&y));
        let tail: Vec<Vec<f32>> = y.iter().map(|c| c[(40.0 * SR) as usize..].to_vec()).collect();
        let i_tail = integrated(&tail);
        println!(
            "noise {level_db} dBFS -> target {target}: in {i_in:.2}, out (60 s) {i_out:.2}, \
             out (last 20 s) {i_tail:.2}, final gain {:.2} dB",
            gains.last().unwrap()
        );
        // ±0.3 LU, tighter than the ±0.5 LU requirement; what is left is the noise's ±3 dB wander seen
        // through a 3 s window and a 3 dB/s slew.
        assert!((i_out - target).abs() <= 0.3, "whole {i_out}, target {target}");
        // The goal is clamped to target ± 2 LU; 0.3 LU for the wander as above.
        assert!((i_tail - target).abs() <= 2.3, "tail {i_tail}, target {target}");
    }
}

#[test]
fn converges_on_music() {
    // The whole 60 s from a cold start. These four cover steady (the_city_falls), a soft start
    // (elvish-theme), a quiet intro into a loud entry (battle) and loud epic (battle-epic). Not every
    // track lands this close: see `sweep_all_wesnoth_tracks` and the module doc.
    for track in ["battle-epic.ogg", "elvish-theme.ogg", "the_city_falls.ogg", "battle.ogg"] {
        let x = wesnoth(track, 60);
        let mut c = controller();
        let (y, gains) = run(&mut c, &x, 512);
        let (i_in, i_out) = (integrated(&x), integrated(&y));
        let (gmin, gmax) = gains.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &g| (a.min(g), b.max(g)));
        println!("{track}: in {i_in:.2} LUFS, out {i_out:.2} LUFS, gain {gmin:.2}..{gmax:.2} dB");
        assert!((i_out + 23.0).abs() <= TOL_LU, "{track}: out {i_out}");
    }
}

#[test]
fn sweep_all_wesnoth_tracks() {
    // Every track's first 60 s from a cold start (no limiter). Measured when written: 34 of 40 within
    // ±0.5 LU over the whole excerpt, 31 of the 35 tracks of >= 30 s within ±0.5 LU from 10 s on (the
    // previous control law, without the programme goal: 29 and 28); the misses are loud entries faster
    // than the slew in a minute too short to pay them back (module doc). Asserted with a margin of 2
    // tracks each so that the suite guards the behaviour without pinning every decimal; plus no track
    // more than 2.5 LU off.
    let dir = "/usr/share/games/wesnoth/1.16/data/core/music/";
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ogg") && n != "silence.ogg")
        .collect();
    names.sort();
    let (mut whole, mut tails, mut long, mut worst) = (0, 0, 0, 0.0f64);
    for track in &names {
        let x = wesnoth(track, 60);
        let mut c = controller();
        let (y, _) = run(&mut c, &x, 512);
        let e = integrated(&y) + 23.0;
        whole += (e.abs() <= TOL_LU) as usize;
        worst = worst.max(e.abs());
        if x[0].len() >= (30.0 * SR) as usize {
            long += 1;
            let tail: Vec<Vec<f32>> = y.iter().map(|c| c[(10.0 * SR) as usize..].to_vec()).collect();
            tails += ((integrated(&tail) + 23.0).abs() <= TOL_LU) as usize;
        }
        println!("{track}: output {e:+.2} LU from target");
    }
    println!("within ±0.5 LU: {whole}/{} whole, {tails}/{long} from 10 s", names.len());
    assert!(names.len() >= 40, "{} tracks", names.len());
    assert!(whole >= 32, "{whole} whole");
    assert!(tails >= 29, "{tails}/{long} tails");
    assert!(worst <= 2.5, "worst {worst} LU");
}

#[test]
fn slew_limit_respected() {
    // A 30 dB step up then down, fast and slow slew: per 32-frame grid step the gain moves at most
    // slew * 32 / fs dB (1e-9 dB slack for float rounding), checked every 32-frame block.
    for slew in [3.0f32, 20.0] {
        let mut x = program_noise(5, 40.0, -40.0);
        for ch in x.iter_mut() {
            for v in ch[(10.0 * SR) as usize..(25.0 * SR) as usize].iter_mut() {
                *v *= 31.62;
            }
        }
        let mut c = controller();
        // -40 dBFS noise is below the default pause gate (target - 10 LU): open the gate so it moves up too.
        c.set_param(PARAM_GATE_LU, 40.0).unwrap();
        c.set_param(PARAM_SLEW_DB_PER_S, slew).unwrap();
        let (_, gains) = run(&mut c, &x, 32);
        let step = slew as f64 * 32.0 / SR;
        let worst = gains.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0f64, f64::max);
        // Boosts move at half the slew (a design choice, see the module doc).
        let worst_up = gains.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
        assert!(worst_up <= 0.5 * step + 1e-9 && worst_up > 0.49 * step, "boost step {worst_up}");
        println!("slew {slew} dB/s: worst step {worst:.6} dB per 32 frames (limit {step:.6})");
        assert!(worst <= step + 1e-9, "{worst} > {step}");
        // ... and it did move: it reached the limit rate somewhere.
        assert!(worst > step * 0.99);
    }
}

#[test]
fn max_gain_and_cut_respected() {
    // -60 dBFS noise wants about +30 dB: capped at max_gain 12 (default) and at 5 when set.
    let quiet = program_noise(7, 30.0, -60.0);
    for (max_gain, want) in [(None, 12.0), (Some(5.0f32), 5.0)] {
        let mut c = controller();
        c.set_param(PARAM_GATE_LU, 40.0).unwrap();
        if let Some(g) = max_gain {
            c.set_param(PARAM_MAX_GAIN_DB, g).unwrap();
        }
        let (_, gains) = run(&mut c, &quiet, 256);
        let top = gains.iter().fold(f64::NEG_INFINITY, |a, &g| a.max(g));
        // Exactly at the cap: the clamp is on the dB value the ramp heads for (1e-9 dB float slack).
        assert!(top <= want + 1e-9 && top >= want - 1e-9, "max gain {top}, cap {want}");
    }
    // 0 dBFS-peak noise (about -4 LUFS) wants about -19 dB: capped by max_cut 6.
    let loud = program_noise(8, 30.0, 0.0);
    let mut c = controller();
    c.set_param(PARAM_MAX_CUT_DB, 6.0).unwrap();
    let (_, gains) = run(&mut c, &loud, 256);
    let bottom = gains.iter().fold(f64::INFINITY, |a, &g| a.min(g));
    assert!((bottom + 6.0).abs() <= 1e-9, "min gain {bottom}");
}

#[test]
fn frozen_through_silence_no_jump() {
    // 20 s programme, 10 s digital silence, 20 s of the same programme level. The gain must not move
    // during the pause (bit-identical), and in the 3 s after the restart it may move at most X = 0.5 dB.
    // Why X = 0.5 dB: the window holds only pre-pause programme, so the gain target at the restart is the
    // one before the pause; what moves it is the new programme's own level window by window (this noise
    // wanders ±3 dB over ~17 s, i.e. < 0.3 dB per 3 s at the restart) and the integrator (10 s time
    // constant on an error of a few tenths of a LU: < 0.1 dB in 3 s). Without the freeze the gain would
    // slew to +12 dB during the pause and the restart would come 7 dB too loud.
    for gap in [10.0, 10.05] {
        let a = program_noise(21, 20.0, -30.0);
        let b = program_noise(22, 20.0, -30.0);
        let z = vec![0.0f32; (gap * SR) as usize];
        let x: Vec<Vec<f32>> = (0..2).map(|c| [a[c].clone(), z.clone(), b[c].clone()].concat()).collect();
        let mut c = controller();
        let block = 480; // 10 ms per gain reading
        let (_, gains) = run(&mut c, &x, block);
        let at = |t: f64| gains[(t * SR) as usize / block];
        let before = at(20.0);
        // The gate looks at the 400 ms momentary loudness: frozen from 0.4 s into the pause at the latest.
        let pause: Vec<f64> = ((20.5 * 100.0) as usize..((20.0 + gap) * 100.0) as usize).map(|k| gains[k]).collect();
        assert!(pause.iter().all(|&g| g == pause[0]), "gain moved during the pause");
        // Up to 0.4 s of slewing (3 dB/s) before the freeze: 1.2 dB at most.
        assert!((pause[0] - before).abs() <= 1.2, "frozen at {} vs {before} before", pause[0]);
        let restart = 20.0 + gap;
        let worst = (0..300).map(|k| (at(restart + k as f64 * 0.01) - pause[0]).abs()).fold(0.0f64, f64::max);
        let frozen = pause[0];
        println!("gap {gap} s: gain before {before:.3} dB, frozen {frozen:.3} dB, restart moved it {worst:.3} dB");
        assert!(worst <= 0.5, "restart moved the gain by {worst} dB");
    }
}

#[test]
fn rt_exercise() {
    for ch in [1, 2, 6] {
        let mut c = LoudnessControl::new(ch);
        common::rt::exercise(&mut c, SR, 512, 0);
    }
}

#[test]
fn block_size_invariant() {
    // 6 s of bursty programme with a pause, long enough for several control updates and gain motion.
    let mut x = vec![signals::bursty_noise(31, 6 * 48_000, 9_000), signals::bursty_noise(32, 6 * 48_000, 13_000)];
    for ch in x.iter_mut() {
        ch[100_000..150_000].fill(0.0);
    }
    common::assert_block_size_invariant(
        || {
            let mut c = LoudnessControl::new(2);
            c.set_param(PARAM_SLEW_DB_PER_S, 20.0).unwrap();
            c.set_param(PARAM_WINDOW_S, 0.4).unwrap();
            Box::new(c)
        },
        SR,
        1024,
        &x,
    );
}

#[test]
fn reset_is_deterministic() {
    let x = program_noise(41, 8.0, -35.0);
    let mut c = controller();
    // With the limiter model on, so its state is covered by the reset too.
    c.set_param(PARAM_LIMITER_FOLLOWS, 1.0).unwrap();
    c.set_param(PARAM_GATE_LU, 12.0).unwrap();
    let (a, ga) = run(&mut c, &x, 300);
    c.reset();
    let (b, gb) = run(&mut c, &x, 300);
    assert_eq!(ga, gb);
    for (p, q) in a.iter().zip(&b) {
        assert!(p.iter().zip(q).all(|(u, v)| u.to_bits() == v.to_bits()));
    }
    // Parameters survive reset, out-of-range values are refused.
    assert_eq!(c.param(PARAM_GATE_LU), Some(12.0));
    assert!(c.set_param(PARAM_TARGET_LUFS, -50.0).is_err());
    assert_eq!(c.param(PARAM_TARGET_LUFS), Some(-23.0));
}

#[test]
fn meters_report_window_loudness() {
    // Steady noise (no wander), so the 3 s windows are steady too.
    let x = vec![signals::noise(51, 0.05, 30 * 48_000), signals::noise(52, 0.05, 30 * 48_000)];
    let mut c = controller();
    let _ = run(&mut c, &x, 512);
    let keys: Vec<&str> = c.descriptor().meters.iter().map(|m| m.key).collect();
    assert_eq!(keys, ["gain_db", "input_lufs", "output_lufs"]);
    // Settled on steady noise: output window loudness = input window loudness + gain (0.05 LU: the
    // gain's last few tenths of a dB of integrator motion inside the 3 s window), and at the target
    // (±0.3 LU as the steady-noise convergence test).
    let (g, i, o) = (c.meter(0, 0) as f64, c.meter(1, 0) as f64, c.meter(2, 0) as f64);
    println!("meters: gain {g:.3} dB, input {i:.3} LUFS, output {o:.3} LUFS");
    assert!((o - (i + g)).abs() < 0.05, "in {i} + gain {g} vs out {o}");
    assert!((o + 23.0).abs() < 0.3, "out {o}");
}

#[test]
fn target_change_acts_within_a_block() {
    // Settled on steady noise, a 6 LU lower target starts the gain moving within the next 32-frame grid
    // step (one 64-frame block later it has moved by at least one grid step's worth of slew).
    let x = vec![signals::noise(61, 0.05, 20 * 48_000), signals::noise(62, 0.05, 20 * 48_000)];
    let mut c = controller();
    let _ = run(&mut c, &x, 480);
    let before = c.gain_db();
    c.set_param(PARAM_TARGET_LUFS, -29.0).unwrap();
    let tail = vec![x[0][..64].to_vec(), x[1][..64].to_vec()];
    let _ = run(&mut c, &tail, 64);
    let moved = before - c.gain_db();
    // At least one full grid step (3 dB/s * 32 / 48000 = 0.002 dB), at most two (64 frames).
    assert!((0.002 - 1e-9..=0.004 + 1e-9).contains(&moved), "moved {moved} dB");
}

#[test]
fn limiter_model_predicts_chain_loudness() {
    // battle-epic's first 60 s at the streaming target (-16 LUFS) before a limiter at -4 dBTP, which
    // takes clearly audible loudness off this loud orchestral programme (at -1 dBTP it takes only a few
    // hundredths of a LU: the ceiling is lowered here so the test has something to predict). The
    // controller's programme loudness (measured on its side-chain copy of the limiter) must equal what
    // our meter reads after a real limiter at the same ceiling: the same code on the same samples, so
    // 0.02 LU covers only the lookahead's few ms at the end and the 400 ms block grid's alignment.
    let x = wesnoth("battle-epic.ogg", 60);
    let mut c = LoudnessControl::new(2);
    c.prepare(SR, 512);
    c.set_param(PARAM_TARGET_LUFS, -16.0).unwrap();
    c.set_param(PARAM_CEILING_DBTP, -4.0).unwrap();
    let (y, _) = run(&mut c, &x, 512);
    let mut l = Limiter::new(2);
    l.prepare(SR, 512);
    l.set_param(ballast_dsp::limiter::CEILING_DBTP, -4.0).unwrap();
    l.reset();
    let mut z = vec![vec![0.0f32; y[0].len()]; 2];
    for pos in (0..y[0].len()).step_by(512) {
        let n = 512.min(y[0].len() - pos);
        let (z0, z1) = z.split_at_mut(1);
        l.process(
            &[&y[0][pos..pos + n], &y[1][pos..pos + n]],
            &mut [&mut z0[0][pos..pos + n], &mut z1[0][pos..pos + n]],
        );
    }
    let (pre, post, predicted) = (integrated(&y), integrated(&z), c.programme_lufs());
    println!("controller out {pre:.3} LUFS, after limiter {post:.3} LUFS, predicted {predicted:.3} LUFS");
    assert!((predicted - post).abs() <= 0.02, "predicted {predicted}, after limiter {post}");
    // The limiter does take loudness off here (else this test would prove nothing).
    assert!(pre - post > 0.1, "limiter loss {}", pre - post);
    // Switched off, the programme loudness is the controller's own output.
    let mut c = controller();
    c.set_param(PARAM_TARGET_LUFS, -16.0).unwrap();
    let (y, _) = run(&mut c, &x, 512);
    assert!((c.programme_lufs() - integrated(&y)).abs() <= 0.02);
}

#[test]
fn early_overshoot_is_paid_back() {
    // Loud programme from a cold start: -8 dBFS-peak noise (about -12 LUFS) against the start gain of
    // -6 dB, so the first seconds run ~5 LU over target while the gain slews down at 3 dB/s. A controller
    // that only holds the recent output at target would leave the whole-programme reading that much
    // energy over; the programme goal runs slightly under target afterwards until the integrated loudness
    // is back. Over 120 s: within 0.15 LU of target (the noise's ±3 dB wander seen through the windows),
    // and the first 20 s alone read clearly over target (else there was nothing to pay back).
    let x = program_noise(71, 120.0, -8.0);
    let mut c = controller();
    let (y, _) = run(&mut c, &x, 256);
    let head: Vec<Vec<f32>> = y.iter().map(|ch| ch[..(20.0 * SR) as usize].to_vec()).collect();
    let (whole, first) = (integrated(&y), integrated(&head));
    println!("first 20 s {first:.2} LUFS, whole 120 s {whole:.2} LUFS");
    assert!(first > -22.5, "first 20 s {first}");
    assert!((whole + 23.0).abs() <= 0.15, "whole {whole}");
}

#[test]
fn programme_restarts_after_long_silence() {
    // 10 s of digital silence (input below the absolute gate) ends a programme: the output's programme
    // loudness starts afresh; 5 s does not.
    for (gap, fresh) in [(5.0, false), (11.0, true)] {
        let a = program_noise(81, 15.0, -20.0);
        let z = vec![0.0f32; (gap * SR) as usize];
        let x: Vec<Vec<f32>> = (0..2).map(|ch| [a[ch].clone(), z.clone()].concat()).collect();
        let mut c = controller();
        let _ = run(&mut c, &x, 256);
        assert_eq!(c.programme_lufs() == f64::NEG_INFINITY, fresh, "gap {gap}: {}", c.programme_lufs());
    }
}

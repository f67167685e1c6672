//! Tests of the `synth` node: sample-accurate events, ADSR stage lengths and levels, voice stealing
//! policy, continuity on steal and retrigger, polyphonic sum, late events, queue bounds, RT safety with
//! events pushed inside the allocation guard, block-size invariance and reset determinism.
mod common;

use assert_no_alloc::{assert_no_alloc, violation_count};
use ballast_dsp::generators::{NoteEvent, NoteKind, Stage, Synth, Waveform, EVENT_CAPACITY, VOICES};
use ballast_dsp::{DenormalGuard, ParamId, Processor};
use common::{assert_block_size_invariant, rt, run_generator};
use std::f64::consts::PI;

#[global_allocator]
static A: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

const SR: f64 = 48_000.0;
const WAVE: ParamId = ParamId(0);
const ATTACK: ParamId = ParamId(1);
const DECAY: ParamId = ParamId(2);
const SUSTAIN: ParamId = ParamId(3);
const RELEASE: ParamId = ParamId(4);
const LEVEL: ParamId = ParamId(5);

/// A prepared synth with the given waveform and ADSR (ms, ms, dB, ms), level 0 dB.
fn synth(wave: Waveform, a: f32, d: f32, s_db: f32, r: f32) -> Synth {
    let mut s = Synth::new(2);
    s.set_param(WAVE, wave.index()).unwrap();
    s.set_param(ATTACK, a).unwrap();
    s.set_param(DECAY, d).unwrap();
    s.set_param(SUSTAIN, s_db).unwrap();
    s.set_param(RELEASE, r).unwrap();
    s.set_param(LEVEL, 0.0).unwrap();
    s.prepare(SR, 512);
    s
}

fn on(time: u64, note: u8, velocity: f32) -> NoteEvent {
    NoteEvent { time, kind: NoteKind::On { note, velocity } }
}

fn off(time: u64, note: u8) -> NoteEvent {
    NoteEvent { time, kind: NoteKind::Off { note } }
}

fn render(s: &mut Synth, frames: usize, block: usize) -> Vec<f32> {
    let out = run_generator(s, frames, block);
    assert_eq!(out[0], out[1], "both outputs carry the same signal");
    out.into_iter().next().unwrap()
}

fn max_step(x: &[f32]) -> f32 {
    x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max)
}

fn note_hz(note: u8) -> f64 {
    440.0 * 2f64.powf((note as f64 - 69.0) / 12.0)
}

#[test]
fn notes_start_and_stop_on_their_sample() {
    for block in [1, 64, 100, 512] {
        // Triangle starts at −1 (a sine or saw would start at exactly 0), attack and release 0: the first
        // and last non-zero samples are exactly the event times.
        let mut s = synth(Waveform::Triangle, 0.0, 0.0, 0.0, 0.0);
        for (t_on, t_off, note) in [(1000u64, 1500u64, 60u8), (1717, 2049, 72), (3000, 3001, 48)] {
            s.push_event(on(t_on, note, 0.8)).unwrap();
            s.push_event(off(t_off, note)).unwrap();
        }
        let x = render(&mut s, 4000, block);
        let nonzero: Vec<usize> = (0..x.len()).filter(|&i| x[i] != 0.0).collect();
        let runs: Vec<(usize, usize)> = {
            let mut r = vec![(nonzero[0], nonzero[0])];
            for &i in &nonzero[1..] {
                let last = r.last_mut().unwrap();
                if i == last.1 + 1 {
                    last.1 = i;
                } else {
                    r.push((i, i));
                }
            }
            r
        };
        // Exact to the sample (tolerance 0): times are absolute on the node's clock.
        assert_eq!(runs, vec![(1000, 1499), (1717, 2048), (3000, 3000)], "block {block}");
        assert_eq!(s.late_events(), 0);
        assert_eq!(s.clock(), 4000);
    }
}

#[test]
fn adsr_stages_match_parameters() {
    let (a_ms, d_ms, s_db, r_ms) = (10.0f32, 20.0f32, -12.0f32, 30.0f32);
    let mut s = synth(Waveform::Sine, a_ms, d_ms, s_db, r_ms);
    s.set_param(LEVEL, -6.0).unwrap();
    let (t_on, t_off) = (100u64, 6000u64);
    let vel = 0.5f32;
    s.push_event(on(t_on, 69, vel)).unwrap();
    s.push_event(off(t_off, 69)).unwrap();
    let mut env = Vec::new();
    let mut audio = Vec::new();
    for _ in 0..8000 {
        audio.push(render(&mut s, 1, 1)[0]);
        // A voice reports idle as soon as its last release sample is out: that sample's value is the
        // audio's (sine of known phase), so take it from the previous envelope step instead.
        env.push(s.voice(0).map(|v| v.level));
    }
    let (a, d, r) = (480usize, 960usize, 1440usize); // 10, 20, 30 ms at 48 kHz
    let t_on = t_on as usize;
    let t_off = t_off as usize;
    let sus = vel * 10f32.powf(s_db / 20.0);
    // Envelope value of each sample, against the linear segments; 1e-6 covers f32 rounding of k/N.
    let expect = |i: usize| -> f32 {
        if i < t_on {
            0.0
        } else if i < t_on + a {
            vel * (i - t_on) as f32 / a as f32
        } else if i < t_on + a + d {
            vel * (1.0 - (1.0 - sus / vel) * (i - t_on - a) as f32 / d as f32)
        } else if i < t_off {
            sus
        } else if i < t_off + r {
            sus * (1.0 - (i - t_off) as f32 / r as f32)
        } else {
            0.0
        }
    };
    for (i, e) in env.iter().enumerate() {
        match e {
            Some(e) => assert!((e - expect(i)).abs() < 1e-6, "sample {i}: envelope {e} vs {}", expect(i)),
            // Idle: before the note, or from the last release sample (value sus/r ≈ 9e-5) on.
            None => assert!(i < t_on || i >= t_off + r - 1, "sample {i}: voice idle too early"),
        }
    }
    let env: Vec<f32> = env.iter().map(|e| e.unwrap_or(0.0)).collect();
    // Stage boundaries on the exact sample.
    assert_eq!(env[t_on + a], vel, "peak exactly `attack` samples after note-on");
    assert!(env[t_on + a - 1] < vel);
    assert_eq!(env[t_on + a + d], sus, "sustain exactly `decay` samples after the peak");
    assert!(env[t_off + r - 2] > 0.0 && s.voice(0).is_none());
    assert!(audio[t_off + r - 1] != 0.0, "last release sample still sounds");
    assert!(audio[t_off + r..].iter().all(|&v| v == 0.0), "silent exactly `release` samples after note-off");
    assert!(s.voice(0).is_none(), "voice idle after its release");
    // Audio level in sustain: a 440 Hz sine of peak vel · sustain at −6 dB output gain; RMS over
    // 33 whole cycles (3600 samples), all before the note-off; f32 rounding is far below 0.01 dB.
    let seg = &audio[t_on + a + d..t_on + a + d + 3600];
    let rms = (seg.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / seg.len() as f64).sqrt();
    let want = sus as f64 * 10f64.powf(-6.0 / 20.0) / 2f64.sqrt();
    eprintln!("sustain rms {rms} vs {want}: {:.5} dB", 20.0 * (rms / want).log10());
    assert!((20.0 * (rms / want).log10()).abs() < 0.01, "sustain rms {rms} vs {want}");
}

#[test]
fn seventeenth_note_steals_per_policy() {
    // Attack and decay of 1 ms: every held voice sits at the same sustain level before the releases.
    let mut s = synth(Waveform::Saw, 1.0, 1.0, -6.0, 500.0);
    // 16 held notes, one per sample so their ages are distinct.
    for i in 0..VOICES as u64 {
        s.push_event(on(i, 40 + i as u8, 0.5)).unwrap();
    }
    let _ = render(&mut s, 100, 64);
    assert_eq!(s.active_voices(), VOICES);
    // No voice releasing: the 17th note takes the oldest held voice (note 40, voice 0).
    s.push_event(on(100, 90, 0.5)).unwrap();
    let _ = render(&mut s, 100, 64);
    assert_eq!(s.voice(0).unwrap().note, 90);
    for i in 1..VOICES {
        assert_eq!(s.voice(i).unwrap().note, 40 + i as u8, "voice {i} untouched");
    }
    // Release note 45 (voice 5) and, 100 samples later, note 50 (voice 10): 45 is quieter.
    s.push_event(off(200, 45)).unwrap();
    s.push_event(off(300, 50)).unwrap();
    s.push_event(on(400, 91, 0.5)).unwrap();
    let _ = render(&mut s, 300, 64);
    assert_eq!(s.voice(5).unwrap().note, 91, "quietest releasing voice stolen first");
    assert_eq!(s.voice(10).unwrap().stage, Stage::Release);
    s.push_event(on(500, 92, 0.5)).unwrap();
    let _ = render(&mut s, 100, 64);
    assert_eq!(s.voice(10).unwrap().note, 92, "then the remaining releasing voice");
    // No voice releasing again: the oldest held note (41, voice 1).
    s.push_event(on(600, 93, 0.5)).unwrap();
    let _ = render(&mut s, 100, 64);
    assert_eq!(s.voice(1).unwrap().note, 93, "then the oldest held voice");
    // A note already sounding is retriggered on its own voice, not given a second one.
    s.push_event(on(700, 93, 0.9)).unwrap();
    let _ = render(&mut s, 100, 64);
    assert_eq!((0..VOICES).filter(|&i| s.voice(i).is_some_and(|v| v.note == 93)).count(), 1);
    assert_eq!(s.active_voices(), VOICES);
}

#[test]
fn steal_and_retrigger_are_continuous() {
    // Voice 0 plays note 40 (82 Hz) at full velocity; 15 more voices are held at a velocity so small
    // that the output is voice 0 alone. The 17th note (52, 165 Hz) steals voice 0, the oldest.
    let attack_ms = 5.0;
    let mut s = synth(Waveform::Sine, attack_ms, 50.0, -3.0, 100.0);
    s.push_event(on(0, 40, 1.0)).unwrap();
    for i in 1..VOICES as u64 {
        s.push_event(on(i, 60 + i as u8, 1e-6)).unwrap();
    }
    // Steal at sample 5013: voice 0 is in sustain and its sine is far from a zero crossing.
    let t_steal = 5013u64;
    s.push_event(on(t_steal, 52, 1.0)).unwrap();
    // Retrigger note 52 with another velocity while its attack is still running.
    let t_retrig = t_steal + 100;
    s.push_event(on(t_retrig, 52, 0.3)).unwrap();
    let x = render(&mut s, 12_000, 64);
    let at = t_steal as usize;
    assert!(x[at - 1].abs() > 0.3, "the stolen voice is sounding: {}", x[at - 1]);
    assert_eq!(s.voice(0).unwrap().note, 52);
    // Bound on the sample-to-sample step: the faster sine's own slope 2π·165/48000 = 0.0216, plus the
    // envelope's largest step (attack from ≥ 0 to 1 over 240 samples: 0.0042), plus the 15 quiet voices
    // (< 1e-5). A voice restarted from zero phase and zero level would step by |x[at−1]| > 0.3.
    let bound = (2.0 * PI * note_hz(52) / SR) as f32 + 1.0 / 240.0 + 1e-4;
    let step = max_step(&x[at - 100..at + 2000]);
    eprintln!("steal/retrigger: max step {step} (bound {bound}), value before steal {}", x[at - 1]);
    assert!(step <= bound, "max step {step} > {bound}");
    // Same bound on the whole run (note-ons from silence included).
    assert!(max_step(&x) <= bound, "{}", max_step(&x));
}

#[test]
fn voices_add_up() {
    let notes = [(48u8, 0.9f32), (55, 0.5), (64, 0.7), (71, 0.3)];
    let make = || synth(Waveform::Saw, 3.0, 40.0, -6.0, 80.0);
    let mut together = make();
    for (i, &(n, v)) in notes.iter().enumerate() {
        together.push_event(on(10 * i as u64, n, v)).unwrap();
        together.push_event(off(3000 + 100 * i as u64, n)).unwrap();
    }
    let sum = render(&mut together, 8000, 128);
    let mut parts = vec![0.0f64; 8000];
    for (i, &(n, v)) in notes.iter().enumerate() {
        let mut one = make();
        one.push_event(on(10 * i as u64, n, v)).unwrap();
        one.push_event(off(3000 + 100 * i as u64, n)).unwrap();
        for (p, x) in parts.iter_mut().zip(render(&mut one, 8000, 128)) {
            *p += x as f64;
        }
    }
    let err = sum.iter().zip(&parts).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
    eprintln!("polyphony: max deviation from the sum of single voices {err:e}");
    // Same voices, same arithmetic; only the order of f32 additions differs: a few ulps of values ≤ 2.4.
    assert!(err < 1e-6, "max deviation from the sum of single voices: {err}");
    let peak = sum.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak > 1.0, "four voices add up beyond one voice's peak: {peak}");
}

#[test]
fn late_events_play_at_block_start_and_are_counted() {
    let mut s = synth(Waveform::Triangle, 0.0, 0.0, 0.0, 0.0);
    let _ = render(&mut s, 1000, 256);
    // Time 500 has passed: it plays at the first sample of the next block (clock 1000).
    s.push_event(on(500, 60, 1.0)).unwrap();
    let x = render(&mut s, 256, 256);
    assert!(x[0] != 0.0, "late note starts at the block start");
    assert_eq!(s.late_events(), 1);
    assert_eq!(s.meter(1, 0), 1.0);
    assert_eq!(s.meter(0, 0), 1.0);
}

#[test]
fn queue_is_bounded_and_sorted() {
    let mut s = synth(Waveform::Triangle, 0.0, 0.0, 0.0, 0.0);
    // Pushed out of order: played in time order.
    s.push_event(off(300, 60)).unwrap();
    s.push_event(on(100, 60, 1.0)).unwrap();
    let x = render(&mut s, 400, 400);
    let first = x.iter().position(|&v| v != 0.0).unwrap();
    let last = x.iter().rposition(|&v| v != 0.0).unwrap();
    assert_eq!((first, last), (100, 299));
    // Full queue: the event comes back.
    for i in 0..EVENT_CAPACITY as u64 {
        s.push_event(on(10_000 + i, 60, 1.0)).unwrap();
    }
    let extra = on(99_999, 61, 0.5);
    assert_eq!(s.push_event(extra), Err(extra));
    assert_eq!(s.queued_events(), EVENT_CAPACITY);
    // Non-finite or zero velocity: no note (velocity 0 is a note-off).
    let mut s = synth(Waveform::Triangle, 0.0, 0.0, 0.0, 0.0);
    s.push_event(on(0, 60, f32::NAN)).unwrap();
    s.push_event(on(0, 61, 0.0)).unwrap();
    s.push_event(on(0, 255, f32::INFINITY)).unwrap();
    let x = render(&mut s, 64, 64);
    assert!(x.iter().all(|v| v.is_finite()));
    assert_eq!(s.active_voices(), 0);
}

/// A busy score: 24 notes overlapping (forces steals), offs, an all-off, all inside 4000 samples.
fn score() -> Vec<NoteEvent> {
    let mut ev = Vec::new();
    for i in 0..24u64 {
        ev.push(on(37 * i + 3, 36 + (i as u8 * 5) % 48, 0.2 + 0.03 * i as f32));
        if i % 3 == 0 {
            ev.push(off(37 * i + 400, 36 + (i as u8 * 5) % 48));
        }
    }
    ev.push(NoteEvent { time: 2500, kind: NoteKind::AllOff });
    ev.push(on(2600, 64, 1.0));
    ev
}

#[test]
fn block_size_invariance_and_reset() {
    for wave in [Waveform::Sine, Waveform::Saw, Waveform::Square, Waveform::Triangle] {
        assert_block_size_invariant(
            || {
                let mut s = Synth::new(2);
                s.set_param(WAVE, wave.index()).unwrap();
                s.set_param(ATTACK, 2.0).unwrap();
                s.set_param(RELEASE, 20.0).unwrap();
                for ev in score() {
                    s.push_event(ev).unwrap();
                }
                // A parameter ramp across block boundaries too.
                s.set_param(SUSTAIN, -20.0).unwrap();
                s.set_param(LEVEL, -3.0).unwrap();
                Box::new(s)
            },
            SR,
            512,
            &[],
        );
    }
    let mut s = synth(Waveform::Saw, 2.0, 30.0, -9.0, 20.0);
    for ev in score() {
        s.push_event(ev).unwrap();
    }
    let a = render(&mut s, 5000, 100);
    s.reset();
    assert_eq!(s.clock(), 0);
    for ev in score() {
        s.push_event(ev).unwrap();
    }
    let b = render(&mut s, 5000, 100);
    assert_eq!(a, b, "reset then the same events must repeat bit for bit");
}

#[test]
fn rt_safe_with_events_pushed_inside_the_guard() {
    rt::exercise(&mut Synth::new(2), SR, 512, 0);

    let mut s = synth(Waveform::Saw, 1.0, 20.0, -6.0, 30.0);
    let mut out = vec![vec![0.0f32; 512]; 2];
    let blocks = [1usize, 7, 64, 512, 333];
    let before = violation_count();
    let mut refused = 0usize;
    let mut nonfinite = 0usize;
    assert_no_alloc(|| {
        let _ftz = DenormalGuard::new();
        let mut note = 30u8;
        for round in 0..400 {
            let n = blocks[round % blocks.len()];
            let now = s.clock();
            // Several events per block, some late, some in the future, more than the voices.
            for j in 0..5u64 {
                note = if note > 100 { 30 } else { note + 7 };
                let kind = match (round + j as usize) % 4 {
                    0 | 1 => NoteKind::On { note, velocity: 0.8 },
                    2 => NoteKind::Off { note: note.wrapping_sub(14) },
                    _ => NoteKind::On { note: 255, velocity: f32::NAN },
                };
                let time = (now + j * 13).saturating_sub(if round % 7 == 0 { 50 } else { 0 });
                if s.push_event(NoteEvent { time, kind }).is_err() {
                    refused += 1;
                }
            }
            if round % 50 == 49 {
                let _ = s.push_event(NoteEvent { time: now, kind: NoteKind::AllOff });
            }
            let (l, r) = out.split_at_mut(1);
            let mut refs: [&mut [f32]; 2] = [&mut l[0][..n], &mut r[0][..n]];
            s.process_checked(&[], &mut refs);
            nonfinite += refs.iter().flat_map(|c| c.iter()).filter(|v| !v.is_finite()).count();
            if round % 97 == 96 {
                s.reset();
            }
        }
    });
    assert_eq!(violation_count(), before, "allocation while pushing events or rendering");
    assert_eq!(nonfinite, 0);
    assert_eq!(refused, 0, "the queue never filled: events are consumed every block");
    assert!(s.late_events() > 0, "late events were exercised");
}

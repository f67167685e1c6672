//! The meter against an independent implementation: the `ebur128` crate (a port of libebur128), on
//! random noise, bursty noise, 5.1 noise and real music (Wesnoth soundtrack decoded by ffmpeg).
//!
//! Tolerances: integrated, max momentary, max short-term and LRA within 0.05 LU; true peak within
//! 0.05 dB; sample peak exact. Both meters use the same K-weighting derivation and the same true-peak
//! interpolator design, so what remains is summation order (~1e-12 LU) and our histogram's treatment of
//! the one bin the relative gate cuts (< 0.01 LU).
//!
//! LRA: libebur128 takes a short-term block only every 1 s; Tech 3342 asks for at least 10 Hz and we take
//! one every 100 ms. So the LRA reference here is Tech 3342's algorithm (sorted list, exact percentiles)
//! applied to ebur128's own short-term readings sampled every 100 ms. ebur128's 1 Hz LRA is printed
//! and checked loosely (its coarser sampling alone moves the 10th/95th percentiles).
mod common;

use ballast_dsp::loudness::LoudnessMeter;
use ballast_dsp::Processor;
use common::signals;
use ebur128::{EbuR128, Mode};

/// 0.05 LU / dB: the brief's agreement requirement (see the module doc for what is left).
const TOL: f64 = 0.05;

struct Reference {
    integrated: f64,
    lra_10hz: f64,
    lra_ebur128: f64,
    max_momentary: f64,
    max_short_term: f64,
    true_peak_db: f64,
    sample_peak_db: f64,
}

/// Tech 3342 loudness range over short-term readings (LUFS): absolute gate -70 LUFS, relative gate
/// -20 LU below their power mean, 10th to 95th percentile with libebur128's rank rounding.
fn tech3342_lra(short_terms: &[f64]) -> f64 {
    let p = |l: f64| 10f64.powf((l + 0.691) / 10.0);
    let abs: Vec<f64> = short_terms.iter().copied().filter(|&l| l >= -70.0).collect();
    if abs.is_empty() {
        return 0.0;
    }
    let mean = abs.iter().map(|&l| p(l)).sum::<f64>() / abs.len() as f64;
    let mut rel: Vec<f64> = abs.into_iter().filter(|&l| p(l) >= mean * 0.01).collect();
    if rel.len() < 2 {
        return 0.0;
    }
    rel.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = |q: f64| ((rel.len() - 1) as f64 * q + 0.5) as usize;
    rel[rank(0.95)] - rel[rank(0.10)]
}

fn reference(chs: &[Vec<f32>], sr: u32) -> Reference {
    let mode = Mode::I | Mode::LRA | Mode::TRUE_PEAK | Mode::SAMPLE_PEAK | Mode::M | Mode::S;
    let mut e = EbuR128::new(chs.len() as u32, sr, mode).unwrap();
    let step = (sr as usize + 5) / 10;
    let frames = chs[0].len();
    let (mut max_m, mut max_s) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut shorts = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < frames {
        let n = step.min(frames - pos);
        let planes: Vec<&[f32]> = chs.iter().map(|c| &c[pos..pos + n]).collect();
        e.add_frames_planar_f32(&planes).unwrap();
        pos += n;
        if n == step {
            k += 1;
            max_m = max_m.max(e.loudness_momentary().unwrap());
            let s = e.loudness_shortterm().unwrap();
            max_s = max_s.max(s);
            if k >= 30 {
                shorts.push(s);
            }
        }
    }
    let peak = |f: &dyn Fn(u32) -> f64| (0..chs.len() as u32).map(f).fold(0.0f64, f64::max);
    Reference {
        integrated: e.loudness_global().unwrap(),
        lra_10hz: tech3342_lra(&shorts),
        lra_ebur128: e.loudness_range().unwrap(),
        max_momentary: max_m,
        max_short_term: max_s,
        true_peak_db: 20.0 * peak(&|c| e.true_peak(c).unwrap()).log10(),
        sample_peak_db: 20.0 * peak(&|c| e.sample_peak(c).unwrap()).log10(),
    }
}

fn compare(name: &str, chs: &[Vec<f32>], sr: u32) {
    let r = reference(chs, sr);
    let mut m = LoudnessMeter::new(chs.len());
    m.prepare(sr as f64, 1024);
    // Odd block length: exercises sub-blocks straddling blocks.
    for start in (0..chs[0].len()).step_by(1000) {
        let end = (start + 1000).min(chs[0].len());
        let planes: Vec<&[f32]> = chs.iter().map(|c| &c[start..end]).collect();
        m.feed(&planes);
    }
    let s = m.summary();
    println!(
        "{name}: I {:.4} vs {:.4} | LRA {:.4} vs {:.4} (10 Hz ref), ebur128 1 Hz LRA {:.4} | maxM {:.4} vs {:.4} | \
         maxS {:.4} vs {:.4} | TP {:.4} vs {:.4} | SP {:.4} vs {:.4}",
        s.integrated_lufs,
        r.integrated,
        s.lra_lu,
        r.lra_10hz,
        r.lra_ebur128,
        s.max_momentary_lufs,
        r.max_momentary,
        s.max_short_term_lufs,
        r.max_short_term,
        s.true_peak_dbtp,
        r.true_peak_db,
        s.sample_peak_dbfs,
        r.sample_peak_db
    );
    let check = |what: &str, a: f64, b: f64, tol: f64| {
        assert!((a - b).abs() <= tol, "{name} {what}: ours {a:.4}, ebur128 {b:.4} (tolerance {tol})");
    };
    check("integrated", s.integrated_lufs, r.integrated, TOL);
    check("LRA (10 Hz)", s.lra_lu, r.lra_10hz, TOL);
    // 1 Hz vs 10 Hz short-term sampling: on these signals the percentiles move by well under 1 LU
    // (Tech 3342's own tolerance for its test signals).
    check("LRA (ebur128 1 Hz)", s.lra_lu, r.lra_ebur128, 1.0);
    check("max momentary", s.max_momentary_lufs, r.max_momentary, TOL);
    check("max short-term", s.max_short_term_lufs, r.max_short_term, TOL);
    check("true peak", s.true_peak_dbtp, r.true_peak_db, TOL);
    // Sample peak is |x| of the same f32 samples on both sides: exact.
    check("sample peak", s.sample_peak_dbfs, r.sample_peak_db, 1e-9);
}

#[test]
fn white_noise_stereo() {
    let n = 48_000 * 30;
    compare("white noise 48k", &[signals::noise(1, 0.25, n), signals::noise(2, 0.1, n)], 48_000);
}

#[test]
fn bursty_noise_stereo_44k() {
    let n = 44_100 * 90;
    compare("bursty noise 44.1k", &[signals::bursty_noise(3, n, 30_000), signals::bursty_noise(4, n, 17_000)], 44_100);
}

#[test]
fn bursty_noise_5_1() {
    let n = 48_000 * 40;
    let chs: Vec<Vec<f32>> = (0..6).map(|c| signals::bursty_noise(10 + c, n, 20_000 + 3_000 * c as usize)).collect();
    compare("bursty noise 5.1 48k", &chs, 48_000);
}

/// 60 s of a Wesnoth track at 48 kHz stereo, planar.
pub fn wesnoth(track: &str, seconds: u32) -> Vec<Vec<f32>> {
    let x = common::music::wesnoth(track, 48_000.0, seconds as f64);
    assert!(x[0].len() > 48_000 * 10, "decoded only {} frames", x[0].len());
    x
}

#[test]
fn wesnoth_music() {
    for track in ["battle.ogg", "elvish-theme.ogg", "the_city_falls.ogg"] {
        compare(track, &wesnoth(track, 60), 48_000);
    }
}

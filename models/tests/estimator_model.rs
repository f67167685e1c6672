//! The committed estimator (`models/estimator.onnx`) through the real ONNX Runtime from Rust, on the fixed
//! held-out set committed beside it (`tests/data/heldout`: examples of the test split, from the held-out
//! test tracks and the test split's synthetic streams). It must score what `models/MODEL_CARD.md` claims,
//! less [`MARGIN`]: a broken export, drift between the features it was trained on and the ones ballast
//! computes now, or a worse retrain fails here. The claims are written out below on purpose (not read
//! from a file `make models` rewrites), so lowering them is a visible edit.
//!
//! A second test runs the user's path (`Estimator::estimate` on audio) on segments of a held-out track and
//! checks the re-synthesis error the card claims.
use std::path::{Path, PathBuf};

use ballast_models::accuracy::{evaluate_split, resynthesis_error_db};
use ballast_models::dataset::{compress_into, decode, DEFAULT_MUSIC_DIR, SAMPLE_RATE, UNIDENTIFIABLE_GR_DB};
use ballast_models::estimator::Estimator;
use ballast_models::params::CompressorParams;
use ballast_models::rng::Rng;

/// Accuracy on the identifiable examples of the committed held-out set, per parameter and overall, as
/// MODEL_CARD.md reports it ("CI held-out set").
/// Measured on the committed model: 18, 20, 26, 33 and 24 of 114 correct; 121 of 570 overall.
const CLAIMED: [(&str, f64); 5] =
    [("threshold_db", 0.157), ("ratio", 0.175), ("attack_ms", 0.228), ("release_ms", 0.289), ("makeup_db", 0.210)];
const CLAIMED_OVERALL: f64 = 0.212;
/// Slack for the claims: one percentage point.
const MARGIN: f64 = 0.01;
/// Median re-synthesis error the card claims for this test's segments (identifiable ones), dB, and
/// the slack on it.
/// Measured on the committed model: 2.191 dB.
const CLAIMED_RESYNTH_MEDIAN_DB: f64 = 2.2;
const RESYNTH_MARGIN_DB: f64 = 0.1;

fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("estimator.onnx")
}

#[test]
fn committed_model_scores_what_the_card_claims_on_the_held_out_set() {
    let mut est = Estimator::load(&model_path()).unwrap_or_else(|e| panic!("{e}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/heldout");
    let r = evaluate_split(&mut est, &dir, "test", 64).unwrap_or_else(|e| panic!("{e}"));
    let id = &r.identifiable;
    eprintln!(
        "held-out set: {} identifiable examples, overall {:.4}; {}",
        id.count(),
        id.overall().unwrap(),
        CLAIMED.iter().map(|(k, _)| format!("{k} {:.4}", id.of(k).unwrap())).collect::<Vec<_>>().join(", ")
    );
    eprintln!("unidentifiable: {} examples, makeup {:?}", r.unidentifiable.count(), r.unidentifiable.of("makeup_db"));
    assert!(id.count() >= 80, "the held-out set has only {} identifiable examples", id.count());
    let overall = id.overall().unwrap();
    assert!(
        overall >= CLAIMED_OVERALL - MARGIN,
        "overall accuracy {overall:.4} < claimed {CLAIMED_OVERALL} - {MARGIN}"
    );
    for (key, claimed) in CLAIMED {
        let got = id.of(key).unwrap();
        assert!(got >= claimed - MARGIN, "{key}: accuracy {got:.4} < claimed {claimed} - {MARGIN}");
    }
}

#[test]
fn estimates_from_audio_resynthesise_the_gain_trajectory_as_claimed() {
    let music = Path::new(DEFAULT_MUSIC_DIR);
    assert!(music.is_dir(), "{} is missing: apt-get install wesnoth-1.16-music (make deps does it)", music.display());
    // One held-out test track (build-dataset's TEST_TRACKS), never trained on. Not frantic.ogg: the
    // training tracks include frantic-old.ogg, possibly an earlier mix of the same piece.
    let track = decode(&music.join("northern_mountains.ogg")).unwrap_or_else(|e| panic!("{e}"));
    let mut est = Estimator::load(&model_path()).unwrap_or_else(|e| panic!("{e}"));
    let seg = (8.0 * SAMPLE_RATE) as usize;
    let mut rng = Rng::new(11);
    let mut wet = [Vec::new(), Vec::new()];
    let mut errs = Vec::new();
    while errs.len() < 12 {
        let offset = rng.below((track[0].len() - seg) as u64) as usize;
        let g = 10f32.powf(rng.uniform(-24.0, 0.0) as f32 / 20.0);
        let dry: [Vec<f32>; 2] =
            std::array::from_fn(|c| track[c][offset..offset + seg].iter().map(|x| x * g).collect());
        let truth = CompressorParams::sample(&mut rng);
        let gr = compress_into([&dry[0], &dry[1]], truth, &mut wet, SAMPLE_RATE as usize).unwrap();
        if gr < UNIDENTIFIABLE_GR_DB {
            continue;
        }
        let e = est.estimate(&[&dry[0], &dry[1]], &[&wet[0], &wet[1]], SAMPLE_RATE, &[]).unwrap();
        assert_eq!(e.bands.len(), 1);
        let err = resynthesis_error_db([&dry[0], &dry[1]], [&wet[0], &wet[1]], e.bands[0]).unwrap();
        eprintln!("truth {truth:?}\n  est {:?}\n  re-synthesis error {err:.2} dB", e.bands[0]);
        errs.push(f64::from(err));
    }
    errs.sort_by(f64::total_cmp);
    let median = 0.5 * (errs[5] + errs[6]);
    eprintln!("median re-synthesis error over {} segments: {median:.3} dB", errs.len());
    assert!(
        median <= CLAIMED_RESYNTH_MEDIAN_DB + RESYNTH_MARGIN_DB,
        "median re-synthesis error {median:.3} dB > claimed {CLAIMED_RESYNTH_MEDIAN_DB} + {RESYNTH_MARGIN_DB}"
    );
}

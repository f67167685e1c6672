//! The committed estimator (`models/estimator.onnx`) through the real ONNX Runtime from Rust, on the fixed
//! held-out set committed beside it (`tests/data/heldout`: examples of the test split, from the held-out
//! test tracks and the test split's synthetic streams). It must score what `models/MODEL_CARD.md` claims,
//! less [`MARGIN`]: a broken export, drift between the features it was trained on and the ones ballast
//! computes now, or a worse retrain fails here. The claims are written out below on purpose (not read
//! from a file `make models` rewrites), so lowering them is a visible edit.
//!
//! A second test replays the first examples of that set with their audio (`dataset::replay_split`, the
//! build's own random streams; each replayed setting is checked against the set's `test_y.npy`) and runs
//! the user's path, `Estimator::estimate` (network, then re-synthesis refinement), on them: the refined
//! accuracy and residual must be what the card claims, and better than the network's. A third runs
//! `estimate` on segments of a held-out track and checks both stages' re-synthesis errors.
use std::path::{Path, PathBuf};

use ballast_models::accuracy::{evaluate_split, resynthesis_error_db, Accuracy};
use ballast_models::dataset::{
    compress_into, decode, replay_split, Config, DEFAULT_MUSIC_DIR, SAMPLE_RATE, UNIDENTIFIABLE_GR_DB,
};
use ballast_models::estimator::Estimator;
use ballast_models::params::CompressorParams;
use ballast_models::params::KEYS;
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
/// Median re-synthesis error of the refined estimates on the same segments, dB (claim, slack included).
/// Measured: 0.001 dB.
const CLAIMED_REFINED_RESYNTH_MEDIAN_DB: f64 = 0.1;

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

/// Refined accuracy claimed on the identifiable examples among the first [`HELDOUT_REPLAYED`] examples of
/// the committed held-out set, replayed with their audio (`dataset::replay_split`), and the median
/// re-synthesis error (refined, 10 ms frames) over them, dB. See MODEL_CARD.md ("CI held-out set").
const HELDOUT_REPLAYED: usize = 16;
/// Measured: 14 identifiable examples, 55 of 70 parameters right (0.786; the network alone 0.229), median
/// residual 0.002 dB. The claims leave three parameters and 0.1 dB of slack: the search's path can differ
/// by a rounding on another CPU.
const CLAIMED_REFINED_OVERALL: f64 = 0.735;
const CLAIMED_REFINED_RESIDUAL_DB: f64 = 0.1;

#[test]
fn refined_estimates_of_the_held_out_set_score_what_the_card_claims() {
    let music = Path::new(DEFAULT_MUSIC_DIR);
    assert!(music.is_dir(), "{} is missing: apt-get install wesnoth-1.16-music (make deps does it)", music.display());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/heldout");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let indices: Vec<usize> =
        meta["indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let picked: Vec<usize> = indices[..HELDOUT_REPLAYED].to_vec();
    let y = ballast_models::npy::Npy::read(&dir.join("test_y.npy")).unwrap().to_f32().unwrap();
    // The card's build: seed 1, 1500 test examples, a quarter synthetic, a fifth of segments multiband.
    let cfg = Config {
        out: PathBuf::new(),
        music_dir: music.to_path_buf(),
        seed: 1,
        counts: [0, 0, 1500],
        synthetic_fraction: 0.25,
        tracks_per_split: None,
        multiband_fraction: 0.2,
    };
    let mut est = Estimator::load(&model_path()).unwrap_or_else(|e| panic!("{e}"));
    let (mut net, mut refined) = (Accuracy::default(), Accuracy::default());
    let mut residuals = Vec::new();
    let mut replayed = 0;
    replay_split(&cfg, 2, &|r| picked.iter().any(|i| r.contains(i)), &mut |seg| {
        let e = est
            .estimate(&[&seg.dry[0], &seg.dry[1]], &[&seg.wet[0], &seg.wet[1]], SAMPLE_RATE, &seg.plan.crossovers_hz)
            .unwrap_or_else(|e| panic!("{e}"));
        for b in 0..seg.examples {
            let i = seg.first + b;
            let Some(k) = picked.iter().position(|&p| p == i) else { continue };
            replayed += 1;
            let truth = seg.plan.params[b];
            // The replay is the committed set's example: same settings as its test_y.npy row.
            assert_eq!(&y[k * 6..k * 6 + 6], &truth.to_array(), "example {i}");
            if seg.max_gr_db[b] < UNIDENTIFIABLE_GR_DB {
                continue;
            }
            net.add(e.network[b], truth);
            refined.add(e.bands[b], truth);
            residuals.push(f64::from(e.residual_db[b]));
            eprintln!(
                "#{i} band {b}/{}: residual {:.3} dB (network {:.2})",
                seg.plan.params.len(),
                e.residual_db[b],
                e.network_residual_db[b]
            );
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed, HELDOUT_REPLAYED);
    residuals.sort_by(f64::total_cmp);
    let median = residuals[residuals.len() / 2];
    let (n, r) = (net.overall().unwrap(), refined.overall().unwrap());
    eprintln!(
        "{} identifiable: network {n:.4}, refined {r:.4} ({}); median refined residual {median:.3} dB",
        refined.count(),
        KEYS.iter().filter_map(|k| refined.of(k).map(|v| format!("{k} {v:.3}"))).collect::<Vec<_>>().join(", ")
    );
    assert!(r >= CLAIMED_REFINED_OVERALL, "refined accuracy {r:.4} < claimed {CLAIMED_REFINED_OVERALL}");
    assert!(r > n, "refinement must beat the network alone: {r:.4} vs {n:.4}");
    assert!(
        median <= CLAIMED_REFINED_RESIDUAL_DB,
        "median refined re-synthesis error {median:.3} dB > claimed {CLAIMED_REFINED_RESIDUAL_DB}"
    );
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
    let (mut errs, mut errs_net) = (Vec::new(), Vec::new());
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
        let net = resynthesis_error_db([&dry[0], &dry[1]], [&wet[0], &wet[1]], e.network[0]).unwrap();
        eprintln!("truth {truth:?}\n  est {:?}\n  re-synthesis error {err:.3} dB (network {net:.2} dB)", e.bands[0]);
        errs.push(f64::from(err));
        errs_net.push(f64::from(net));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        0.5 * (v[5] + v[6])
    };
    let (refined, network) = (median(&mut errs), median(&mut errs_net));
    eprintln!(
        "median re-synthesis error over {} segments: refined {refined:.3} dB, network {network:.3} dB",
        errs.len()
    );
    assert!(
        network <= CLAIMED_RESYNTH_MEDIAN_DB + RESYNTH_MARGIN_DB,
        "network-only median re-synthesis error {network:.3} dB > claimed {CLAIMED_RESYNTH_MEDIAN_DB} + {RESYNTH_MARGIN_DB}"
    );
    assert!(
        refined <= CLAIMED_REFINED_RESYNTH_MEDIAN_DB,
        "refined median re-synthesis error {refined:.3} dB > claimed {CLAIMED_REFINED_RESYNTH_MEDIAN_DB}"
    );
}

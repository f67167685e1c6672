//! The estimator's inference path end to end through the real ONNX Runtime, with a probe model of the
//! estimator's interface whose rule is known (tests/data/make_test_models.py): it reports the mean level
//! difference between wet and dry as the makeup gain and 0.5 (mid-range) for every other setting.
use std::path::Path;

use ballast_models::estimator::{EstimateError, Estimator};
use ballast_models::params::ranges;
use ballast_models::refine::RefineError;
use ballast_models::session::ModelError;

fn probe() -> Estimator {
    Estimator::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/estimator_probe.onnx"))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn noise(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

#[test]
fn features_reach_the_model_and_settings_come_back_per_band() {
    let sr = 48_000.0;
    let l = noise(48_000 * 7, 1);
    let r = noise(48_000 * 7, 2);
    let g_db = -6.0f32;
    let g = 10f32.powf(g_db / 20.0);
    let (wl, wr): (Vec<f32>, Vec<f32>) = (l.iter().map(|x| x * g).collect(), r.iter().map(|x| x * g).collect());
    let mut est = probe();
    for splits in [&[][..], &[200.0, 2000.0, 8000.0][..]] {
        // Network only: the probe's rule must come back unchanged.
        let e = est.estimate_with(&[&l, &r], &[&wl, &wr], sr, splits, None).unwrap();
        assert_eq!(e.bands.len(), splits.len() + 1);
        assert_eq!(e.bands, e.network);
        // 700 frames: windows at 0, 200 and 300 (flush with the end).
        assert_eq!(e.windows, 3);
        let mid = ranges().map(|r| r.denormalise(0.5));
        for b in &e.network {
            // Every feature of every frame is 6 dB lower in wet (no frame is at the floor), so the probe's
            // mean difference is −6 dB to f32 precision; the 1/48 weights and the −24..24 dB range cancel.
            assert!((b.makeup_db - g_db).abs() < 1e-3, "{b:?}");
            let a = b.to_array();
            for k in 0..5 {
                assert!((a[k] - mid[k]).abs() <= 1e-4 * mid[k].abs().max(1.0), "{k}: {} vs {}", a[k], mid[k]);
            }
        }
    }
}

#[test]
fn too_short_and_wrong_model_are_errors() {
    let x = noise(48_000 * 3, 3);
    match probe().estimate(&[&x], &[&x], 48_000.0, &[]) {
        Err(EstimateError::TooShort { seconds, needed }) => {
            assert!((seconds - 3.0).abs() < 1e-9 && (needed - 4.0).abs() < 1e-9)
        }
        other => panic!("expected TooShort, got {other:?}"),
    }
    // A model of another interface is refused at load, with the reason.
    let affine = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/affine.onnx");
    match Estimator::load(&affine) {
        Err(ModelError::Mismatch { what, .. }) => assert!(what.contains("named `x`, expected `features`"), "{what}"),
        other => panic!("expected Mismatch, got {other:?}"),
    }
}

#[test]
fn refinement_turns_the_probes_guess_into_an_exact_resynthesis() {
    // Wet is dry at −6 dB: no compression, only makeup. The probe answers mid-range settings (threshold
    // −40 dB, below much of the noise, ratio 4.5), which compress; the refiner must find settings that
    // leave the noise alone and the −6 dB makeup, and its confidence must say the times are unknowable.
    let sr = 48_000.0;
    let l = noise(48_000 * 5, 4);
    let r = noise(48_000 * 5, 5);
    let g = 10f32.powf(-6.0 / 20.0);
    let (wl, wr): (Vec<f32>, Vec<f32>) = (l.iter().map(|x| x * g).collect(), r.iter().map(|x| x * g).collect());
    let e = probe().estimate(&[&l, &r], &[&wl, &wr], sr, &[]).unwrap();
    eprintln!("{e:?}");
    assert!(e.network_residual_db[0] > 1.0, "{e:?}");
    assert!(e.residual_db[0] < 0.05, "{e:?}");
    assert!((e.bands[0].makeup_db + 6.0).abs() < 0.1, "{e:?}");
    assert!(e.confidence < 0.2, "a gain that never moves identifies nothing: {e:?}");
    let j = e.to_json();
    assert_eq!(j["bands"].as_array().map(Vec::len), Some(1));
    for k in ["threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db", "knee_db"] {
        assert!(j["bands"][0][k].is_number(), "{k} in {j}");
    }
    assert!(j["confidence"].is_number() && j["network"][0]["ratio"].is_number(), "{j}");
}

#[test]
fn nan_and_silence_are_clear_errors_and_the_estimator_can_move_to_a_worker() {
    fn send<T: Send>(_: &T) {}
    let mut est = probe();
    send(&est);
    let x = noise(48_000 * 5, 6);
    let mut bad = x.clone();
    bad[100] = f32::NAN;
    match est.estimate(&[&x], &[&bad], 48_000.0, &[]) {
        Err(e @ EstimateError::Refine(RefineError::NonFinite { .. })) => assert!(e.to_string().contains("NaN"), "{e}"),
        other => panic!("expected a NonFinite error, got {other:?}"),
    }
    let silence = vec![0.0f32; 48_000 * 5];
    match est.estimate(&[&silence], &[&silence], 48_000.0, &[]) {
        Err(e @ EstimateError::Refine(RefineError::Silent)) => assert!(e.to_string().contains("silent"), "{e}"),
        other => panic!("expected a Silent error, got {other:?}"),
    }
    let handle =
        std::thread::spawn(move || est.estimate_with(&[&x], &[&x], 48_000.0, &[], None).map(|e| e.bands.len()));
    assert_eq!(handle.join().unwrap(), Ok(1));
}

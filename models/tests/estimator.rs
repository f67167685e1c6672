//! The estimator's inference path end to end through the real ONNX Runtime, with a probe model of the
//! estimator's interface whose rule is known (tests/data/make_test_models.py): it reports the mean level
//! difference between wet and dry as the makeup gain and 0.5 (mid-range) for every other setting.
use std::path::Path;

use ballast_models::estimator::{EstimateError, Estimator};
use ballast_models::params::ranges;
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
        let e = est.estimate(&[&l, &r], &[&wl, &wr], sr, splits).unwrap();
        assert_eq!(e.bands.len(), splits.len() + 1);
        // 700 frames: windows at 0, 200 and 300 (flush with the end).
        assert_eq!(e.windows, 3);
        let mid = ranges().map(|r| r.denormalise(0.5));
        for b in &e.bands {
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

//! Real `.onnx` files through the real ONNX Runtime: a good model on a worker thread, then a missing
//! file, random bytes, a truncated model and interface mismatches, each with its own error.
use std::path::{Path, PathBuf};

use ballast_models::session::{Model, ModelError, ModelSpec, TensorSpec};
use ndarray::{ArrayD, IxDyn};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn affine_spec() -> ModelSpec {
    ModelSpec {
        inputs: vec![TensorSpec::f32("x", &[None, Some(4)])],
        outputs: vec![TensorSpec::f32("y", &[None, Some(2)])],
    }
}

struct TempFile(PathBuf);

impl TempFile {
    fn with(tag: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!("ballast-models-{tag}-{}.onnx", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        Self(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn runs_on_a_worker_thread_and_matches_hand_computation() {
    let out = std::thread::spawn(|| {
        let mut model = Model::load(&data("affine.onnx"), &affine_spec()).unwrap_or_else(|e| panic!("{e}"));
        let x = ArrayD::from_shape_vec(IxDyn(&[2, 4]), vec![1.0f32, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, -1.0]).unwrap();
        model.run_f32(&[x.view()]).unwrap()
    })
    .join()
    .unwrap();
    // W[i][j] = (i+1)(j+1)/10, b = [0.5, -0.5] (tests/data/make_test_models.py).
    // Row 0: sum_i x_i (i+1)/10 = (1 + 4 + 9 + 16)/10 = 3.0 -> [3.0·1 + 0.5, 3.0·2 − 0.5] = [3.5, 5.5].
    // Row 1: −1·4/10 = −0.4 -> [−0.4 + 0.5, −0.8 − 0.5] = [0.1, −1.3].
    let want = [3.5f32, 5.5, 0.1, -1.3];
    assert_eq!(out[0].shape(), &[2, 2]);
    for (g, w) in out[0].iter().zip(want) {
        // f32 matmul of small integers/10: a few ulps.
        assert!((g - w).abs() < 1e-5, "{g} vs {w}");
    }
}

#[test]
fn wrong_run_shape_is_an_error() {
    let mut model = Model::load(&data("affine.onnx"), &affine_spec()).unwrap();
    let x = ArrayD::<f32>::zeros(IxDyn(&[1, 3]));
    match model.run_f32(&[x.view()]) {
        Err(ModelError::Run { reason }) => assert!(reason.contains("shape [1, 3], expected [?, 4]"), "{reason}"),
        other => panic!("expected Run error, got {other:?}"),
    }
}

#[test]
fn missing_file() {
    let p = data("no-such-model.onnx");
    match Model::load(&p, &affine_spec()) {
        Err(ModelError::Missing { path, reason }) => {
            assert_eq!(path, p);
            assert!(reason.contains("No such file"), "{reason}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
}

#[test]
fn random_bytes_are_corrupt() {
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let f = TempFile::with("random", &bytes);
    match Model::load(&f.0, &affine_spec()) {
        Err(ModelError::Corrupt { path, reason }) => {
            assert_eq!(path, f.0);
            eprintln!("random bytes: {reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn truncated_model_is_corrupt() {
    let bytes = std::fs::read(data("affine.onnx")).unwrap();
    // Cut inside the initializers: the protobuf ends mid-field.
    let f = TempFile::with("truncated", &bytes[..bytes.len() * 2 / 3]);
    match Model::load(&f.0, &affine_spec()) {
        Err(e @ ModelError::Corrupt { .. }) => eprintln!("truncated: {e}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn interface_mismatches_say_what_differs() {
    let cases: [(ModelSpec, &str); 5] = [
        (
            ModelSpec { inputs: vec![TensorSpec::f32("features", &[None, Some(4)])], ..affine_spec() },
            "input 0 is named `x`, expected `features`",
        ),
        (
            ModelSpec { inputs: vec![TensorSpec::f32("x", &[None, Some(8)])], ..affine_spec() },
            "input `x` has shape [?, 4], expected [?, 8]",
        ),
        (
            ModelSpec { inputs: vec![TensorSpec::f32("x", &[None, Some(4), Some(1)])], ..affine_spec() },
            "input `x` has shape [?, 4], expected [?, 4, 1]",
        ),
        (
            ModelSpec {
                inputs: vec![TensorSpec {
                    element: ort::value::TensorElementType::Int64,
                    ..TensorSpec::f32("x", &[None, Some(4)])
                }],
                ..affine_spec()
            },
            "input `x` has element type Float32, expected Int64",
        ),
        (
            ModelSpec {
                inputs: vec![TensorSpec::f32("dry", &[None, Some(4)]), TensorSpec::f32("wet", &[None, Some(4)])],
                ..affine_spec()
            },
            "has 1 inputs [x Float32[?, 4]], expected 2",
        ),
    ];
    for (spec, want) in cases {
        match Model::load(&data("affine.onnx"), &spec) {
            Err(ModelError::Mismatch { what, .. }) => assert!(what.contains(want), "{what:?} lacks {want:?}"),
            other => panic!("expected Mismatch ({want}), got {other:?}"),
        }
    }
}

//! One intra-op thread means ONNX Runtime starts no thread pool of its own: a session runs entirely on
//! the worker that calls it. Counted from /proc, in a binary of its own so no other test's threads
//! interfere.
use std::path::Path;

use ballast_models::session::{Model, ModelSpec, TensorSpec};
use ndarray::{ArrayD, IxDyn};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_session_adds_no_threads() {
    ballast_models::runtime::init(None).unwrap_or_else(|e| panic!("{e}"));
    let before = threads();
    let spec = ModelSpec {
        inputs: vec![TensorSpec::f32("x", &[None, Some(4)])],
        outputs: vec![TensorSpec::f32("y", &[None, Some(2)])],
    };
    let mut model = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/affine.onnx"), &spec).unwrap();
    let x = ArrayD::<f32>::ones(IxDyn(&[64, 4]));
    for _ in 0..100 {
        model.run_f32(&[x.view()]).unwrap();
    }
    let during = threads();
    drop(model);
    eprintln!("threads: {before} before, {during} with a session");
    assert_eq!(during, before);
}

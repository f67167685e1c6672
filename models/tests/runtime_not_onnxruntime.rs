//! A real shared library that is not ONNX Runtime (the C maths library): a load error, not a panic. A
//! binary of its own because ONNX Runtime loads once per process.
use std::path::Path;

use ballast_models::runtime::{self, RuntimeError, Source};

#[test]
fn a_library_without_the_onnxruntime_api_is_refused() {
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .expect("libm.so.6 (glibc) is on every supported system");
    match runtime::init(Some(libm)) {
        Err(RuntimeError::Load { path, source, reason }) => {
            assert_eq!(path, libm);
            assert_eq!(source, Source::Explicit);
            eprintln!("{reason}");
            assert!(reason.contains("OrtGetApiBase"), "{reason}");
        }
        other => panic!("expected Load, got {other:?}"),
    }
}

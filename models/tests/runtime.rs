//! Loads the real ONNX Runtime library (`make onnxruntime` puts it in the cache).
use ballast_models::runtime::{self, Source};

#[test]
fn loads_once_and_reports_the_same_info() {
    let info = runtime::init(None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{info:?} {}", ort::info());
    assert_eq!(info.version, runtime::ONNXRUNTIME_VERSION);
    assert!(info.path.is_absolute());
    assert!(matches!(info.source, Source::Env | Source::Cache | Source::System));
    let again = runtime::init(Some(std::path::Path::new("/nonexistent/libonnxruntime.so"))).unwrap();
    assert_eq!(info, again);
}

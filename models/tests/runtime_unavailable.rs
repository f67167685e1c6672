//! ONNX Runtime missing or unusable: errors that say where ballast looked and how to fix it, never a
//! panic. A binary of its own because ONNX Runtime loads once per process.
use std::path::{Path, PathBuf};

use ballast_models::runtime::{self, RuntimeError};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("ballast-models-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// One test: it changes the process environment, which parallel tests would race on.
#[test]
fn missing_and_corrupt_library_are_errors_that_explain() {
    let tmp = TempDir::new("rt");

    // A configured path that does not exist is reported as such, with no silent fallback.
    let err = runtime::locate(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/nonexistent/libonnxruntime.so (configured; no such file)"), "{text}");
    assert!(text.contains("make onnxruntime"), "{text}");

    // Nothing anywhere: every place looked at is listed, in order.
    std::env::set_var("ORT_DYLIB_PATH", tmp.0.join("nope.so"));
    std::env::set_var("XDG_CACHE_HOME", tmp.0.join("cache"));
    let has_system_lib = runtime::SYSTEM_DIRS.iter().any(|d| {
        std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("libonnxruntime.so")))
            .unwrap_or(false)
    });
    if !has_system_lib {
        let err = runtime::locate(None).unwrap_err();
        eprintln!("{err}");
        match err {
            RuntimeError::NotFound { searched } => {
                assert_eq!(searched.len(), 4, "{searched:?}");
                assert!(searched[0].starts_with("ORT_DYLIB_PATH=") && searched[0].ends_with("(no such file)"));
                assert!(searched[1].contains("cache/ballast/onnxruntime/1.31.1/libonnxruntime.so.1.31.1"));
                assert_eq!(searched[2], "/usr/local/lib/libonnxruntime.so*");
                assert_eq!(searched[3], "/usr/lib/libonnxruntime.so*");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    // A file that is not a shared library: a load error naming the file, not a panic.
    let junk = tmp.0.join("libonnxruntime.so.1.31.1");
    let bytes: Vec<u8> = (0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&junk, bytes).unwrap();
    let err = runtime::init(Some(&junk)).unwrap_err();
    match &err {
        RuntimeError::Load { path, source, .. } => {
            assert_eq!(path, &junk);
            assert_eq!(*source, runtime::Source::Explicit);
        }
        other => panic!("expected Load, got {other:?}"),
    }
    eprintln!("{err}");
    assert!(err.to_string().contains("invalid ELF header"), "the loader's reason is kept: {err}");
    assert!(err.to_string().contains("make onnxruntime"));

    // Once per process: the real library is not tried after a failure either; the answer is the same.
    std::env::remove_var("ORT_DYLIB_PATH");
    std::env::remove_var("XDG_CACHE_HOME");
    assert_eq!(runtime::init(None).unwrap_err(), err);
}

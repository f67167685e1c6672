//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! ballast builds `ort` with `load-dynamic`: nothing is downloaded or linked at build time, and the library
//! (ONNX Runtime 1.31.1, taken from the official `onnxruntime` wheel by `scripts/fetch-onnxruntime.sh`,
//! `make onnxruntime`) is loaded when a model is first needed. A missing library is an error the daemon
//! reports as model health; it never stops audio.
//!
//! ONNX Runtime's environment is global to the process, so [`init`] runs once: later calls return the
//! first call's result (success or failure) whatever path they pass.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX Runtime version ballast is built and tested against (ort's `api-31`).
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";

/// The environment variable `ort` itself honours; ballast checks it after an explicit path.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// Directories searched last, for a system-wide install (`libonnxruntime.so*`).
pub const SYSTEM_DIRS: [&str; 2] = ["/usr/local/lib", "/usr/lib"];

/// What was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The library file that was loaded (absolute).
    pub path: PathBuf,
    /// Which rule found it.
    pub source: Source,
    /// The version the library reports (`OrtGetApiBase()->GetVersionString()`).
    pub version: String,
}

/// Where the library was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The caller's path (config `[models] onnxruntime = …`).
    Explicit,
    /// `ORT_DYLIB_PATH`.
    Env,
    /// The cache `scripts/fetch-onnxruntime.sh` fills.
    Cache,
    /// `/usr/local/lib` or `/usr/lib`.
    System,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Explicit => "configured path",
            Source::Env => ENV_VAR,
            Source::Cache => "ballast cache",
            Source::System => "system library directory",
        })
    }
}

/// Why ONNX Runtime is unavailable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeError {
    /// No candidate file exists. `searched` lists every place looked at, in order.
    NotFound { searched: Vec<String> },
    /// A file was found but could not be loaded or initialised (wrong architecture, too old, not ONNX
    /// Runtime at all).
    Load { path: PathBuf, source: Source, reason: String },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::NotFound { searched } => {
                writeln!(f, "ONNX Runtime {ONNXRUNTIME_VERSION} shared library not found; looked in:")?;
                for s in searched {
                    writeln!(f, "  - {s}")?;
                }
                write!(
                    f,
                    "fix: run `make onnxruntime` (fetches it into the cache above), or point `[models] onnxruntime` \
                     or {ENV_VAR} at a libonnxruntime.so of version {ONNXRUNTIME_VERSION} or newer"
                )
            }
            RuntimeError::Load { path, source, reason } => write!(
                f,
                "ONNX Runtime at {} (from {source}) could not be loaded: {reason}; fix: run `make onnxruntime` \
                 or point `[models] onnxruntime` / {ENV_VAR} at libonnxruntime.so {ONNXRUNTIME_VERSION}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// The cache directory `scripts/fetch-onnxruntime.sh` writes to: `$XDG_CACHE_HOME/ballast/onnxruntime/
/// 1.31.1`, or `$HOME/.cache/…` when `XDG_CACHE_HOME` is unset or empty.
pub fn cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("ballast").join("onnxruntime").join(ONNXRUNTIME_VERSION))
}

/// The library's path in [`cache_dir`].
pub fn cache_path() -> Option<PathBuf> {
    cache_dir().map(|d| d.join(format!("libonnxruntime.so.{ONNXRUNTIME_VERSION}")))
}

/// The first existing candidate, or every place looked at. Pure lookup: loads nothing.
pub fn locate(explicit: Option<&Path>) -> Result<(PathBuf, Source), RuntimeError> {
    let mut searched = Vec::new();
    if let Some(p) = explicit {
        // A configured path that does not exist is a mistake to report, not a reason to fall back
        // silently to some other library.
        if p.is_file() {
            return Ok((absolute(p), Source::Explicit));
        }
        return Err(RuntimeError::NotFound { searched: vec![format!("{} (configured; no such file)", p.display())] });
    }
    match std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        Some(v) => {
            let p = PathBuf::from(v);
            if p.is_file() {
                return Ok((absolute(&p), Source::Env));
            }
            searched.push(format!("{ENV_VAR}={} (no such file)", p.display()));
        }
        None => searched.push(format!("{ENV_VAR} (not set)")),
    }
    match cache_path() {
        Some(p) if p.is_file() => return Ok((p, Source::Cache)),
        Some(p) => searched.push(format!("{} (cache; `make onnxruntime` fills it)", p.display())),
        None => searched.push("the ballast cache (neither XDG_CACHE_HOME nor HOME is set)".to_string()),
    }
    for dir in SYSTEM_DIRS {
        if let Some(p) = system_candidate(Path::new(dir)) {
            return Ok((p, Source::System));
        }
        searched.push(format!("{dir}/libonnxruntime.so*"));
    }
    Err(RuntimeError::NotFound { searched })
}

/// `libonnxruntime.so` in `dir`, else the highest-sorting `libonnxruntime.so.*` (sorted so the choice is
/// deterministic).
fn system_candidate(dir: &Path) -> Option<PathBuf> {
    let plain = dir.join("libonnxruntime.so");
    if plain.is_file() {
        return Some(plain);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so.")) && p.is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// ort resolves relative paths against the executable's directory; ballast means the working directory.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

struct Loaded {
    result: Result<RuntimeInfo, RuntimeError>,
    /// Kept alive for the process: sessions are built against it, and ort allows one per process.
    env: Option<ort::environment::Environment>,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();

/// Finds, loads and initialises ONNX Runtime, once per process. Search order: `explicit` (config
/// `[models] onnxruntime`), `ORT_DYLIB_PATH`, [`cache_path`], then `/usr/local/lib/libonnxruntime.so*`
/// and `/usr/lib/libonnxruntime.so*`. Later calls return the first call's result, whatever they pass.
/// Never panics for a missing or unusable library. Off the RT thread only (it loads a 29 MB library).
pub fn init(explicit: Option<&Path>) -> Result<RuntimeInfo, RuntimeError> {
    LOADED.get_or_init(|| load(explicit)).result.clone()
}

/// The loaded environment, for building sessions; `None` before a successful [`init`].
pub(crate) fn environment() -> Option<&'static ort::environment::Environment> {
    LOADED.get().and_then(|l| l.env.as_ref())
}

fn load(explicit: Option<&Path>) -> Loaded {
    let (path, source) = match locate(explicit) {
        Ok(x) => x,
        Err(e) => return Loaded { result: Err(e), env: None },
    };
    let fail =
        |reason: String| Loaded { result: Err(RuntimeError::Load { path: path.clone(), source, reason }), env: None };
    // ort reports a failed dlopen as just "dlopen failed" (the loader's reason is in an error source it
    // does not expose); open it once here first to say why (wrong architecture, missing dependency, not
    // an ELF file).
    // SAFETY: loading runs the library's initialisers; this is the file ort is about to load anyway, and
    // ONNX Runtime's initialisers have no preconditions.
    if let Err(e) = unsafe { libloading::Library::new(&path) } {
        return fail(with_sources(&e));
    }
    let builder = match ort::init_from(&path) {
        Ok(b) => b,
        Err(e) => return fail(e.to_string()),
    };
    let env = match builder.with_name("ballast").with_telemetry(false).build() {
        Ok(env) => env,
        Err(e) => return fail(e.to_string()),
    };
    let version = library_version(&path).unwrap_or_else(|| "unknown".to_string());
    Loaded { result: Ok(RuntimeInfo { path, source, version }), env: Some(env) }
}

/// An error and its chain of sources, `: `-separated.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// `OrtGetApiBase()->GetVersionString()` of the library at `path` (already loaded by ort, so this only
/// takes another reference to it).
fn library_version(path: &Path) -> Option<String> {
    // SAFETY: the library was just loaded and initialised by ort from this same path, so its
    // initialisers have run and are known to be safe; opening it again only bumps the loader's refcount.
    let lib = unsafe { libloading::Library::new(path) }.ok()?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release (onnxruntime_c_api.h).
    let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
        unsafe { lib.get(b"OrtGetApiBase") }.ok()?;
    // SAFETY: the function takes no arguments and returns a pointer to a static struct (or null).
    let base = unsafe { get_base() };
    if base.is_null() {
        return None;
    }
    // SAFETY: `base` is non-null and points to the library's static OrtApiBase, which lives as long as the
    // library stays loaded (for the process: ort never unloads it); GetVersionString returns a static,
    // NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(((*base).GetVersionString)()) };
    Some(version.to_string_lossy().into_owned())
}

//! `estimate` (offline, no daemon: the estimator runs here, through ONNX Runtime) and `learn` (the
//! daemon estimates on its worker and applies the settings to a running node).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ballast_audiofile::WavStream;
use ballast_models::estimator::{Estimate, EstimateError, Estimator};
use ballast_models::params::CompressorParams;
use ballast_models::runtime;
use serde_json::{json, Value};

use crate::client::{self, Client, CtlError};

/// The estimator's file name in every directory searched.
const ESTIMATOR_FILE: &str = "estimator.onnx";

/// The keys of a band in `--json`, in the order they are documented.
const KEYS: [&str; 6] = ["threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db", "knee_db"];

/// Exit codes of `estimate` (documented in its `--help`).
pub mod exit {
    /// The model or ONNX Runtime cannot be loaded, or inference failed.
    pub const MODEL: u8 = 1;
    /// Bad input: a missing, unreadable or unsupported file, files that do not match, bad crossovers.
    pub const INPUT: u8 = 2;
}

/// Where the estimator is looked for without `--model`, in order; the daemon searches the same places
/// (`ballastd::workers::estimator_candidates`): `$XDG_DATA_HOME/ballast/models/` (default
/// `~/.local/share/ballast/models/`), `/usr/local/share/ballast/models/`, `/usr/share/ballast/models/`,
/// then the source tree this binary was built from (`models/estimator.onnx`).
fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(d) = data {
        dirs.push(d.join("ballast/models"));
    }
    dirs.push(PathBuf::from("/usr/local/share/ballast/models"));
    dirs.push(PathBuf::from("/usr/share/ballast/models"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    dirs.into_iter()
        .map(|d| {
            let p = d.join(ESTIMATOR_FILE);
            std::fs::canonicalize(&p).unwrap_or(p)
        })
        .collect()
}

fn model_error(message: String) -> CtlError {
    CtlError { code: exit::MODEL, message }
}

fn input_error(message: String) -> CtlError {
    CtlError { code: exit::INPUT, message }
}

fn locate_model(explicit: Option<&Path>) -> Result<PathBuf, CtlError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(model_error(format!("--model {}: no such file", p.display())))
        };
    }
    let all = candidates();
    all.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let looked: Vec<String> = all.iter().map(|p| p.display().to_string()).collect();
        model_error(format!(
            "the estimator model was not found; looked in: {}; pass --model /path/to/{ESTIMATOR_FILE}",
            looked.join(", ")
        ))
    })
}

/// A WAV file read whole (planar), mono or stereo.
fn read(path: &Path) -> Result<(u32, Vec<Vec<f32>>), CtlError> {
    let at = |why: String| input_error(format!("{}: {why}", path.display().to_string().escape_debug()));
    let mut s = WavStream::open(path).map_err(|e| at(e.to_string()))?;
    let (rate, channels) = (s.info().sample_rate, s.info().channels);
    if channels > 2 {
        return Err(at(format!("{channels} channels; the estimator takes mono or stereo files")));
    }
    let mut planar: Vec<Vec<f32>> = vec![Vec::new(); channels];
    while let Some(chunk) = s.next_chunk().map_err(|e| at(e.to_string()))? {
        for (dst, src) in planar.iter_mut().zip(chunk) {
            dst.extend_from_slice(src);
        }
    }
    Ok((rate, planar))
}

/// The estimate as `--json` prints it: per band the settings, the re-synthesis residual (dB RMS of
/// the gain trajectory, the refiner's measure) and that band's confidence; `confidence` overall is the
/// lowest band's (models/MODEL_CARD.md says how it is derived).
pub fn estimate_json(e: &Estimate) -> Value {
    let bands: Vec<Value> = e
        .bands
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut v = band_json(b);
            v["residual_db"] = e.residual_db.get(i).map_or(Value::Null, |r| short(*r));
            v["confidence"] = e.band_confidence.get(i).map_or(Value::Null, |c| short(*c));
            v
        })
        .collect();
    json!({ "bands": bands, "confidence": short(e.confidence) })
}

fn values(b: &CompressorParams) -> [f32; 6] {
    [b.threshold_db, b.ratio, b.attack_ms, b.release_ms, b.makeup_db, b.knee_db]
}

/// An f32 as the shortest decimal that reads back to it (`-24.644852`, not `-24.644851684570312`).
fn short(v: f32) -> Value {
    format!("{v}").parse::<f64>().ok().filter(|x| x.is_finite()).map_or(Value::Null, Value::from)
}

fn band_json(b: &CompressorParams) -> Value {
    Value::Object(KEYS.iter().zip(values(b)).map(|(k, v)| (k.to_string(), short(v))).collect())
}

fn table(bands: &[[f64; 6]]) -> String {
    let mut out = format!(
        "{:<5} {:>10} {:>8} {:>10} {:>10} {:>9} {:>8}\n",
        "band", "threshold", "ratio", "attack", "release", "makeup", "knee"
    );
    for (i, v) in bands.iter().enumerate() {
        out.push_str(&format!(
            "{:<5} {:>7.1} dB {:>6.2}:1 {:>7.2} ms {:>7.1} ms {:>+6.1} dB {:>5.1} dB\n",
            i + 1,
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5]
        ));
    }
    out
}

/// `ballastctl estimate`: everything here, no daemon.
pub fn estimate(
    dry: &Path,
    wet: &Path,
    crossovers: &[f64],
    json: bool,
    model: Option<&Path>,
    onnxruntime: Option<&Path>,
) -> Result<String, CtlError> {
    if let Some(bad) = crossovers.windows(2).find(|w| w[1] <= w[0]) {
        return Err(input_error(format!("--crossovers must rise: {} then {}", bad[0], bad[1])));
    }
    if let Some(bad) = crossovers.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
        return Err(input_error(format!("--crossovers: {bad} is not a frequency in Hz")));
    }
    let spinner = progress("reading the files");
    let (rate_d, d) = read(dry)?;
    let (rate_w, w) = read(wet)?;
    if rate_d != rate_w {
        return Err(input_error(format!(
            "the files' sample rates differ ({rate_d} Hz and {rate_w} Hz): the wet file must be the dry one processed"
        )));
    }
    if d.len() != w.len() || d[0].len() != w[0].len() {
        return Err(input_error(format!(
            "the files do not match: dry has {} channel(s) of {} frames, wet {} of {}; the wet file must be the dry \
             one processed, sample for sample",
            d.len(),
            d[0].len(),
            w.len(),
            w[0].len()
        )));
    }
    if let Some(s) = &spinner {
        s.set_message("loading the model");
    }
    runtime::init(onnxruntime).map_err(|e| model_error(client::one_line(&e.to_string())))?;
    let path = locate_model(model)?;
    let mut est = Estimator::load(&path).map_err(|e| model_error(client::one_line(&e.to_string())))?;
    if let Some(s) = &spinner {
        s.set_message("estimating");
    }
    let dv: Vec<&[f32]> = d.iter().map(Vec::as_slice).collect();
    let wv: Vec<&[f32]> = w.iter().map(Vec::as_slice).collect();
    let e = est.estimate(&dv, &wv, f64::from(rate_d), crossovers).map_err(|e| match e {
        EstimateError::Model(m) => model_error(client::one_line(&m.to_string())),
        other => input_error(client::one_line(&other.to_string())),
    })?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&estimate_json(&e)).unwrap_or_default()));
    }
    let rows: Vec<[f64; 6]> = e.bands.iter().map(|b| values(b).map(f64::from)).collect();
    let residuals: Vec<String> = e.residual_db.iter().map(|r| format!("{r:.2}")).collect();
    Ok(format!(
        "{}confidence: {:.2} (re-synthesis residual per band: {} dB RMS)\n",
        table(&rows),
        e.confidence,
        residuals.join(", ")
    ))
}

/// A spinner on stderr while the work runs, when stderr is a terminal.
fn progress(message: &'static str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let s = indicatif::ProgressBar::new_spinner();
    s.set_message(message);
    s.enable_steady_tick(Duration::from_millis(120));
    Some(s)
}

/// `ballastctl learn`: the daemon reads the files (paths are made absolute here, since the daemon runs
/// elsewhere), estimates on its worker and applies the settings as one transaction.
pub fn learn(client: &Client, node: &str, dry: &Path, wet: &Path, json: bool) -> Result<String, CtlError> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string();
    let (dry, wet) = (abs(dry), abs(wet));
    let d = client.daemon()?;
    let spinner = progress("the daemon is estimating");
    let applied = client.call(d.learn(node, &dry, &wet));
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let applied = applied?;
    // Keys come back as `Get` names them: `ratio` for a compressor, `band2.ratio` for a multiband.
    let mut bands: BTreeMap<usize, BTreeMap<String, f64>> = BTreeMap::new();
    for (key, v) in &applied {
        let (band, k) = match key.strip_prefix("band").and_then(|r| r.split_once('.')) {
            Some((n, k)) => (n.parse::<usize>().unwrap_or(0), k),
            None => (1, key.as_str()),
        };
        bands.entry(band).or_default().insert(k.to_string(), *v);
    }
    if json {
        let list: Vec<Value> = bands
            .values()
            .map(|b| Value::Object(KEYS.iter().map(|k| (k.to_string(), json_number(b.get(*k)))).collect()))
            .collect();
        let applied: serde_json::Map<String, Value> =
            applied.iter().map(|(k, v)| (k.clone(), json_number(Some(v)))).collect();
        let out = json!({ "node": node, "bands": list, "confidence": Value::Null, "applied": applied });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&out).unwrap_or_default()));
    }
    let rows: Vec<[f64; 6]> = bands.values().map(|b| KEYS.map(|k| b.get(k).copied().unwrap_or(f64::NAN))).collect();
    Ok(format!("{node}: applied\n{}", table(&rows)))
}

fn json_number(v: Option<&f64>) -> Value {
    v.filter(|x| x.is_finite()).map_or(Value::Null, |x| short(*x as f32))
}

//! `ballastctl gen render`: generates four-part music with the note model (`ballast_models::notes`) and
//! writes a standard MIDI file, offline (no daemon).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ballast_models::notes::events::tokens_from_notes;
use ballast_models::notes::midi::{read_smf, write_smf};
use ballast_models::notes::tokens::{STEPS_PER_BAR, VOICES};
use ballast_models::notes::{generate, Key, Options, StepModel};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::client::CtlError;

/// Pieces longer than this many bars get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BARS: usize = 64;
/// Most bars one render makes (about an hour at 60 bpm).
pub const MAX_BARS: usize = 10_000;

/// What `gen render` was asked for.
#[derive(Clone, Debug)]
pub struct Render {
    pub bars: usize,
    pub seed: u64,
    pub output: PathBuf,
    pub tempo_bpm: f64,
    pub temperature: f32,
    pub top_p: f32,
    pub avoid_parallels: bool,
    pub transpose: i32,
    pub key: Option<String>,
    pub voices: String,
    pub prime: Option<PathBuf>,
    pub model: Option<PathBuf>,
    pub json: bool,
}

/// `satb`, `sa`, `b`… -> which voices sound.
pub fn parse_voices(s: &str) -> Result<[bool; VOICES], String> {
    let mut on = [false; VOICES];
    for c in s.chars() {
        let v = match c.to_ascii_lowercase() {
            's' => 0,
            'a' => 1,
            't' => 2,
            'b' => 3,
            _ => return Err(format!("--voices `{s}`: `{c}` is not one of s, a, t, b")),
        };
        on[v] = true;
    }
    if !on.iter().any(|&v| v) {
        return Err("--voices is empty: name at least one of s, a, t, b".into());
    }
    Ok(on)
}

/// The model's default place: beside the executable's install (`share/ballast/notes.onnx`), else the
/// source tree's `models/notes.onnx`.
fn default_model() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(prefix) = exe.parent().and_then(Path::parent) {
            let installed = prefix.join("share/ballast/notes.onnx");
            if installed.is_file() {
                return installed;
            }
        }
    }
    ballast_models::notes::model::default_path()
}

pub fn render(r: &Render) -> Result<String, CtlError> {
    if r.bars == 0 || r.bars > MAX_BARS {
        return Err(CtlError::usage(format!("--bars {} is outside 1..={MAX_BARS}", r.bars)));
    }
    if !(r.tempo_bpm.is_finite() && (20.0..=400.0).contains(&r.tempo_bpm)) {
        return Err(CtlError::usage(format!("--tempo {} is outside 20..=400 bpm", r.tempo_bpm)));
    }
    let voices = parse_voices(&r.voices).map_err(CtlError::usage)?;
    let key = r.key.as_deref().map(Key::parse).transpose().map_err(CtlError::usage)?;
    let prime = match &r.prime {
        Some(p) => {
            let data = std::fs::read(p).map_err(|e| CtlError::io(format!("{}: {e}", p.display())))?;
            let midi = read_smf(&data).map_err(|e| CtlError::usage(format!("{}: {e}", p.display())))?;
            // At most 8 bars of primer: enough to set key, texture and tempo of the lines.
            tokens_from_notes(&midi.notes(), 8 * STEPS_PER_BAR)
                .map_err(|e| CtlError::usage(format!("{}: {e}", p.display())))?
        }
        None => Vec::new(),
    };
    let options = Options {
        seed: r.seed,
        temperature: r.temperature,
        top_p: r.top_p,
        avoid_parallels: r.avoid_parallels,
        key,
        transpose: r.transpose,
        voices,
        prime,
    };
    let model_path = r.model.clone().unwrap_or_else(default_model);
    let started = Instant::now();
    let model = StepModel::load(&model_path).map_err(|e| CtlError::refused("ModelUnavailable", e.to_string()))?;

    let bar = (std::io::stderr().is_terminal() && r.bars >= PROGRESS_MIN_BARS).then(|| {
        let bar = ProgressBar::with_draw_target(Some(r.bars as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("generating [{bar:40}] {pos}/{len} bars eta {eta}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let result = generate(model, options, r.bars, |done, _| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (piece, _) = result.map_err(|e| match e {
        ballast_models::notes::GenerateError::Options(m) => CtlError::usage(m),
        e => CtlError::refused("ModelUnavailable", e.to_string()),
    })?;
    let generation_s = started.elapsed().as_secs_f64();
    let title = format!("ballast note model, seed {}", r.seed);
    let bytes = write_smf(&piece.notes, r.tempo_bpm, Some(piece.key), voices, &title);
    std::fs::write(&r.output, &bytes).map_err(|e| CtlError::io(format!("{}: {e}", r.output.display())))?;

    let steps = piece.tokens.steps.len();
    let bars_total = steps / STEPS_PER_BAR;
    let seconds = steps as f64 / 4.0 * 60.0 / r.tempo_bpm;
    let tracks = 1 + voices.iter().filter(|&&v| v).count();
    if r.json {
        let v = serde_json::json!({
            "output": r.output.display().to_string(),
            "model": model_path.display().to_string(),
            "bars": bars_total,
            "seed": r.seed,
            "key": piece.key.to_string(),
            "tempo_bpm": r.tempo_bpm,
            "temperature": short(r.temperature),
            "top_p": short(r.top_p),
            "avoid_parallels": r.avoid_parallels,
            "transpose": r.transpose,
            "voices": r.voices.to_ascii_lowercase(),
            "tracks": tracks,
            "notes": piece.notes.len(),
            "duration_s": seconds,
            "generation_s": generation_s,
            "bytes": bytes.len(),
        });
        Ok(v.to_string() + "\n")
    } else {
        Ok(format!(
            "{}: {} notes, {bars_total} bars in {} ({tracks} tracks), {:.1} s at {} bpm; generated in {:.2} s\n",
            r.output.display(),
            piece.notes.len(),
            piece.key,
            seconds,
            r.tempo_bpm,
            generation_s
        ))
    }
}

/// An `f32` option as typed (0.7, not 0.699999988079071).
fn short(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

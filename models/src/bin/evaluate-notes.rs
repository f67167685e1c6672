//! Measures a note `.onnx` the way `models/NOTES_MODEL_CARD.md` reports it, through ONNX Runtime from Rust:
//! the quality figures of [`metrics`] on generated pieces (seeds 1..=N, chorale length) next to the same
//! figures on the held-out test chorales, and generation speed on this thread.
//!
//! `evaluate-notes [--model M.onnx] [--pieces 100] [--bars 13] [--temperature 1.0 ...] [--nll NLL.json]
//! [--json OUT]`

use std::path::PathBuf;
use std::time::Instant;

use ballast_models::notes::events::notes_from_tokens;
use ballast_models::notes::metrics::Counts;
use ballast_models::notes::{generate, heldout, model, Options, StepModel};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Quality figures and speed of a note model, next to Bach's held-out chorales")]
struct Args {
    #[arg(long, default_value_os_t = model::default_path())]
    model: PathBuf,
    /// The held-out chorales (evaluate.py's output).
    #[arg(long, default_value_os_t = heldout::default_path())]
    heldout: PathBuf,
    /// Generated pieces per temperature (seeds 1..=N).
    #[arg(long, default_value_t = 100)]
    pieces: u64,
    /// Bars of 4/4 per piece; 0: the held-out chorales' median length.
    #[arg(long, default_value_t = 0)]
    bars: usize,
    /// Temperatures to measure (the first is the one the summary quotes).
    #[arg(long, default_values_t = [1.0f32])]
    temperature: Vec<f32>,
    /// Nucleus sampling's top_p values to measure (each with every temperature).
    #[arg(long, default_values_t = [ballast_models::notes::generate::DEFAULT_TOP_P])]
    top_p: Vec<f32>,
    /// Also measure every setting with parallels avoided (Options::avoid_parallels).
    #[arg(long)]
    avoid_parallels: bool,
    /// evaluate.py's NLL json, copied into the output.
    #[arg(long)]
    nll: Option<PathBuf>,
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("evaluate-notes: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let chorales = heldout::read(&a.heldout)?;
    let mut bach = Counts::default();
    let mut lengths: Vec<usize> = Vec::new();
    for (_, piece) in &chorales {
        bach.add(&Counts::of_piece(&notes_from_tokens(piece, 0, [true; 4])));
        lengths.push(piece.steps.len() / piece.bar_steps);
    }
    lengths.sort_unstable();
    let bars = if a.bars > 0 { a.bars } else { lengths[lengths.len() / 2] };
    let bach = bach.summary();
    eprintln!("held-out chorales: {} pieces, median {bars} bars: {bach:?}", chorales.len());

    let mut model = Some(StepModel::load(&a.model)?);
    let mut generated = serde_json::Map::new();
    let mut speed = None;
    let avoid: &[bool] = if a.avoid_parallels { &[false, true] } else { &[false] };
    let settings = a.temperature.iter().flat_map(|&t| a.top_p.iter().map(move |&p| (t, p)));
    for ((t, top_p), avoid_parallels) in settings.flat_map(|s| avoid.iter().map(move |&v| (s, v))) {
        let mut counts = Counts::default();
        let started = Instant::now();
        let mut steps = 0usize;
        for seed in 1..=a.pieces {
            let options = Options { seed, temperature: t, top_p, avoid_parallels, ..Options::default() };
            let (piece, m) = generate(model.take().expect("model returned"), options, bars, |_, _| {})?;
            model = Some(m);
            steps += piece.tokens.steps.len();
            counts.add(&Counts::of_piece(&piece.notes));
        }
        let secs = started.elapsed().as_secs_f64();
        let s = counts.summary();
        eprintln!(
            "temperature {t} top_p {top_p} avoid_parallels {avoid_parallels}: {s:?}; {:.0} steps/s",
            steps as f64 / secs
        );
        if speed.is_none() {
            // A sixteenth lasts 60 / bpm / 4 s; at 100 bpm 0.15 s.
            let steps_per_s = steps as f64 / secs;
            speed = Some(json!({
                "steps_per_second": steps_per_s,
                "realtime_factor_at_100_bpm": steps_per_s * 0.15,
                "note": "whole generation loop incl. sampling, one thread, wall clock on the shared machine"
            }));
        }
        let name = format!("temperature {t}, top_p {top_p}{}", if avoid_parallels { ", avoid_parallels" } else { "" });
        generated.insert(name, s.to_json());
    }
    let nll: Value = match &a.nll {
        Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
        None => Value::Null,
    };
    let out = json!({
        "model": a.model.display().to_string(),
        "bars": bars,
        "pieces_per_temperature": a.pieces,
        "heldout_test_chorales": bach.to_json(),
        "generated": generated,
        "speed": speed,
        "nll": nll,
    });
    let text = serde_json::to_string_pretty(&out)? + "\n";
    match &a.json {
        Some(p) => std::fs::write(p, text)?,
        None => print!("{text}"),
    }
    Ok(())
}

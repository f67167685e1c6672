//! `ballastd render`: a WAV file (or, for graphs without inputs, a duration) through a config's graph
//! into a WAV file written atomically ([`ballast_audiofile::WavWriter`]: temporary file, fsync,
//! rename; nothing under the output name unless the render completed).

use std::path::{Path, PathBuf};

use ballast_audiofile::{InputError, SampleFormat, WavStream, WavWriter};

use super::Offline;
use crate::config::{self, Config, Errors};
use crate::engine::StatsSnapshot;

/// What to render.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    pub config: PathBuf,
    pub source: Source,
    pub output: PathBuf,
    /// Frames per engine block; `None` takes the config's `block_size`.
    pub block: Option<usize>,
    pub compensate_latency: bool,
    pub format: SampleFormat,
}

/// Where the audio comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A WAV file: its channels feed the config's `audio_in` ports in order; its rate is the render's.
    File(PathBuf),
    /// No input (generators only): run this many seconds at the config's `sample_rate_hz`.
    Duration(f64),
}

/// Why a render failed. Nothing was left under the output name.
#[derive(Debug)]
pub enum RenderError {
    /// The config is invalid (every diagnostic, `FILE:LINE:COL: error: …`).
    Config(Errors),
    /// The config is valid but cannot run on this input (channel counts, no outputs, engine refusal).
    Graph(String),
    /// The input file cannot be read.
    Input { path: PathBuf, error: InputError },
    /// The output file cannot be written.
    Output { path: PathBuf, error: String },
    /// Stopped by the caller (a signal); nothing was written.
    Interrupted,
}

impl RenderError {
    /// The process exit status for this error (documented in `ballastd render --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            RenderError::Config(_) | RenderError::Graph(_) => 1,
            RenderError::Input { .. } => 2,
            RenderError::Output { .. } => 3,
            // 128 + SIGINT, as shells report a process stopped by Ctrl-C.
            RenderError::Interrupted => 130,
        }
    }
}

/// A path as one printable line.
fn shown(p: &Path) -> String {
    p.display().to_string().escape_debug().to_string()
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Config(e) => write!(f, "{e}"),
            RenderError::Graph(msg) => f.write_str(msg),
            RenderError::Input { path, error } => write!(f, "{}: {error}", shown(path)),
            RenderError::Output { path, error } => write!(f, "{}: {error}", shown(path)),
            RenderError::Interrupted => f.write_str("interrupted; no output written"),
        }
    }
}

impl std::error::Error for RenderError {}

/// Facts known once the graph is built, before any audio runs (for the caller's stderr line).
#[derive(Clone, Debug, PartialEq)]
pub struct RenderPlan {
    pub sample_rate: u32,
    pub block: usize,
    pub latency_samples: usize,
    pub input_channels: usize,
    pub output_channels: usize,
    /// Frames to render, when known in advance (from the WAV header, or the duration).
    pub frames: Option<u64>,
    pub warnings: Vec<String>,
}

/// What a finished render did.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderSummary {
    pub frames_in: u64,
    pub frames_out: u64,
    pub clipped_samples: u64,
    pub stats: StatsSnapshot,
}

/// Renders `opts`. `started` is called once the graph is built and both files are open (before any
/// audio runs); `progress` after each chunk with the frames fed so far, and returns `false` to stop the
/// render ([`RenderError::Interrupted`]; the temporary output is removed).
pub fn render(
    opts: &RenderOptions,
    started: &mut dyn FnMut(&RenderPlan),
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<RenderSummary, RenderError> {
    let cfg: Config = config::load(&opts.config).map_err(RenderError::Config)?;
    let graph = &cfg.graph;
    let cfg_name = shown(&opts.config);
    if graph.outputs.is_empty() {
        return Err(RenderError::Graph(format!("config {cfg_name} declares no audio_out ports: nothing to render")));
    }
    let ports = |n: usize| {
        format!(
            "{n} audio_in port{}{}",
            if n == 1 { "" } else { "s" },
            if n == 0 { String::new() } else { format!(" ({})", graph.inputs.join(", ")) }
        )
    };

    let mut wav = None;
    let (sample_rate, frames) = match &opts.source {
        Source::File(path) => {
            let stream = WavStream::open(path).map_err(|error| RenderError::Input { path: path.clone(), error })?;
            let info = stream.info().clone();
            if info.channels != graph.inputs.len() {
                let hint = if graph.inputs.is_empty() { "; render it with --duration SECONDS instead" } else { "" };
                return Err(RenderError::Graph(format!(
                    "{} has {} channel{}; config {cfg_name} declares {}{hint}",
                    shown(path),
                    info.channels,
                    if info.channels == 1 { "" } else { "s" },
                    ports(graph.inputs.len()),
                )));
            }
            wav = Some(stream);
            (info.sample_rate, info.frames)
        }
        Source::Duration(seconds) => {
            if !graph.inputs.is_empty() {
                return Err(RenderError::Graph(format!(
                    "config {cfg_name} declares {}: give --input FILE (--duration is for configs without inputs)",
                    ports(graph.inputs.len())
                )));
            }
            if !(seconds.is_finite() && *seconds >= 0.0) {
                return Err(RenderError::Graph(format!("--duration {seconds}: must be a number of seconds ≥ 0")));
            }
            let rate = cfg.engine.sample_rate_hz;
            (rate, Some((seconds * f64::from(rate)).round() as u64))
        }
    };

    let block = opts.block.unwrap_or(cfg.engine.block_size).max(1);
    let mut offline = Offline::new(graph, f64::from(sample_rate), block, opts.compensate_latency)
        .map_err(|e| RenderError::Graph(format!("config {cfg_name}: {e}")))?;
    let mut writer = WavWriter::create(&opts.output, sample_rate, offline.output_channels(), opts.format)
        .map_err(|e| RenderError::Output { path: opts.output.clone(), error: e.0 })?;

    started(&RenderPlan {
        sample_rate,
        block,
        latency_samples: offline.latency_samples(),
        input_channels: offline.input_channels(),
        output_channels: offline.output_channels(),
        frames,
        warnings: cfg.warnings.iter().map(|w| w.to_string()).collect(),
    });

    let out_err = |e: ballast_audiofile::OutputError| RenderError::Output { path: opts.output.clone(), error: e.0 };
    let mut sink = |block: &[&[f32]]| writer.write(block).map_err(out_err);
    match (&opts.source, wav.as_mut()) {
        (Source::File(path), Some(stream)) => {
            let in_err = |error| RenderError::Input { path: path.clone(), error };
            while let Some(chunk) = stream.next_chunk().map_err(in_err)? {
                let mut refs: [&[f32]; ballast_audiofile::MAX_CHANNELS] = [&[]; ballast_audiofile::MAX_CHANNELS];
                for (r, c) in refs.iter_mut().zip(chunk) {
                    *r = c;
                }
                offline.push(&refs[..chunk.len().min(refs.len())], &mut sink)?;
                if !progress(offline.frames_in()) {
                    return Err(RenderError::Interrupted);
                }
            }
            if let Some(total) = frames {
                if stream.frames_read() < total {
                    return Err(in_err(InputError(format!(
                        "truncated WAV: the header announces {total} frames, the file holds {}",
                        stream.frames_read()
                    ))));
                }
            }
        }
        _ => {
            let mut left = frames.unwrap_or(0);
            // Chunks of about a tenth of a second keep the progress bar moving.
            let chunk = (sample_rate as u64 / 10).max(1);
            while left > 0 {
                let n = left.min(chunk);
                offline.push_silence(n as usize, &mut sink)?;
                left -= n;
                if !progress(offline.frames_in()) {
                    return Err(RenderError::Interrupted);
                }
            }
        }
    }
    let frames_in = offline.frames_in();
    let stats = offline.finish(&mut sink)?;
    let frames_out = writer.frames();
    let clipped_samples = writer.clipped_samples();
    writer.commit().map_err(out_err)?;
    Ok(RenderSummary { frames_in, frames_out, clipped_samples, stats })
}

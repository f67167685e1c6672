//! `ballastctl`: the command-line client of ballast: the running daemon over D-Bus
//! (`org.ballast.Daemon1`), and offline loudness measurement of WAV files.

mod apply;
mod client;
mod commands;
mod estimate;
mod events;
mod gen;
mod measure;
mod meters;
mod units;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the daemon refused the request; the message starts with the error's kind (UnknownNode,
     UnknownParam, OutOfRange, InvalidGraph, Busy, InvalidName, ModelUnavailable, WrongKind,
     InvalidInput, Failed, or the bus's AccessDenied)
  2  wrong command line or input: unknown option, a value with the wrong unit, a graph file that
     does not parse (measure: a missing, unreadable or unsupported WAV file)
  3  no daemon: the bus cannot be reached or nobody owns org.ballast.Daemon1 (start ballastd)
  4  I/O: reading a file or writing the output failed
(measure and estimate have their own: see their --help)

Errors are one line on stderr: `ballastctl: <what went wrong>`.";

const MEASURE_EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  writing the result failed
  2  bad input: the file is missing, unreadable, not a WAV file, truncated, in an unsupported format,
     outside 8–192 kHz or over 8 channels; also a wrong command line";

const MEASURE_ABOUT: &str = "\
Measures the loudness of a WAV file after ITU-R BS.1770-4 and EBU R128 (Tech 3341, Tech 3342).

Reads RIFF/WAVE with 16/24/32-bit integer or 32/64-bit float samples, 1–8 channels (6 channels are
L R C LFE Ls Rs: the LFE is not counted, the surrounds weigh +1.5 dB), any sample rate from 8 to
192 kHz. The file is streamed: any length is fine.

What the numbers mean:
  Integrated loudness (LUFS)  loudness of the whole file, gated: 400 ms blocks below −70 LUFS, then
                              blocks more than 10 LU below the ungated level, are ignored. EBU R128
                              asks for −23 LUFS in broadcast.
  Loudness range (LU)         spread of the 3 s short-term loudness: the 10th to 95th percentile of
                              the gated short-term values (EBU Tech 3342). Small for compressed
                              material, large for film and classical music.
  True peak (dBTP)            highest level of the signal between samples, found by oversampling to
                              at least 192 kHz (BS.1770-4 Annex 2); what a DAC or a lossy codec may
                              produce. EBU R128 allows at most −1 dBTP.
  Max momentary (LUFS)        highest loudness over any 400 ms window (updated every 100 ms).
  Max short-term (LUFS)       highest loudness over any 3 s window (updated every 100 ms).
  Sample peak (dBFS)          highest absolute sample value; 0 dBFS is full scale.

Silence (nothing above −70 LUFS) reads -inf (null in JSON); so does the loudness range then.";

const ESTIMATE_ABOUT: &str = "\
Estimates the compressor settings that turned DRY into WET, offline: no daemon is needed. The
estimator (a siamese network, models/MODEL_CARD.md) runs here through ONNX Runtime.

DRY and WET: WAV files of the same sample rate, channel count (mono or stereo) and length: WET is
DRY processed by a compressor, sample for sample. With --crossovers the pair is split at those
frequencies (as a multiband node splits) and each band is estimated: N crossovers give N + 1 bands.

Prints per band: threshold (dB), ratio, attack and release (ms), makeup gain (dB), knee width (dB).
The network's first guess is refined by re-synthesis: candidate settings are rendered through
ballast's own compressor until the gain trajectory matches WET's. `confidence` (0..1, per band and
overall) falls with the remaining residual and with how little gain reduction there was to learn from.

ONNX Runtime: --onnxruntime, else ORT_DYLIB_PATH, else ~/.cache/ballast/onnxruntime/1.31.1/ (filled
by `make onnxruntime`), else /usr/local/lib and /usr/lib. The model: --model, else estimator.onnx in
$XDG_DATA_HOME/ballast/models, /usr/local/share/ballast/models, /usr/share/ballast/models, then the
source tree's models/.";

const ESTIMATE_EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  ONNX Runtime or the model cannot be loaded (the message says where it looked), or inference failed
  2  bad input: a missing, unreadable or unsupported WAV file, files that do not match, crossovers
     that do not rise; also a wrong command line
  4  writing the result failed";

const AFTER_HELP: &str = "\
Bus: the session bus by default (DBUS_SESSION_BUS_ADDRESS), --system for the system bus, or
--address ADDR for any other. JSON field names are documented in ctl/README.md and stay stable.";

/// ballast's command-line client: control the running ballastd over D-Bus, measure WAV files.
#[derive(Parser, Debug)]
#[command(name = "ballastctl", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Talk to the daemon on the system bus instead of the session bus.
    #[arg(long, global = true, conflicts_with = "address")]
    system: bool,
    /// Talk to the daemon on the bus at this D-Bus address (e.g. unix:path=/run/ballast/bus).
    #[arg(long, global = true, value_name = "ADDRESS")]
    address: Option<String>,
    /// The daemon's bus name.
    #[arg(long, global = true, value_name = "NAME", default_value = client::BUS_NAME)]
    dest: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The daemon's state: backend, sample rate, block size, latency, DSP load, xruns, uptime, version,
    /// model health.
    #[command(after_help = AFTER_HELP)]
    Status {
        /// Print JSON: backend, sample_rate_hz, block_size, latency_samples, graph_latency_samples,
        /// latency_ms, dsp_load_percent, xruns, uptime_s, version, nodes, models ({NAME: {state,
        /// detail}}). block_size, latency_samples and latency_ms are null until the daemon's audio
        /// backend runs (JACK not connected yet).
        #[arg(long)]
        json: bool,
    },
    /// The graph's nodes: name, kind, channels, bands, bypass.
    #[command(after_help = AFTER_HELP)]
    Nodes {
        /// Print JSON: {"nodes": [{name, kind, channels, bands, bypassed, path}]}.
        #[arg(long)]
        json: bool,
    },
    /// A node's parameters: value, range, default, name.
    #[command(after_help = AFTER_HELP)]
    Params {
        /// The node's name.
        node: String,
        /// Print JSON: {"node", "params": [{key, name, unit, min, max, default, scale, doc, choices,
        /// boolean, value}]} (non-finite numbers as null).
        #[arg(long)]
        json: bool,
    },
    /// A parameter's value, with its unit.
    #[command(after_help = AFTER_HELP)]
    Get {
        /// NODE.PARAM, e.g. comp.threshold_db or mbc.band2.ratio.
        #[arg(value_name = "NODE.PARAM")]
        target: String,
        /// Print JSON: {node, param, value, unit, text}.
        #[arg(long)]
        json: bool,
    },
    /// Sets a parameter. Units are optional and must be the parameter's: -18dB, -18 dB, 10ms, 1.5s (for an
    /// _ms key: 1500), 2.5k or 2.5kHz (for an _hz key: 2500), 4:1, inf; choices by name (rms); switches
    /// on/off.
    #[command(after_help = AFTER_HELP, allow_negative_numbers = true)]
    Set {
        /// NODE.PARAM, e.g. comp.threshold_db.
        #[arg(value_name = "NODE.PARAM")]
        target: String,
        /// The value, e.g. -18dB.
        #[arg(allow_hyphen_values = true, num_args = 1.., required = true, value_name = "VALUE")]
        value: Vec<String>,
    },
    /// Bypasses a node (crossfades to its latency-aligned input), or un-bypasses it.
    #[command(after_help = AFTER_HELP)]
    Bypass {
        node: String,
        /// on or off.
        #[arg(default_value = "on", value_parser = ["on", "off"])]
        state: String,
    },
    /// Links FROM to TO (as in the config's links: node, node:out_2, in, out, in:PORT, out:PORT).
    #[command(after_help = AFTER_HELP)]
    Connect { from: String, to: String },
    /// Removes the links from FROM to TO.
    #[command(after_help = AFTER_HELP)]
    Disconnect { from: String, to: String },
    /// Makes a graph file's [nodes] and [links] the running graph, in one transaction: surviving nodes
    /// (same name, kind and shape) keep their state; their parameters become the file's.
    #[command(after_help = AFTER_HELP)]
    Apply {
        /// A TOML file with [nodes.NAME] tables and [links] (as in the config; [engine] and [ports] are
        /// ignored).
        file: PathBuf,
        /// Print the transaction's steps instead of running it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-reads the daemon's config file and applies the difference.
    #[command(after_help = AFTER_HELP)]
    Reload,
    /// Saves, loads, lists or deletes presets (graph, parameters and bypasses, in the daemon's state dir).
    #[command(subcommand)]
    Preset(PresetCommand),
    /// Every node's meters (levels, gain reduction, loudness, true peak), once or live.
    #[command(after_help = AFTER_HELP)]
    Meters {
        /// Live bar meters, redrawn in place until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Updates per second with --watch (0.1..60).
        #[arg(long, default_value_t = 10.0, requires = "watch")]
        rate: f64,
        /// Stop after this many updates with --watch.
        #[arg(long, requires = "watch")]
        count: Option<u64>,
        /// Print JSON: {"meters": {NODE: {METER: value}}} (null before the node has run); with --watch one
        /// such object per line per update.
        #[arg(long)]
        json: bool,
    },
    /// Prints the daemon's change signals as they come, one line each, until Ctrl-C: graph-changed,
    /// param-changed NODE.PARAM VALUE (from any client), xrun TOTAL.
    #[command(after_help = AFTER_HELP)]
    Events {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// One JSON object per line: {"event": "graph-changed"}, {"event": "param-changed", "node",
        /// "param", "value"}, {"event": "xrun", "count"}.
        #[arg(long)]
        json: bool,
    },
    /// Estimates the compressor settings that turned DRY into WET, offline (no daemon).
    #[command(long_about = ESTIMATE_ABOUT, after_help = ESTIMATE_EXIT_CODES)]
    Estimate {
        /// The unprocessed WAV file.
        #[arg(long, value_name = "DRY.wav")]
        dry: PathBuf,
        /// The same audio after the compressor.
        #[arg(long, value_name = "WET.wav")]
        wet: PathBuf,
        /// Split frequencies in Hz, low to high, comma-separated (e.g. 200,2000,8000): one estimate per
        /// band. Without: one band.
        #[arg(long, value_delimiter = ',', value_name = "HZ,HZ,...")]
        crossovers: Vec<f64>,
        /// Print JSON: {"bands": [{threshold_db, ratio, attack_ms, release_ms, makeup_db, knee_db,
        /// residual_db, confidence}…], "confidence"}.
        #[arg(long)]
        json: bool,
        /// The estimator model (.onnx) instead of the default search.
        #[arg(long, value_name = "PATH")]
        model: Option<PathBuf>,
        /// The ONNX Runtime library (libonnxruntime.so) instead of the default search.
        #[arg(long, value_name = "PATH")]
        onnxruntime: Option<PathBuf>,
    },
    /// Estimates a running compressor or multiband node's settings from a dry/wet pair and applies
    /// them in one transaction (the daemon reads the files and runs the model).
    #[command(after_help = AFTER_HELP)]
    Learn {
        /// The node: a compressor, or a multiband (estimated per band at its own crossovers).
        node: String,
        /// The unprocessed WAV file (readable by the daemon).
        #[arg(long, value_name = "DRY.wav")]
        dry: PathBuf,
        /// The same audio after the compressor whose settings the node should take.
        #[arg(long, value_name = "WET.wav")]
        wet: PathBuf,
        /// Print JSON: {"node", "bands": [{threshold_db, ratio, attack_ms, release_ms, makeup_db,
        /// knee_db}…], "confidence": null, "applied": {KEY: value}}.
        #[arg(long)]
        json: bool,
    },
    /// Measure integrated loudness, loudness range, true peak and more of a WAV file (EBU R128).
    #[command(long_about = MEASURE_ABOUT, after_help = MEASURE_EXIT_CODES)]
    Measure {
        /// The WAV file to measure.
        file: PathBuf,
        /// Print one JSON object instead of text. Keys: integrated_lufs, lra_lu, true_peak_dbtp,
        /// max_momentary_lufs, max_short_term_lufs, sample_peak_dbfs; each a number, or null when
        /// undefined (-inf).
        #[arg(long)]
        json: bool,
    },
    /// The note model: generate four-part chorale-style music (`gen render` writes a MIDI file offline).
    #[command(subcommand)]
    Gen(GenCommand),
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Prints the man page (roff): `ballastctl man | man -l -`.
    Man,
}

#[derive(Subcommand, Debug)]
enum GenCommand {
    /// Generates BARS bars of four-part music (soprano, alto, tenor, bass; 4/4) with the note model and
    /// writes a standard MIDI file (format 1: a tempo track, then one track and channel per voice). Offline:
    /// no daemon needed. The same seed and options give the same file.
    #[command(after_help = GEN_RENDER_HELP, allow_negative_numbers = true)]
    Render {
        /// Bars of 4/4 to generate (after the primer, if any).
        #[arg(long, default_value_t = 16)]
        bars: usize,
        /// Random seed: the same seed, model and options give the same notes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The MIDI file to write (e.g. chorale.mid).
        #[arg(long, short)]
        output: PathBuf,
        /// Tempo in quarter notes per minute (written into the file; 20..400).
        #[arg(long, default_value_t = 80.0)]
        tempo: f64,
        /// Sampling temperature of each new note's pitch (0..5]: lower is safer and plainer, higher more
        /// adventurous (the rhythm always follows the model's own probabilities).
        #[arg(long, default_value_t = ballast_models::notes::generate::DEFAULT_TEMPERATURE)]
        temperature: f32,
        /// Nucleus sampling (0..1]: draw each pitch from the likeliest ones covering this probability.
        #[arg(long, default_value_t = ballast_models::notes::generate::DEFAULT_TOP_P)]
        top_p: f32,
        /// Redraw any pitch that would make parallel fifths or octaves with another voice (the model makes
        /// them in ~5% of joint motions; Bach in 0.1%).
        #[arg(long)]
        avoid_parallels: bool,
        /// Semitones to shift every note by, after generation (-24..24).
        #[arg(long, default_value_t = 0)]
        transpose: i32,
        /// The key to ask the model for: G, f#, Bb minor, Eb major… (default: the primer's key, else the
        /// model draws one).
        #[arg(long)]
        key: Option<String>,
        /// Voices that sound, any of s, a, t, b (all four are always composed together).
        #[arg(long, default_value = "satb")]
        voices: String,
        /// Start from the notes of this MIDI file (up to 8 bars; track order soprano, alto, tenor, bass).
        #[arg(long, value_name = "FILE.mid")]
        prime: Option<PathBuf>,
        /// The note model (.onnx); default: the installed or source tree's notes.onnx.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Print JSON: {output, model, bars, seed, key, tempo_bpm, temperature, top_p, avoid_parallels, transpose, voices,
        /// tracks, notes, duration_s, generation_s, bytes}.
        #[arg(long)]
        json: bool,
    },
}

const GEN_RENDER_HELP: &str = "\
Example: ballastctl gen render --bars 16 --seed 7 --output chorale.mid --tempo 72 --voices satb

Exit codes: 0 written; 1 the model or ONNX Runtime is unavailable (ModelUnavailable: …); 2 a bad option or
primer file; 4 the output cannot be written.";

#[derive(Subcommand, Debug)]
enum PresetCommand {
    /// Saves the running graph, parameters and bypasses as NAME ([A-Za-z0-9_.-], not starting with .).
    Save { name: String },
    /// Applies preset NAME as one transaction.
    Load { name: String },
    /// The stored presets, sorted.
    List {
        /// Print JSON: {"presets": [NAME…]}.
        #[arg(long)]
        json: bool,
    },
    /// Deletes preset NAME.
    Delete { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = client::Target { system: cli.system, address: cli.address.clone(), dest: cli.dest.clone() };
    let result = match cli.command {
        Command::Measure { file, json } => return measure_command(&file, json),
        Command::Estimate { dry, wet, crossovers, json, model, onnxruntime } => {
            estimate::estimate(&dry, &wet, &crossovers, json, model.as_deref(), onnxruntime.as_deref())
        }
        Command::Gen(GenCommand::Render {
            bars,
            seed,
            output,
            tempo,
            temperature,
            top_p,
            avoid_parallels,
            transpose,
            key,
            voices,
            prime,
            model,
            json,
        }) => gen::render(&gen::Render {
            bars,
            seed,
            output,
            tempo_bpm: tempo,
            temperature,
            top_p,
            avoid_parallels,
            transpose,
            key,
            voices,
            prime,
            model,
            json,
        }),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "ballastctl", &mut out);
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map(|()| String::from_utf8_lossy(&out).into_owned())
                .map_err(|e| client::CtlError::io(format!("rendering the man page: {e}")))
        }
        command => client::Client::connect(target).and_then(|c| run(&c, command)),
    };
    match result {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                // A closed pipe (`| head`) is not worth a message.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(client::exit::IO),
                Err(e) => {
                    eprintln!("ballastctl: writing the output: {e}");
                    ExitCode::from(client::exit::IO)
                }
            }
        }
        Err(e) => {
            eprintln!("ballastctl: {}", client::one_line(&e.message));
            ExitCode::from(e.code)
        }
    }
}

fn run(c: &client::Client, command: Command) -> Result<String, client::CtlError> {
    match command {
        Command::Status { json } => commands::status(c, json),
        Command::Nodes { json } => commands::nodes(c, json),
        Command::Params { node, json } => commands::params(c, &node, json),
        Command::Get { target, json } => commands::get(c, &target, json),
        Command::Set { target, value } => commands::set(c, &target, &value.join(" ")),
        Command::Bypass { node, state } => commands::bypass(c, &node, state == "on"),
        Command::Connect { from, to } => commands::link(c, &from, &to, true),
        Command::Disconnect { from, to } => commands::link(c, &from, &to, false),
        Command::Apply { file, dry_run } => apply::apply(c, &file, dry_run),
        Command::Reload => commands::reload(c),
        Command::Preset(p) => match p {
            PresetCommand::Save { name } => commands::preset_save(c, &name),
            PresetCommand::Load { name } => commands::preset_load(c, &name),
            PresetCommand::List { json } => commands::preset_list(c, json),
            PresetCommand::Delete { name } => commands::preset_delete(c, &name),
        },
        Command::Meters { watch: true, rate, count, json } => {
            meters::watch(c, rate, count, json).map(|()| String::new())
        }
        Command::Meters { watch: false, json, .. } => meters::once(c, json),
        Command::Events { count, json } => events::watch(c, count, json).map(|()| String::new()),
        Command::Learn { node, dry, wet, json } => estimate::learn(c, &node, &dry, &wet, json),
        Command::Measure { .. }
        | Command::Estimate { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Gen(_) => {
            unreachable!("handled before connecting")
        }
    }
}

fn measure_command(file: &std::path::Path, json: bool) -> ExitCode {
    match measure::measure(file, true) {
        Ok(summary) => {
            let out = if json { measure::to_json(&summary) + "\n" } else { measure::to_text(&summary) };
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ballastctl: writing the result: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            // One line: the file, then the problem (newlines in a path are shown escaped).
            let name = format!("{}", file.display()).escape_debug().to_string();
            eprintln!("ballastctl: {name}: {e}");
            ExitCode::from(2)
        }
    }
}

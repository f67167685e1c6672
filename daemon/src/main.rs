//! `ballastd`: the ballast audio server's command line.
//!
//! `ballastd [--config FILE]` runs the server (JACK or ALSA, see `ballastd::service`); the subcommands
//! are tools: `check` (validate a config), `render` (the offline backend: a WAV file through the
//! graph) and `config-docs` (regenerate the node-kind and `[models]` parts of `config/README.md`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ballast_audiofile::SampleFormat;
use ballastd::config::{self, docs};
use ballastd::engine::{self, EngineConfig};
use ballastd::offline::file::{self as render_file, RenderOptions, RenderPlan, Source};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

const RENDER_ABOUT: &str = "\
Runs the config's graph over a WAV file, offline, through the same engine the real-time backends
use, and writes the result as a WAV file.

Input: RIFF/WAVE, 16/24/32-bit integer or 32/64-bit float, 1–8 channels, 8–192 kHz. Its channels feed
the config's audio_in ports in order (a stereo file for audio_in = [\"in_l\", \"in_r\"]); the channel
counts must match. The render runs at the file's sample rate: the config's sample_rate_hz is for
backends without a file (ALSA, and --duration here). Configs without audio_in ports (generators, like
config/default.toml) take --duration SECONDS instead of --input.

Output: one channel per audio_out port, same sample rate, 32-bit float by default (lossless for the
engine's f32). s16/s24 round to the nearest step without dither and clip at full scale (counted and
reported). The file appears under its name only once complete: it is written to a hidden temporary
file in the same directory, fsynced and renamed; on any error the temporary file is removed.

Block size: the output is bit-identical for every --block (1, 64, 256, 4096…) and identical to what a
real-time backend running the same graph at that rate produces for the same input.

Latency: the graph's total latency (limiter lookahead and the delays that align parallel paths) is
printed on stderr before rendering. Without --compensate-latency the output is what a real-time
backend would emit: delayed by that many samples, same length as the input (the last samples of the
programme stay in the graph). With --compensate-latency the delay is trimmed from the start and the
tail is flushed with silence, so the output has the input's length and is time-aligned with it.

A progress bar is shown on stderr when stderr is a terminal.";

const RENDER_EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  invalid config (every error as FILE:LINE:COL: error: …), or a config that cannot run on this input
     (channel-count mismatch, no audio_out ports, --duration with audio_in ports)
  2  bad input: missing, unreadable, not a WAV file, truncated, unsupported format; also a wrong
     command line
  3  the output cannot be written (missing or read-only directory, a directory in its place, disk full)
  130  interrupted (SIGINT, SIGTERM or SIGHUP): the temporary output is removed, nothing is written";

const RUN_ABOUT: &str = "\
The ballast real-time audio server.

Without a subcommand, runs the server: loads the config, restores the run-time state, registers its
JACK ports (or opens the ALSA device) and processes audio until SIGINT or SIGTERM (exit 0).
SIGHUP re-reads the config and applies the difference without a dropout; an invalid config is
rejected with its errors logged and the running graph left untouched.

Control: org.ballast.Daemon1 on the session bus (--system: the system bus), used by ballastctl and
scripts (daemon/dbus/README.md). An unreachable bus is a warning (audio runs, SIGHUP still reloads);
a name owned by another ballastd stops this one unless --replace takes it over.

The config is the first of: --config FILE; $XDG_CONFIG_HOME/ballast/ballast.toml (default
~/.config/ballast/ballast.toml); /etc/ballast/ballast.toml; the built-in demo (config/default.toml).
The log says which. Run-time state lives in $XDG_STATE_HOME/ballast/state.json (default
~/.local/state/ballast; $STATE_DIRECTORY under systemd).

Logs go to stderr (to journald with structured fields when run by systemd); RUST_LOG sets the
level (e.g. RUST_LOG=debug). Every config key is documented in config/README.md.";

const RUN_EXIT_CODES: &str = "\
Exit codes (server):
  0  stopped by SIGINT or SIGTERM
  1  cannot start: invalid config (every error as FILE:LINE:COL: error: …), a backend that cannot
     be set up (a missing JACK server is not an error: ballastd waits for it and retries), or the
     bus name owned by another ballastd (without --replace)
  2  wrong command line";

/// The ballast real-time audio server.
#[derive(Parser, Debug)]
#[command(
    name = "ballastd",
    version,
    about,
    long_about = RUN_ABOUT,
    after_help = RUN_EXIT_CODES,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Run with this config file (TOML; see config/README.md) instead of searching for one.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve org.ballast.Daemon1 on the system bus (needs the policy in daemon/dbus/) instead of the
    /// session bus.
    #[arg(long)]
    system: bool,
    /// Take the bus name over from a ballastd that is already running (it stops).
    #[arg(long)]
    replace: bool,
    /// Run without the D-Bus service (control by SIGHUP and the config file only).
    #[arg(long, conflicts_with_all = ["system", "replace"])]
    no_dbus: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config file without running anything.
    ///
    /// Checks every table, key, type, value range, node kind, link, channel count and cycle, and
    /// reports ALL problems at once as `FILE:LINE:COL: error: reason` on stderr (warnings as
    /// `FILE:LINE:COL: warning: …`). Exit status 0 when the config is valid (one summary line on
    /// stdout), 1 when it has errors, 2 for a usage error.
    Check {
        /// The config file (TOML; see config/README.md).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Render a WAV file (or a duration, for generators) through the config's graph, offline.
    #[command(long_about = RENDER_ABOUT, after_help = RENDER_EXIT_CODES)]
    Render {
        /// The config file (TOML; see config/README.md).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The WAV file to process; its channels feed the config's audio_in ports in order.
        #[arg(long, short, value_name = "IN.wav", required_unless_present = "duration")]
        input: Option<PathBuf>,
        /// For configs without audio_in ports: render this many seconds at the config's sample_rate_hz.
        #[arg(long, value_name = "SECONDS", conflicts_with = "input")]
        duration: Option<f64>,
        /// Where to write the result (replaced atomically when the render succeeds).
        #[arg(long, short, value_name = "OUT.wav")]
        output: PathBuf,
        /// Frames per engine block [default: the config's block_size]. The output does not depend on it.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
        block: Option<u32>,
        /// Trim the graph's latency from the start and flush its tail: output time-aligned with the
        /// input, same length.
        #[arg(long)]
        compensate_latency: bool,
        /// Output sample format: f32 (32-bit float, lossless), s16 or s24 (integer, no dither).
        #[arg(long, value_name = "FORMAT", default_value = "f32", value_parser = ["f32", "s16", "s24"])]
        format: String,
    },
    /// Print the node-kind and `[models]` reference of config/README.md, generated from the node
    /// descriptors and the daemon's search paths.
    ///
    /// With `--write README`, replace the generated part of that file in place instead.
    ConfigDocs {
        /// Rewrite the generated section of this README (between its BEGIN/END GENERATED markers).
        #[arg(long, value_name = "README")]
        write: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return ballastd::service::run(ballastd::service::RunOptions {
            config: cli.config,
            system: cli.system,
            replace: cli.replace,
            no_dbus: cli.no_dbus,
        });
    };
    match command {
        Command::Check { config } => check(&config),
        Command::Render { config, input, duration, output, block, compensate_latency, format } => {
            let source = match (input, duration) {
                (Some(file), _) => Source::File(file),
                (None, Some(seconds)) => Source::Duration(seconds),
                (None, None) => unreachable!("clap requires --input unless --duration is given"),
            };
            let opts = RenderOptions {
                config,
                source,
                output,
                block: block.map(|b| b as usize),
                compensate_latency,
                format: format.parse::<SampleFormat>().unwrap_or_default(),
            };
            render(&opts)
        }
        Command::ConfigDocs { write } => config_docs(write),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => {
            for w in &cfg.warnings {
                eprintln!("{w}");
            }
            let g = &cfg.graph;
            let rate = cfg.engine.sample_rate_hz;
            // Compile the graph as a backend would (nodes made and prepared, schedule compiled): the
            // total latency, and any refusal the validator cannot see.
            let (mut ctl, _engine, _reclaimer) = engine::new(EngineConfig {
                sample_rate: f64::from(rate),
                max_block: cfg.engine.block_size,
                slots: g.nodes.len() + 8,
                ring_capacity: 2 * g.nodes.len() + 16,
                ..EngineConfig::default()
            });
            let latency = match ctl.apply(g) {
                Ok(report) => report.latency_samples,
                Err(e) => {
                    eprintln!("{}: error: the graph does not compile: {e}", path.display());
                    return ExitCode::from(1);
                }
            };
            println!(
                "{}: ok: {} node{}, {} link{}, {} in / {} out ports; backend {}, {} Hz, block {}; \
                 latency {latency} samples ({:.2} ms at {rate} Hz)",
                path.display(),
                g.nodes.len(),
                plural(g.nodes.len()),
                g.links.len(),
                plural(g.links.len()),
                g.inputs.len(),
                g.outputs.len(),
                cfg.engine.backend.name(),
                cfg.engine.sample_rate_hz,
                cfg.engine.block_size,
                latency as f64 * 1e3 / f64::from(rate),
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.errors().count();
            eprintln!("{}: {n} error{}; nothing applied", path.display(), plural(n));
            ExitCode::from(1)
        }
    }
}

fn render(opts: &RenderOptions) -> ExitCode {
    interrupt::catch();
    let t0 = Instant::now();
    // Set by `started`, read by `progress` and afterwards.
    let bar: std::cell::OnceCell<ProgressBar> = std::cell::OnceCell::new();
    let rate = std::cell::Cell::new(0u32);
    let mut started = |plan: &RenderPlan| {
        rate.set(plan.sample_rate);
        for w in &plan.warnings {
            eprintln!("{w}");
        }
        let ms = plan.latency_samples as f64 * 1e3 / f64::from(plan.sample_rate);
        let what = if opts.compensate_latency {
            "compensated: output time-aligned with the input".to_string()
        } else if plan.latency_samples == 0 {
            "nothing to compensate".to_string()
        } else {
            format!("not compensated: output delayed by {} samples (--compensate-latency)", plan.latency_samples)
        };
        eprintln!(
            "ballastd: latency {} samples ({ms:.2} ms at {} Hz), {what}; {} in / {} out channels, block {}",
            plan.latency_samples, plan.sample_rate, plan.input_channels, plan.output_channels, plan.block
        );
        if let Some(total) = plan.frames.filter(|_| std::io::stderr().is_terminal()) {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} rendering [{bar:40}] {percent:>3}% eta {eta}") {
                b.set_style(style.progress_chars("=> "));
            }
            b.enable_steady_tick(Duration::from_millis(200));
            let _ = bar.set(b);
        }
    };
    let mut progress = |frames: u64| {
        if let Some(b) = bar.get() {
            b.set_position(frames);
        }
        !interrupt::requested()
    };
    let result = render_file::render(opts, &mut started, &mut progress);
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    match result {
        Ok(summary) => {
            let s = &summary.stats;
            if s.nonfinite_resets > 0 || s.output_sanitized > 0 {
                eprintln!(
                    "ballastd: warning: {} node reset(s) for NaN/Inf output, {} block(s) with non-finite output \
                     replaced by silence",
                    s.nonfinite_resets, s.output_sanitized
                );
            }
            if summary.clipped_samples > 0 {
                eprintln!(
                    "ballastd: warning: {} sample(s) clipped to the {} range",
                    summary.clipped_samples,
                    opts.format.name()
                );
            }
            let seconds = summary.frames_out as f64 / f64::from(rate.get().max(1));
            let elapsed = t0.elapsed().as_secs_f64();
            eprintln!(
                "ballastd: wrote {} ({} frames, {seconds:.2} s, {}) in {elapsed:.2} s ({:.0}× real time)",
                opts.output.display(),
                summary.frames_out,
                opts.format.name(),
                seconds / elapsed.max(1e-9),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            match &e {
                render_file::RenderError::Config(errors) => {
                    eprintln!("{errors}");
                    let n = errors.errors().count();
                    eprintln!("{}: {n} error{}; nothing rendered", opts.config.display(), plural(n));
                }
                other => eprintln!("ballastd: {other}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// Ctrl-C, `kill` and a closed terminal stop a render cleanly: the render loop sees the flag between
/// chunks and returns an error, which removes the temporary output file (the default action would
/// kill the process and leave it behind).
mod interrupt {
    use std::sync::atomic::{AtomicBool, Ordering};

    static REQUESTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: libc::c_int) {
        // Async-signal-safe: one atomic store.
        REQUESTED.store(true, Ordering::Relaxed);
    }

    /// Installs the handler for SIGINT, SIGTERM and SIGHUP.
    pub fn catch() {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe; `signal` with a
            // valid signal number and handler has no other precondition.
            unsafe {
                libc::signal(sig, on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
            }
        }
    }

    /// Whether a signal asked to stop.
    pub fn requested() -> bool {
        REQUESTED.load(Ordering::Relaxed)
    }
}

fn config_docs(write: Option<PathBuf>) -> ExitCode {
    let Some(path) = write else {
        print!("{}\n## `[models]`\n\n{}", docs::node_kinds_markdown(), docs::models_markdown());
        return ExitCode::SUCCESS;
    };
    let result = std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|text| {
        let new = docs::splice(&text).ok_or_else(|| format!("no `{}` … `{}` markers", docs::BEGIN, docs::END))?;
        std::fs::write(&path, new).map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: error: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

//! `ballastd`: the ballast audio server's command line.
//!
//! Today: `check` (validate a config) and `config-docs` (regenerate the node-kind part of
//! `config/README.md`). Running the daemon and `render` join as further subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use ballastd::config::{self, docs};
use clap::{Parser, Subcommand};

/// The ballast real-time audio server.
#[derive(Parser, Debug)]
#[command(name = "ballastd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Print the node-kind reference of config/README.md, generated from the node descriptors.
    ///
    /// With `--write README`, replace the generated part of that file in place instead.
    ConfigDocs {
        /// Rewrite the generated section of this README (between its BEGIN/END GENERATED markers).
        #[arg(long, value_name = "README")]
        write: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { config } => check(&config),
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
            println!(
                "{}: ok: {} node{}, {} link{}, {} in / {} out ports; backend {}, {} Hz, block {} \
                 (latency is known once the graph is compiled)",
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

fn config_docs(write: Option<PathBuf>) -> ExitCode {
    let Some(path) = write else {
        print!("{}", docs::node_kinds_markdown());
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

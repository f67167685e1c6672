//! `ballastd` running as a service: finds and validates the config, restores run-time state, builds the
//! engine, starts the backend, and then lives in the control loop ([`control`]) until SIGINT/SIGTERM.
//!
//! Threads, in the order they start (signals are blocked before the first one, see [`signals`]):
//!
//! ```text
//!  main ── sigwait ──► Signal ──┐
//!  backend (JACK / ALSA) ──► BackendEvent ──┤
//!                                           ▼
//!                       control thread: Controller, state, notify
//!  inference workers (crate::workers) ──► Event ──┘  (model health, finished Learn/Estimate jobs)
//!  reclaimer (drops what the RT side retires) · watchdog (pings systemd while the RT side cycles)
//! ```

pub mod control;
pub mod memory;
pub mod signals;
pub mod state_writer;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tracing::{error, info, warn};

use crate::config::{self, Config, Diagnostic, Errors, Severity};
use crate::paths::{self, ConfigLocation, ConfigSource};

/// How `ballastd` was asked to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--config FILE`; else the XDG/system/built-in search of [`paths::find_config`].
    pub config: Option<PathBuf>,
    /// Serve on the system bus instead of the session bus.
    pub system: bool,
    /// Take the bus name over from a running ballastd.
    pub replace: bool,
    /// No D-Bus service at all.
    pub no_dbus: bool,
}

/// A config as loaded for running: the validated config, its text's digest (to tell whether a saved
/// state was made from it) and the name it goes by in logs.
pub struct Loaded {
    pub config: Config,
    pub digest: String,
    pub name: String,
}

/// Reads and validates the config at `loc` (the built-in one has no file).
pub fn load_config(loc: &ConfigLocation) -> Result<Loaded, Errors> {
    let (text, name) = match (&loc.source, &loc.path) {
        (ConfigSource::BuiltIn, _) | (_, None) => {
            (paths::BUILTIN_CONFIG.to_string(), paths::BUILTIN_CONFIG_NAME.to_string())
        }
        (_, Some(path)) => {
            let name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => (text, name),
                Err(e) => return Err(unreadable(&name, &e)),
            }
        }
    };
    let config = config::parse(&text, &name)?;
    Ok(Loaded { config, digest: crate::state::digest(&text), name })
}

fn unreadable(file: &str, e: &std::io::Error) -> Errors {
    Errors {
        diagnostics: vec![Diagnostic {
            file: file.to_string(),
            line: 0,
            col: 0,
            severity: Severity::Error,
            message: format!("cannot read the config: {e}"),
        }],
    }
}

/// Says where the config came from, and where else was looked.
pub fn describe(loc: &ConfigLocation) -> String {
    let looked = |loc: &ConfigLocation| {
        let l: Vec<String> = loc.looked.iter().map(|p| p.display().to_string()).collect();
        if l.is_empty() {
            String::new()
        } else {
            format!(" (looked for {})", l.join(", "))
        }
    };
    match (&loc.source, &loc.path) {
        (ConfigSource::Cli, Some(p)) => format!("config {} (from --config)", p.display()),
        (ConfigSource::User, Some(p)) => format!("config {} (user config)", p.display()),
        (ConfigSource::System, Some(p)) => format!("config {} (system config){}", p.display(), looked(loc)),
        _ => format!("built-in config (config/default.toml){}", looked(loc)),
    }
}

/// Runs the daemon until it is told to stop. Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot
/// start (invalid config, a backend that cannot be set up).
pub fn run(opts: RunOptions) -> ExitCode {
    // Before any thread exists, so every thread inherits the mask and only sigwait sees the signals.
    if let Err(e) = signals::block() {
        eprintln!("ballastd: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    crate::logging::init();
    info!(version = env!("CARGO_PKG_VERSION"), "ballastd starting");

    let loc = paths::find_config(opts.config.as_deref());
    info!("{}", describe(&loc));
    let loaded = match load_config(&loc) {
        Ok(l) => l,
        Err(errors) => {
            report_errors(&errors);
            error!("cannot start: the config has errors (check it with `ballastd check --config FILE`)");
            return ExitCode::FAILURE;
        }
    };
    for w in &loaded.config.warnings {
        warn!("{w}");
    }
    let memory_locked = memory::lock();

    let dbus = (!opts.no_dbus).then_some(control::DbusOptions {
        bus: if opts.system { crate::dbus::BusKind::System } else { crate::dbus::BusKind::Session },
        replace: opts.replace,
    });
    let service = match control::Service::start(opts.config, loaded, memory_locked, dbus) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let control = match std::thread::Builder::new().name("ballast-control".into()).spawn(move || {
        let code = service.run(rx);
        // The loop can end without a signal (another daemon took the bus name): wake main's sigwait.
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM);
        code
    }) {
        Ok(h) => h,
        Err(e) => {
            error!("cannot start the control thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    loop {
        match signals::wait() {
            Ok(sig) => {
                let stop = matches!(sig, signals::Signal::Stop(_));
                if tx.send(sig).is_err() || stop {
                    break;
                }
            }
            Err(e) => {
                error!("sigwait failed: {e}; stopping");
                let _ = tx.send(signals::Signal::Stop("sigwait error"));
                break;
            }
        }
    }
    match control.join() {
        Ok(code) => code,
        Err(_) => {
            error!("the control thread panicked");
            ExitCode::FAILURE
        }
    }
}

/// Logs every diagnostic as `FILE:LINE:COL: error: reason`, one event each (journald keeps them apart).
pub fn report_errors(errors: &Errors) {
    for d in &errors.diagnostics {
        match d.severity {
            Severity::Error => error!("{d}"),
            _ => warn!("{d}"),
        }
    }
}

/// The config path a reload re-reads: the one given on the command line, else a fresh search (a user
/// config created since the start is picked up, and the log says so).
pub fn reload_location(cli: Option<&Path>) -> ConfigLocation {
    paths::find_config(cli)
}

//! Where `ballastd` looks for its config and keeps its state (XDG base directories, systemd's
//! `StateDirectory=`).
//!
//! The lookups are pure functions of the environment values passed in ([`find_config_in`],
//! [`state_dir_in`]), so they are tested without touching the process environment; [`find_config`] and
//! [`state_dir`] read the real one.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// The built-in config, used when no config file is found: the same text as `config/default.toml`.
pub const BUILTIN_CONFIG: &str = include_str!("../../config/default.toml");

/// How [`BUILTIN_CONFIG`] is named in diagnostics and logs.
pub const BUILTIN_CONFIG_NAME: &str = "<built-in config/default.toml>";

/// The system-wide config file, looked at after the user's.
pub const SYSTEM_CONFIG: &str = "/etc/ballast/ballast.toml";

/// Which rule found the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE` on the command line (used whether or not it exists: a missing one is an error).
    Cli,
    /// `$XDG_CONFIG_HOME/ballast/ballast.toml` (default `~/.config/ballast/ballast.toml`).
    User,
    /// `/etc/ballast/ballast.toml`.
    System,
    /// None of the files exists: [`BUILTIN_CONFIG`].
    BuiltIn,
}

/// The config to load and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigLocation {
    pub source: ConfigSource,
    /// The file to load; `None` for [`ConfigSource::BuiltIn`] (parse [`BUILTIN_CONFIG`] instead).
    pub path: Option<PathBuf>,
    /// The files looked at, in order, up to and including the one found (empty for `--config`), so the
    /// log can say why the built-in config is in use.
    pub looked: Vec<PathBuf>,
}

impl fmt::Display for ConfigLocation {
    /// One line for the start-up log: `config: FILE (from --config)`, `… (user config)`, or the
    /// built-in config with the files that were not there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.source {
            ConfigSource::Cli => "from --config",
            ConfigSource::User => "user config",
            ConfigSource::System => "system config",
            ConfigSource::BuiltIn => {
                let looked: Vec<String> = self.looked.iter().map(|p| p.display().to_string()).collect();
                return write!(f, "{BUILTIN_CONFIG_NAME} (no config file at {})", looked.join(" or "));
            }
        };
        match &self.path {
            Some(p) => write!(f, "{} ({how})", p.display()),
            None => write!(f, "{BUILTIN_CONFIG_NAME}"),
        }
    }
}

/// Finds the config from the process environment: `--config`, else
/// `$XDG_CONFIG_HOME/ballast/ballast.toml` (default `~/.config`), else `/etc/ballast/ballast.toml`, else
/// the built-in config. A `--config` path is returned as is even when it does not exist, so that
/// `config::load` reports it instead of a silently different config running.
pub fn find_config(cli: Option<&Path>) -> ConfigLocation {
    let xdg = std::env::var_os("XDG_CONFIG_HOME");
    find_config_in(cli, xdg.as_deref(), &home_dir(), Path::new(SYSTEM_CONFIG), |p| p.is_file())
}

/// [`find_config`] with the environment passed in: `xdg_config_home` is `$XDG_CONFIG_HOME` (unset, empty
/// or relative values are ignored, as the XDG spec says), `home` the home directory, `system` the
/// system-wide file and `exists` the test for a file.
pub fn find_config_in(
    cli: Option<&Path>,
    xdg_config_home: Option<&OsStr>,
    home: &Path,
    system: &Path,
    exists: impl Fn(&Path) -> bool,
) -> ConfigLocation {
    if let Some(p) = cli {
        return ConfigLocation { source: ConfigSource::Cli, path: Some(p.to_path_buf()), looked: Vec::new() };
    }
    let config_home = absolute(xdg_config_home).unwrap_or_else(|| home.join(".config"));
    let candidates =
        [(ConfigSource::User, config_home.join("ballast/ballast.toml")), (ConfigSource::System, system.into())];
    let mut looked = Vec::new();
    for (source, path) in candidates {
        looked.push(path.clone());
        if exists(&path) {
            return ConfigLocation { source, path: Some(path), looked };
        }
    }
    ConfigLocation { source: ConfigSource::BuiltIn, path: None, looked }
}

/// The state directory: `$STATE_DIRECTORY` (set by systemd for `StateDirectory=`; the first entry when it
/// lists several), else `$XDG_STATE_HOME/ballast`, else `~/.local/state/ballast`.
pub fn state_dir() -> PathBuf {
    let state_directory = std::env::var_os("STATE_DIRECTORY");
    let xdg = std::env::var_os("XDG_STATE_HOME");
    state_dir_in(state_directory.as_deref(), xdg.as_deref(), &home_dir())
}

/// [`state_dir`] with the environment passed in (unset, empty or relative values are ignored).
pub fn state_dir_in(state_directory: Option<&OsStr>, xdg_state_home: Option<&OsStr>, home: &Path) -> PathBuf {
    // systemd joins several StateDirectory= entries with ':'; ours is the first.
    let systemd = state_directory
        .and_then(|v| v.to_str())
        .and_then(|v| v.split(':').next())
        .map(Path::new)
        .filter(|p| p.is_absolute());
    if let Some(dir) = systemd {
        return dir.to_path_buf();
    }
    absolute(xdg_state_home).unwrap_or_else(|| home.join(".local/state")).join("ballast")
}

fn absolute(v: Option<&OsStr>) -> Option<PathBuf> {
    v.map(PathBuf::from).filter(|p| p.is_absolute())
}

/// `$HOME`, else the password database's entry for this user, else `/` (a service account without a
/// home still gets a path; writing there fails later with a message naming it).
fn home_dir() -> PathBuf {
    if let Some(h) = absolute(std::env::var_os("HOME").as_deref()) {
        return h;
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/u";
    const SYSTEM: &str = "/etc/ballast/ballast.toml";

    fn find(cli: Option<&str>, xdg: Option<&str>, existing: &[&str]) -> ConfigLocation {
        find_config_in(cli.map(Path::new), xdg.map(OsStr::new), Path::new(HOME), Path::new(SYSTEM), |p| {
            existing.iter().any(|e| Path::new(e) == p)
        })
    }

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn cli_wins_even_when_missing() {
        let loc = find(Some("/nope.toml"), Some("/x"), &["/x/ballast/ballast.toml", SYSTEM]);
        assert_eq!(loc.source, ConfigSource::Cli);
        assert_eq!(loc.path, Some(PathBuf::from("/nope.toml")));
        assert!(loc.looked.is_empty());
        assert_eq!(loc.to_string(), "/nope.toml (from --config)");
    }

    #[test]
    fn user_config_from_xdg_config_home() {
        let loc = find(None, Some("/x"), &["/x/ballast/ballast.toml", SYSTEM]);
        assert_eq!(loc.source, ConfigSource::User);
        assert_eq!(loc.path, Some(PathBuf::from("/x/ballast/ballast.toml")));
        assert_eq!(loc.looked, paths(&["/x/ballast/ballast.toml"]));
    }

    #[test]
    fn user_config_defaults_to_dot_config() {
        for xdg in [None, Some(""), Some("relative/dir")] {
            let loc = find(None, xdg, &["/home/u/.config/ballast/ballast.toml"]);
            assert_eq!(loc.source, ConfigSource::User, "XDG_CONFIG_HOME={xdg:?}");
            assert_eq!(loc.path, Some(PathBuf::from("/home/u/.config/ballast/ballast.toml")));
        }
    }

    #[test]
    fn system_config_after_user() {
        let loc = find(None, Some("/x"), &[SYSTEM]);
        assert_eq!(loc.source, ConfigSource::System);
        assert_eq!(loc.path, Some(PathBuf::from(SYSTEM)));
        assert_eq!(loc.looked, paths(&["/x/ballast/ballast.toml", SYSTEM]));
    }

    #[test]
    fn built_in_when_nothing_exists() {
        let loc = find(None, None, &[]);
        assert_eq!(loc.source, ConfigSource::BuiltIn);
        assert_eq!(loc.path, None);
        assert_eq!(loc.looked, paths(&["/home/u/.config/ballast/ballast.toml", SYSTEM]));
        let line = loc.to_string();
        assert!(line.contains(BUILTIN_CONFIG_NAME) && line.contains(SYSTEM), "{line}");
    }

    #[test]
    fn built_in_config_is_valid() {
        let cfg = crate::config::parse(BUILTIN_CONFIG, BUILTIN_CONFIG_NAME).expect("built-in config parses");
        assert!(!cfg.graph.nodes.is_empty());
    }

    #[test]
    fn state_dir_order() {
        let home = Path::new(HOME);
        let s = |sd: Option<&str>, xdg: Option<&str>| state_dir_in(sd.map(OsStr::new), xdg.map(OsStr::new), home);
        assert_eq!(s(Some("/var/lib/ballast"), Some("/x")), PathBuf::from("/var/lib/ballast"));
        assert_eq!(s(Some("/a/ballast:/b/other"), None), PathBuf::from("/a/ballast"));
        assert_eq!(s(None, Some("/x")), PathBuf::from("/x/ballast"));
        assert_eq!(s(Some(""), Some("")), PathBuf::from("/home/u/.local/state/ballast"));
        assert_eq!(s(Some("rel"), Some("rel")), PathBuf::from("/home/u/.local/state/ballast"));
        assert_eq!(s(None, None), PathBuf::from("/home/u/.local/state/ballast"));
    }
}

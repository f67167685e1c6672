//! The fixed tables: `[engine]` and `[ports]`.

use std::collections::HashMap;
use std::ops::Range;

use super::diag::Sink;
use super::known_entries;
use super::value::{self, Entry};

/// Which audio backend runs the graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// A JACK client (JACK2, PipeWire's JACK layer, netjack2); JACK imposes rate and block size.
    #[default]
    Jack,
    /// ALSA directly; uses `sample_rate_hz` and `block_size`.
    Alsa,
    /// No device: `ballastd render` runs the graph over files; uses `sample_rate_hz` and `block_size`.
    Offline,
}

impl Backend {
    /// Config names, in the order of the variants.
    pub const NAMES: [&'static str; 3] = ["jack", "alsa", "offline"];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Jack => "jack",
            Backend::Alsa => "alsa",
            Backend::Offline => "offline",
        }
    }
}

/// `[engine]`: how the graph is run. New keys (ALSA device, periods…) are added as fields with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    pub backend: Backend,
    /// JACK client name (also used in logs).
    pub client_name: String,
    /// Where the backend does not impose one (ALSA, offline).
    pub sample_rate_hz: u32,
    /// Frames per processing block where the backend does not impose it (ALSA: the period, offline).
    pub block_size: usize,
    /// JACK server to connect to (`None`: the default, or `$JACK_DEFAULT_SERVER`).
    pub jack_server: Option<String>,
    /// ALSA playback PCM (`hw:0`, `plughw:1,0`, `default`, any PCM from an asoundrc).
    pub device: String,
    /// ALSA capture PCM (`None`: the same as `device`); opened only when there are audio inputs.
    pub capture_device: Option<String>,
    /// ALSA periods in the device buffer.
    pub periods: u32,
    /// SCHED_FIFO priority of the ALSA audio thread (JACK sets its own).
    pub rt_priority: i32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            backend: Backend::Jack,
            client_name: "ballast".to_string(),
            sample_rate_hz: 48_000,
            block_size: 256,
            jack_server: None,
            device: "default".to_string(),
            capture_device: None,
            periods: 3,
            rt_priority: 70,
        }
    }
}

/// Accepted `sample_rate_hz` (telephone rate to 8× 48 kHz).
pub const SAMPLE_RATE_HZ: (u32, u32) = (8_000, 384_000);
/// Accepted `block_size`.
pub const BLOCK_SIZE: (usize, usize) = (1, 8192);
/// Longest port or client name: JACK's full port name (`client:port`) must fit in 256 bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Accepted `periods` (ALSA needs at least two to double-buffer).
pub const PERIODS: (u32, u32) = (2, 16);
/// Accepted `rt_priority` (SCHED_FIFO; JACK's own threads usually run near 70-80).
pub const RT_PRIORITY: (i32, i32) = (1, 95);

const ENGINE_KEYS: [&str; 9] = [
    "backend",
    "client_name",
    "sample_rate_hz",
    "block_size",
    "jack_server",
    "device",
    "capture_device",
    "periods",
    "rt_priority",
];
const PORT_KEYS: [&str; 4] = ["audio_in", "audio_out", "midi_in", "connect"];

/// A name that is safe as a JACK client or port name and in a `node:port` link: ASCII letters,
/// digits, `_`, `-`, `.`; no `:` (JACK's and the links' separator), no spaces.
pub(crate) fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(format!("contains {c:?}; use letters, digits, `_`, `-` and `.`"));
    }
    Ok(())
}

pub(crate) fn engine(sink: &mut Sink<'_>, e: &Entry<'_>) -> EngineSettings {
    let mut s = EngineSettings::default();
    for entry in known_entries(sink, e, "[engine]", &ENGINE_KEYS) {
        let span = value::span_of(entry.item, &entry.key_span);
        match entry.key {
            "backend" => {
                if let Some(name) = value::string(sink, &entry) {
                    match name {
                        "jack" => s.backend = Backend::Jack,
                        "alsa" => s.backend = Backend::Alsa,
                        "offline" => s.backend = Backend::Offline,
                        other => {
                            let hint = super::diag::suggestion(other, Backend::NAMES);
                            sink.error(
                                span,
                                format!("unknown backend \"{other}\"{hint} (one of: {})", Backend::NAMES.join(", ")),
                            );
                        }
                    }
                }
            }
            "client_name" => {
                if let Some(name) = value::string(sink, &entry) {
                    match valid_name(name) {
                        Ok(()) => s.client_name = name.to_string(),
                        Err(why) => sink.error(span, format!("client_name \"{name}\" {why}")),
                    }
                }
            }
            "sample_rate_hz" => {
                if let Some(v) = value::integer(sink, &entry) {
                    let (lo, hi) = SAMPLE_RATE_HZ;
                    match u32::try_from(v).ok().filter(|v| (lo..=hi).contains(v)) {
                        Some(v) => s.sample_rate_hz = v,
                        None => sink.error(span, format!("sample_rate_hz = {v} is out of range {lo}..{hi} (Hz)")),
                    }
                }
            }
            "block_size" => {
                if let Some(v) = value::integer(sink, &entry) {
                    let (lo, hi) = BLOCK_SIZE;
                    match usize::try_from(v).ok().filter(|v| (lo..=hi).contains(v)) {
                        Some(v) => s.block_size = v,
                        None => sink.error(span, format!("block_size = {v} is out of range {lo}..{hi} (frames)")),
                    }
                }
            }
            "jack_server" => {
                if let Some(name) = value::string(sink, &entry) {
                    match valid_name(name) {
                        Ok(()) => s.jack_server = Some(name.to_string()),
                        Err(why) => sink.error(span, format!("jack_server \"{name}\" {why}")),
                    }
                }
            }
            "device" | "capture_device" => {
                if let Some(name) = value::string(sink, &entry) {
                    if name.trim().is_empty() || name.contains('\n') {
                        sink.error(span, format!("{} must name an ALSA PCM, e.g. \"hw:0\" or \"default\"", entry.key));
                    } else if entry.key == "device" {
                        s.device = name.to_string();
                    } else {
                        s.capture_device = Some(name.to_string());
                    }
                }
            }
            "periods" => {
                if let Some(v) = value::integer(sink, &entry) {
                    let (lo, hi) = PERIODS;
                    match u32::try_from(v).ok().filter(|v| (lo..=hi).contains(v)) {
                        Some(v) => s.periods = v,
                        None => sink.error(span, format!("periods = {v} is out of range {lo}..{hi}")),
                    }
                }
            }
            "rt_priority" => {
                if let Some(v) = value::integer(sink, &entry) {
                    let (lo, hi) = RT_PRIORITY;
                    match i32::try_from(v).ok().filter(|v| (lo..=hi).contains(v)) {
                        Some(v) => s.rt_priority = v,
                        None => sink.error(span, format!("rt_priority = {v} is out of range {lo}..{hi}")),
                    }
                }
            }
            _ => unreachable!("known_entries returned an unknown key"),
        }
    }
    s
}

/// `[ports]`: the daemon's own JACK ports, in channel order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ports {
    pub audio_in: Vec<String>,
    pub audio_out: Vec<String>,
    /// MIDI inputs (for generators that play notes); not part of the audio graph.
    pub midi_in: Vec<String>,
    /// `[ports.connect]`: for each of our ports, JACK port-name patterns (`*` and `?` globs) to connect
    /// it to, in the order written. Applied at start, on reconnect and when matching ports appear.
    pub connect: Vec<(String, Vec<String>)>,
}

/// A port name and where it was written.
#[derive(Clone, Debug, Default)]
pub(crate) struct Port {
    pub name: String,
    pub span: Option<Range<usize>>,
}

/// `[ports]` with positions, for link resolution and warnings.
#[derive(Clone, Debug, Default)]
pub(crate) struct PortsDraft {
    pub audio_in: Vec<Port>,
    pub audio_out: Vec<Port>,
    pub midi_in: Vec<Port>,
    pub connect: Vec<(String, Vec<String>)>,
}

impl PortsDraft {
    pub(crate) fn into_public(self) -> Ports {
        let names = |v: Vec<Port>| v.into_iter().map(|p| p.name).collect();
        Ports {
            audio_in: names(self.audio_in),
            audio_out: names(self.audio_out),
            midi_in: names(self.midi_in),
            connect: self.connect,
        }
    }
}

/// A JACK full port name pattern: `client:port`, where either side may use `*` and `?`.
fn valid_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.contains(':') {
        return Err("needs the form client:port (e.g. \"system:playback_1\" or \"system:playback_*\")".into());
    }
    if pattern.len() > 320 || pattern.chars().any(char::is_control) {
        return Err("is not a JACK port name".into());
    }
    Ok(())
}

pub(crate) fn ports(sink: &mut Sink<'_>, e: &Entry<'_>) -> PortsDraft {
    let mut p = PortsDraft::default();
    // JACK port names are unique per client, whatever their direction.
    let mut seen: HashMap<String, &'static str> = HashMap::new();
    let mut connect = None;
    for entry in known_entries(sink, e, "[ports]", &PORT_KEYS) {
        if entry.key == "connect" {
            connect = Some(entry);
            continue;
        }
        let Some(names) = value::strings(sink, &entry) else { continue };
        let (list, key) = match entry.key {
            "audio_in" => (&mut p.audio_in, "audio_in"),
            "audio_out" => (&mut p.audio_out, "audio_out"),
            "midi_in" => (&mut p.midi_in, "midi_in"),
            _ => unreachable!("known_entries returned an unknown key"),
        };
        for (name, span) in names {
            if let Err(why) = valid_name(name) {
                sink.error(span, format!("port name \"{name}\" {why}"));
                continue;
            }
            if let Some(first) = seen.get(name) {
                sink.error(span, format!("duplicate port name \"{name}\" (already in {first})"));
                continue;
            }
            seen.insert(name.to_string(), key);
            list.push(Port { name: name.to_string(), span });
        }
    }
    if let Some(entry) = connect {
        p.connect = connections(sink, &entry, &seen);
    }
    p
}

/// `[ports.connect]`: `our_port = ["pattern", …]`, our port being any declared port.
fn connections(sink: &mut Sink<'_>, e: &Entry<'_>, ours: &HashMap<String, &'static str>) -> Vec<(String, Vec<String>)> {
    let Some(entries) = value::entries(e.item) else {
        value::wrong_type(sink, e, "a table of `port = [\"client:port\", …]`");
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if !ours.contains_key(entry.key) {
            let hint = super::diag::suggestion(entry.key, ours.keys().map(String::as_str));
            let known: Vec<&str> = ours.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none declared".to_string() } else { known.join(", ") };
            sink.error(
                entry.key_span.clone(),
                format!("[ports.connect] names `{}`, which is not one of our ports{hint} (ports: {known})", entry.key),
            );
            continue;
        }
        let Some(patterns) = value::strings(sink, &entry) else { continue };
        let mut list = Vec::with_capacity(patterns.len());
        for (pattern, span) in patterns {
            match valid_pattern(pattern) {
                Ok(()) => list.push(pattern.to_string()),
                Err(why) => sink.error(span, format!("connection pattern \"{pattern}\" {why}")),
            }
        }
        out.push((entry.key.to_string(), list));
    }
    out
}

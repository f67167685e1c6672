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
    /// Frames per processing block where the backend does not impose it (ALSA, offline).
    pub block_size: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            backend: Backend::Jack,
            client_name: "ballast".to_string(),
            sample_rate_hz: 48_000,
            block_size: 256,
        }
    }
}

/// Accepted `sample_rate_hz` (telephone rate to 8× 48 kHz).
pub const SAMPLE_RATE_HZ: (u32, u32) = (8_000, 384_000);
/// Accepted `block_size`.
pub const BLOCK_SIZE: (usize, usize) = (1, 8192);
/// Longest port or client name: JACK's full port name (`client:port`) must fit in 256 bytes.
pub const MAX_NAME_LEN: usize = 64;

const ENGINE_KEYS: [&str; 4] = ["backend", "client_name", "sample_rate_hz", "block_size"];
const PORT_KEYS: [&str; 3] = ["audio_in", "audio_out", "midi_in"];

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
}

impl PortsDraft {
    pub(crate) fn into_public(self) -> Ports {
        let names = |v: Vec<Port>| v.into_iter().map(|p| p.name).collect();
        Ports { audio_in: names(self.audio_in), audio_out: names(self.audio_out), midi_in: names(self.midi_in) }
    }
}

pub(crate) fn ports(sink: &mut Sink<'_>, e: &Entry<'_>) -> PortsDraft {
    let mut p = PortsDraft::default();
    // JACK port names are unique per client, whatever their direction.
    let mut seen: HashMap<String, &'static str> = HashMap::new();
    for entry in known_entries(sink, e, "[ports]", &PORT_KEYS) {
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
    p
}

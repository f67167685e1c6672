//! Standard MIDI Files (SMF, format 1): a writer for generated notes and a reader for checking files and
//! priming from them. Written here rather than taken from a crate: the subset ballast needs (note on/off,
//! tempo, time and key signature, track names) is a few hundred lines against the spec ("Standard MIDI
//! Files 1.0", MIDI Manufacturers Association, 1996), and the reader doubles as the writer's test oracle.

use std::fmt;

use super::events::Note;
use super::tokens::{Key, VOICES, VOICE_NAMES};

/// Ticks per quarter note in written files (divisible by 3 and 16).
pub const TICKS_PER_QUARTER: u16 = 480;

/// General MIDI program 53 "Choir Aahs" (0-based 52): the chorales are vocal music.
const CHOIR_PROGRAM: u8 = 52;

/// Writes `notes` as a format-1 file: a conductor track (name, tempo, 4/4, key signature when `key` is
/// given), then one track per enabled voice, on MIDI channel = voice (0–3), each starting with its name
/// and a program change to Choir Aahs. Note-offs come before note-ons at the same tick, so a repeated
/// pitch is re-struck rather than cut.
pub fn write_smf(notes: &[Note], tempo_bpm: f64, key: Option<Key>, voices: [bool; VOICES], title: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let tracks = 1 + voices.iter().filter(|&&v| v).count();
    out.extend_from_slice(b"MThd");
    out.extend_from_slice(&6u32.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(tracks as u16).to_be_bytes());
    out.extend_from_slice(&TICKS_PER_QUARTER.to_be_bytes());

    let mut conductor = Vec::new();
    meta(&mut conductor, 0, 0x03, title.as_bytes());
    let us_per_quarter = (60_000_000.0 / tempo_bpm.clamp(1.0, 1000.0)).round() as u32;
    meta(&mut conductor, 0, 0x51, &us_per_quarter.to_be_bytes()[1..]);
    // 4/4, 24 MIDI clocks per metronome click, 8 thirty-seconds per quarter.
    meta(&mut conductor, 0, 0x58, &[4, 2, 24, 8]);
    if let Some(k) = key {
        meta(&mut conductor, 0, 0x59, &key_signature(k));
    }
    meta(&mut conductor, 0, 0x2F, &[]);
    chunk(&mut out, &conductor);

    for v in (0..VOICES).filter(|&v| voices[v]) {
        let ch = v as u8;
        let mut events: Vec<(u64, u8, u8, u8)> = Vec::new(); // (tick, order: 0 off / 1 on, pitch, velocity)
        for n in notes.iter().filter(|n| usize::from(n.voice) == v) {
            let on = beats_to_ticks(n.start_beats);
            let off = beats_to_ticks(n.end_beats()).max(on + 1);
            let vel = (n.velocity.clamp(0.0, 1.0) * 127.0).round().max(1.0) as u8;
            events.push((on, 1, n.pitch & 0x7F, vel));
            events.push((off, 0, n.pitch & 0x7F, 0));
        }
        events.sort_unstable();
        let mut track = Vec::new();
        let name = VOICE_NAMES[v];
        let mut title_case = name[..1].to_ascii_uppercase();
        title_case.push_str(&name[1..]);
        meta(&mut track, 0, 0x03, title_case.as_bytes());
        vlq(&mut track, 0);
        track.extend_from_slice(&[0xC0 | ch, CHOIR_PROGRAM]);
        let mut last = 0;
        for (tick, kind, pitch, vel) in events {
            vlq(&mut track, tick - last);
            last = tick;
            if kind == 1 {
                track.extend_from_slice(&[0x90 | ch, pitch, vel]);
            } else {
                track.extend_from_slice(&[0x80 | ch, pitch, 64]);
            }
        }
        meta(&mut track, 0, 0x2F, &[]);
        chunk(&mut out, &track);
    }
    out
}

fn beats_to_ticks(beats: f64) -> u64 {
    (beats.max(0.0) * f64::from(TICKS_PER_QUARTER)).round() as u64
}

/// The key signature meta event's data: sharps (+) or flats (-), then 0 major / 1 minor.
fn key_signature(k: Key) -> [u8; 2] {
    // Sharps of the major key on each tonic pitch class (flat spellings where they are simpler).
    const MAJOR: [i8; 12] = [0, -5, 2, -3, 4, -1, 6, 1, -4, 3, -2, 5];
    let major_tonic = if k.minor { (k.tonic + 3) % 12 } else { k.tonic % 12 };
    [MAJOR[usize::from(major_tonic)] as u8, u8::from(k.minor)]
}

fn meta(track: &mut Vec<u8>, delta: u64, kind: u8, data: &[u8]) {
    vlq(track, delta);
    track.extend_from_slice(&[0xFF, kind]);
    vlq(track, data.len() as u64);
    track.extend_from_slice(data);
}

fn chunk(out: &mut Vec<u8>, track: &[u8]) {
    out.extend_from_slice(b"MTrk");
    out.extend_from_slice(&(track.len() as u32).to_be_bytes());
    out.extend_from_slice(track);
}

/// A variable-length quantity: 7 bits per byte, most significant first, high bit set on all but the last.
fn vlq(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 10];
    let mut i = buf.len() - 1;
    buf[i] = (v & 0x7F) as u8;
    v >>= 7;
    while v > 0 {
        i -= 1;
        buf[i] = 0x80 | (v & 0x7F) as u8;
        v >>= 7;
    }
    out.extend_from_slice(&buf[i..]);
}

/// A note as read from a file, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MidiNote {
    pub channel: u8,
    pub pitch: u8,
    pub velocity: u8,
    pub start_tick: u64,
    pub end_tick: u64,
}

/// One track as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MidiTrack {
    pub name: Option<String>,
    pub notes: Vec<MidiNote>,
}

/// A parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct MidiFile {
    pub format: u16,
    /// Ticks per quarter note (SMPTE time division is refused).
    pub ticks_per_quarter: u16,
    /// The first tempo event, in beats per minute (120 when the file has none, as the spec says).
    pub tempo_bpm: f64,
    pub tracks: Vec<MidiTrack>,
}

impl MidiFile {
    /// Every note of every track in beats; the voice is the track's index among tracks that have notes
    /// (capped at 3), as [`write_smf`] lays them out.
    pub fn notes(&self) -> Vec<Note> {
        let tpq = f64::from(self.ticks_per_quarter);
        let mut out = Vec::new();
        for (voice, t) in self.tracks.iter().filter(|t| !t.notes.is_empty()).enumerate() {
            for n in &t.notes {
                out.push(Note {
                    voice: voice.min(VOICES - 1) as u8,
                    pitch: n.pitch,
                    start_beats: n.start_tick as f64 / tpq,
                    duration_beats: (n.end_tick - n.start_tick) as f64 / tpq,
                    velocity: f32::from(n.velocity) / 127.0,
                });
            }
        }
        out.sort_by(|a, b| a.start_beats.total_cmp(&b.start_beats).then(a.voice.cmp(&b.voice)));
        out
    }
}

/// Why a file could not be read; `offset` is the byte where reading stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MidiError {
    pub offset: usize,
    pub what: String,
}

impl fmt::Display for MidiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a readable standard MIDI file: {} (at byte {})", self.what, self.offset)
    }
}

impl std::error::Error for MidiError {}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, MidiError> {
        Err(MidiError { offset: self.pos, what: what.into() })
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], MidiError> {
        if self.data.len() - self.pos < n {
            return self.err(format!("truncated: {n} more bytes expected"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, MidiError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, MidiError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, MidiError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn vlq(&mut self) -> Result<u64, MidiError> {
        let mut v = 0u64;
        for _ in 0..4 {
            let b = self.u8()?;
            v = (v << 7) | u64::from(b & 0x7F);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        self.err("variable-length quantity longer than 4 bytes")
    }
}

/// Parses a standard MIDI file (format 0 or 1; running status, meta and sysex events; note-on with
/// velocity 0 as note-off). A note still sounding at its track's end ends there.
pub fn read_smf(data: &[u8]) -> Result<MidiFile, MidiError> {
    let mut r = Reader { data, pos: 0 };
    if r.bytes(4).ok() != Some(b"MThd".as_slice()) {
        return Err(MidiError { offset: 0, what: "no MThd header".into() });
    }
    let header_len = r.u32()? as usize;
    if header_len < 6 {
        return r.err(format!("header length {header_len} < 6"));
    }
    let format = r.u16()?;
    let ntracks = r.u16()?;
    let division = r.u16()?;
    r.bytes(header_len - 6)?;
    if format > 2 {
        return r.err(format!("format {format} (0, 1 or 2 expected)"));
    }
    if division & 0x8000 != 0 || division == 0 {
        return r.err("SMPTE or zero time division (ticks per quarter note expected)");
    }
    let mut tempo_bpm = None;
    let mut tracks = Vec::with_capacity(usize::from(ntracks));
    for _ in 0..ntracks {
        if r.bytes(4)? != b"MTrk" {
            r.pos -= 4;
            return r.err("MTrk expected");
        }
        let len = r.u32()? as usize;
        let start = r.pos;
        let body = r.bytes(len)?;
        let mut t = Reader { data: body, pos: 0 };
        let track = read_track(&mut t, &mut tempo_bpm).map_err(|e| MidiError { offset: start + e.offset, ..e })?;
        tracks.push(track);
    }
    Ok(MidiFile { format, ticks_per_quarter: division, tempo_bpm: tempo_bpm.unwrap_or(120.0), tracks })
}

fn read_track(r: &mut Reader<'_>, tempo_bpm: &mut Option<f64>) -> Result<MidiTrack, MidiError> {
    let mut track = MidiTrack::default();
    let mut tick = 0u64;
    let mut status = 0u8;
    // Sounding notes: (channel, pitch) -> (start, velocity), several if re-struck before ending.
    let mut open: Vec<(u8, u8, u64, u8)> = Vec::new();
    while r.pos < r.data.len() {
        tick += r.vlq()?;
        let mut b = r.u8()?;
        if b & 0x80 != 0 {
            if b < 0xF0 {
                status = b;
            }
            // Meta and sysex events cancel running status.
            if b >= 0xF0 {
                status = 0;
            }
        } else {
            if status == 0 {
                r.pos -= 1;
                return r.err("data byte without a status (running status not set)");
            }
            r.pos -= 1;
            b = status;
        }
        match b {
            0xFF => {
                let kind = r.u8()?;
                let len = r.vlq()? as usize;
                let data = r.bytes(len)?;
                match kind {
                    0x03 if track.name.is_none() => track.name = Some(String::from_utf8_lossy(data).into_owned()),
                    0x51 if len == 3 && tempo_bpm.is_none() => {
                        let us = u32::from_be_bytes([0, data[0], data[1], data[2]]).max(1);
                        *tempo_bpm = Some(60_000_000.0 / f64::from(us));
                    }
                    0x2F => break,
                    _ => {}
                }
            }
            0xF0 | 0xF7 => {
                let len = r.vlq()? as usize;
                r.bytes(len)?;
            }
            0x80..=0xEF => {
                let ch = b & 0x0F;
                let kind = b & 0xF0;
                let a = r.u8()?;
                let second = if kind == 0xC0 || kind == 0xD0 { 0 } else { r.u8()? };
                if a & 0x80 != 0 || second & 0x80 != 0 {
                    r.pos -= 1;
                    return r.err("status byte where a data byte belongs");
                }
                let is_on = kind == 0x90 && second > 0;
                let is_off = kind == 0x80 || (kind == 0x90 && second == 0);
                if is_on {
                    open.push((ch, a, tick, second));
                } else if is_off {
                    // The earliest sounding note of that pitch ends (first in, first out).
                    if let Some(i) = open.iter().position(|&(c, p, _, _)| c == ch && p == a) {
                        let (c, p, s, v) = open.remove(i);
                        track.notes.push(MidiNote { channel: c, pitch: p, velocity: v, start_tick: s, end_tick: tick });
                    }
                }
            }
            _ => return r.err(format!("unexpected status byte {b:#04x}")),
        }
    }
    for (c, p, s, v) in open {
        track.notes.push(MidiNote { channel: c, pitch: p, velocity: v, start_tick: s, end_tick: tick });
    }
    track.notes.sort_by_key(|n| (n.start_tick, n.pitch));
    Ok(track)
}

//! Streaming WAV input: the formats ballast reads, packet by packet.
//!
//! Accepted: RIFF/WAVE with 16/24/32-bit integer or 32/64-bit IEEE float samples (plain or
//! WAVE_FORMAT_EXTENSIBLE headers), 1–8 channels, 8–192 kHz. Everything else is refused with a short
//! reason. Reading is done by symphonia's RIFF reader and PCM decoder (hound cannot read 64-bit float,
//! ruuda/hound#93); memory stays at one packet whatever the file's length.

use std::fs::File;
use std::io::ErrorKind;
use std::path::Path;

use symphonia::core::codecs::audio::well_known::{
    CODEC_ID_PCM_F32LE, CODEC_ID_PCM_F64LE, CODEC_ID_PCM_S16LE, CODEC_ID_PCM_S24LE, CODEC_ID_PCM_S32LE,
};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// Lowest and highest sample rate accepted, Hz.
pub const MIN_RATE: u32 = 8_000;
pub const MAX_RATE: u32 = 192_000;
/// Most channels accepted (7.1).
pub const MAX_CHANNELS: usize = 8;

/// Why a file cannot be measured: a short phrase, printed after the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> InputError {
    InputError(msg.into())
}

/// Describes a symphonia error in the words of a user who handed us a file.
fn describe(err: SymError) -> InputError {
    match err {
        SymError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            bad("truncated WAV: the file ends before the end of its data chunk")
        }
        SymError::IoError(e) => bad(format!("read error: {e}")),
        SymError::DecodeError(msg) => bad(format!("malformed WAV ({})", msg.trim_start_matches("wav: "))),
        SymError::Unsupported(msg) if msg.contains("probe") || msg.contains("no suitable") => bad("not a WAV file"),
        SymError::Unsupported(msg) => bad(format!("unsupported WAV ({})", msg.trim_start_matches("wav: "))),
        other => bad(other.to_string()),
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(mut file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What the header says.
#[derive(Debug, Clone, PartialEq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: usize,
    /// Frames in the data chunk, when the header states it.
    pub frames: Option<u64>,
    /// Human description of the sample format (`24-bit integer`).
    pub format: &'static str,
}

/// An open WAV file, decoded one packet at a time into planar `f32`.
pub struct WavStream {
    info: WavInfo,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    planar: Vec<Vec<f32>>,
    frames_read: u64,
}

impl WavStream {
    /// Opens and validates `path`.
    pub fn open(path: &Path) -> Result<Self, InputError> {
        let file = File::open(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => bad("no such file"),
            ErrorKind::PermissionDenied => bad("permission denied"),
            _ => bad(format!("cannot open: {e}")),
        })?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(bad("is a directory"));
        }
        // Tell "not a WAV at all" from "a WAV cut short" before the probe, which reports both as
        // an early end of file.
        let mut head = [0u8; 12];
        let got = read_up_to(&file, &mut head).map_err(|e| bad(format!("read error: {e}")))?;
        if got < 4 || &head[..4] != b"RIFF" || (got >= 12 && &head[8..12] != b"WAVE") {
            return Err(bad("not a WAV file (no RIFF/WAVE header)"));
        }
        if got < 12 {
            return Err(bad("truncated WAV: the file ends inside its header"));
        }
        let file = {
            use std::io::Seek;
            let mut f = file;
            f.rewind().map_err(|e| bad(format!("read error: {e}")))?;
            f
        };
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        hint.with_extension("wav");
        let reader = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| match e {
                // The probe reports any file it recognises no format in as "unsupported".
                SymError::Unsupported(_) => bad("not a WAV file"),
                SymError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    bad("truncated WAV: the file ends inside its header")
                }
                other => describe(other),
            })?;
        let track = reader.default_track(TrackType::Audio).ok_or_else(|| bad("no audio in the file"))?;
        let track_id = track.id;
        let frames = track.num_frames;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| bad("no audio parameters in the header"))?
            .clone();
        let format = match params.codec {
            c if c == CODEC_ID_PCM_S16LE => "16-bit integer",
            c if c == CODEC_ID_PCM_S24LE => "24-bit integer",
            c if c == CODEC_ID_PCM_S32LE => "32-bit integer",
            c if c == CODEC_ID_PCM_F32LE => "32-bit float",
            c if c == CODEC_ID_PCM_F64LE => "64-bit float",
            _ => {
                return Err(bad(
                    "unsupported sample format (16/24/32-bit integer and 32/64-bit float PCM are supported)",
                ))
            }
        };
        let sample_rate = params.sample_rate.ok_or_else(|| bad("no sample rate in the header"))?;
        if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
            return Err(bad(format!("sample rate {sample_rate} Hz is out of range ({MIN_RATE}–{MAX_RATE} Hz)")));
        }
        let channels = params.channels.as_ref().map(|c| c.count()).ok_or_else(|| bad("no channel count"))?;
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(bad(format!("{channels} channels (1–{MAX_CHANNELS} are supported)")));
        }
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(describe)?;
        Ok(Self {
            info: WavInfo { sample_rate, channels, frames, format },
            reader,
            decoder,
            track_id,
            planar: Vec::new(),
            frames_read: 0,
        })
    }

    /// The header's facts.
    pub fn info(&self) -> &WavInfo {
        &self.info
    }

    /// Frames decoded so far.
    pub fn frames_read(&self) -> u64 {
        self.frames_read
    }

    /// The next packet as planar channels (`None` at the end of the data).
    pub fn next_chunk(&mut self) -> Result<Option<&[Vec<f32>]>, InputError> {
        loop {
            let packet = match self.reader.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(None),
                Err(e) => return Err(describe(e)),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            let buf = self.decoder.decode(&packet).map_err(describe)?;
            buf.copy_to_vecs_planar::<f32>(&mut self.planar);
            let frames = self.planar.first().map_or(0, |c| c.len());
            self.frames_read += frames as u64;
            if frames == 0 {
                continue;
            }
            return Ok(Some(&self.planar));
        }
    }
}

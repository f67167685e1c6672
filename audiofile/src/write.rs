//! Atomic WAV output: samples go to a temporary file in the destination's directory, which
//! [`WavWriter::commit`] fsyncs and renames over the final name (then fsyncs the directory). A writer
//! dropped without a commit removes its temporary file. So the final name either keeps what it held
//! before or holds a complete file, whatever fails or stops midway (a `SIGKILL` can leave a hidden
//! `.NAME.PID.N.tmp` behind, never a partial `NAME`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, ErrorKind};
use std::path::{Path, PathBuf};

/// Sample encoding of the written file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SampleFormat {
    /// 32-bit IEEE float: lossless for the engine's `f32`, values beyond ±1.0 are kept.
    #[default]
    F32,
    /// 16-bit integer: `round(x · 32768)`, clipped to the integer range (no dither).
    S16,
    /// 24-bit integer: `round(x · 8388608)`, clipped to the integer range (no dither).
    S24,
}

impl SampleFormat {
    /// The names accepted on command lines, in the order of [`SampleFormat::ALL`].
    pub const NAMES: [&'static str; 3] = ["f32", "s16", "s24"];
    pub const ALL: [SampleFormat; 3] = [SampleFormat::F32, SampleFormat::S16, SampleFormat::S24];

    /// Bits per sample in the file.
    pub fn bits(self) -> u16 {
        match self {
            SampleFormat::F32 => 32,
            SampleFormat::S16 => 16,
            SampleFormat::S24 => 24,
        }
    }

    /// The command-line name (`f32`, `s16`, `s24`).
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::F32 => "f32",
            SampleFormat::S16 => "s16",
            SampleFormat::S24 => "s24",
        }
    }

    /// Full scale of the integer formats (the value `1.0` maps to), as symphonia and most readers
    /// scale on input: 2^(bits−1).
    fn full_scale(self) -> f32 {
        match self {
            SampleFormat::F32 => 1.0,
            SampleFormat::S16 => 32_768.0,
            SampleFormat::S24 => 8_388_608.0,
        }
    }
}

impl std::str::FromStr for SampleFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown sample format `{s}` (one of: {})", Self::NAMES.join(", ")))
    }
}

/// Why the output cannot be written: a short phrase, printed after the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputError(pub String);

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OutputError {}

fn io_error(what: &str, e: &std::io::Error) -> OutputError {
    OutputError(match e.kind() {
        ErrorKind::NotFound => format!("{what}: the directory does not exist"),
        ErrorKind::PermissionDenied => format!("{what}: permission denied"),
        _ => format!("{what}: {e}"),
    })
}

fn hound_error(e: hound::Error) -> OutputError {
    match e {
        hound::Error::IoError(e) => io_error("write error", &e),
        other => OutputError(format!("write error: {other}")),
    }
}

/// The WAV data chunk's size field is 32 bits; hound counts written bytes in a `u32`.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - 4096;

/// A WAV file being written atomically (see the module docs).
pub struct WavWriter {
    wav: Option<hound::WavWriter<BufWriter<File>>>,
    temp: PathBuf,
    dest: PathBuf,
    format: SampleFormat,
    channels: usize,
    frames: u64,
    clipped: u64,
    committed: bool,
}

impl WavWriter {
    /// Starts writing `dest`: checks that it can be written (an existing directory, a missing or
    /// read-only directory are refused here, before any work is done) and creates the temporary file.
    pub fn create(dest: &Path, sample_rate: u32, channels: usize, format: SampleFormat) -> Result<Self, OutputError> {
        let channels_u16 = u16::try_from(channels)
            .ok()
            .filter(|&c| c > 0)
            .ok_or_else(|| OutputError(format!("cannot write {channels} channels")))?;
        if dest.is_dir() {
            return Err(OutputError("is a directory".into()));
        }
        let name = dest.file_name().ok_or_else(|| OutputError("not a file name".into()))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dir.exists() && !dir.is_dir() {
            return Err(OutputError(format!("{} is not a directory", dir.display())));
        }
        if !dir.is_dir() {
            return Err(OutputError(format!("the directory {} does not exist", dir.display())));
        }
        let (temp, file) = create_temp(&dir, &name.to_string_lossy())?;
        let spec = hound::WavSpec {
            channels: channels_u16,
            sample_rate,
            bits_per_sample: format.bits(),
            sample_format: match format {
                SampleFormat::F32 => hound::SampleFormat::Float,
                SampleFormat::S16 | SampleFormat::S24 => hound::SampleFormat::Int,
            },
        };
        let mut me = Self {
            wav: None,
            temp,
            dest: dest.to_path_buf(),
            format,
            channels,
            frames: 0,
            clipped: 0,
            committed: false,
        };
        // On error `me` drops here and removes the temporary file.
        me.wav = Some(hound::WavWriter::new(BufWriter::with_capacity(1 << 16, file), spec).map_err(hound_error)?);
        Ok(me)
    }

    /// Appends planar channels (one slice per channel, all the same length; the shortest wins).
    pub fn write(&mut self, planar: &[&[f32]]) -> Result<(), OutputError> {
        if planar.len() != self.channels {
            return Err(OutputError(format!("{} channels handed to a {}-channel file", planar.len(), self.channels)));
        }
        let n = planar.iter().map(|c| c.len()).min().unwrap_or(0);
        let bytes = (self.frames + n as u64) * self.channels as u64 * u64::from(self.format.bits() / 8);
        if bytes > MAX_DATA_BYTES {
            return Err(OutputError("the output would exceed the 4 GiB size limit of a WAV file".into()));
        }
        let Some(wav) = self.wav.as_mut() else {
            return Err(OutputError("writer already closed".into()));
        };
        match self.format {
            SampleFormat::F32 => {
                for i in 0..n {
                    for c in planar {
                        wav.write_sample(c[i]).map_err(hound_error)?;
                    }
                }
            }
            SampleFormat::S16 | SampleFormat::S24 => {
                let scale = self.format.full_scale();
                let (lo, hi) = (-scale, scale - 1.0);
                for i in 0..n {
                    for c in planar {
                        let v = (c[i] * scale).round();
                        // NaN (the engine never outputs one) is written as 0 and counted as clipped.
                        let q = if v.is_nan() { 0.0 } else { v.clamp(lo, hi) };
                        if q != v {
                            self.clipped += 1;
                        }
                        wav.write_sample(q as i32).map_err(hound_error)?;
                    }
                }
            }
        }
        self.frames += n as u64;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Samples that did not fit an integer format and were clipped (always 0 for `f32`).
    pub fn clipped_samples(&self) -> u64 {
        self.clipped
    }

    /// The file's sample format.
    pub fn format(&self) -> SampleFormat {
        self.format
    }

    /// Completes the file: header, flush, fsync, rename over the final name, fsync of the directory.
    /// On error the temporary file is removed and the final name is untouched.
    pub fn commit(mut self) -> Result<u64, OutputError> {
        let wav = self.wav.take().ok_or_else(|| OutputError("writer already closed".into()))?;
        wav.finalize().map_err(hound_error)?;
        File::open(&self.temp).and_then(|f| f.sync_all()).map_err(|e| io_error("fsync", &e))?;
        std::fs::rename(&self.temp, &self.dest).map_err(|e| io_error("rename", &e))?;
        self.committed = true;
        // Durability of the rename itself; a failure here no longer endangers the file's content.
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(self.frames)
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        if !self.committed {
            // hound's own drop finalizes the header; the file is deleted right after anyway.
            drop(self.wav.take());
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Creates `.NAME.PID.N.tmp` in `dir` (exclusively, so two renders never share one).
fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File), OutputError> {
    let pid = std::process::id();
    for n in 0..1000u32 {
        let temp = dir.join(format!(".{name}.{pid}.{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(f) => return Ok((temp, f)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(match e.kind() {
                    ErrorKind::PermissionDenied => {
                        OutputError(format!("cannot write in {}: permission denied", dir.display()))
                    }
                    _ => io_error(&format!("cannot create a file in {}", dir.display()), &e),
                })
            }
        }
    }
    Err(OutputError(format!("cannot create a temporary file in {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ballast-audiofile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn round_trip_every_format() {
        let dir = scratch("rt");
        let l: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.01).sin() * 0.9).collect();
        let r: Vec<f32> = l.iter().map(|x| -x * 0.5).collect();
        for format in SampleFormat::ALL {
            let path = dir.join(format!("{}.wav", format.name()));
            let mut w = WavWriter::create(&path, 44_100, 2, format).unwrap();
            w.write(&[&l[..400], &r[..400]]).unwrap();
            w.write(&[&l[400..], &r[400..]]).unwrap();
            assert!(!path.exists(), "nothing under the final name before commit");
            assert_eq!(w.commit().unwrap(), 1000);
            let mut s = crate::WavStream::open(&path).unwrap();
            assert_eq!(s.info().sample_rate, 44_100);
            assert_eq!(s.info().channels, 2);
            assert_eq!(s.info().frames, Some(1000));
            let mut got = [Vec::new(), Vec::new()];
            while let Some(chunk) = s.next_chunk().unwrap() {
                got[0].extend_from_slice(&chunk[0]);
                got[1].extend_from_slice(&chunk[1]);
            }
            // Half an integer step is the rounding error; f32 is exact.
            let tol = if format == SampleFormat::F32 { 0.0 } else { 0.5 / format.full_scale() + 1e-9 };
            for (want, got) in [(&l, &got[0]), (&r, &got[1])] {
                let err = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(err <= tol, "{format:?}: max error {err} > {tol}");
            }
        }
        assert_eq!(leftovers(&dir).len(), 3, "only the three files: {:?}", leftovers(&dir));
    }

    #[test]
    fn clipping_is_counted() {
        let dir = scratch("clip");
        let mut w = WavWriter::create(&dir.join("c.wav"), 48_000, 1, SampleFormat::S16).unwrap();
        w.write(&[&[0.5, 1.0, -1.0, 1.5, -2.0]]).unwrap();
        // 1.0 → 32768 does not fit (max 32767); −1.0 → −32768 does.
        assert_eq!(w.clipped_samples(), 3);
        w.commit().unwrap();
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = scratch("drop");
        let path = dir.join("out.wav");
        std::fs::write(&path, b"previous").unwrap();
        {
            let mut w = WavWriter::create(&path, 48_000, 2, SampleFormat::F32).unwrap();
            w.write(&[&[0.1; 64], &[0.2; 64]]).unwrap();
            assert_eq!(leftovers(&dir).len(), 2, "the temporary file sits next to the output");
        }
        assert_eq!(leftovers(&dir), vec!["out.wav".to_string()]);
        assert_eq!(std::fs::read(&path).unwrap(), b"previous", "the old file is untouched");
    }

    #[test]
    fn unwritable_destinations() {
        let dir = scratch("bad");
        let e = WavWriter::create(&dir, 48_000, 2, SampleFormat::F32).err().unwrap();
        assert_eq!(e.0, "is a directory");
        let e = WavWriter::create(&dir.join("nope/out.wav"), 48_000, 2, SampleFormat::F32).err().unwrap();
        assert!(e.0.contains("does not exist"), "{e}");
    }
}

//! A (dry, wet) pair of WAV files read whole into planar `f32`, checked to match.

use std::path::Path;

use ballast_audiofile::WavStream;

/// Longest stretch of a pair used, in seconds: beyond it the estimate gains nothing and a worker would
/// hold hundreds of megabytes.
pub const MAX_SECONDS: f64 = 600.0;

/// Two files of the same rate, width and length.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioPair {
    pub sample_rate: u32,
    pub dry: Vec<Vec<f32>>,
    pub wet: Vec<Vec<f32>>,
}

impl AudioPair {
    pub fn frames(&self) -> usize {
        self.dry.first().map_or(0, Vec::len)
    }

    pub fn seconds(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Reads both files (at most [`MAX_SECONDS`] of each). They must have the same sample rate, the same
/// channel count (1 or 2: the estimator's features are mono or stereo) and the same length, as a render
/// of the dry file through a compressor has. Errors name the file and say what differs.
pub fn read_pair(dry: &Path, wet: &Path) -> Result<AudioPair, String> {
    let (rate_d, d) = read(dry)?;
    let (rate_w, w) = read(wet)?;
    if rate_d != rate_w {
        return Err(format!(
            "the files' sample rates differ: {} is {rate_d} Hz, {} is {rate_w} Hz (the wet file must be the dry one \
             processed, at the same rate)",
            dry.display(),
            wet.display()
        ));
    }
    if d.len() != w.len() {
        return Err(format!(
            "the files' channel counts differ: {} has {}, {} has {}",
            dry.display(),
            d.len(),
            wet.display(),
            w.len()
        ));
    }
    let (nd, nw) = (d[0].len(), w[0].len());
    if nd != nw {
        return Err(format!(
            "the files' lengths differ: {} has {nd} frames, {} has {nw} (the wet file must be the dry one processed, \
             sample for sample)",
            dry.display(),
            wet.display()
        ));
    }
    Ok(AudioPair { sample_rate: rate_d, dry: d, wet: w })
}

fn read(path: &Path) -> Result<(u32, Vec<Vec<f32>>), String> {
    let at = |why: String| format!("{}: {why}", path.display());
    let mut s = WavStream::open(path).map_err(|e| at(e.to_string()))?;
    let (rate, channels) = (s.info().sample_rate, s.info().channels);
    if channels > 2 {
        return Err(at(format!("{channels} channels; the estimator takes mono or stereo files")));
    }
    let max = (MAX_SECONDS * f64::from(rate)) as usize;
    let mut planar: Vec<Vec<f32>> = vec![Vec::new(); channels];
    while let Some(chunk) = s.next_chunk().map_err(|e| at(e.to_string()))? {
        for (dst, src) in planar.iter_mut().zip(chunk) {
            let room = max - dst.len();
            dst.extend_from_slice(&src[..src.len().min(room)]);
        }
        if planar[0].len() >= max {
            break;
        }
    }
    if planar[0].is_empty() {
        return Err(at("no audio in the file".into()));
    }
    Ok((rate, planar))
}

//! `ballastctl measure`: streams a WAV file through `ballast_dsp::loudness::LoudnessMeter` and reports
//! the EBU R128 numbers.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use ballast_dsp::loudness::{LoudnessMeter, LoudnessSummary};
use ballast_dsp::Processor;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use ballast_audiofile::{InputError, WavStream, MAX_CHANNELS};

/// Files longer than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_SECONDS: u64 = 60;

/// Largest chunk handed to the meter at once; packets are smaller, this only sizes `prepare`.
const MAX_BLOCK: usize = 8192;

/// Measures `path`. `progress` allows a progress bar on stderr (shown only on a terminal, for long
/// files).
pub fn measure(path: &Path, progress: bool) -> Result<LoudnessSummary, InputError> {
    let mut wav = WavStream::open(path)?;
    let info = wav.info().clone();
    let mut meter = LoudnessMeter::new(info.channels);
    Processor::prepare(&mut meter, info.sample_rate as f64, MAX_BLOCK);

    let bar = match info.frames {
        Some(total)
            if progress
                && std::io::stderr().is_terminal()
                && total >= PROGRESS_MIN_SECONDS * info.sample_rate as u64 =>
        {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} measuring [{bar:40}] {percent:>3}% eta {eta}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            Some(bar)
        }
        _ => None,
    };

    loop {
        let chunk = match wav.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                return Err(e);
            }
        };
        let frames = chunk.first().map_or(0, |c| c.len());
        let n_ch = chunk.len().min(MAX_CHANNELS);
        for start in (0..frames).step_by(MAX_BLOCK) {
            let end = (start + MAX_BLOCK).min(frames);
            let mut refs: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            for (r, c) in refs.iter_mut().zip(chunk) {
                *r = &c[start..end];
            }
            meter.feed(&refs[..n_ch]);
        }
        if let Some(b) = &bar {
            b.set_position(wav.frames_read());
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if let Some(total) = info.frames {
        if wav.frames_read() < total {
            return Err(InputError(format!(
                "truncated WAV: the header announces {total} frames, the file holds {}",
                wav.frames_read()
            )));
        }
    }
    Ok(meter.summary())
}

/// A reading as JSON: the number, or `null` when it is not finite.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        // Rust's shortest round-trip form; never an exponent, so always valid JSON.
        format!("{x}")
    } else {
        "null".to_string()
    }
}

/// Loudness range is undefined (not 0) when nothing passed the gates.
fn lra(s: &LoudnessSummary) -> f64 {
    if s.integrated_lufs.is_finite() {
        s.lra_lu
    } else {
        f64::NAN
    }
}

/// The summary as one JSON object, keys in the documented order.
pub fn to_json(s: &LoudnessSummary) -> String {
    format!(
        "{{\"integrated_lufs\": {}, \"lra_lu\": {}, \"true_peak_dbtp\": {}, \"max_momentary_lufs\": {}, \
         \"max_short_term_lufs\": {}, \"sample_peak_dbfs\": {}}}",
        json_number(s.integrated_lufs),
        json_number(lra(s)),
        json_number(s.true_peak_dbtp),
        json_number(s.max_momentary_lufs),
        json_number(s.max_short_term_lufs),
        json_number(s.sample_peak_dbfs),
    )
}

fn text_number(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-inf".to_string()
    }
}

/// The summary as aligned text lines.
pub fn to_text(s: &LoudnessSummary) -> String {
    let rows = [
        ("Integrated loudness", text_number(s.integrated_lufs), "LUFS"),
        ("Loudness range", if s.integrated_lufs.is_finite() { text_number(s.lra_lu) } else { "-inf".into() }, "LU"),
        ("True peak", text_number(s.true_peak_dbtp), "dBTP"),
        ("Max momentary", text_number(s.max_momentary_lufs), "LUFS"),
        ("Max short-term", text_number(s.max_short_term_lufs), "LUFS"),
        ("Sample peak", text_number(s.sample_peak_dbfs), "dBFS"),
    ];
    rows.iter().map(|(name, v, unit)| format!("{name:<20} {v:>7} {unit}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_null_and_minus_inf() {
        let s = LoudnessSummary {
            integrated_lufs: f64::NEG_INFINITY,
            lra_lu: 0.0,
            true_peak_dbtp: f64::NEG_INFINITY,
            max_momentary_lufs: f64::NEG_INFINITY,
            max_short_term_lufs: f64::NEG_INFINITY,
            sample_peak_dbfs: f64::NEG_INFINITY,
        };
        assert_eq!(
            to_json(&s),
            "{\"integrated_lufs\": null, \"lra_lu\": null, \"true_peak_dbtp\": null, \"max_momentary_lufs\": null, \
             \"max_short_term_lufs\": null, \"sample_peak_dbfs\": null}"
        );
        assert!(to_text(&s).lines().all(|l| l.contains("-inf")));
    }

    #[test]
    fn numbers_round_trip() {
        assert_eq!(json_number(-23.04), "-23.04");
        assert_eq!(json_number(1e-300).parse::<f64>().unwrap(), 1e-300);
        assert_eq!(text_number(-23.04), "-23.0");
    }
}

//! Sound sources: nodes with no inputs and N output channels that all carry the same mono signal.
//!
//! | kind | node | what |
//! |---|---|---|
//! | `tone` | [`Tone`] | band-limited sine / saw / square / triangle (PolyBLEP, PolyBLAMP at 2 fs, decimated) |
//! | `noise` | [`Noise`] | seeded white or pink noise (Kellet's refined pinking filter) |
//! | `sweep` | [`Sweep`] | exponential sine sweep (Farina 2000), once or repeating |
//! | `synth` | [`Synth`] | 16-voice polyphonic synth driven by sample-timed [`NoteEvent`]s |
//!
//! Every node renders the mono signal into its first output and copies it to the others, so the
//! channel count costs a memcpy per extra channel and nothing else.

mod decimator;
mod envelope;
mod noise;
mod oscillator;
mod sweep;
mod synth;

pub use decimator::Decimator;
pub use envelope::{Adsr, AdsrTimes, Stage};
pub use noise::{Noise, NoiseColor, PinkFilter, NOISE_DESCRIPTOR};
pub use oscillator::{BlepOscillator, Tone, Waveform, TONE_DESCRIPTOR, WAVEFORMS};
pub use sweep::{Sweep, SWEEP_DESCRIPTOR};
pub use synth::{NoteEvent, NoteKind, Synth, VoiceInfo, EVENT_CAPACITY, SYNTH_DESCRIPTOR, VOICES};

use crate::param::{Smoothing, Unit};

/// Ramp time of every generator's `level_db`: long enough that a jump of 60 dB does not click, short
/// enough to feel immediate (and to land well within a block of 1024 frames at 48 kHz).
pub(crate) const LEVEL_SMOOTHING: Smoothing = Smoothing::Logarithmic { ms: 20.0 };

/// Range of `level_db`. −120 dB is below the noise floor of 24-bit audio, so the range reaches
/// "silent" while the gain stays positive, which the logarithmic smoother needs.
pub(crate) const LEVEL_MIN_DB: f32 = -120.0;

/// Unit of the waveform choice shared by `tone` and `synth`.
pub(crate) const WAVEFORM_UNIT: Unit = Unit::Choice(&WAVEFORMS);

/// Copies the mono signal in `outputs[0][..n]` to every other output channel.
#[inline]
pub(crate) fn fan_out(outputs: &mut [&mut [f32]]) {
    if let Some((first, rest)) = outputs.split_first_mut() {
        for ch in rest {
            let n = ch.len().min(first.len());
            ch[..n].copy_from_slice(&first[..n]);
        }
    }
}

/// Frames in this block: the length of the shortest output channel (0 with no outputs).
#[inline]
pub(crate) fn block_len(outputs: &[&mut [f32]]) -> usize {
    outputs.iter().map(|c| c.len()).min().unwrap_or(0)
}

//! The note model's vocabulary (the same constants as `models/train/notes/tokens.py`).
//!
//! The time grid is the sixteenth note. A piece is `[BOS, KEY, s0, a0, t0, b0, s1, a1, …]`: after the key,
//! one token per step and voice (soprano, alto, tenor, bass): [`REST`], [`HOLD`] (the voice's note goes
//! on) or the onset of a MIDI pitch in [`PITCH_LO`]`..=`[`PITCH_HI`].

use std::fmt;

/// No note in this voice at this step.
pub const REST: u32 = 0;
/// The voice's current note goes on (after a rest: the rest goes on).
pub const HOLD: u32 = 1;
/// Lowest and highest MIDI pitch with an onset token.
pub const PITCH_LO: u8 = 30;
pub const PITCH_HI: u8 = 89;
/// The first onset token (MIDI [`PITCH_LO`]).
pub const ONSET0: u32 = 2;
/// The first key token: `KEY0 + tonic_pitch_class * 2 + minor`.
pub const KEY0: u32 = ONSET0 + (PITCH_HI - PITCH_LO) as u32 + 1;
/// Start of a piece.
pub const BOS: u32 = KEY0 + 24;
/// Tokens in all.
pub const VOCAB: usize = BOS as usize + 1;
/// Voices: soprano, alto, tenor, bass, in this order in the stream.
pub const VOICES: usize = 4;
/// The voice-slot conditioning value for the key token.
pub const KEY_SLOT: i64 = 4;
/// Sixteenths per 4/4 bar (the bar-position conditioning's range).
pub const STEPS_PER_BAR: usize = 16;
/// Sixteenths per quarter-note beat.
pub const STEPS_PER_BEAT: usize = 4;
/// Voice names, in stream order.
pub const VOICE_NAMES: [&str; VOICES] = ["soprano", "alto", "tenor", "bass"];

/// The onset token of `pitch`, if the vocabulary has one.
pub fn onset(pitch: u8) -> Option<u32> {
    (PITCH_LO..=PITCH_HI).contains(&pitch).then(|| ONSET0 + u32::from(pitch - PITCH_LO))
}

/// The pitch a token starts, if it is an onset.
pub fn onset_pitch(token: u32) -> Option<u8> {
    (ONSET0..KEY0).contains(&token).then(|| PITCH_LO + (token - ONSET0) as u8)
}

/// A key: tonic pitch class (0 = C) and mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub tonic: u8,
    pub minor: bool,
}

impl Key {
    /// Its token.
    pub fn token(self) -> u32 {
        KEY0 + u32::from(self.tonic % 12) * 2 + u32::from(self.minor)
    }

    /// The key a key token stands for.
    pub fn from_token(token: u32) -> Option<Key> {
        (KEY0..BOS).contains(&token).then(|| Key { tonic: ((token - KEY0) / 2) as u8, minor: (token - KEY0) % 2 == 1 })
    }

    /// The same mode `semitones` higher.
    pub fn transposed(self, semitones: i32) -> Key {
        Key { tonic: (i32::from(self.tonic) + semitones).rem_euclid(12) as u8, minor: self.minor }
    }

    /// Parses `C`, `f#`, `Bb minor`, `a`, `Eb major`, `c#m`: a capital letter alone means major, a small
    /// one minor, unless a mode word or `m` follows.
    pub fn parse(s: &str) -> Result<Key, String> {
        let t = s.trim();
        let mut chars = t.chars();
        let letter = chars.next().ok_or_else(|| "empty key".to_string())?;
        let base = match letter.to_ascii_uppercase() {
            'C' => 0,
            'D' => 2,
            'E' => 4,
            'F' => 5,
            'G' => 7,
            'A' => 9,
            'B' => 11,
            _ => return Err(format!("key `{s}`: expected a note name A–G, e.g. `G`, `f#`, `Bb minor`")),
        };
        let rest: String = chars.collect();
        let (accidental, mode) = match rest.chars().next() {
            Some('#') => (1, &rest[1..]),
            // No mode word starts with `b`, so a `b` after the letter is always a flat.
            Some('b') => (-1, &rest[1..]),
            _ => (0, rest.as_str()),
        };
        let minor = match mode.trim().to_ascii_lowercase().as_str() {
            "" => letter.is_ascii_lowercase(),
            "m" | "min" | "minor" => true,
            "maj" | "major" => false,
            other => return Err(format!("key `{s}`: unknown mode `{other}` (major or minor)")),
        };
        Ok(Key { tonic: (base + accidental + 12) as u8 % 12, minor })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 12] = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"];
        write!(f, "{} {}", NAMES[usize::from(self.tonic % 12)], if self.minor { "minor" } else { "major" })
    }
}

/// A piece as the model reads it: key and the four voices' tokens per sixteenth step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPiece {
    pub key: Option<Key>,
    /// Sixteenths of silence before the first step in the bar grid (a pickup's offset), so step `i` lies
    /// at bar position `(i + offset_steps) % bar_steps`.
    pub offset_steps: usize,
    /// Sixteenths per bar (16 for 4/4, 12 for 3/4).
    pub bar_steps: usize,
    pub steps: Vec<[u32; VOICES]>,
}

impl TokenPiece {
    /// Reads a token stream `[BOS?, KEY?, voice tokens…]`; a trailing partial step is an error.
    pub fn from_stream(tokens: &[u32], offset_steps: usize, bar_steps: usize) -> Result<TokenPiece, String> {
        let mut rest = tokens;
        if rest.first() == Some(&BOS) {
            rest = &rest[1..];
        }
        let key = rest.first().and_then(|&t| Key::from_token(t));
        if key.is_some() {
            rest = &rest[1..];
        }
        if rest.len() % VOICES != 0 {
            return Err(format!("{} voice tokens is not a whole number of 4-voice steps", rest.len()));
        }
        if let Some(bad) = rest.iter().find(|&&t| t >= KEY0) {
            return Err(format!("token {bad} is not a voice token (rest, hold or onset)"));
        }
        let steps = rest.chunks_exact(VOICES).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        Ok(TokenPiece { key, offset_steps, bar_steps: bar_steps.max(1), steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_round_trip_through_tokens() {
        let cases = [
            ("G", 7, false),
            ("g", 7, true),
            ("f#", 6, true),
            ("Bb minor", 10, true),
            ("Eb major", 3, false),
            ("c#m", 1, true),
            ("bb", 10, true),
            ("B", 11, false),
            ("Cb", 11, false),
        ];
        for (text, tonic, minor) in cases {
            let k = Key::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(k, Key { tonic, minor }, "{text}");
            assert_eq!(Key::from_token(k.token()), Some(k));
        }
        for bad in ["", "H", "G dorian"] {
            assert!(Key::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Key { tonic: 10, minor: false }.transposed(3), Key { tonic: 1, minor: false });
        assert_eq!(onset(PITCH_LO).and_then(onset_pitch), Some(PITCH_LO));
        assert_eq!(onset(PITCH_HI + 1), None);
        assert_eq!(onset_pitch(KEY0), None);
    }
}

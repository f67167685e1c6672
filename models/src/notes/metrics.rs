//! Quality figures for four-part music, computed the same way for generated pieces and Bach's held-out
//! chorales (issue 7): share of notes in the piece's key, share within SATB ranges, parallel fifths and
//! octaves, rhythmic alignment across voices.

use super::events::Note;
use super::tokens::{Key, VOICES};

/// Krumhansl–Kessler key profiles (C. L. Krumhansl and E. J. Kessler, "Tracing the dynamic changes in
/// perceived tonal organization in a spatial representation of musical keys", Psychological Review 89(4),
/// 1982; used for key finding by the Krumhansl–Schmuckler algorithm, Krumhansl, "Cognitive Foundations of
/// Musical Pitch", 1990, ch. 4), from the tonic up.
const MAJOR_PROFILE: [f64; 12] = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88];
const MINOR_PROFILE: [f64; 12] = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17];

/// Pitch classes in a major key, from the tonic.
const MAJOR_SCALE: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];
/// In a minor key: the natural minor scale plus the raised sixth and seventh of the melodic and harmonic
/// forms, which tonal minor uses as a matter of course (Bach's leading tones).
const MINOR_SCALE: [u8; 9] = [0, 2, 3, 5, 7, 8, 9, 10, 11];

/// Ranges per voice, MIDI inclusive: soprano C4–A5, alto G3–D5, tenor C3–A4, bass E2–D4, the usual
/// four-part writing ranges (e.g. E. Aldwell and C. Schachter, "Harmony and Voice Leading", ch. 4, which
/// gives these with a step of leeway at the ends).
pub const SATB_RANGES: [(u8, u8); VOICES] = [(60, 81), (55, 74), (48, 69), (40, 62)];

/// The key by Krumhansl–Schmuckler: the highest Pearson correlation between the piece's pitch-class
/// durations and the 24 rotated profiles. `None` for a piece without notes.
pub fn find_key(notes: &[Note]) -> Option<Key> {
    let mut hist = [0.0f64; 12];
    for n in notes {
        hist[usize::from(n.pitch % 12)] += n.duration_beats.max(0.0);
    }
    if hist.iter().all(|&h| h == 0.0) {
        return None;
    }
    let mut best: Option<(f64, Key)> = None;
    for tonic in 0..12u8 {
        for (minor, profile) in [(false, &MAJOR_PROFILE), (true, &MINOR_PROFILE)] {
            let rotated: [f64; 12] = std::array::from_fn(|pc| profile[(pc + 12 - usize::from(tonic)) % 12]);
            let r = pearson(&hist, &rotated);
            if best.is_none_or(|(b, _)| r > b) {
                best = Some((r, Key { tonic, minor }));
            }
        }
    }
    best.map(|(_, k)| k)
}

fn pearson(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let ma = a.iter().sum::<f64>() / 12.0;
    let mb = b.iter().sum::<f64>() / 12.0;
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for i in 0..12 {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma).powi(2);
        db += (b[i] - mb).powi(2);
    }
    if da == 0.0 || db == 0.0 {
        0.0
    } else {
        num / (da * db).sqrt()
    }
}

/// Whether `pitch` belongs to `key` ([`MAJOR_SCALE`] / [`MINOR_SCALE`]).
pub fn in_key(key: Key, pitch: u8) -> bool {
    let degree = (pitch % 12 + 12 - key.tonic % 12) % 12;
    if key.minor {
        MINOR_SCALE.contains(&degree)
    } else {
        MAJOR_SCALE.contains(&degree)
    }
}

/// Counts for one piece (or, summed, many): every figure is a ratio of two of them, so pieces pool by
/// adding counts (each note weighs the same whichever piece it is in).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub pieces: usize,
    pub notes: usize,
    /// Notes whose pitch class is in the piece's Krumhansl–Schmuckler key.
    pub in_key: usize,
    /// Notes within their voice's [`SATB_RANGES`].
    pub in_range: usize,
    /// Moments where two voices both move to a new pitch at the same onset straight from a previous note
    /// (no rest between), counted per voice pair.
    pub joint_motions: usize,
    /// Of those, perfect fifths (mod octave) followed by perfect fifths, in similar motion.
    pub parallel_fifths: usize,
    /// Of those, octaves or unisons (mod octave) followed by octaves or unisons, in similar motion.
    pub parallel_octaves: usize,
    /// Onsets that coincide with an onset of at least one other voice.
    pub aligned_onsets: usize,
    /// Onsets on the eighth-note grid.
    pub eighth_grid_onsets: usize,
}

impl Counts {
    /// Measures one piece. `notes` must carry voices 0–3 (soprano to bass).
    pub fn of_piece(notes: &[Note]) -> Counts {
        let mut c = Counts { pieces: 1, notes: notes.len(), ..Counts::default() };
        if let Some(key) = find_key(notes) {
            c.in_key = notes.iter().filter(|n| in_key(key, n.pitch)).count();
        }
        c.in_range = notes
            .iter()
            .filter(|n| {
                let (lo, hi) = SATB_RANGES[usize::from(n.voice).min(VOICES - 1)];
                (lo..=hi).contains(&n.pitch)
            })
            .count();
        let voices: Vec<Vec<Note>> = (0..VOICES as u8)
            .map(|v| {
                let mut vn: Vec<Note> = notes.iter().filter(|n| n.voice == v).copied().collect();
                vn.sort_by(|a, b| a.start_beats.total_cmp(&b.start_beats));
                vn
            })
            .collect();
        for upper in 0..VOICES {
            for lower in upper + 1..VOICES {
                c.count_pair(&voices[upper], &voices[lower]);
            }
        }
        for n in notes {
            let others = notes.iter().any(|m| m.voice != n.voice && same_time(m.start_beats, n.start_beats));
            c.aligned_onsets += usize::from(others);
            let eighths = n.start_beats * 2.0;
            c.eighth_grid_onsets += usize::from((eighths - eighths.round()).abs() < 1e-6);
        }
        c
    }

    fn count_pair(&mut self, upper: &[Note], lower: &[Note]) {
        for w in upper.windows(2) {
            let (a0, a1) = (w[0], w[1]);
            // Straight from a previous note, to a new pitch.
            if !same_time(a0.end_beats(), a1.start_beats) || a0.pitch == a1.pitch {
                continue;
            }
            let Some(j) = lower.iter().position(|n| same_time(n.start_beats, a1.start_beats)) else { continue };
            if j == 0 {
                continue;
            }
            let (b0, b1) = (lower[j - 1], lower[j]);
            if !same_time(b0.end_beats(), b1.start_beats) || b0.pitch == b1.pitch {
                continue;
            }
            self.joint_motions += 1;
            let similar = (a1.pitch > a0.pitch) == (b1.pitch > b0.pitch);
            let before = (i16::from(a0.pitch) - i16::from(b0.pitch)).rem_euclid(12);
            let after = (i16::from(a1.pitch) - i16::from(b1.pitch)).rem_euclid(12);
            if similar && before == 7 && after == 7 {
                self.parallel_fifths += 1;
            }
            if similar && before == 0 && after == 0 {
                self.parallel_octaves += 1;
            }
        }
    }

    /// Adds another piece's counts.
    pub fn add(&mut self, o: &Counts) {
        self.pieces += o.pieces;
        self.notes += o.notes;
        self.in_key += o.in_key;
        self.in_range += o.in_range;
        self.joint_motions += o.joint_motions;
        self.parallel_fifths += o.parallel_fifths;
        self.parallel_octaves += o.parallel_octaves;
        self.aligned_onsets += o.aligned_onsets;
        self.eighth_grid_onsets += o.eighth_grid_onsets;
    }

    /// The shares, as reported.
    pub fn summary(&self) -> Summary {
        let share = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Summary {
            pieces: self.pieces,
            notes: self.notes,
            key_share: share(self.in_key, self.notes),
            range_share: share(self.in_range, self.notes),
            parallel_fifths_rate: share(self.parallel_fifths, self.joint_motions),
            parallel_octaves_rate: share(self.parallel_octaves, self.joint_motions),
            aligned_onset_share: share(self.aligned_onsets, self.notes),
            eighth_grid_share: share(self.eighth_grid_onsets, self.notes),
        }
    }
}

/// Ratios over pooled [`Counts`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub pieces: usize,
    pub notes: usize,
    /// Notes in the piece's key / notes.
    pub key_share: f64,
    /// Notes in their voice's SATB range / notes.
    pub range_share: f64,
    /// Parallel fifths / joint motions of two voices.
    pub parallel_fifths_rate: f64,
    /// Parallel octaves and unisons / joint motions of two voices.
    pub parallel_octaves_rate: f64,
    /// Onsets shared with another voice / notes.
    pub aligned_onset_share: f64,
    /// Onsets on the eighth-note grid / notes.
    pub eighth_grid_share: f64,
}

impl Summary {
    /// A JSON object (the shape `evaluate-notes` writes and the model card quotes).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "pieces": self.pieces,
            "notes": self.notes,
            "key_share": self.key_share,
            "range_share": self.range_share,
            "parallel_fifths_rate": self.parallel_fifths_rate,
            "parallel_octaves_rate": self.parallel_octaves_rate,
            "aligned_onset_share": self.aligned_onset_share,
            "eighth_grid_share": self.eighth_grid_share,
        })
    }
}

/// Note times are multiples of a sixteenth (exact in f64); the tolerance only absorbs arithmetic on them.
fn same_time(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

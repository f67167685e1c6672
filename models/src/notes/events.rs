//! Timed notes in beats, the form generated music leaves the model in: what a MIDI file and (later) the
//! `synth` node's note events are made from.

use super::tokens::{onset_pitch, TokenPiece, HOLD, STEPS_PER_BEAT, VOICES};

/// One note. Times are in quarter-note beats from the start of the piece; the tempo turns them into
/// seconds or samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Note {
    /// 0 soprano, 1 alto, 2 tenor, 3 bass.
    pub voice: u8,
    /// MIDI note number (A4 = 69).
    pub pitch: u8,
    pub start_beats: f64,
    pub duration_beats: f64,
    /// 0–1, linear (the synth's `NoteKind::On` velocity; MIDI velocity is `round(127 * velocity)`).
    pub velocity: f32,
}

impl Note {
    pub fn end_beats(&self) -> f64 {
        self.start_beats + self.duration_beats
    }
}

/// Velocity of a note starting at sixteenth `step` of a bar of `bar_steps`: a slight accent on the
/// downbeat and on beats, as a choir phrases, so a synth playing the notes does not sound mechanical.
pub fn velocity_at(step_in_bar: usize) -> f32 {
    if step_in_bar == 0 {
        0.8
    } else if step_in_bar % STEPS_PER_BEAT == 0 {
        0.72
    } else {
        0.64
    }
}

/// Turns token steps into notes, one voice at a time: an onset starts a note, holds extend it, a rest or
/// the next onset ends it. Notes come out sorted by start, then voice. `transpose` shifts every pitch
/// (clamped to MIDI 0..=127); voices whose `enabled` flag is off are left out.
pub fn notes_from_tokens(piece: &TokenPiece, transpose: i32, enabled: [bool; VOICES]) -> Vec<Note> {
    let mut tracker = NoteTracker::new(transpose, enabled, piece.offset_steps, piece.bar_steps);
    let mut out = Vec::new();
    for step in &piece.steps {
        tracker.push(step, &mut out);
    }
    tracker.finish(&mut out);
    out.sort_by(|a, b| a.start_beats.total_cmp(&b.start_beats).then(a.voice.cmp(&b.voice)));
    out
}

/// Step-by-step conversion for streaming generation: each pushed step may complete notes (a note is known
/// once it ends). Completed notes are appended in the order they end.
#[derive(Clone, Debug)]
pub struct NoteTracker {
    transpose: i32,
    enabled: [bool; VOICES],
    offset_steps: usize,
    bar_steps: usize,
    step: usize,
    /// Per voice: (pitch, start step) of the sounding note.
    open: [Option<(u8, usize)>; VOICES],
}

impl NoteTracker {
    pub fn new(transpose: i32, enabled: [bool; VOICES], offset_steps: usize, bar_steps: usize) -> Self {
        Self { transpose, enabled, offset_steps, bar_steps: bar_steps.max(1), step: 0, open: [None; VOICES] }
    }

    /// Steps pushed so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Adds one step's tokens.
    pub fn push(&mut self, tokens: &[u32; VOICES], out: &mut Vec<Note>) {
        for (v, &t) in tokens.iter().enumerate() {
            if t == HOLD {
                continue;
            }
            self.close(v, out);
            if let Some(p) = onset_pitch(t) {
                self.open[v] = Some((p, self.step));
            }
        }
        self.step += 1;
    }

    /// Ends every sounding note at the current step.
    pub fn finish(&mut self, out: &mut Vec<Note>) {
        for v in 0..VOICES {
            self.close(v, out);
        }
    }

    fn close(&mut self, v: usize, out: &mut Vec<Note>) {
        let Some((pitch, start)) = self.open[v].take() else { return };
        if !self.enabled[v] {
            return;
        }
        let pitch = (i32::from(pitch) + self.transpose).clamp(0, 127) as u8;
        out.push(Note {
            voice: v as u8,
            pitch,
            start_beats: start as f64 / STEPS_PER_BEAT as f64,
            duration_beats: (self.step - start) as f64 / STEPS_PER_BEAT as f64,
            velocity: velocity_at((start + self.offset_steps) % self.bar_steps),
        });
    }
}

/// Voice tokens for priming ([`super::Options::prime`]) from notes (e.g. a MIDI file's, through
/// [`super::midi::MidiFile::notes`]): quantised to the sixteenth grid, voice by voice, up to `max_steps`
/// steps. Where a voice has overlapping notes the later one wins. Pitches outside the vocabulary are an
/// error naming the note.
pub fn tokens_from_notes(notes: &[Note], max_steps: usize) -> Result<Vec<u32>, String> {
    use super::tokens::{onset, REST};
    let q = |beats: f64| (beats * STEPS_PER_BEAT as f64).round().max(0.0) as usize;
    let steps = notes.iter().map(|n| q(n.end_beats())).max().unwrap_or(0).min(max_steps);
    let mut grid = vec![[REST; VOICES]; steps];
    let mut sorted: Vec<&Note> = notes.iter().collect();
    sorted.sort_by(|a, b| a.start_beats.total_cmp(&b.start_beats));
    for n in sorted {
        let v = usize::from(n.voice);
        if v >= VOICES {
            return Err(format!("a note of voice {} (only 4 voices, 0-3)", n.voice));
        }
        let t = onset(n.pitch).ok_or_else(|| {
            format!("pitch {} at beat {} is outside the model's range (MIDI 30-89)", n.pitch, n.start_beats)
        })?;
        let (start, end) = (q(n.start_beats), q(n.end_beats()));
        if start >= steps || end <= start {
            continue;
        }
        grid[start][v] = t;
        for s in grid.iter_mut().take(end.min(steps)).skip(start + 1) {
            s[v] = HOLD;
        }
    }
    Ok(grid.into_iter().flatten().collect())
}

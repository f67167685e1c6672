//! Seeded generation: the step model sampled one token at a time, all four voices together (soprano,
//! alto, tenor, bass at each sixteenth, each voice seeing the voices above it at that step and everything
//! before). The same model file, options and seed give the same notes.

use std::fmt;

use super::events::{notes_from_tokens, Note, NoteTracker};
use super::model::StepModel;
use super::tokens::{
    onset_pitch, Key, TokenPiece, BOS, HOLD, KEY0, KEY_SLOT, ONSET0, PITCH_LO, REST, STEPS_PER_BAR, VOICES,
};
use crate::rng::Rng;
use crate::session::ModelError;

/// The highest temperature accepted: above it sampling is close to uniform noise.
pub const MAX_TEMPERATURE: f32 = 5.0;

/// The default [`Options::top_p`]: measured in `NOTES_MODEL_CARD.md`.
pub const DEFAULT_TOP_P: f32 = 0.8;
/// The default [`Options::temperature`]: measured in `NOTES_MODEL_CARD.md` (the highest that keeps the key
/// share above the floor of issue 7).
pub const DEFAULT_TEMPERATURE: f32 = 0.6;

/// The default [`Options::avoid_parallels`].
pub const DEFAULT_AVOID_PARALLELS: bool = false;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// Same seed, same model, same options: same notes.
    pub seed: u64,
    /// Softmax temperature of the pitch of each new note, in (0, [`MAX_TEMPERATURE`]]: below 1 safer,
    /// above 1 more adventurous. The rhythm (rest, hold, new note) is always drawn at the model's own
    /// probabilities.
    pub temperature: f32,
    /// Nucleus sampling (A. Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020):
    /// each new note's pitch is drawn from the most likely pitches whose probabilities add up to `top_p`, in (0, 1];
    /// 1 draws from all. Cuts the long tail of unlikely (mostly out-of-key) pitches that otherwise adds up
    /// over hundreds of notes.
    pub top_p: f32,
    /// The key the model is asked for; `None`: the primer's (Krumhansl–Schmuckler), or without a primer
    /// the model draws one (as often as Bach used it, shifted by up
    /// to three semitones, its training's augmentation).
    pub key: Option<Key>,
    /// Semitones added to every pitch after generation.
    pub transpose: i32,
    /// Soprano, alto, tenor, bass: which voices produce notes. All four are always generated (each voice
    /// is written against the others); a voice switched off is only left out of the notes.
    pub voices: [bool; VOICES],
    /// Strike out pitches that make parallel fifths or octaves with a voice already drawn at the same
    /// step, and draw again: the textbook rule the model itself has not learnt (NOTES_MODEL_CARD.md).
    pub avoid_parallels: bool,
    /// Voice tokens the piece starts with (whole steps, four tokens each, starting on a downbeat); the
    /// model continues from them. Empty: it starts from nothing.
    pub prime: Vec<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 0,
            temperature: DEFAULT_TEMPERATURE,
            top_p: DEFAULT_TOP_P,
            key: None,
            avoid_parallels: DEFAULT_AVOID_PARALLELS,
            transpose: 0,
            voices: [true; VOICES],
            prime: Vec::new(),
        }
    }
}

/// Why generation failed.
#[derive(Clone, Debug, PartialEq)]
pub enum GenerateError {
    Model(ModelError),
    /// An option is out of range; the text says which and why.
    Options(String),
}

impl fmt::Display for GenerateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GenerateError::Model(e) => write!(f, "{e}"),
            GenerateError::Options(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for GenerateError {}

impl From<ModelError> for GenerateError {
    fn from(e: ModelError) -> Self {
        GenerateError::Model(e)
    }
}

/// A generated piece: its tokens (before transposition) and its notes (after).
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// The key the notes are in (the generated key, transposed).
    pub key: Key,
    pub tokens: TokenPiece,
    pub notes: Vec<Note>,
}

/// A generation in progress, one step (four tokens) at a time; for a worker that runs ahead of playback.
#[derive(Debug)]
pub struct Generator {
    model: StepModel,
    options: Options,
    rng: Rng,
    key: Key,
    /// The last token, not yet read by the model.
    pending: u32,
    steps: Vec<[u32; VOICES]>,
    /// The pitch each voice sounds after the last step (None: resting).
    sounding: [Option<u8>; VOICES],
    scratch: Scratch,
}

/// Sampling's working space, kept between tokens.
#[derive(Debug, Default)]
struct Scratch {
    probs: Vec<f64>,
    order: Vec<u32>,
    rhythm: [f32; 3],
    masked: Vec<f32>,
}

/// Redraws allowed per note when avoiding parallels.
pub const PARALLEL_RETRIES: usize = 8;

/// Logits of rest, hold and "a new note" (the log of the onsets' summed probability).
fn rhythm_logits(logits: &[f32], out: &mut [f32; 3]) -> [f32; 3] {
    let onsets = &logits[ONSET0 as usize..];
    let max = onsets.iter().copied().filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = onsets.iter().filter(|l| l.is_finite()).map(|&l| (l - max).exp()).sum();
    *out = [logits[REST as usize], logits[HOLD as usize], max + sum.ln()];
    *out
}

impl Generator {
    /// Starts a piece: validates the options, reads BOS, the key (drawn from the model when not given) and
    /// the primer.
    pub fn new(mut model: StepModel, options: Options) -> Result<Generator, GenerateError> {
        if !(options.temperature > 0.0 && options.temperature <= MAX_TEMPERATURE) {
            return Err(GenerateError::Options(format!(
                "temperature {} is outside (0, {MAX_TEMPERATURE}]",
                options.temperature
            )));
        }
        if !(options.top_p > 0.0 && options.top_p <= 1.0) {
            return Err(GenerateError::Options(format!("top_p {} is outside (0, 1]", options.top_p)));
        }
        if !(-24..=24).contains(&options.transpose) {
            return Err(GenerateError::Options(format!(
                "transpose {} is outside -24..=24 semitones",
                options.transpose
            )));
        }
        let primer = TokenPiece::from_stream(&options.prime, 0, STEPS_PER_BAR)
            .map_err(|e| GenerateError::Options(format!("primer: {e}")))?;
        model.reset();
        let mut rng = Rng::new(options.seed);
        let mut scratch = Scratch::default();
        let logits = model.step(BOS, KEY_SLOT, 0)?;
        let primer_key = || {
            let notes = notes_from_tokens(&primer, 0, [true; VOICES]);
            super::metrics::find_key(&notes)
        };
        let key = match options.key.or_else(primer_key) {
            Some(k) => k,
            None => {
                let t = sample(&logits[KEY0 as usize..BOS as usize], options.temperature, 1.0, &mut rng, &mut scratch);
                Key::from_token(KEY0 + t).expect("sampled among key tokens")
            }
        };
        let mut g = Generator {
            model,
            rng,
            key,
            pending: key.token(),
            steps: Vec::new(),
            sounding: [None; VOICES],
            scratch,
            options,
        };
        for step in primer.steps {
            for (v, &t) in step.iter().enumerate() {
                g.read(v)?;
                g.pending = t;
            }
            g.note_step(&step);
            g.steps.push(step);
        }
        Ok(g)
    }

    /// The key the model was given or chose (before transposition).
    pub fn key(&self) -> Key {
        self.key
    }

    /// Steps so far (primer included).
    pub fn steps(&self) -> &[[u32; VOICES]] {
        &self.steps
    }

    /// Feeds the pending token; returns the logits for voice `v` of the current step.
    fn read(&mut self, v: usize) -> Result<&[f32], ModelError> {
        let position = (self.steps.len() % STEPS_PER_BAR) as i64;
        self.model.step(self.pending, v as i64, position)
    }

    /// Generates the next sixteenth step: soprano, alto, tenor, bass tokens.
    pub fn next_step(&mut self) -> Result<[u32; VOICES], ModelError> {
        let mut step = [0; VOICES];
        let mut done = [REST; VOICES];
        for (v, slot) in step.iter_mut().enumerate() {
            let (temperature, top_p) = (self.options.temperature, self.options.top_p);
            self.read(v)?;
            // Only voice tokens (rest, hold, onsets): a key or BOS token mid-piece means nothing.
            let logits = &self.model.logits()[..KEY0 as usize];
            // Rhythm first, as the model has it: rest, hold or a new note, at temperature 1 and without
            // truncation. Temperature and top_p then shape only which pitch a new note gets. Applied to
            // all tokens at once, they favour holds (the likeliest token almost everywhere) and the music
            // slows to a third of Bach's notes (NOTES_MODEL_CARD.md).
            let kind =
                sample(&rhythm_logits(logits, &mut self.scratch.rhythm), 1.0, 1.0, &mut self.rng, &mut self.scratch);
            let t = match kind {
                0 => REST,
                1 => HOLD,
                _ => ONSET0 + self.draw_pitch(v, &done, temperature, top_p),
            };
            *slot = t;
            done[v] = t;
            self.pending = t;
        }
        self.note_step(&step);
        self.steps.push(step);
        Ok(step)
    }

    /// Draws the onset index of voice `v`'s new note. With [`Options::avoid_parallels`], a pitch that
    /// would make parallel fifths or octaves with a voice already drawn at this step is struck out and
    /// drawn again (at most [`PARALLEL_RETRIES`] times; then the last draw stands).
    fn draw_pitch(&mut self, v: usize, done: &[u32; VOICES], temperature: f32, top_p: f32) -> u32 {
        let onsets = &self.model.logits()[ONSET0 as usize..KEY0 as usize];
        if !self.options.avoid_parallels {
            return sample(onsets, temperature, top_p, &mut self.rng, &mut self.scratch);
        }
        let mut masked = std::mem::take(&mut self.scratch.masked);
        masked.clear();
        masked.extend_from_slice(onsets);
        let mut i = 0;
        for _ in 0..PARALLEL_RETRIES {
            i = sample(&masked, temperature, top_p, &mut self.rng, &mut self.scratch);
            let pitch = PITCH_LO + i as u8;
            if !(0..v).any(|u| self.parallel(u, v, done[u], pitch)) {
                break;
            }
            masked[i as usize] = f32::NEG_INFINITY;
        }
        self.scratch.masked = masked;
        i
    }

    /// Whether voice `v` moving to `pitch` while voice `u` plays `token_u` at this step makes parallel
    /// perfect fifths or octaves (mod octave, similar motion, both straight from sounding notes), the
    /// definition [`super::metrics::Counts`] counts.
    fn parallel(&self, u: usize, v: usize, token_u: u32, pitch: u8) -> bool {
        let (Some(new_u), Some(old_u), Some(old_v)) = (onset_pitch(token_u), self.sounding[u], self.sounding[v]) else {
            return false;
        };
        if new_u == old_u || pitch == old_v || (new_u > old_u) != (pitch > old_v) {
            return false;
        }
        let before = (i16::from(old_u) - i16::from(old_v)).rem_euclid(12);
        let after = (i16::from(new_u) - i16::from(pitch)).rem_euclid(12);
        before == after && (before == 7 || before == 0)
    }

    /// Keeps the sounding pitch of each voice up to date.
    fn note_step(&mut self, step: &[u32; VOICES]) {
        for (s, &t) in self.sounding.iter_mut().zip(step) {
            if t == REST {
                *s = None;
            } else if let Some(p) = onset_pitch(t) {
                *s = Some(p);
            }
        }
    }

    /// Generates `steps` more steps and feeds the completed notes to `tracker` (streaming use).
    pub fn advance(&mut self, steps: usize, tracker: &mut NoteTracker, out: &mut Vec<Note>) -> Result<(), ModelError> {
        for _ in 0..steps {
            let s = self.next_step()?;
            tracker.push(&s, out);
        }
        Ok(())
    }

    /// The piece so far, as tokens and notes (transposed, muted voices left out).
    pub fn piece(&self) -> Piece {
        let tokens =
            TokenPiece { key: Some(self.key), offset_steps: 0, bar_steps: STEPS_PER_BAR, steps: self.steps.clone() };
        let notes = notes_from_tokens(&tokens, self.options.transpose, self.options.voices);
        Piece { key: self.key.transposed(self.options.transpose), tokens, notes }
    }

    /// Gives the model back (to start another piece without loading it again).
    pub fn into_model(self) -> StepModel {
        self.model
    }
}

/// Generates `bars` bars of 4/4 after the primer; `progress` is called after each bar with (done, total).
pub fn generate(
    model: StepModel,
    options: Options,
    bars: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<(Piece, StepModel), GenerateError> {
    let mut g = Generator::new(model, options)?;
    for bar in 0..bars {
        for _ in 0..STEPS_PER_BAR {
            g.next_step()?;
        }
        progress(bar + 1, bars);
    }
    let piece = g.piece();
    Ok((piece, g.into_model()))
}

/// Samples an index of `logits` at `temperature`, from the smallest set of most likely indices whose
/// probability reaches `top_p`.
fn sample(logits: &[f32], temperature: f32, top_p: f32, rng: &mut Rng, scratch: &mut Scratch) -> u32 {
    let Scratch { probs, order, .. } = scratch;
    probs.clear();
    let inv_t = 1.0 / f64::from(temperature);
    let max = logits.iter().copied().filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for &l in logits {
        // Non-finite logits (a broken model) get no weight rather than poisoning the sum.
        let p = if l.is_finite() { ((f64::from(l) - f64::from(max)) * inv_t).exp() } else { 0.0 };
        total += p;
        probs.push(p);
    }
    // NaN fails every comparison: `total > 0.0` is the finite, positive case only.
    if total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return 0;
    }
    order.clear();
    order.extend(0..logits.len() as u32);
    // Most likely first; ties by index, so the order (and the draw) is reproducible.
    order.sort_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]).then(a.cmp(&b)));
    let want = f64::from(top_p) * total;
    let mut kept = 0.0;
    let mut n = 0;
    for &i in order.iter() {
        kept += probs[i as usize];
        n += 1;
        if kept >= want {
            break;
        }
    }
    let mut u = rng.unit() * kept;
    for &i in &order[..n] {
        u -= probs[i as usize];
        if u < 0.0 {
            return i;
        }
    }
    order[n - 1]
}

//! The committed note model (`models/notes.onnx`) through the real ONNX Runtime from Rust: reproducible
//! generation, the quality floors of issue 7 on a fixed set of seeds, the controls (transpose, voices,
//! key, priming), the MIDI file round trip, and clear errors for a missing or broken model.
use std::path::{Path, PathBuf};

use ballast_models::notes::events::{notes_from_tokens, tokens_from_notes};
use ballast_models::notes::metrics::{in_key, Counts};
use ballast_models::notes::midi::{read_smf, write_smf};
use ballast_models::notes::{generate, heldout, model, Key, Note, Options, Piece, StepModel};
use ballast_models::session::ModelError;

/// Issue 7's floors: share of notes in the piece's key, share of notes in their voice's SATB range.
const KEY_SHARE_FLOOR: f64 = 0.92;
const RANGE_SHARE_FLOOR: f64 = 0.98;
/// Chorale length: the held-out test chorales' median, in bars of 4/4.
const BARS: usize = 13;
/// Seeds the floors are checked on (pooled over all their notes).
const SEEDS: std::ops::RangeInclusive<u64> = 1..=16;

fn load() -> StepModel {
    StepModel::load(&model::default_path()).unwrap_or_else(|e| panic!("{e}"))
}

fn piece(model: StepModel, options: Options, bars: usize) -> (Piece, StepModel) {
    generate(model, options, bars, |_, _| {}).unwrap_or_else(|e| panic!("{e}"))
}

struct Scratch(PathBuf);

impl Scratch {
    fn with(tag: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!("ballast-note-model-{}-{tag}.onnx", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn same_seed_same_notes_and_different_seeds_differ() {
    let m = load();
    let (a, m) = piece(m, Options { seed: 42, ..Options::default() }, 4);
    let (b, m) = piece(m, Options { seed: 42, ..Options::default() }, 4);
    let (c, _) = piece(m, Options { seed: 43, ..Options::default() }, 4);
    assert!(!a.notes.is_empty());
    assert_eq!(a, b, "the same seed gave different pieces");
    assert_ne!(a.tokens.steps, c.tokens.steps, "seeds 42 and 43 gave the same tokens");
    // A fresh model instance (new session) reproduces it too.
    let (d, _) = piece(load(), Options { seed: 42, ..Options::default() }, 4);
    assert_eq!(a, d, "a freshly loaded model gave a different piece for the same seed");
}

#[test]
fn generated_pieces_meet_the_floors_and_bach_scores_as_the_card_says() {
    let mut m = Some(load());
    let mut counts = Counts::default();
    for seed in SEEDS {
        let (p, back) = piece(m.take().unwrap(), Options { seed, ..Options::default() }, BARS);
        m = Some(back);
        assert_eq!(p.tokens.steps.len(), BARS * 16);
        counts.add(&Counts::of_piece(&p.notes));
    }
    let s = counts.summary();
    eprintln!("generated, seeds {SEEDS:?}, {BARS} bars, default options: {s:?}");
    assert!(s.key_share >= KEY_SHARE_FLOOR, "key share {:.4} < {KEY_SHARE_FLOOR}", s.key_share);
    assert!(s.range_share >= RANGE_SHARE_FLOOR, "range share {:.4} < {RANGE_SHARE_FLOOR}", s.range_share);

    // The same metrics on Bach's held-out chorales: the card's reference figures (key share 0.955).
    let mut bach = Counts::default();
    for (_, p) in heldout::read(&heldout::default_path()).unwrap() {
        bach.add(&Counts::of_piece(&notes_from_tokens(&p, 0, [true; 4])));
    }
    let b = bach.summary();
    eprintln!("held-out Bach: {b:?}");
    assert!((b.key_share - 0.955).abs() < 0.005, "Bach's key share {:.4} moved: metric changed?", b.key_share);
    assert!(b.range_share >= RANGE_SHARE_FLOOR);
}

#[test]
fn transpose_voices_and_key_controls() {
    let m = load();
    let base = Options { seed: 5, key: Some(Key { tonic: 7, minor: false }), ..Options::default() };
    let (a, m) = piece(m, base.clone(), 4);
    assert_eq!(a.key, Key { tonic: 7, minor: false });
    let (up, m) = piece(m, Options { transpose: 3, ..base.clone() }, 4);
    assert_eq!(up.key, Key { tonic: 10, minor: false });
    assert_eq!(a.notes.len(), up.notes.len());
    for (x, y) in a.notes.iter().zip(&up.notes) {
        assert_eq!((x.voice, x.start_beats, x.duration_beats), (y.voice, y.start_beats, y.duration_beats));
        assert_eq!(i32::from(x.pitch) + 3, i32::from(y.pitch));
    }
    let (outer, m) = piece(m, Options { voices: [true, false, false, true], ..base.clone() }, 4);
    let expected: Vec<&Note> = a.notes.iter().filter(|n| n.voice == 0 || n.voice == 3).collect();
    assert_eq!(outer.notes.iter().collect::<Vec<_>>(), expected, "muting voices changed the others");
    // Asked for G major, the music leans to G major: far more notes belong to it than to a distant key
    // (C# major shares two of its seven pitch classes). The key token is a soft control: measured on the
    // committed model, 0.778 of these pieces' notes are in G major and 0.378 in C# major (the pieces
    // modulate, and the model does not always settle in the key it was given); the bounds leave slack.
    let (mut in_g, mut in_far, mut total) = (0, 0, 0);
    let mut m = Some(m);
    for seed in 20..26 {
        let (p, back) = piece(m.take().unwrap(), Options { seed, ..base.clone() }, BARS);
        m = Some(back);
        total += p.notes.len();
        in_g += p.notes.iter().filter(|n| in_key(Key { tonic: 7, minor: false }, n.pitch)).count();
        in_far += p.notes.iter().filter(|n| in_key(Key { tonic: 1, minor: false }, n.pitch)).count();
    }
    let (g_share, far_share) = (in_g as f64 / total as f64, in_far as f64 / total as f64);
    eprintln!("asked for G major: {g_share:.3} of {total} notes in G major, {far_share:.3} in C# major");
    assert!(g_share >= 0.7, "asked for G major, only {g_share:.3} of the notes are in it");
    assert!(g_share - far_share >= 0.25, "asked for G major: {g_share:.3} in G, {far_share:.3} in C# major");
    let m = m.unwrap();

    // Priming: the piece starts with the primer, then continues.
    let prime = tokens_from_notes(&a.notes, 64).unwrap();
    let (primed, _) = piece(m, Options { seed: 11, prime: prime.clone(), ..base }, 2);
    assert_eq!(primed.tokens.steps.len(), 64 + 32);
    let flat: Vec<u32> = primed.tokens.steps[..64].iter().flatten().copied().collect();
    assert_eq!(flat, prime);
}

#[test]
fn midi_file_round_trip_keeps_every_note() {
    let (p, _) = piece(load(), Options { seed: 3, ..Options::default() }, 8);
    let bytes = write_smf(&p.notes, 96.0, Some(p.key), [true; 4], "round trip");
    let f = read_smf(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.format, 1);
    assert_eq!(f.tracks.len(), 5);
    assert_eq!(f.tracks[1].name.as_deref(), Some("Soprano"));
    assert!((f.tempo_bpm - 96.0).abs() < 0.01, "tempo {}", f.tempo_bpm);
    let back = f.notes();
    assert_eq!(back.len(), p.notes.len());
    for (x, y) in p.notes.iter().zip(&back) {
        assert_eq!((x.voice, x.pitch), (y.voice, y.pitch));
        assert_eq!((x.start_beats, x.duration_beats), (y.start_beats, y.duration_beats));
        assert_eq!((x.velocity * 127.0).round(), (y.velocity * 127.0).round());
    }
    // Each track's notes are on its own channel.
    for (i, t) in f.tracks[1..].iter().enumerate() {
        assert!(t.notes.iter().all(|n| usize::from(n.channel) == i));
    }
    // A cut file is an error that says where, not a panic.
    let err = read_smf(&bytes[..bytes.len() - 7]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn missing_and_broken_models_are_clear_errors() {
    let missing = Path::new("/nonexistent/notes.onnx");
    match StepModel::load(missing) {
        Err(e @ ModelError::Missing { .. }) => assert!(e.to_string().contains("/nonexistent/notes.onnx"), "{e}"),
        other => panic!("expected Missing, got {other:?}"),
    }
    let garbage = Scratch::with("garbage", b"this is not an ONNX model at all");
    match StepModel::load(&garbage.0) {
        Err(e @ ModelError::Corrupt { .. }) => eprintln!("garbage: {e}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let bytes = std::fs::read(model::default_path()).unwrap();
    let truncated = Scratch::with("truncated", &bytes[..bytes.len() / 2]);
    match StepModel::load(&truncated.0) {
        Err(e @ ModelError::Corrupt { .. }) => eprintln!("truncated: {e}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Another model (the compressor estimator) is refused with what differs.
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("estimator.onnx");
    match StepModel::load(&other) {
        Err(e @ ModelError::Mismatch { .. }) => {
            let text = e.to_string();
            eprintln!("estimator as note model: {text}");
            assert!(text.contains("input"), "{text}");
        }
        other => panic!("expected Mismatch, got {other:?}"),
    }
}

#[test]
fn bad_options_are_refused() {
    let m = load();
    let e = generate(m, Options { temperature: 0.0, ..Options::default() }, 1, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("temperature"), "{e}");
    let e = generate(load(), Options { prime: vec![2, 2, 2], ..Options::default() }, 1, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("primer"), "{e}");
}

#[test]
fn avoiding_parallels_removes_them() {
    let mut m = Some(load());
    let (mut with, mut without) = (Counts::default(), Counts::default());
    for seed in 1..=4 {
        for (avoid, counts) in [(true, &mut with), (false, &mut without)] {
            let options = Options { seed, avoid_parallels: avoid, ..Options::default() };
            let (p, back) = piece(m.take().unwrap(), options, BARS);
            m = Some(back);
            counts.add(&Counts::of_piece(&p.notes));
        }
    }
    eprintln!("parallels without avoidance: {without:?}\nwith: {with:?}");
    assert!(without.parallel_fifths + without.parallel_octaves > 0, "the model made no parallels to avoid");
    // Redraws are capped (PARALLEL_RETRIES), so a few may remain in principle; none did in 100 pieces.
    let (w, wo) = (with.summary(), without.summary());
    assert!(
        w.parallel_fifths_rate + w.parallel_octaves_rate <= 0.1 * (wo.parallel_fifths_rate + wo.parallel_octaves_rate),
        "{w:?}"
    );
    // Key share with avoidance is reported over 100 pieces in the card (0.928); four pieces are too few
    // to hold it to the floor.
    assert!(w.range_share >= RANGE_SHARE_FLOOR, "{w:?}");
}

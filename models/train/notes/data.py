"""Bach chorales from music21's corpus -> token sequences for the note model.

    python data.py --out DIR

Writes DIR/chorales.json: every usable four-part chorale (name, split, key, bar length, tokens) and
DIR/summary.json (counts, the split's chorale names). The tokenisation is ballast_models::notes::tokens
(Rust) and tokens.py here; keep them in step.

A chorale is usable when it has exactly four parts (S, A, T, B in score order). Time grid: sixteenth notes;
per step and voice one token: rest, hold (the voice's note goes on) or onset of a MIDI pitch. A sequence is
[BOS, KEY, s0, a0, t0, b0, s1, a1, ...]. KEY is the chorale's key as music21's Krumhansl-Schmuckler analysis
finds it (tonic pitch class, mode), so generation can be asked for a key. Offsets off the sixteenth grid
(rare: a few thirty-second ornaments) are rounded to it; a note rounded to zero length is dropped.

Split: chorales sorted by corpus path; index % 10 == 3 -> validation, == 7 -> test, else train. Fixed, so
the card can list the held-out chorales.
"""
import argparse
import json
import os
import sys
import time

from music21 import corpus, chord, note

import tokens as T


def split_of(i):
    return {3: "validation", 7: "test"}.get(i % 10, "train")


def voice_pitches(part, steps, pickup16):
    """Per sixteenth step: the MIDI pitch sounding and whether it starts there (None = rest)."""
    grid = [None] * steps
    onset = [False] * steps
    for n in part.flatten().notesAndRests:
        if isinstance(n, note.Rest):
            continue
        if isinstance(n, chord.Chord):
            pitch = max(p.midi for p in n.pitches)
        else:
            pitch = n.pitch.midi
        start = round((float(n.offset) * 4)) + pickup16
        end = round((float(n.offset) + float(n.quarterLength)) * 4) + pickup16
        if end <= start:
            continue
        start = max(start, 0)
        for s in range(start, min(end, steps)):
            grid[s] = pitch
            onset[s] = s == start
    return grid, onset


def encode(score):
    parts = list(score.parts)
    if len(parts) != 4:
        return None, "has %d parts" % len(parts)
    stripped = [p.stripTies() for p in parts]
    ts = parts[0].recurse().getElementsByClass("TimeSignature")
    ts = ts[0] if len(ts) else None
    bar16 = round(ts.barDuration.quarterLength * 4) if ts is not None else 16
    measures = parts[0].getElementsByClass("Measure")
    pickup = float(measures[0].paddingLeft) if len(measures) else 0.0
    pickup16 = round(pickup * 4)
    length = max(float(p.highestTime) for p in stripped)
    steps = round(length * 4) + pickup16
    k = score.analyze("key")
    key = T.key_token(k.tonic.pitchClass, k.mode == "minor")
    grids = [voice_pitches(p, steps, pickup16) for p in stripped]
    seq = [T.BOS, key]
    for s in range(pickup16, steps):
        for v in range(4):
            pitch, on = grids[v][0][s], grids[v][1][s]
            if pitch is None:
                seq.append(T.REST)
            elif on:
                if not (T.PITCH_LO <= pitch <= T.PITCH_HI):
                    return None, "pitch %d outside the vocabulary" % pitch
                seq.append(T.onset(pitch))
            else:
                seq.append(T.HOLD)
    return {"key": [k.tonic.pitchClass, k.mode], "bar16": bar16, "pickup16": pickup16, "tokens": seq}, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    names = sorted(str(p) for p in corpus.chorales.Iterator(returnType="filename"))
    out, skipped = [], []
    t0 = time.time()
    for i, name in enumerate(names):
        score = corpus.parse(name)
        enc, why = encode(score)
        if enc is None:
            skipped.append([name, why])
            continue
        enc["name"] = name
        enc["split"] = split_of(i)
        out.append(enc)
        if i % 50 == 0:
            print(f"{i}/{len(names)} {time.time() - t0:.0f}s", file=sys.stderr)
    with open(os.path.join(a.out, "chorales.json"), "w") as f:
        json.dump(out, f)
    summary = {
        "chorales": len(names),
        "usable": len(out),
        "skipped": skipped,
        "splits": {s: [c["name"] for c in out if c["split"] == s] for s in ("train", "validation", "test")},
        "tokens": {s: sum(len(c["tokens"]) for c in out if c["split"] == s) for s in ("train", "validation", "test")},
    }
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: v for k, v in summary.items() if k != "splits"}, indent=1))


if __name__ == "__main__":
    main()

"""The note model's vocabulary; the same constants as ballast_models::notes::tokens (Rust).

0 REST, 1 HOLD (the voice's current note goes on), 2.. onset of MIDI pitch PITCH_LO..=PITCH_HI,
then 24 key tokens (tonic pitch class * 2 + minor), then BOS. Conditioning per step: VOICES voice slots
(0..3 = S, A, T, B; 4 = the key slot) and the position of the predicted step in the bar (sixteenths).
"""
REST = 0
HOLD = 1
PITCH_LO = 30
PITCH_HI = 89
ONSET0 = 2
KEY0 = ONSET0 + PITCH_HI - PITCH_LO + 1
BOS = KEY0 + 24
VOCAB = BOS + 1
VOICE_SLOTS = 5
KEY_SLOT = 4
POSITIONS = 16


def onset(pitch):
    return ONSET0 + pitch - PITCH_LO


def key_token(tonic_pc, minor):
    return KEY0 + tonic_pc * 2 + (1 if minor else 0)


def is_onset(t):
    return ONSET0 <= t < KEY0


def transpose(seq, k):
    """Shifts every onset and the key token by k semitones; None if a pitch leaves the vocabulary."""
    out = []
    for t in seq:
        if is_onset(t):
            p = t - ONSET0 + PITCH_LO + k
            if not (PITCH_LO <= p <= PITCH_HI):
                return None
            out.append(onset(p))
        elif KEY0 <= t < BOS:
            pc, minor = divmod(t - KEY0, 2)
            out.append(key_token((pc + k) % 12, minor))
        else:
            out.append(t)
    return out

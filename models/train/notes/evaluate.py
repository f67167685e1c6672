"""Held-out negative log-likelihood of the note model against n-gram baselines, and the held-out test
chorales written out for the Rust metrics.

    python evaluate.py --data DIR --checkpoint notes.pt --json nll.json --heldout ../../tests/data/notes_heldout.txt

NLL is in nats per voice token (the key token excluded: it is one token per chorale), on the validation
and test chorales in their own keys. Baselines are counted on the training chorales under every shift
train.py uses (-3..+3), add-0.1 smoothing:
- unigram: P(token);
- bigram: P(token | the previous token of the interleaved stream), i.e. the same context a first-order
  model of the sequence the network reads has;
- voice bigram: P(token | voice, the same voice's token one step before), a stronger baseline.
The held-out file: one chorale per line, `name pickup16 bar16 token token ...`.
"""
import argparse
import json
import math
from collections import Counter

import torch

import tokens as T
import train as tr
from model import NoteModel

torch.set_num_threads(1)
SMOOTH = 0.1
VOICE_VOCAB = T.KEY0  # rest, hold, onsets


def voice_tokens(seq):
    return seq[2:]


def baselines(train_seqs):
    uni = Counter()
    bi = Counter()
    bi_ctx = Counter()
    vb = Counter()
    vb_ctx = Counter()
    for s in train_seqs:
        body = voice_tokens(s)
        for j, t in enumerate(body):
            uni[t] += 1
            prev = s[j + 1]  # the token before body[j] in the full stream
            bi[(prev, t)] += 1
            bi_ctx[prev] += 1
            if j >= 4:
                v = j % 4
                vb[(v, body[j - 4], t)] += 1
                vb_ctx[(v, body[j - 4])] += 1
    total = sum(uni.values())

    def score(seqs):
        u = b = w = 0.0
        n = 0
        for s in seqs:
            body = voice_tokens(s)
            for j, t in enumerate(body):
                u -= math.log((uni[t] + SMOOTH) / (total + SMOOTH * VOICE_VOCAB))
                prev = s[j + 1]
                b -= math.log((bi[(prev, t)] + SMOOTH) / (bi_ctx[prev] + SMOOTH * VOICE_VOCAB))
                if j >= 4:
                    key = (j % 4, body[j - 4])
                    w -= math.log((vb[key + (t,)] + SMOOTH) / (vb_ctx[key] + SMOOTH * VOICE_VOCAB))
                else:
                    w -= math.log((uni[t] + SMOOTH) / (total + SMOOTH * VOICE_VOCAB))
                n += 1
        return {"unigram": u / n, "bigram": b / n, "voice_bigram": w / n, "tokens": n}

    return score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--heldout", required=True)
    a = ap.parse_args()
    chorales = tr.load(a.data)
    train = [c for c in chorales if c["split"] == "train"]
    shifted = [s for c in train for k in range(-3, 4) if (s := T.transpose(c["tokens"], k)) is not None]
    score = baselines(shifted)
    ck = torch.load(a.checkpoint, map_location="cpu")
    m = NoteModel(hidden=ck["hidden"], layers=ck["layers"])
    m.load_state_dict(ck["state"])
    result = {"parameters": ck["params"], "epoch": ck["epoch"], "training_log": ck["log"], "splits": {}}
    for split in ("validation", "test"):
        cs = [c for c in chorales if c["split"] == split]
        _, model_nll = tr.evaluate(m, cs)
        r = score([c["tokens"] for c in cs])
        r["model"] = model_nll
        r["chorales"] = len(cs)
        result["splits"][split] = r
        print(f"{split}: {len(cs)} chorales, {r['tokens']} voice tokens; NLL nats/token: model {model_nll:.4f}, "
              f"unigram {r['unigram']:.4f}, bigram {r['bigram']:.4f}, voice bigram {r['voice_bigram']:.4f}")
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)
    with open(a.heldout, "w") as f:
        for c in chorales:
            if c["split"] == "test":
                f.write(" ".join([c["name"], str(c["pickup16"]), str(c["bar16"])] + [str(t) for t in c["tokens"]]))
                f.write("\n")
    print(f"wrote {a.json} and {a.heldout}")


if __name__ == "__main__":
    main()

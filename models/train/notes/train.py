"""Trains the note model on data.py's chorales.json.

    python train.py --data DIR --out notes.pt [--minutes 15]

One torch thread (on the shared 2-core machine multi-threaded torch is far slower). Random windows of
96 sixteenth steps (6 bars of 4/4), each behind the chorale's [BOS, KEY] so the key reaches every window,
in batches of 64; validation runs whole chorales, so it measures the long context generation needs. Each
chorale is transposed by a random -3..+3 semitones every epoch (the key token moves with it). Small shifts
on purpose: the model learns register per key, so a key drawn like Bach's keys keeps SATB ranges. Cosine
learning-rate decay over a wall-clock budget; keeps the checkpoint with the best validation loss.
"""
import argparse
import json
import math
import os
import random
import time

import torch
from torch import nn

import tokens as T
from model import NoteModel, conditioning

torch.set_num_threads(1)


def load(data):
    with open(os.path.join(data, "chorales.json")) as f:
        return json.load(f)


def tensors(batch):
    """batch: list of (seq, pickup16, bar16) -> padded (token, voice, pos, target, mask)."""
    n = max(len(s) for s, _, _ in batch) - 1
    tok = torch.zeros(len(batch), n, dtype=torch.long)
    voice = torch.zeros_like(tok)
    pos = torch.zeros_like(tok)
    tgt = torch.zeros_like(tok)
    mask = torch.zeros(len(batch), n, dtype=torch.bool)
    for b, (s, pickup, bar) in enumerate(batch):
        v, p = conditioning(s, pickup, bar)
        L = len(s) - 1
        tok[b, :L] = torch.tensor(s[:-1])
        tgt[b, :L] = torch.tensor(s[1:])
        voice[b, :L] = torch.tensor(v)
        pos[b, :L] = torch.tensor(p)
        mask[b, :L] = True
    return tok, voice, pos, tgt, mask


def batches(items, size, rng):
    items = sorted(items, key=lambda x: len(x[0]))
    groups = [items[i : i + size] for i in range(0, len(items), size)]
    rng.shuffle(groups)
    return groups


def augment(c, rng, max_shift):
    while True:
        k = rng.randint(-max_shift, max_shift)
        s = T.transpose(c["tokens"], k)
        if s is not None:
            return s


def windows(c, rng, max_shift, window_steps):
    """Random windows of `window_steps` steps of a transposed chorale, each behind [BOS, KEY] (so the key
    reaches every window), about one per window length of chorale. Short windows batch well: one thread
    trains ~4x more tokens per second with 64 sequences of 256 than 8 whole chorales."""
    s = augment(c, rng, max_shift)
    head, body = s[:2], s[2:]
    steps = len(body) // 4
    out = []
    for _ in range(max(1, round(steps / window_steps))):
        start = rng.randint(0, max(0, steps - window_steps))
        w = body[4 * start : 4 * (start + window_steps)]
        out.append((head + w, c["pickup16"] + start, c["bar16"]))
    return out


def evaluate(model, chorales, batch=8):
    """Mean NLL per predicted token (nats): all tokens, and voice tokens only (the key token excluded)."""
    model.eval()
    tot, n, tot_v, n_v = 0.0, 0, 0.0, 0
    items = [(c["tokens"], c["pickup16"], c["bar16"]) for c in chorales]
    with torch.no_grad():
        for i in range(0, len(items), batch):
            tok, voice, pos, tgt, mask = tensors(items[i : i + batch])
            logits, _ = model(tok, voice, pos)
            nll = nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")
            tot += nll[mask].sum().item()
            n += mask.sum().item()
            vm = mask & (voice != T.KEY_SLOT)
            tot_v += nll[vm].sum().item()
            n_v += vm.sum().item()
    model.train()
    return tot / n, tot_v / n_v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--window-steps", type=int, default=96)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--max-shift", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    chorales = load(a.data)
    train = [c for c in chorales if c["split"] == "train"]
    val = [c for c in chorales if c["split"] == "validation"]
    model = NoteModel(hidden=a.hidden, layers=a.layers)
    params = sum(p.numel() for p in model.parameters())
    print(f"{params} parameters; {len(train)} train, {len(val)} validation chorales", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    budget = a.minutes * 60
    t0 = time.time()
    best = float("inf")
    log = []
    epoch = 0
    while time.time() - t0 < budget:
        epoch += 1
        items = [w for c in train for w in windows(c, rng, a.max_shift, a.window_steps)]
        tl, tn = 0.0, 0
        for group in batches(items, a.batch, rng):
            frac = min(1.0, (time.time() - t0) / budget)
            for g in opt.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * frac))
            tok, voice, pos, tgt, mask = tensors(group)
            logits, _ = model(tok, voice, pos)
            nll = nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")
            loss = nll[mask].mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tl += loss.item() * mask.sum().item()
            tn += mask.sum().item()
            if time.time() - t0 >= budget:
                break
        vall, valv = evaluate(model, val)
        el = time.time() - t0
        log.append({"epoch": epoch, "seconds": round(el), "train_nll": tl / tn, "val_nll": vall, "val_nll_voice": valv})
        print(f"epoch {epoch} {el:.0f}s train {tl / tn:.4f} val {vall:.4f} (voice tokens {valv:.4f})", flush=True)
        if vall < best:
            best = vall
            torch.save(
                {"state": model.state_dict(), "hidden": a.hidden, "layers": a.layers, "epoch": epoch, "log": log,
                 "args": vars(a), "params": params},
                a.out,
            )
    print(f"best validation {best:.4f}; {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()

"""Trains the siamese compressor-parameter estimator on a build-dataset directory.

    python train.py --data DIR --out model.pt [--minutes 60]

One thread (torch.set_num_threads(1)): on a shared 2-core machine multi-threaded torch is dozens of times
slower. Training runs for a wall-clock budget (--minutes) with a cosine learning-rate decay over that
budget, so a short run still ends annealed. Loss: Huber on the normalised settings (delta 0.05, about
twice the tolerances' width on the normalised axes, so it acts like L1 around the answer, which is what
a within-tolerance score rewards). Unidentifiable examples (the compressor reduced gain by < 0.5 dB) teach
only makeup, the one setting they reveal; knee has no accuracy rule and is weighted down (--knee-weight).
Keeps the checkpoint with the best validation accuracy (identifiable examples).
"""
import argparse
import math
import time

import numpy as np
import torch

import common

torch.set_num_threads(1)


def accuracy(model, meta, split, batch=256):
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(split["x"]), batch):
            preds.append(model(torch.from_numpy(split["x"][i : i + batch])).numpy())
    model.train()
    pred = common.denormalise(meta, np.concatenate(preds))
    ok = split["identifiable"]
    res = common.correct(pred[ok], split["y"][ok])
    per = {k: float(v.mean()) if len(v) else float("nan") for k, v in res.items()}
    overall = float(np.mean([v.mean() for v in res.values()])) if ok.any() else float("nan")
    return overall, per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--knee-weight", type=float, default=0.25)
    ap.add_argument("--huber", type=float, default=0.05)
    ap.add_argument("--init", help="start from this checkpoint's weights (same width) instead of fresh ones")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    meta, train = common.load_split(a.data, "train")
    _, val = common.load_split(a.data, "validation")
    n = len(train["x"])
    x = torch.from_numpy(train["x"])
    y = torch.from_numpy(train["y_norm"])
    # Per-example, per-parameter loss weights: unidentifiable examples only constrain makeup.
    w = np.ones((n, len(common.KEYS)), dtype=np.float32)
    w[:, common.KEYS.index("knee_db")] = a.knee_weight
    w[~train["identifiable"], :5] = 0.0
    w = torch.from_numpy(w)

    model = common.Estimator(features=x.shape[-1], width=a.width)
    if a.init:
        model.load_state_dict(torch.load(a.init, map_location="cpu")["state"])
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    print(f"train {n} examples ({int(train['identifiable'].sum())} identifiable), "
          f"validation {len(val['x'])}; {sum(p.numel() for p in model.parameters())} parameters")
    t0 = time.monotonic()
    budget = 60.0 * a.minutes
    deadline = t0 + budget
    best = -1.0
    epoch = 0
    while time.monotonic() < deadline:
        epoch += 1
        order = rng.permutation(n)
        total, seen = 0.0, 0
        for i in range(0, n, a.batch):
            idx = torch.from_numpy(order[i : i + a.batch])
            frac = min((time.monotonic() - t0) / budget, 1.0)
            for g in opt.param_groups:
                g["lr"] = a.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * frac)))
            pred = model(x[idx])
            err = torch.nn.functional.huber_loss(pred, y[idx], reduction="none", delta=a.huber)
            loss = (w[idx] * err).sum() / w[idx].sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if time.monotonic() >= deadline:
                break
        acc, per = accuracy(model, meta, val)
        print(f"epoch {epoch} ({time.monotonic() - t0:.0f} s): loss {total / max(seen, 1):.5f}  "
              f"validation accuracy {acc:.3f} "
              + " ".join(f"{k}={v:.2f}" for k, v in per.items()), flush=True)
        if acc > best or best < 0:
            best = acc
            torch.save({"state": model.state_dict(), "width": a.width, "features": int(x.shape[-1]),
                        "seconds": time.monotonic() - t0, "args": vars(a),
                        "epoch": epoch, "validation_accuracy": acc, "validation_per_param": per}, a.out)
    print(f"best validation accuracy {best:.3f} -> {a.out}")


if __name__ == "__main__":
    main()

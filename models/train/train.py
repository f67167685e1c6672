"""Trains the siamese compressor-parameter estimator on a build-dataset directory.

    python train.py --data DIR --out model.pt [--minutes 60]

One thread (torch.set_num_threads(1)): on a shared 2-core machine multi-threaded torch is dozens of times
slower. Unidentifiable examples (the compressor reduced gain by < 0.5 dB) teach only makeup, the one
setting they reveal. Keeps the checkpoint with the best validation accuracy.
"""
import argparse
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
    ap.add_argument("--width", type=int, default=48)
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
    w[~train["identifiable"], :5] = 0.0
    w = torch.from_numpy(w)

    model = common.Estimator(features=x.shape[-1], width=a.width)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    print(f"train {n} examples ({int(train['identifiable'].sum())} identifiable), "
          f"validation {len(val['x'])}; {sum(p.numel() for p in model.parameters())} parameters")
    deadline = time.monotonic() + 60.0 * a.minutes
    best = -1.0
    epoch = 0
    while time.monotonic() < deadline:
        epoch += 1
        order = rng.permutation(n)
        total, seen = 0.0, 0
        for i in range(0, n, a.batch):
            idx = torch.from_numpy(order[i : i + a.batch])
            pred = model(x[idx])
            loss = (w[idx] * (pred - y[idx]) ** 2).sum() / w[idx].sum().clamp(min=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
            if time.monotonic() >= deadline:
                break
        acc, per = accuracy(model, meta, val)
        print(f"epoch {epoch}: loss {total / max(seen, 1):.4f}  validation accuracy {acc:.3f} "
              + " ".join(f"{k}={v:.2f}" for k, v in per.items()), flush=True)
        if acc > best or best < 0:
            best = acc
            torch.save({"state": model.state_dict(), "width": a.width, "features": int(x.shape[-1]),
                        "epoch": epoch, "validation_accuracy": acc, "validation_per_param": per}, a.out)
    print(f"best validation accuracy {best:.3f} -> {a.out}")


if __name__ == "__main__":
    main()

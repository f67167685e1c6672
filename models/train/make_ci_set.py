"""Cuts the small fixed held-out set the CI test of the committed model runs on (models/tests/estimator_model.rs).

    python make_ci_set.py --data DIR --out ../tests/data/heldout [--count 144] [--seed 1]

A seeded random sample of the dataset's test split (held-out tracks and the test split's synthetic
streams), all kinds of example in their proportions, identifiable or not: the same .npy layout as
build-dataset (x, y, identifiable, band, bands, source) plus a meta.json naming where each came from.
144 examples of 12.8 KB keep it under 2 MB.
"""
import argparse
import json
import pathlib

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--count", type=int, default=144)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    src = pathlib.Path(a.data)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((src / "meta.json").read_text())
    n = len(np.load(src / f"{a.split}_y.npy", mmap_mode="r"))
    pick = np.sort(np.random.default_rng(a.seed).choice(n, size=min(a.count, n), replace=False))
    for what in ("x", "y", "y_norm", "identifiable", "max_gr_db", "source", "band", "bands"):
        arr = np.load(src / f"{a.split}_{what}.npy", mmap_mode="r")
        np.save(out / f"test_{what}.npy", np.ascontiguousarray(arr[pick]))
    ident = np.load(out / "test_identifiable.npy")
    (out / "meta.json").write_text(json.dumps({
        "from": f"{a.split} split of a build-dataset directory (seed {meta['seed']}), examples picked with numpy seed {a.seed}",
        "indices": pick.tolist(),
        "examples": int(len(pick)),
        "identifiable": int(ident.sum()),
        "tracks": meta["splits"][a.split]["tracks"],
        "sources": meta["sources"],
        "params": meta["params"],
    }, indent=1) + "\n")
    print(f"{len(pick)} examples ({int(ident.sum())} identifiable) -> {out}")


if __name__ == "__main__":
    main()

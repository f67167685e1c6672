"""Accuracy of an exported estimator on a build-dataset split, run through ONNX Runtime 1.31.1.

    python evaluate.py --data DIR --model ../estimator.onnx [--split test] [--json out.json]

Issue 6's rule: an estimate is correct when threshold is within ±2 dB, ratio within ±20%, attack and
release within ±30%, makeup within ±1 dB (common.TOLERANCE). The figure is the share of correct
(example, parameter) pairs over the identifiable examples of the split (those where the compressor
reduced gain by at least 0.5 dB somewhere in the window); unidentifiable examples are reported apart
(only makeup can be scored on them). Knee has no rule: its mean absolute error is reported.
"""
import argparse
import json

import numpy as np
import onnxruntime as ort

import common


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--json")
    a = ap.parse_args()
    meta, s = common.load_split(a.data, a.split)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    preds = [sess.run(["params_norm"], {"features": s["x"][i : i + 256]})[0] for i in range(0, len(s["x"]), 256)]
    pred = common.denormalise(meta, np.concatenate(preds))
    ok = s["identifiable"]
    res = common.correct(pred[ok], s["y"][ok])
    per = {k: float(v.mean()) for k, v in res.items()}
    overall = float(np.mean([v.mean() for v in res.values()]))
    unid = ~ok
    report = {
        "split": a.split,
        "examples": int(len(ok)),
        "identifiable": int(ok.sum()),
        "accuracy": overall,
        "per_parameter": per,
        "knee_mae_db": float(np.abs(pred[ok, 4] - s["y"][ok, 4]).mean()),
        "unidentifiable": {
            "examples": int(unid.sum()),
            "makeup_accuracy": float((np.abs(pred[unid, 5] - s["y"][unid, 5]) <= 1.0).mean()) if unid.any() else None,
        },
    }
    # A finer look at identifiability than the builder's flag: a (hard-knee-equivalent) compressor whose
    # input stays above threshold the whole window shows only the slope 1/ratio and the intercept
    # threshold*(1 - 1/ratio) + makeup, so threshold and makeup trade off exactly; one whose input never
    # leaves the knee region shows little of the ratio. "Crossing" examples have at least 10% of their
    # audible frames (dry RMS above -90 dBFS) clearly below the knee and 10% clearly above it.
    lvl = s["x"][:, 0, :, 0]
    audible = lvl > -90.0
    t = s["y"][:, 0:1]
    k = s["y"][:, 4:5]
    below = ((lvl < t - k / 2 - 3.0) & audible).sum(1) / np.maximum(audible.sum(1), 1)
    above = ((lvl > t + k / 2 + 3.0) & audible).sum(1) / np.maximum(audible.sum(1), 1)
    crossing = ok & (below >= 0.1) & (above >= 0.1)
    for name, mask in (("identifiable_crossing", crossing), ("identifiable_not_crossing", ok & ~crossing)):
        if mask.any():
            r = common.correct(pred[mask], s["y"][mask])
            report[name] = {
                "examples": int(mask.sum()),
                "accuracy": float(np.mean([v.mean() for v in r.values()])),
                "per_parameter": {k2: float(v.mean()) for k2, v in r.items()},
            }
    # Where the errors are, in the units of the rule (median absolute / relative error, identifiable).
    rel = lambda i: np.median(np.abs(pred[ok, i] / s["y"][ok, i] - 1.0))
    absd = lambda i: np.median(np.abs(pred[ok, i] - s["y"][ok, i]))
    report["median_error_identifiable"] = {
        "threshold_db": float(absd(0)), "ratio_rel": float(rel(1)), "attack_rel": float(rel(2)),
        "release_rel": float(rel(3)), "knee_db": float(absd(4)), "makeup_db": float(absd(5)),
    }
    print(json.dumps(report, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()

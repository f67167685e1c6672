"""Shared by train.py, export.py and evaluate.py: the dataset files, the network and the accuracy rule.

The dataset is what `build-dataset` (models/src/bin/build-dataset.rs) writes; its meta.json carries the
parameter ranges, so the normalisation here is the Rust one (ballast_models::params::Range).
"""
import json
import pathlib

import numpy as np
import torch
from torch import nn

KEYS = ["threshold_db", "ratio", "attack_ms", "release_ms", "knee_db", "makeup_db"]

# Accuracy rule of issue 6: an estimate is correct when threshold is within ±2 dB, ratio within ±20%,
# attack and release within ±30%, makeup within ±1 dB. Knee has no rule: reported as an error only.
TOLERANCE = {
    "threshold_db": ("abs", 2.0),
    "ratio": ("rel", 0.20),
    "attack_ms": ("rel", 0.30),
    "release_ms": ("rel", 0.30),
    "makeup_db": ("abs", 1.0),
}


def load_split(root, split):
    root = pathlib.Path(root)
    meta = json.loads((root / "meta.json").read_text())
    arr = lambda w: np.load(root / f"{split}_{w}.npy")
    return meta, {
        "x": arr("x"),
        "y": arr("y"),
        "y_norm": arr("y_norm"),
        "identifiable": arr("identifiable").astype(bool),
        "max_gr_db": arr("max_gr_db"),
        "source": arr("source"),
    }


def denormalise(meta, u):
    """Normalised [.., 6] -> descriptor units, as ballast_models::params::Range::denormalise."""
    u = np.clip(u, 0.0, 1.0)
    out = np.empty_like(u, dtype=np.float64)
    for i, r in enumerate(meta["params"]):
        lo, hi = float(r["min"]), float(r["max"])
        if r["scale"] == "log":
            out[..., i] = np.exp(np.log(lo) + u[..., i] * (np.log(hi) - np.log(lo)))
        else:
            out[..., i] = lo + u[..., i] * (hi - lo)
    return out


def correct(pred, true):
    """Per-parameter correctness (dict key -> bool array) under TOLERANCE."""
    res = {}
    for key, (kind, tol) in TOLERANCE.items():
        i = KEYS.index(key)
        if kind == "abs":
            res[key] = np.abs(pred[:, i] - true[:, i]) <= tol
        else:
            res[key] = np.abs(pred[:, i] / true[:, i] - 1.0) <= tol
    return res


class Encoder(nn.Module):
    """Shared by dry and wet: per-frame features -> per-frame embedding (dilated 1-D convolutions)."""

    def __init__(self, features, width):
        super().__init__()
        layers = []
        c = features
        for d in (1, 2, 4):
            layers += [nn.Conv1d(c, width, 5, padding=2 * d, dilation=d), nn.GELU()]
            c = width
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # [B, T, F] -> [B, C, T]
        return self.net(x.transpose(1, 2))


class Estimator(nn.Module):
    """Siamese estimator: one encoder over dry and over wet, a temporal head over their comparison,
    pooled over time, predicting the six normalised settings (sigmoid, [0, 1])."""

    # Features are dBFS (floor -100): centre and scale them into roughly ±2.
    OFFSET_DB = -40.0
    SCALE_DB = 20.0

    def __init__(self, features=4, width=48):
        super().__init__()
        self.encoder = Encoder(features, width)
        layers = []
        c = 3 * width
        # Dilations up to 32 frames: a receptive field of ~2.5 s at 10 ms, for release times.
        for d in (1, 2, 4, 8, 16, 32):
            layers += [nn.Conv1d(c, width, 3, padding=d, dilation=d), nn.GELU()]
            c = width
        self.temporal = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, len(KEYS)))

    def forward(self, x):  # [B, 2, T, F]
        x = (x - self.OFFSET_DB) / self.SCALE_DB
        dry = self.encoder(x[:, 0])
        wet = self.encoder(x[:, 1])
        h = self.temporal(torch.cat([dry, wet, wet - dry], dim=1))
        pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return torch.sigmoid(self.head(pooled))

"""Exports a train.py checkpoint as the one-token step model ballast runs (dynamo exporter, weights inside).

    python export.py --checkpoint notes.pt --out ../../notes.onnx

Interface (checked by ballast_models::notes::model::spec): inputs `token`, `voice`, `position` int64
[batch] and `state` f32 [layers, batch, hidden]; outputs `logits` f32 [batch, VOCAB] and `state_out` f32
[layers, batch, hidden]. Before writing, checks that the step model reproduces the fused GRU's logits over
a chorale-length random sequence (max abs difference printed), then that ONNX Runtime reproduces torch.
"""
import argparse

import numpy as np
import onnxruntime as ort
import torch

import tokens as T
from model import NoteModel, StepModel

torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ck = torch.load(a.checkpoint, map_location="cpu")
    m = NoteModel(hidden=ck["hidden"], layers=ck["layers"])
    m.load_state_dict(ck["state"])
    m.eval()
    step = StepModel(m).eval()

    g = torch.Generator().manual_seed(0)
    n = 200
    tok = torch.randint(0, T.VOCAB, (1, n), generator=g)
    voice = torch.randint(0, T.VOICE_SLOTS, (1, n), generator=g)
    pos = torch.randint(0, T.POSITIONS, (1, n), generator=g)
    with torch.no_grad():
        ref, _ = m(tok, voice, pos)
        state = torch.zeros(m.layers, 1, m.hidden)
        outs = []
        for i in range(n):
            lo, state = step(tok[:, i], voice[:, i], pos[:, i], state)
            outs.append(lo)
        diff = (torch.stack(outs, 1) - ref).abs().max().item()
    print(f"step model vs fused GRU over {n} tokens: max |logit difference| {diff:.2e}")
    assert diff < 1e-3, diff

    ex = (torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long),
          torch.zeros(m.layers, 2, m.hidden))
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        step,
        ex,
        dynamo=True,
        external_data=False,
        input_names=["token", "voice", "position", "state"],
        output_names=["logits", "state_out"],
        dynamic_shapes=({0: batch}, {0: batch}, {0: batch}, {1: batch}),
    )
    program.save(a.out, external_data=False)

    sess = ort.InferenceSession(a.out, providers=["CPUExecutionProvider"])
    state = np.zeros((m.layers, 1, m.hidden), np.float32)
    worst = 0.0
    for i in range(n):
        lo, state = sess.run(None, {"token": tok[:, i].numpy(), "voice": voice[:, i].numpy(),
                                    "position": pos[:, i].numpy(), "state": state})
        worst = max(worst, float(np.abs(lo - ref[:, i].numpy()).max()))
    print(f"ONNX Runtime vs torch over {n} tokens: max |logit difference| {worst:.2e}")
    assert worst < 1e-3, worst
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

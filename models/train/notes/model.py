"""The note model: a GRU over the interleaved S-A-T-B token stream (tokens.py), and its one-token step form.

Each position sees the previous token, which voice slot it must predict next (S, A, T, B, or the key slot)
and where in the bar that step lies (sixteenths). Training runs the fused nn.GRU over whole chorales; the
export runs the same weights one token at a time with the recurrent state as input and output
(`StepModel`), written out as plain matrix products so the ONNX graph holds no RNN operator ONNX Runtime
might treat differently.
"""
import torch
from torch import nn

import tokens as T


class NoteModel(nn.Module):
    def __init__(self, hidden=256, layers=2, embed=128, cond=8):
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.tok = nn.Embedding(T.VOCAB, embed)
        self.voice = nn.Embedding(T.VOICE_SLOTS, cond)
        self.pos = nn.Embedding(T.POSITIONS, cond)
        self.gru = nn.GRU(embed + 2 * cond, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, T.VOCAB)

    def inputs(self, token, voice, position):
        return torch.cat([self.tok(token), self.voice(voice), self.pos(position)], dim=-1)

    def forward(self, token, voice, position, state=None):
        y, state = self.gru(self.inputs(token, voice, position), state)
        return self.out(y), state


class StepModel(nn.Module):
    """One token per call: (token, voice, position, state) -> (logits, state_out); batch of any size."""

    def __init__(self, m: NoteModel):
        super().__init__()
        self.m = m

    def forward(self, token, voice, position, state):
        x = self.m.inputs(token, voice, position)
        new = []
        for layer in range(self.m.layers):
            h = state[layer]
            w_ih = getattr(self.m.gru, f"weight_ih_l{layer}")
            w_hh = getattr(self.m.gru, f"weight_hh_l{layer}")
            b_ih = getattr(self.m.gru, f"bias_ih_l{layer}")
            b_hh = getattr(self.m.gru, f"bias_hh_l{layer}")
            gi = x @ w_ih.t() + b_ih
            gh = h @ w_hh.t() + b_hh
            i_r, i_z, i_n = gi.chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
            new.append(h)
            x = h
        return self.m.out(x), torch.stack(new)


def conditioning(seq, pickup16, bar16):
    """Voice slot and bar position of the token each position predicts (the next one)."""
    voice, pos = [], []
    for j in range(1, len(seq)):
        if j == 1:
            voice.append(T.KEY_SLOT)
            pos.append(0)
        else:
            step = (j - 2) // 4
            voice.append((j - 2) % 4)
            pos.append((step + pickup16) % bar16 % T.POSITIONS)
    return voice, pos

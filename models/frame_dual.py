"""Dual-branch Transformer with safe cross-attention (``fusion.model: dual_branch``), seed 003 abstract 4
(ABAW10 EXPR, 0.503 macro F1 on validation).

The abstract: "a dual-branch Transformer architecture featuring a safe cross-attention mechanism and a
modality dropout strategy. This design allows the network to rely on audio-based predictions when
visual cues are absent", with focal loss (``expr.loss: focal``) and "a sliding-window soft voting
strategy" (``expr.smoothing``: the class probabilities are averaged over a window of frames before
the argmax). Per window:

    h_v = TemporalEncoder_v(StreamEmbedding(visual))          (B, W, d)  visual branch
    h_a = TemporalEncoder_a(StreamEmbedding(audio))           (B, W, d)  audio branch
    v'  = LN(h_v + SafeCrossAttn(h_v, [h_a; X]))              the face reads the voice (and context X)
    a'  = LN(h_a + SafeCrossAttn(h_a, [h_v; X]))              the voice reads the face
    y_t = face_t * Head_av([v'_t; a'_t]) + (1 - face_t) * Head_a(a'_t)      (B, W, C)

Safe cross-attention has a learned null key (``models.frame_common.SafeCrossAttention``): a branch
whose other modality is absent in the whole window attends to it instead of to nothing (NaN), and
at a frame without a face the prediction is the audio branch's own head, so a missing face never
feeds the output; modality dropout (``fusion.modality_dropout``) removes a modality from whole
training windows so both heads learn. Where the abstract is silent: the branch depth
(``fusion.temporal.layers`` each), the two heads, the hard switch on face presence.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.frame_common import (
    FrameHead,
    FrameInputs,
    FrameModelConfig,
    SafeCrossAttention,
    StreamEmbedding,
    TemporalEncoder,
    feature_norms,
    masked,
    present_after_dropout,
    standardized,
)


class DualBranch(nn.Module):
    def __init__(self, *, config: FrameModelConfig) -> None:
        super().__init__()
        c = config
        if not {"visual", "audio"} <= set(c.streams):
            raise ValueError("dual_branch needs the visual and audio streams")
        self.config = c
        self.norm = feature_norms(c.input_dims)
        self.embed = nn.ModuleDict({m: StreamEmbedding(c.input_dims[m], c.d_model) for m in ("visual", "audio")})
        self.branch = nn.ModuleDict(
            {m: TemporalEncoder(c.d_model, c.n_heads, c.dropout, c.layers) for m in ("visual", "audio")}
        )
        self.context_proj = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(c.input_dims[m], c.d_model), nn.LayerNorm(c.d_model)) for m in c.contexts}
        )
        self.cross = nn.ModuleDict(
            {m: SafeCrossAttention(c.d_model, c.n_heads, c.dropout) for m in ("visual", "audio")}
        )
        self.cross_ln = nn.ModuleDict({m: nn.LayerNorm(c.d_model) for m in ("visual", "audio")})
        self.head_av = FrameHead(2 * c.d_model, c.n_outputs, c.dropout)
        self.head_a = FrameHead(c.d_model, c.n_outputs, c.dropout)

    def forward(self, inputs: FrameInputs) -> torch.Tensor:
        """-> (B, W, n_outputs)."""
        inputs = standardized(self.norm, inputs)
        present = present_after_dropout(inputs, self.config.modality_dropout, self.training)
        streams = {m: masked(inputs.streams[m], present[m]) for m in ("visual", "audio")}
        h = {m: self.branch[m](self.embed[m](inp), inputs.steps) for m, inp in streams.items()}
        extra, extra_mask = [], []
        for m, proj in self.context_proj.items():
            inp = masked(inputs.context[m], present[m])
            extra.append(proj(inp.x))
            extra_mask.append(inp.mask)
        out = {}
        for m, other in (("visual", "audio"), ("audio", "visual")):
            keys = torch.cat([h[other], *extra], dim=1)
            mask = torch.cat([streams[other].mask, *extra_mask], dim=1)
            out[m] = self.cross_ln[m](h[m] + self.cross[m](h[m], keys, mask))
        face = streams["visual"].mask[..., None].to(out["visual"].dtype)
        both = self.head_av(torch.cat([out["visual"], out["audio"]], dim=-1))
        return face * both + (1.0 - face) * self.head_a(out["audio"])

"""Directed cross-modal mixture of experts (``fusion.model: moe``), seed 003 (ABAW10 VA).

The paper: "a Directed Cross-Modal Mixture-of-Experts Fusion Strategy that learns interactions
between modalities with adaptive weighting". Per window, with frame streams S (visual, audio) and
context tokens X (text, if used):

    h_m = TemporalEncoder_m(StreamEmbedding(m))                  (B, W, d)  one per stream m in S
    E_m      = h_m                                               unimodal expert of each stream
    E_{m<-n} = LN(h_m + SafeCrossAttn(h_m, h_n))                 directed expert: m's frames query n,
                                                                 for every ordered pair m != n in S
    E_{m<-X} = LN(h_m + SafeCrossAttn(h_m, X))                   m's frames query the context tokens
    pi_t = softmax_e(G([h_v; h_a; face_t; audio_t])_e + log ok_e,t)   (B, W, n_experts) per-frame gate
    z_t  = LN(h_v,t + sum_e pi_e,t E_e,t)                        the mixture on a face residual
    y_t  = FrameHead(TemporalEncoder(z))                          (B, W, C)

An expert is "directed": E_{v<-a} is the face frames reading the voice, E_{a<-v} the voice frames
reading the face; the gate weighs them per frame from both streams and their presence flags, and
an expert whose query stream is absent at a frame (no face, no audio) gets weight 0 there (its
``ok`` is False; at least the unimodal expert of a present stream, or, with nothing present, every
expert, stays allowed, so the softmax is always defined).

Where the paper is silent, and what we chose: one temporal encoder layer per stream before the
experts and ``fusion.temporal.layers`` after the mixture; the expert set (all ordered pairs plus
the unimodal experts); the residual on the face stream (the face carries most of the signal on
both the demo and Aff-Wild2; without it an untrained gate starts by averaging the face with weak
experts, and early stopping fired before it learnt to weigh them); the gate's input (the
streams' own states and the presence flags) and width (``fusion.temporal.gate_hidden``);
modality dropout per window as in the other models.
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


class CrossModalMoE(nn.Module):
    def __init__(self, *, config: FrameModelConfig) -> None:
        super().__init__()
        c = config
        if "visual" not in c.streams:
            raise ValueError("the mixture of experts needs the visual stream")
        self.config = c
        self.norm = feature_norms(c.input_dims)
        self.embed = nn.ModuleDict({m: StreamEmbedding(c.input_dims[m], c.d_model) for m in c.streams})
        self.encode = nn.ModuleDict({m: TemporalEncoder(c.d_model, c.n_heads, c.dropout, 1) for m in c.streams})
        self.context_proj = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(c.input_dims[m], c.d_model), nn.LayerNorm(c.d_model)) for m in c.contexts}
        )
        # Experts: (query stream, key source or None for unimodal); key "ctx" reads the context tokens.
        self.experts: list[tuple[str, str | None]] = [(m, None) for m in c.streams]
        self.experts += [(m, n) for m in c.streams for n in c.streams if m != n]
        self.experts += [(m, "ctx") for m in c.streams if c.contexts]
        self.cross = nn.ModuleDict(
            {f"{m}<-{n}": SafeCrossAttention(c.d_model, c.n_heads, c.dropout) for m, n in self.experts if n}
        )
        self.cross_ln = nn.ModuleDict({name: nn.LayerNorm(c.d_model) for name in self.cross})
        gate_in = len(c.streams) * (c.d_model + 1)
        self.gate = nn.Sequential(
            nn.Linear(gate_in, c.gate_hidden), nn.GELU(), nn.Linear(c.gate_hidden, len(self.experts))
        )
        self.temporal = TemporalEncoder(c.d_model, c.n_heads, c.dropout, c.layers)
        self.head = FrameHead(c.d_model, c.n_outputs, c.dropout)
        self.res_ln = nn.LayerNorm(c.d_model)

    def forward(self, inputs: FrameInputs) -> torch.Tensor:
        """-> (B, W, n_outputs)."""
        inputs = standardized(self.norm, inputs)
        present = present_after_dropout(inputs, self.config.modality_dropout, self.training)
        streams = {m: masked(inputs.streams[m], present[m]) for m in self.config.streams}
        h = {m: self.encode[m](self.embed[m](inp), inputs.steps) for m, inp in streams.items()}
        ctx, ctx_mask = None, None
        if self.config.contexts:
            parts = [masked(inputs.context[m], present[m]) for m in self.config.contexts]
            ctx = torch.cat([self.context_proj[m](p.x) for m, p in zip(self.config.contexts, parts, strict=True)], 1)
            ctx_mask = torch.cat([p.mask for p in parts], dim=1)
        outputs, allowed = [], []
        for m, n in self.experts:
            if n is None:
                outputs.append(h[m])
            else:
                keys, mask = (ctx, ctx_mask) if n == "ctx" else (h[n], streams[n].mask)
                name = f"{m}<-{n}"
                outputs.append(self.cross_ln[name](h[m] + self.cross[name](h[m], keys, mask)))
            allowed.append(streams[m].mask)
        experts = torch.stack(outputs, dim=2)  # (B, W, E, d)
        ok = torch.stack(allowed, dim=2)  # (B, W, E)
        ok = ok | ~ok.any(dim=2, keepdim=True)  # nothing present at a frame: every expert allowed
        flags = [streams[m].mask[..., None].to(experts.dtype) for m in self.config.streams]
        gate_in = torch.cat([x for m in self.config.streams for x in (h[m], flags.pop(0))], dim=-1)
        logits = self.gate(gate_in).masked_fill(~ok, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        fused = self.res_ln(h["visual"] + (weights[..., None] * experts).sum(dim=2))
        return self.head(self.temporal(fused, inputs.steps))

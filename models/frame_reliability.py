"""Reliability-aware audio-visual fusion (``fusion.model: reliability``), seed 003 (ABAW10 VA, 0.658 CCC).

The paper: "a Reliability-Aware Audio-Visual Fusion Strategy that combines visual features at the
frame-level while using audio as complementary context", with "a cross-modal filtering stage to
reduce the influence of unreliable or non-speech segments". Per window (B, W frames):

    v_t = StreamEmbedding(visual)_t, a_t = StreamEmbedding(audio)_t        (B, W, d) learned token if absent
    rho_t = sigmoid(MLP_a([a_t; v_t])) * audio_t                           (B, W)  audio reliability: the
                                                                                    cross-modal filter
    L  = LN(Z + SafeAttn(Z, a; bias log rho))                              (B, n_lat, d) learned latents Z
                                                                                    summarise the window's audio
    c_t = SafeAttn(v_t, [L; text])                                         (B, W, d) audio (and text) context
    r_t = sigmoid(MLP_v([v_t; face_t]))                                    (B, W, 1) visual reliability
    f_t = LN(r_t * v_t + (1 - r_t) * rho_t a_t + c_t)                      frame-level fusion
    y   = FrameHead(TemporalEncoder(f))                                    (B, W, C)

Reliability is per frame: ``face_t`` is 1 where the decoder found a face (or an organiser crop
exists), ``audio_t`` where the track has audio; the learned gates r (how much to trust the face)
and rho (how much the audio at this frame is speech worth listening to, judged from the audio and
the face together) decide the mix, so frames without a face lean on the voice and silent frames
are filtered out of the audio context.

Where the paper is silent, and what we chose: the visual stream is the face-frame embeddings (its
GRADA features are replaced by the pipeline's visual features; its behaviour stream, a 4B
vision-language model, is out of reach here: any clip-level third stream, e.g. the ASR text,
enters as one more context token); the latent bottleneck (``fusion.temporal.audio_latents``
tokens, as in the authors' released fusion code) and the gate MLP sizes; the frame-aligned audio
term ``(1 - r) rho a`` (the released code fuses every frame-level stream with softmax gates; with
one visual stream a convex gate against the filtered audio is the same idea); the temporal encoder
after the fusion (``fusion.temporal.layers``); modality dropout per window
(``fusion.modality_dropout``), never dropping every modality of a window.
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


def _gate(d_in: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, 1))


class ReliabilityFusion(nn.Module):
    def __init__(self, *, config: FrameModelConfig) -> None:
        super().__init__()
        c = config
        if "visual" not in c.streams:
            raise ValueError("reliability fusion needs the visual stream")
        self.config = c
        self.norm = feature_norms(c.input_dims)
        self.embed = nn.ModuleDict({m: StreamEmbedding(c.input_dims[m], c.d_model) for m in c.streams})
        self.context_proj = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(c.input_dims[m], c.d_model), nn.LayerNorm(c.d_model)) for m in c.contexts}
        )
        self.visual_gate = _gate(c.d_model + 1, c.gate_hidden)
        if "audio" in c.streams:
            self.audio_filter = _gate(2 * c.d_model, c.gate_hidden)
            self.latents = nn.Parameter(torch.randn(1, c.audio_latents, c.d_model) * 0.02)
            self.summarise = SafeCrossAttention(c.d_model, c.n_heads, c.dropout)
            self.latent_ln = nn.LayerNorm(c.d_model)
        self.context = SafeCrossAttention(c.d_model, c.n_heads, c.dropout)
        self.fused_ln = nn.LayerNorm(c.d_model)
        self.temporal = TemporalEncoder(c.d_model, c.n_heads, c.dropout, c.layers)
        self.head = FrameHead(c.d_model, c.n_outputs, c.dropout)

    def forward(self, inputs: FrameInputs) -> torch.Tensor:
        """-> (B, W, n_outputs)."""
        inputs = standardized(self.norm, inputs)
        present = present_after_dropout(inputs, self.config.modality_dropout, self.training)
        streams = {m: masked(inp, present[m]) for m, inp in inputs.streams.items() if m in self.embed}
        visual = streams["visual"]
        v = self.embed["visual"](visual)
        face = visual.mask[..., None].to(v.dtype)
        r = torch.sigmoid(self.visual_gate(torch.cat([v, face], dim=-1)))
        fused = r * v
        keys, key_mask = [], []
        if "audio" in streams:
            audio = streams["audio"]
            a = self.embed["audio"](audio)
            rho = torch.sigmoid(self.audio_filter(torch.cat([a, v], dim=-1))).squeeze(-1) * audio.mask.to(a.dtype)
            fused = fused + (1.0 - r) * rho[..., None] * a
            bias = torch.log(rho.clamp_min(1e-6))
            z = self.latents.expand(a.shape[0], -1, -1).to(a.dtype)
            latents = self.latent_ln(z + self.summarise(z, a, audio.mask, bias))
            keys.append(latents)
            key_mask.append(audio.mask.any(dim=1, keepdim=True).expand(-1, latents.shape[1]))
        for m, proj in self.context_proj.items():
            inp = masked(inputs.context[m], present[m])
            keys.append(proj(inp.x))
            key_mask.append(inp.mask)
        if keys:
            fused = fused + self.context(v, torch.cat(keys, dim=1), torch.cat(key_mask, dim=1))
        return self.head(self.temporal(self.fused_ln(fused), inputs.steps))

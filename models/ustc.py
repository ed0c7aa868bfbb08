"""The USTC model (seed 001, sections 3.3-3.6): temporal feature enhancement per modality,
quality-aware weighting, and a Transformer encoder over the weighted modality tokens.

    visual x_v (B, T_v, D_v) -> Linear -> TCN (dilated residual conv1d, dilations 1, 2, 4, ...)
                             -> segment-wise average pooling into M segments      (B, M, d)
    audio  x_a (B, T_a, D_a) -> BiLSTM (packed) -> h_t;  alpha_t = sigmoid(W_g [h_t; h_t - h_{t-1}])
                             -> masked mean of alpha_t * h_t                      (B, 1, 2H)
    text   x_s (B, 1, D_s) (masked mean if a text sequence is longer)               (B, 1, D_s)
    modality mapping MLPs to the shared width d                                   tokens (B, n_m, d)
    QAM: q_m = MLP(mean token of m) (B,);  beta = softmax over present modalities (B, 3)
    Transformer encoder over [CLS; beta_v v_1..v_M; beta_a a; beta_s s] + slot embeddings
    head on the CLS output                                                        (B, 6)

``tfe=False`` (Table 3 baseline) replaces TCN/segments and BiLSTM/gating by the masked mean of the
linearly projected features (one token per modality); ``qam=False`` gives every present modality
the weight 1/n_present. Missing modalities (absent, or dropped in training) are masked out of the
softmax and out of the encoder's attention; the always-present CLS token keeps every row of the
attention defined, so a sample with no modality at all still gets a (constant) prediction.

Choices the paper leaves open: the TCN is non-causal (offline clips; "same" padding) with zeroed
invalid frames before every convolution, so padding never leaks into valid positions; a segment
covers frames [m L / M, (m+1) L / M) of the clip's own length L, and an empty segment (clip shorter
than M frames, or no valid frame in it) is masked; the gate is element-wise (W_g: 4H -> 2H) with
Delta h_0 = 0; the encoder is PyTorch's post-LayerNorm TransformerEncoder (post-LN, so the QAM
weights scale what attention sees instead of being normalised away); the CLS readout token and the
learned slot (position/modality) embeddings are ours. ``modality_dropout`` (shared with TAEMI) is
not in seed 001: set ``fusion.modality_dropout: 0`` to train the paper's model as published.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.common import (
    FeatureNorm,
    FusionConfig,
    ModalityInput,
    drop_modalities,
    masked_mean,
    standardize,
)


@dataclass(frozen=True, kw_only=True)
class UstcConfig(FusionConfig):
    tfe: bool = True
    qam: bool = True
    tcn_levels: int = 3
    tcn_kernel: int = 3
    segments: int = 8
    encoder_layers: int = 2


class TemporalBlock(nn.Module):
    """Residual block of two dilated, non-causal 1-D convolutions (Bai et al. 2018)."""

    def __init__(self, *, channels: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        total = (kernel - 1) * dilation
        self.pad = (total // 2, total - total // 2)
        self.conv1 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """x: (B, C, T), keep: (B, 1, T) float 0/1 -> (B, C, T), zero where keep is 0."""
        h = self.drop(torch.relu(self.conv1(nn.functional.pad(x * keep, self.pad))))
        h = self.drop(torch.relu(self.conv2(nn.functional.pad(h * keep, self.pad))))
        return torch.relu(x + h) * keep


def segment_pool(
    h: torch.Tensor, mask: torch.Tensor, length: torch.Tensor, segments: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the valid frames of each of ``segments`` equal parts of every clip.

    h: (B, T, d), mask: (B, T) bool, length: (B,) -> pooled (B, M, d), valid (B, M) bool.
    """
    T = h.shape[1]
    t = torch.arange(T, device=h.device)
    seg = torch.div(t.unsqueeze(0) * segments, length.clamp(min=1).unsqueeze(1), rounding_mode="floor")
    member = (seg.unsqueeze(-1) == torch.arange(segments, device=h.device)) & mask.unsqueeze(-1)  # (B, T, M)
    weights = member.to(h.dtype)
    counts = weights.sum(dim=1)  # (B, M)
    pooled = torch.einsum("btm,btd->bmd", weights, h) / counts.clamp(min=1.0).unsqueeze(-1)
    return pooled, counts > 0


def _mlp(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_out, d_out))


class Ustc(nn.Module):
    def __init__(self, *, config: UstcConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        d = c.d_model
        self.norm = nn.ModuleDict({m: FeatureNorm(c.input_dims[m]) for m in c.modalities})
        mapped_in: dict[str, int] = {}
        if "visual" in c.input_dims:
            self.visual_in = nn.Linear(c.input_dims["visual"], d)
            if c.tfe:
                self.tcn = nn.ModuleList(
                    TemporalBlock(channels=d, kernel=c.tcn_kernel, dilation=2**k, dropout=c.dropout)
                    for k in range(c.tcn_levels)
                )
            mapped_in["visual"] = d
        if "audio" in c.input_dims:
            if c.tfe:
                hidden = max(d // 2, 1)
                self.lstm = nn.LSTM(c.input_dims["audio"], hidden, batch_first=True, bidirectional=True)
                self.gate = nn.Linear(4 * hidden, 2 * hidden)
                mapped_in["audio"] = 2 * hidden
            else:
                self.audio_in = nn.Linear(c.input_dims["audio"], d)
                mapped_in["audio"] = d
        if "text" in c.input_dims:
            mapped_in["text"] = c.input_dims["text"]
        self.mapping = nn.ModuleDict({m: _mlp(mapped_in[m], d, c.dropout) for m in c.modalities})
        if c.qam:
            self.quality = nn.ModuleDict(
                {m: nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Linear(d // 2, 1)) for m in c.modalities}
            )
        self.cls = nn.Parameter(torch.randn(d) * 0.02)
        self.slot = nn.Parameter(torch.randn(1 + sum(self._slots(m) for m in c.modalities), d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, c.n_heads, dim_feedforward=4 * d, dropout=c.dropout, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, c.encoder_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(d, c.n_outputs))

    def _slots(self, m: str) -> int:
        return self.config.segments if (m == "visual" and self.config.tfe) else 1

    def _visual(self, inp: ModalityInput) -> tuple[torch.Tensor, torch.Tensor]:
        """-> features (B, S, d) and their validity (B, S), S = segments (tfe) or 1."""
        h = self.visual_in(inp.x)  # (B, T, d)
        if not self.config.tfe:
            return masked_mean(h, inp.mask).unsqueeze(1), inp.mask.any(dim=1, keepdim=True)
        keep = inp.mask.to(h.dtype).unsqueeze(1)  # (B, 1, T)
        z = h.transpose(1, 2)  # (B, d, T)
        for block in self.tcn:
            z = block(z, keep)
        return segment_pool(z.transpose(1, 2), inp.mask, inp.length, self.config.segments)

    def _audio(self, inp: ModalityInput) -> tuple[torch.Tensor, torch.Tensor]:
        """-> features (B, 1, 2H or d) and their validity (B, 1)."""
        valid = inp.mask.any(dim=1, keepdim=True)
        if not self.config.tfe:
            return masked_mean(self.audio_in(inp.x), inp.mask).unsqueeze(1), valid
        T = inp.x.shape[1]
        # Packing needs a length >= 1; rows of missing clips are masked out below anyway.
        lengths = inp.length.clamp(min=1, max=T).cpu()
        packed = pack_padded_sequence(inp.x, lengths, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=T)  # (B, T, 2H)
        delta = torch.cat([torch.zeros_like(h[:, :1]), h[:, 1:] - h[:, :-1]], dim=1)
        alpha = torch.sigmoid(self.gate(torch.cat([h, delta], dim=-1)))
        return masked_mean(alpha * h, inp.mask).unsqueeze(1), valid

    def modality_tokens(
        self, inputs: Mapping[str, ModalityInput], present: Mapping[str, torch.Tensor]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{m: (tokens (B, S_m, d) in the shared space, valid (B, S_m) bool)}; absent rows all False."""
        inputs = standardize(self.norm, inputs)
        out = {}
        for m in self.config.modalities:
            inp = inputs[m]
            if m == "visual":
                feats, valid = self._visual(inp)
            elif m == "audio":
                feats, valid = self._audio(inp)
            else:  # one vector per clip; a longer text sequence is averaged
                feats, valid = masked_mean(inp.x, inp.mask).unsqueeze(1), inp.mask.any(dim=1, keepdim=True)
            out[m] = (self.mapping[m](feats), valid & present[m].unsqueeze(1))
        return out

    def embeddings(self, inputs: Mapping[str, ModalityInput]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per-modality clip embeddings for stage-1 contrastive alignment: {m: ((B, d), present (B,))}."""
        present = {m: inputs[m].present for m in self.config.modalities}
        tokens = self.modality_tokens(inputs, present)
        return {m: (masked_mean(tok, valid), valid.any(dim=1)) for m, (tok, valid) in tokens.items()}

    def forward(self, inputs: Mapping[str, ModalityInput]) -> torch.Tensor:
        """inputs: {m: ModalityInput} for every modality of the config -> (B, n_outputs)."""
        c = self.config
        present = {m: inputs[m].present & inputs[m].mask.any(dim=1) for m in c.modalities}
        if self.training:
            present = drop_modalities(present, c.modality_dropout)
        tokens = self.modality_tokens(inputs, present)
        alive = torch.stack([valid.any(dim=1) for _, valid in tokens.values()], dim=1)  # (B, n_m)
        if c.qam:
            scores = torch.cat(
                [self.quality[m](masked_mean(tok, valid)) for m, (tok, valid) in tokens.items()], dim=1
            )  # (B, n_m)
            # A finite fill (not -inf) keeps rows with no modality free of NaN, gradients included.
            beta = torch.softmax(scores.masked_fill(~alive, -1e9), dim=1) * alive
        else:
            beta = alive.float() / alive.sum(dim=1, keepdim=True).clamp(min=1)
        B = alive.shape[0]
        seq = [self.cls.expand(B, 1, -1)]
        keep = [torch.ones(B, 1, dtype=torch.bool, device=alive.device)]
        for k, (tok, valid) in enumerate(tokens.values()):
            seq.append(tok * beta[:, k, None, None].to(tok.dtype))
            keep.append(valid)
        x = torch.cat(seq, dim=1) + self.slot.unsqueeze(0)  # (B, 1 + sum S_m, d)
        z = self.encoder(x, src_key_padding_mask=~torch.cat(keep, dim=1))
        return self.head(z[:, 0])

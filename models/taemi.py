"""TAEMI: text-anchored dual cross-attention fusion (seed 002, section 3).

The batch contract both fusion models share (``ModalityInput``, standardisation, masking) is in
``models/common.py``.

Per modality m with features x_m (B, T_m, D_m):

    h_m = Linear(D_m -> d_model)(x_m)                         (B, T_m, d)
    h_m = SelfAttentionBlock(h_m + PE) -> LayerNorm           (B, T_m, d)   intra-modal dependencies
    q   = masked mean of h_anchor                             (B, d)        text: T = 1, q = the vector
    c_m = Linear(d -> out_dim)(CrossAttention_m(q, h_m, h_m)) (B, out_dim)  for every m != anchor
    f   = [q; c_m1; c_m2]                                     (B, d + 2 out_dim)
    y   = W2 Dropout(GELU(W1 f))                              (B, 6)

Switches (the paper's Tables 3 and 4): ``anchor`` picks the query modality; ``cross_attention=False``
concatenates the pooled self-attended vectors instead; ``concat=True`` is the Simple Feature Concat
baseline (masked mean of the projected features, no attention at all).

Missing modalities (not extracted for the clip, not present in the batch, or dropped in training):
the modality's whole sequence is replaced by a length-1 sequence holding its learned missing token
(``missing_tokens=True``) or a zero vector (False, the paper's "zero-padding" ablation). The
replacement always has one valid position, so attention never sees an all-masked row (which would
give NaN). Deviations from the paper, for reasons: ``f`` holds the anchor's projected, self-attended
vector (d_model) rather than the raw 768-d text feature, so that the missing token and modality
dropout reach the anchor too and any modality can anchor; sinusoidal position encodings of the frame
index are added before self-attention (the paper does not say how order enters its attention);
the paper injects tokens for missing visual/text only, here every modality has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn as nn

from models.common import (
    FeatureNorm,
    FusionConfig,
    ModalityInput,
    drop_modalities,
    masked_mean,
    sinusoidal_positions,
    standardize,
)


@dataclass(frozen=True, kw_only=True)
class TaemiConfig(FusionConfig):
    anchor: str = "text"
    cross_attention: bool = True
    concat: bool = False
    missing_tokens: bool = True
    out_dim: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.uses_anchor and self.anchor not in self.input_dims:
            raise ValueError(f"anchor '{self.anchor}' is not among the modalities in use {sorted(self.input_dims)}")

    @property
    def uses_anchor(self) -> bool:
        return self.cross_attention and not self.concat


class SelfAttentionBlock(nn.Module):
    """Pre-LayerNorm transformer block (attention + MLP) over one modality's sequence."""

    def __init__(self, *, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d), mask: (B, T) bool with at least one True per row -> (B, T, d)."""
        h = self.ln_1(x)
        a, _ = self.attn(h, h, h, key_padding_mask=~mask, need_weights=False)
        x = x + self.drop(a)
        return x + self.mlp(self.ln_2(x))


class Taemi(nn.Module):
    def __init__(self, *, config: TaemiConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        mods = c.modalities
        self.norm = nn.ModuleDict({m: FeatureNorm(c.input_dims[m]) for m in mods})
        self.proj = nn.ModuleDict({m: nn.Linear(c.input_dims[m], c.d_model) for m in mods})
        if c.missing_tokens:
            self.missing_token = nn.ParameterDict({m: nn.Parameter(torch.randn(c.d_model) * 0.02) for m in mods})
        if not c.concat:
            self.self_attn = nn.ModuleDict(
                {m: SelfAttentionBlock(d_model=c.d_model, n_heads=c.n_heads, dropout=c.dropout) for m in mods}
            )
            self.ln_f = nn.ModuleDict({m: nn.LayerNorm(c.d_model) for m in mods})
        if c.uses_anchor:
            others = [m for m in mods if m != c.anchor]
            self.cross_attn = nn.ModuleDict(
                {m: nn.MultiheadAttention(c.d_model, c.n_heads, dropout=c.dropout, batch_first=True) for m in others}
            )
            self.cross_out = nn.ModuleDict({m: nn.Linear(c.d_model, c.out_dim) for m in others})
            fused = c.d_model + c.out_dim * len(others)
        else:
            fused = c.d_model * len(mods)
        self.head = nn.Sequential(
            nn.Linear(fused, c.out_dim), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(c.out_dim, c.n_outputs)
        )

    def _sequence(self, m: str, inp: ModalityInput, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected (and, unless concat, self-attended) sequence of modality m with missing rows
        replaced: -> h (B, T, d), mask (B, T) bool with >= 1 valid position per row."""
        h = self.proj[m](inp.x)  # (B, T, d)
        B, T, d = h.shape
        if not self.config.concat:
            h = h + sinusoidal_positions(T, d, device=h.device)
        first = torch.zeros(T, dtype=torch.bool, device=h.device)
        first[0] = True
        fill = self.missing_token[m] if self.config.missing_tokens else h.new_zeros(d)
        fill_seq = fill.unsqueeze(0) * first.unsqueeze(1).to(h.dtype)  # (T, d): the fill at position 0
        missing = ~present
        h = torch.where(missing[:, None, None], fill_seq.unsqueeze(0), h)
        mask = torch.where(missing[:, None], first.unsqueeze(0), inp.mask)
        if not self.config.concat:
            h = self.ln_f[m](self.self_attn[m](h, mask))
        return h, mask

    def forward(self, inputs: Mapping[str, ModalityInput]) -> torch.Tensor:
        """inputs: {m: ModalityInput} for every modality of the config -> (B, n_outputs)."""
        c = self.config
        inputs = standardize(self.norm, inputs)
        present = {m: inputs[m].present & inputs[m].mask.any(dim=1) for m in c.modalities}
        if self.training:
            present = drop_modalities(present, c.modality_dropout)
        seqs = {m: self._sequence(m, inputs[m], present[m]) for m in c.modalities}
        if not c.uses_anchor:
            f = torch.cat([masked_mean(h, mask) for h, mask in seqs.values()], dim=-1)
            return self.head(f)
        h_a, mask_a = seqs[c.anchor]
        q = masked_mean(h_a, mask_a)  # (B, d)
        parts = [q]
        for m in c.modalities:
            if m == c.anchor:
                continue
            h, mask = seqs[m]
            ctx, _ = self.cross_attn[m](q.unsqueeze(1), h, h, key_padding_mask=~mask, need_weights=False)
            parts.append(self.cross_out[m](ctx.squeeze(1)))  # (B, out_dim)
        return self.head(torch.cat(parts, dim=-1))

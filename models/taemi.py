"""TAEMI: text-anchored dual cross-attention fusion (seed 002, section 3), and the input contract
shared by both fusion models.

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

import math
from dataclasses import asdict, dataclass
from typing import Mapping, NamedTuple

import torch
import torch.nn as nn

MODALITY_ORDER: tuple[str, ...] = ("visual", "audio", "text")


class ModalityInput(NamedTuple):
    """One modality of a batch, as both fusion models take it.

    x: (B, T, D) float; mask: (B, T) bool, True at valid frames; length: (B,) int64, frames before
    padding (0 when missing); present: (B,) bool, the modality exists for the sample.
    """

    x: torch.Tensor
    mask: torch.Tensor
    length: torch.Tensor
    present: torch.Tensor


class FeatureNorm(nn.Module):
    """Per-dimension standardisation of one modality's input features, (x - mean) / std.

    The statistics are buffers fitted on the training split (``pipeline.training.fit_feature_norm``)
    and saved with the weights, so evaluation and prediction standardise exactly as training did.
    Pretrained features differ in scale by orders of magnitude (Whisper encoder states vs. FER
    probabilities); without this the paper's recipe (lr 1e-4) barely moves on small data.
    Identity until fitted.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("inv_std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        return (x - self.mean) * self.inv_std


def standardize(norm: nn.ModuleDict, inputs: Mapping[str, "ModalityInput"]) -> dict[str, "ModalityInput"]:
    """Inputs with each modality's features standardised (padding positions stay masked)."""
    return {m: inp._replace(x=norm[m](inp.x)) if m in norm else inp for m, inp in inputs.items()}


def check_widths(input_dims: Mapping[str, int], *, d_model: int, n_heads: int) -> None:
    """The checks both models' configs share: known modalities, heads dividing the width."""
    unknown = set(input_dims) - set(MODALITY_ORDER)
    if not input_dims or unknown:
        raise ValueError(f"input_dims must map some of {MODALITY_ORDER} to widths, got {dict(input_dims)}")
    if d_model % n_heads:
        raise ValueError(f"d_model {d_model} is not a multiple of n_heads {n_heads}")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x: (B, T, D), mask: (B, T) bool -> (B, D); rows with no valid position give zeros."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def sinusoidal_positions(length: int, dim: int, *, device: torch.device) -> torch.Tensor:
    """(length, dim) encodings of positions 0..length-1 (Vaswani et al.)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def drop_modalities(present: Mapping[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Modality dropout: mark each present (sample, modality) slot missing with probability p.

    A sample whose every present modality was drawn keeps them all, so dropout never leaves a
    sample with nothing (a sample with a single present modality is therefore never dropped).
    Draws from torch's global generator (seeded by the trainer). present: {m: (B,) bool}.
    """
    if p <= 0.0 or not present:
        return dict(present)
    drawn = {m: (torch.rand(v.shape, device=v.device) < p) & v for m, v in present.items()}
    kept_any = torch.stack([present[m] & ~drawn[m] for m in present]).any(dim=0)  # (B,)
    had_any = torch.stack(list(present.values())).any(dim=0)
    undo = had_any & ~kept_any
    return {m: present[m] & ~(drawn[m] & ~undo) for m in present}


@dataclass(frozen=True, kw_only=True)
class TaemiConfig:
    input_dims: dict[str, int]  # modality -> feature width D_m, for the modalities in use
    anchor: str = "text"
    cross_attention: bool = True
    concat: bool = False
    missing_tokens: bool = True
    modality_dropout: float = 0.1
    d_model: int = 256
    out_dim: int = 512
    n_heads: int = 4
    dropout: float = 0.1
    n_outputs: int = 6

    def __post_init__(self) -> None:
        check_widths(self.input_dims, d_model=self.d_model, n_heads=self.n_heads)
        if self.uses_anchor and self.anchor not in self.input_dims:
            raise ValueError(f"anchor '{self.anchor}' is not among the modalities in use {sorted(self.input_dims)}")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITY_ORDER if m in self.input_dims)

    @property
    def uses_anchor(self) -> bool:
        return self.cross_attention and not self.concat

    def to_dict(self) -> dict:
        return asdict(self)


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


__all__ = [
    "MODALITY_ORDER",
    "ModalityInput",
    "Taemi",
    "TaemiConfig",
    "drop_modalities",
    "masked_mean",
    "sinusoidal_positions",
]


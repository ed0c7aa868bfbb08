"""What the frame-level models share (tasks va, expr, au): the batch contract and the building blocks.

A batch is :class:`FrameInputs`: ``streams`` per-frame modalities (visual, audio) as
``ModalityInput`` with x (B, W, D), mask (B, W) True where that frame has the modality (a face,
audio); ``context`` per-track modalities (text) with x (B, 1, D); ``steps`` (B, W) True at real
frames (False in the padding of a short track's window). Every model maps it to (B, W, C) raw
outputs (``pipeline.tasks.outputs`` says what they mean) and predicts at every real frame, with a
face or not.

Blocks: :class:`StreamEmbedding` (standardise, project, a learned token where the frame lacks the
modality, sinusoidal positions), :class:`SafeCrossAttention` (cross-attention with a learned null
key, so a row whose keys are all missing attends to it instead of producing NaN: seed 003 abstract
4's "safe" cross-attention), :class:`TemporalEncoder` (pre-LN Transformer over the frames, padding
masked), :class:`FrameHead` (per-frame MLP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from models.common import FeatureNorm, FusionConfig, ModalityInput, drop_modalities, sinusoidal_positions

# Modalities that describe a whole track with one vector (the transcript's embedding).
CONTEXT_MODALITIES: tuple[str, ...] = ("text",)


class FrameInputs(NamedTuple):
    streams: dict[str, ModalityInput]  # per frame: x (B, W, D), mask (B, W)
    context: dict[str, ModalityInput]  # per track: x (B, 1, D), mask (B, 1)
    steps: torch.Tensor  # (B, W) bool, real frames

    def to(self, device: torch.device | str) -> FrameInputs:
        def move(group: dict[str, ModalityInput]) -> dict[str, ModalityInput]:
            return {m: ModalityInput(*(t.to(device) for t in inp)) for m, inp in group.items()}

        return FrameInputs(move(self.streams), move(self.context), self.steps.to(device))


@dataclass(frozen=True, kw_only=True)
class FrameModelConfig(FusionConfig):
    """Sizes of a frame-level model; ``n_outputs`` is C (va 2, expr 8, au 12)."""

    layers: int = 2
    audio_latents: int = 4
    gate_hidden: int = 64

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m not in CONTEXT_MODALITIES)

    @property
    def contexts(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m in CONTEXT_MODALITIES)


class StreamEmbedding(nn.Module):
    """(B, W, D) standardised features -> (B, W, d) tokens: projected, a learned ``missing`` token at
    frames without the modality, then sinusoidal positions of the frame index."""

    def __init__(self, dim: int, d_model: int, *, positions: bool = True) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(dim, d_model), nn.LayerNorm(d_model))
        self.missing = nn.Parameter(torch.randn(d_model) * 0.02)
        self.positions = positions

    def forward(self, inp: ModalityInput) -> torch.Tensor:
        h = self.proj(inp.x)
        h = torch.where(inp.mask[..., None], h, self.missing.to(h.dtype))
        if self.positions:
            h = h + sinusoidal_positions(h.shape[1], h.shape[2], device=h.device).to(h.dtype)
        return h


class SafeCrossAttention(nn.Module):
    """Queries (B, Tq, d) attend to keys (B, Tk, d) where ``key_mask`` (B, Tk) is True, plus one learned
    null key that is always there: a query with no valid key attends to it (no NaN), and a query can
    choose to take nothing from the other modality. Returns the attention output (B, Tq, d)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.null = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``bias`` (B, Tk): added to the attention logits of the keys (log-reliability weights)."""
        B = keys.shape[0]
        keys = torch.cat([self.null.expand(B, -1, -1).to(keys.dtype), keys], dim=1)
        mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=keys.device), key_mask], dim=1)
        logits = torch.zeros(mask.shape, dtype=queries.dtype, device=keys.device)
        if bias is not None:
            logits[:, 1:] = bias.to(queries.dtype)
        logits = logits.masked_fill(~mask, float("-inf"))
        # One additive mask per head: (B * heads, Tq, Tk).
        attn_mask = logits[:, None, None, :].expand(-1, self.attn.num_heads, queries.shape[1], -1)
        attn_mask = attn_mask.reshape(-1, queries.shape[1], keys.shape[1])
        out, _ = self.attn(queries, keys, keys, attn_mask=attn_mask, need_weights=False)
        return out


class TemporalEncoder(nn.Module):
    """``layers`` pre-LayerNorm Transformer encoder layers over (B, W, d) frames; padding frames are
    never attended to (every row has at least one real frame)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, layers: int) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(d_model)

    def forward(self, h: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        return self.ln(self.encoder(h, src_key_padding_mask=~steps))


class FrameHead(nn.Module):
    """(B, W, d) -> (B, W, C): d -> d -> GELU -> dropout -> C at every frame."""

    def __init__(self, d_model: int, n_outputs: int, dropout: float) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_model), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_model, n_outputs)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.mlp(h)


def feature_norms(dims: Mapping[str, int]) -> nn.ModuleDict:
    """One input standardisation per modality of ``dims`` (fitted on the training frames by
    ``pipeline.train.frame_loop``, saved with the weights)."""
    return nn.ModuleDict({m: FeatureNorm(d) for m, d in dims.items()})


def standardized(norm: nn.ModuleDict, inputs: FrameInputs) -> FrameInputs:
    """The inputs of the model's modalities (those it has a norm for), standardised; others dropped."""

    def apply(group: dict[str, ModalityInput]) -> dict[str, ModalityInput]:
        return {m: inp._replace(x=norm[m](inp.x)) for m, inp in group.items() if m in norm}

    return FrameInputs(apply(inputs.streams), apply(inputs.context), inputs.steps)


def present_after_dropout(inputs: FrameInputs, p: float, training: bool) -> dict[str, torch.Tensor]:
    """{m: (B,) bool}: the modality exists in the window (any valid frame), with modality dropout
    (``models.common.drop_modalities``: never every modality of a window) applied in training."""
    present = {m: inp.mask.any(dim=1) for m, inp in {**inputs.streams, **inputs.context}.items()}
    return drop_modalities(present, p) if training else present


def masked(inp: ModalityInput, present: torch.Tensor) -> ModalityInput:
    """The input with every frame of the windows where ``present`` (B,) is False marked missing."""
    return inp._replace(mask=inp.mask & present[:, None], present=present)

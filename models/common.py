"""What both fusion models share: the batch contract, input standardisation, masking helpers.

A batch is ``{modality: ModalityInput}`` for the modalities of the model's config, in
:data:`MODALITIES` order; ``pipeline.train.dataset`` builds it, ``models/taemi.py`` and ``models/ustc.py``
consume it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn as nn

from pipeline.config import MODALITIES


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

    The statistics are buffers fitted on the training split (``pipeline.train.loop.fit_feature_norm``)
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


def standardize(norm: nn.ModuleDict, inputs: Mapping[str, ModalityInput]) -> dict[str, ModalityInput]:
    """Inputs with each modality's features standardised (padding positions stay masked)."""
    return {m: inp._replace(x=norm[m](inp.x)) if m in norm else inp for m, inp in inputs.items()}


@dataclass(frozen=True, kw_only=True)
class FusionConfig:
    """What both models' configs hold: the modalities in use with their widths, the shared sizes."""

    input_dims: dict[str, int]  # modality -> feature width D_m, for the modalities in use
    modality_dropout: float = 0.1
    d_model: int = 256
    n_heads: int = 4
    dropout: float = 0.1
    n_outputs: int = 6

    def __post_init__(self) -> None:
        unknown = set(self.input_dims) - set(MODALITIES)
        if not self.input_dims or unknown:
            raise ValueError(f"input_dims must map some of {MODALITIES} to widths, got {dict(self.input_dims)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.input_dims)

    def to_dict(self) -> dict:
        return asdict(self)


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

"""Tracks in memory for the frame-level tasks (va, expr, au), cut into windows for the models.

A track's **steps** are its decoded samples (``decode.fps``, 5 per second): step i at ``i / fps``.
Every modality is aligned to the steps: visual frames are the steps themselves; an audio frame
(pooled bin) serves the step whose time it covers (bin b covers ``[b, b + 1) / pool_fps``); a
clip-level modality (text: one vector per track) is *context*, one token for the whole track.
``targets`` are the labels at the steps: step i shows decoded frame ``sample_frame[i]`` (the
timeline), whose label is line ``sample_frame[i] + 1`` of the label file. ``frame_times`` are the
times of the annotated frames, where evaluation scores the predictions: frame k at the pts of
decoded frame k; label lines past the decoded frames (most Aff-Wild2 tracks have one) continue at
the median frame gap.

Windows: ``window`` steps starting every ``stride`` steps, the last one aligned to the track's end
(so every step is covered and none is dropped); a track shorter than a window is one shorter
window, padded in the batch. A batch is ``{m: ModalityInput}`` with x (B, W, D) per frame stream and
(B, 1, D) per context modality, plus targets (B, W, K) with NaN where there is no valid label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from models.common import ModalityInput
from models.frame_common import CONTEXT_MODALITIES, FrameInputs
from pipeline.config import MODALITIES
from pipeline.features.shards import ModalityInfo


@dataclass
class FrameTrack:
    clip_id: str
    split: str
    times: np.ndarray  # (T,) float64 step times
    values: dict[str, np.ndarray | None]  # m -> (T, D) float16 aligned to the steps ((1, D) for context)
    valid: dict[str, np.ndarray | None]  # m -> (T,) bool ((1,) for context); None: missing for the track
    targets: np.ndarray  # (T, K) float32 labels at the steps, NaN where none
    frame_times: np.ndarray  # (N,) float64 times of the annotated frames
    labels: np.ndarray | None  # (N, K) float32 NaN rows invalid; None: not annotated (test)

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class FrameBatch:
    refs: list[tuple[int, int, int]]  # (track index, first step, steps) of each row
    inputs: FrameInputs
    targets: torch.Tensor  # (B, W, K) float32, NaN where no valid label (and in the padding)

    def __len__(self) -> int:
        return len(self.refs)

    def to(self, device: torch.device | str) -> FrameBatch:
        return FrameBatch(self.refs, self.inputs.to(device), self.targets.to(device))


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """First steps of the windows over ``length`` steps: every ``stride``, the last ending at the end."""
    if length <= window:
        return [0] if length else []
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


@dataclass
class FrameTable:
    tracks: list[FrameTrack]
    info: dict[str, ModalityInfo]
    missing_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tracks)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.info)

    def split(self, name: str) -> FrameTable:
        return FrameTable([t for t in self.tracks if t.split == name], dict(self.info), self.missing_counts)

    def windows(self, window: int, stride: int, *, labelled: bool = False) -> list[tuple[int, int, int]]:
        """(track index, first step, steps) of every window; ``labelled``: only windows with a valid target."""
        out = []
        for k, track in enumerate(self.tracks):
            for start in window_starts(len(track), window, stride):
                steps = min(window, len(track) - start)
                if labelled and not np.isfinite(track.targets[start : start + steps]).all(axis=1).any():
                    continue
                out.append((k, start, steps))
        return out

    def batch(
        self, refs: Sequence[tuple[int, int, int]], drop: Mapping[str, Sequence[np.ndarray]] | None = None
    ) -> FrameBatch:
        """Collate windows; ``drop[m][k]`` (T_k,) bool removes modality m at those steps of track k
        (a context modality is removed for the track when any of its steps is dropped)."""
        width = max(steps for _, _, steps in refs)
        inputs = {m: self._collate(m, refs, width, None if drop is None else drop.get(m)) for m in self.modalities}
        k_dim = self.tracks[refs[0][0]].targets.shape[1]
        targets = np.full((len(refs), width, k_dim), np.nan, np.float32)
        for row, (k, start, steps) in enumerate(refs):
            targets[row, :steps] = self.tracks[k].targets[start : start + steps]
        real = torch.arange(width)[None, :] < torch.tensor([steps for _, _, steps in refs])[:, None]
        streams = {m: inp for m, inp in inputs.items() if m not in CONTEXT_MODALITIES}
        context = {m: inp for m, inp in inputs.items() if m in CONTEXT_MODALITIES}
        return FrameBatch(list(refs), FrameInputs(streams, context, real), torch.from_numpy(targets))

    def _collate(self, m: str, refs, width: int, drop) -> ModalityInput:
        context = m in CONTEXT_MODALITIES
        length = 1 if context else width
        x = np.zeros((len(refs), length, self.info[m].dim), np.float32)
        mask = np.zeros((len(refs), length), bool)
        for row, (k, start, steps) in enumerate(refs):
            values, valid = self.tracks[k].values[m], self.tracks[k].valid[m]
            if values is None:
                continue
            if context:
                gone = drop is not None and bool(drop[k][start : start + steps].any())
                x[row, 0], mask[row, 0] = values[0], bool(valid[0]) and not gone
                continue
            x[row, :steps] = values[start : start + steps]
            keep = valid[start : start + steps]
            mask[row, :steps] = keep if drop is None else keep & ~drop[k][start : start + steps]
        present = mask.any(axis=1)
        # Steps before padding; a context token counts when present.
        lengths = present.astype(np.int64) if context else np.array([r[2] for r in refs], np.int64)
        return ModalityInput(
            torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(lengths), torch.from_numpy(present)
        )

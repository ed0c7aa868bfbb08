"""Frame-level inference: windows -> scores at every step -> scores at every annotated frame.

1. The model runs on every window of a track (``frames.window``, ``frames.stride``); each step's
   scores (``pipeline.tasks.outputs.to_scores``: values, class or AU probabilities) are the mean over
   the windows that cover it.
2. They are interpolated linearly to the times of the track's annotated frames (``FrameTrack.
   frame_times``); frames before the first step or after the last repeat the nearest step's scores,
   so the ends and a dropped tail still get predictions.
3. Optional smoothing: a centred box filter of half-width ``smoothing`` annotated frames (shrinking
   at the track's ends), on the scores - for classes that is soft voting before the argmax.

A track without a single decoded step (its video did not decode) gets at every annotated frame the
scores of the model with every modality absent: its learned prior.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from models.common import ModalityInput
from models.frame_common import FrameInputs
from pipeline.tasks import Task
from pipeline.tasks.outputs import to_scores
from pipeline.train.frames import FrameTable


@torch.no_grad()
def predict_steps(
    model: nn.Module,
    table: FrameTable,
    task: Task,
    *,
    window: int,
    stride: int,
    batch_size: int,
    device: torch.device,
    drop: Mapping[str, Sequence[np.ndarray]] | None = None,
) -> list[np.ndarray]:
    """Per track, (T, C) float64 scores at its steps, averaged over the windows covering each step.
    ``drop[m][k]`` (T_k,) bool removes modality m at those steps (robustness)."""
    model.eval()
    sums = [np.zeros((len(t), len(task.outputs))) for t in table.tracks]
    counts = [np.zeros(len(t)) for t in table.tracks]
    refs = table.windows(window, stride)
    for start in range(0, len(refs), batch_size):
        batch = table.batch(refs[start : start + batch_size], drop).to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            raw = model(batch.inputs).float().cpu().numpy()
        scores = to_scores(task, raw)
        for row, (k, first, steps) in enumerate(batch.refs):
            sums[k][first : first + steps] += scores[row, :steps]
            counts[k][first : first + steps] += 1
    return [s / np.maximum(c, 1)[:, None] for s, c in zip(sums, counts, strict=True)]


@torch.no_grad()
def prior_scores(model: nn.Module, table: FrameTable, task: Task, device: torch.device) -> np.ndarray:
    """(C,) scores of one frame with every modality absent: what a track without steps gets."""
    model.eval()
    streams, context = {}, {}
    for m, info in table.info.items():
        length = 1
        empty = ModalityInput(
            torch.zeros(1, length, info.dim), torch.zeros(1, length, dtype=torch.bool),
            torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.bool),
        )  # fmt: skip
        (context if m == "text" else streams)[m] = empty
    inputs = FrameInputs(streams, context, torch.ones(1, 1, dtype=torch.bool)).to(device)
    return to_scores(task, model(inputs).float().cpu().numpy())[0, 0]


def smooth(scores: np.ndarray, half_width: int) -> np.ndarray:
    """(N, C) -> (N, C) centred moving average over ``2 half_width + 1`` rows, fewer at the ends."""
    if half_width <= 0 or len(scores) < 2:
        return scores
    padded = np.concatenate([np.zeros((1, scores.shape[1])), np.cumsum(scores, axis=0)])
    n = len(scores)
    lo = np.clip(np.arange(n) - half_width, 0, n)
    hi = np.clip(np.arange(n) + half_width + 1, 0, n)
    return (padded[hi] - padded[lo]) / (hi - lo)[:, None]


def to_frames(step_scores: np.ndarray, step_times: np.ndarray, frame_times: np.ndarray, smoothing: int) -> np.ndarray:
    """(T, C) scores at the steps -> (N, C) at the annotated frames (interpolated, ends held, smoothed)."""
    if len(frame_times) == 0:
        return np.zeros((0, step_scores.shape[1]))
    columns = [np.interp(frame_times, step_times, step_scores[:, c]) for c in range(step_scores.shape[1])]
    return smooth(np.stack(columns, axis=1), smoothing)


def frame_scores(
    model: nn.Module,
    table: FrameTable,
    task: Task,
    *,
    window: int,
    stride: int,
    smoothing: int,
    batch_size: int,
    device: torch.device,
    drop: Mapping[str, Sequence[np.ndarray]] | None = None,
) -> list[np.ndarray]:
    """Per track, (N, C) scores at its annotated frames (``len(track.frame_times)`` rows)."""
    steps = predict_steps(
        model, table, task, window=window, stride=stride, batch_size=batch_size, device=device, drop=drop
    )
    prior = None
    out = []
    for track, scores in zip(table.tracks, steps, strict=True):
        if len(track) == 0:
            prior = prior_scores(model, table, task, device) if prior is None else prior
            out.append(np.repeat(prior[None, :], len(track.frame_times), axis=0))
        else:
            out.append(to_frames(scores, track.times, track.frame_times, smoothing))
    return out

"""Training a frame-level model (tasks va, expr, au) with the clip-level recipe's loop (``loop.py``).

The same optimiser, schedule, gradient clipping, EMA, seeded order and early stopping as task emi
(``pipeline.train.loop.train_model``), on windows of the training tracks that hold at least one
valid label (``frames.window``, ``frames.stride``), with the task's loss (``pipeline.train.losses``).
After every epoch the candidate is scored exactly as evaluate will score it: windows averaged,
interpolated to every annotated frame of the validation tracks, smoothed, decided and measured by
the task's metric at those frames (CCC, macro F1, mean F1); the best epoch is kept. For au the
per-AU thresholds are chosen on the validation frames (``pipeline.tasks.outputs.choose_thresholds``)
for each candidate, and those of the kept epoch are saved with the model; they are never tuned on test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from pipeline.config import Params
from pipeline.tasks import Task
from pipeline.tasks.outputs import choose_thresholds, decide, report
from pipeline.train.frame_inference import frame_scores
from pipeline.train.frames import FrameBatch, FrameTable
from pipeline.train.loop import Log, Objective, TrainResult, train_model
from pipeline.train.losses import FrameLoss, class_weights, pos_weights


@dataclass
class FrameWindows:
    """The training windows of a table, served in a given order (``loop._Loop.epoch`` draws it)."""

    table: FrameTable
    refs: list[tuple[int, int, int]]

    def __len__(self) -> int:
        return len(self.refs)

    def batches(self, batch_size: int, *, order: np.ndarray | None = None) -> Iterator[FrameBatch]:
        order = np.arange(len(self.refs)) if order is None else order
        for start in range(0, len(order), batch_size):
            yield self.table.batch([self.refs[i] for i in order[start : start + batch_size]])


def fit_frame_norm(model: nn.Module, table: FrameTable) -> None:
    """The model's input standardisation from the valid frames of the training tracks (as
    ``loop.fit_feature_norm`` does for clips: float64 mean and std, std floored at 1e-3)."""
    for m, norm in model.norm.items():
        frames = [t.values[m][t.valid[m]].astype(np.float64) for t in table.tracks if t.values.get(m) is not None]
        if frames:
            stacked = np.concatenate(frames)
            norm.mean.copy_(torch.from_numpy(stacked.mean(axis=0)).to(norm.mean))
            norm.inv_std.copy_(torch.from_numpy(1.0 / np.maximum(stacked.std(axis=0), 1e-3)).to(norm.inv_std))


def task_section(params: Params, task: Task):
    return getattr(params, task.name)


def loss_weights(task: Task, params: Params, train: FrameTable) -> np.ndarray | None:
    """Class weights (expr) or positive weights (au) of the training frames, when their params ask."""
    labels = [t.labels for t in train.tracks if t.labels is not None]
    if task.kind == "multiclass" and params.expr.class_weights:
        return class_weights(labels, len(task.outputs))
    if task.kind == "multilabel" and params.au.pos_weight:
        return pos_weights(labels)
    return None


@dataclass
class FrameValidation:
    """Scores a candidate on the validation tracks; remembers the thresholds of each candidate."""

    table: FrameTable
    task: Task
    params: Params
    device: torch.device
    thresholds: list[float] | None = None

    def __call__(self, model: nn.Module) -> tuple[float, list[float]]:
        section = task_section(self.params, self.task)
        scores = frame_scores(
            model, self.table, self.task, window=self.params.frames.window, stride=self.params.frames.stride,
            smoothing=section.smoothing, batch_size=self.params.train.batch_size, device=self.device,
        )  # fmt: skip
        keep = [k for k, t in enumerate(self.table.tracks) if t.labels is not None]
        stacked = np.concatenate([scores[k] for k in keep])
        labels = np.concatenate([self.table.tracks[k].labels for k in keep])
        if self.task.kind == "multilabel" and self.params.au.thresholds == "valid":
            self.thresholds = choose_thresholds(stacked, labels).tolist()
        metrics = report(self.task, decide(self.task, stacked, self.thresholds), labels)
        per = list(metrics.values())
        return per[0], per[1:]


def frame_objective(task: Task, params: Params, train: FrameTable, valid: FrameTable, device: torch.device):
    """The task's :class:`Objective` and the validation that records the AU thresholds."""
    loss = FrameLoss(task, task_section(params, task), loss_weights(task, params, train))
    validation = FrameValidation(valid, task, params, device)
    objective = Objective(
        metric=task.metric,
        per_key="val_per_output",
        loss_name=loss.name,
        loss=lambda pred, batch: loss(pred, batch.targets),
        validate=validation,
        fit_norm=lambda model: fit_frame_norm(model, train),
    )
    return objective, validation


def train_frames(
    *, model: nn.Module, task: Task, params: Params, train: FrameTable, valid: FrameTable, device: torch.device,
    log: Log = print, on_epoch=None,
) -> tuple[TrainResult, list[float] | None]:  # fmt: skip
    """Fit ``model`` on the labelled windows of ``train``, select on ``valid``; -> (result, the kept
    epoch's AU thresholds or None)."""
    windows = FrameWindows(train, train.windows(params.frames.window, params.frames.stride, labelled=True))
    if not len(windows) or not any(t.labels is not None and len(t) for t in valid.tracks):
        raise ValueError(
            f"training needs labelled train and valid tracks with decoded frames, got {len(windows)} windows"
        )
    objective, validation = frame_objective(task, params, train, valid, device)
    chosen: dict[int, list[float] | None] = {}

    def remember(entry: dict) -> None:
        chosen[entry["epoch"]] = validation.thresholds
        if on_epoch is not None:
            on_epoch(entry)

    result = train_model(
        model=model, train=windows, valid=valid, params=params.train, device=device, log=log,
        on_epoch=remember, objective=objective,
    )  # fmt: skip
    return result, chosen.get(result.best_epoch)

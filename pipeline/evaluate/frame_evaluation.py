"""Evaluation of a frame-level model (tasks va, expr, au): the challenge's metric at every annotated frame.

``metrics.json`` (nested, one DVC column per leaf), ``<m>`` the task's metric section (va ``ccc``,
expr and au ``f1``) with its headline first (``mean``, or ``macro`` for expr) and one entry per output:

    <m>.*                     valid split: every valid annotated frame of every valid track, pooled
    test.<m>.*                only when the test tracks have labels (the demo; a post-challenge release)
    train.<m>.<headline>      the same model on its training tracks (overfit check)
    robustness.full           = the valid headline
    robustness.no_<modality>  valid, that modality removed at every frame
    robustness.random_missing valid, each (frame, modality) removed with probability evaluate.missing_fraction
    thresholds.<AU>           au: the per-AU thresholds chosen on valid by train
    reference.*               valid headlines a model must beat: expr ``majority_class`` (the
                              training split's most frequent class at every frame); au
                              ``all_negative``, ``all_positive`` and ``thresholds_fixed`` (this
                              model's scores against 0.5 instead of the chosen thresholds)
    n_tracks.<split>, n_frames.<split>, best_epoch

Predictions come from ``pipeline.train.frame_inference.frame_scores`` (windows averaged, interpolated
to every annotated frame, smoothed) and ``pipeline.tasks.outputs.decide``; every annotated frame of
every track gets one, with a face or not, and a track whose video did not decode gets the model's
prior. Removing a modality means the model sees it as missing at those frames, as for a frame
without a face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from pipeline.evaluate.metrics import confusion
from pipeline.tasks import Task
from pipeline.tasks.outputs import decide, headline, report
from pipeline.train.frame_inference import frame_scores
from pipeline.train.frames import FrameTable

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class FrameSettings:
    """How the trained model predicts (from its config.json): windows, smoothing, AU thresholds."""

    window: int
    stride: int
    smoothing: int
    thresholds: list[float] | None
    batch_size: int


@dataclass
class FrameEvaluation:
    metrics: dict
    scores: list[np.ndarray]  # per track (N, C) at its annotated frames
    decisions: list[np.ndarray]  # per track (N, K), the labels' format
    robustness: dict[str, float]
    per_track: list[tuple[str, str, float]]  # (clip_id, split, headline) of labelled tracks
    confusion: np.ndarray | None  # expr, valid: (8, 8) true x predicted


def _pooled(table: FrameTable, decided: list[np.ndarray], task: Task, split: str) -> dict[str, float] | None:
    keep = [k for k, t in enumerate(table.tracks) if t.split == split and t.labels is not None]
    if not keep:
        return None
    labels = np.concatenate([table.tracks[k].labels for k in keep])
    return report(task, np.concatenate([decided[k] for k in keep]), labels)


def random_drop(table: FrameTable, fraction: float, seed: int) -> dict[str, list[np.ndarray]]:
    """{m: per track (T,) bool}: each (frame, modality) slot dropped independently with ``fraction``."""
    rng = np.random.default_rng(seed)
    return {m: [rng.random(len(t)) < fraction for t in table.tracks] for m in table.modalities}


def _decided(model, table, task, settings: FrameSettings, device, drop=None) -> tuple[list, list]:
    scores = frame_scores(
        model, table, task, window=settings.window, stride=settings.stride, smoothing=settings.smoothing,
        batch_size=settings.batch_size, device=device, drop=drop,
    )  # fmt: skip
    return scores, [decide(task, s, settings.thresholds) for s in scores]


def _robustness(
    model, table: FrameTable, task: Task, settings: FrameSettings, device, fraction: float, seed: int, full: float
):
    """{full, no_<m>..., random_missing}: the valid headline with modalities removed at frames."""
    valid = table.split("valid")

    def score(drop) -> float:
        return headline(task, _pooled(valid, _decided(model, valid, task, settings, device, drop)[1], task, "valid"))

    robust = {"full": full}
    for m in valid.modalities:
        robust[f"no_{m}"] = score({m: [np.ones(len(t), bool) for t in valid.tracks]})
    robust["random_missing"] = score(random_drop(valid, fraction, seed))
    return robust


def _reference(table: FrameTable, scores: list[np.ndarray], task: Task) -> dict[str, float]:
    """The ``reference.*`` headlines (module docstring); empty for va, whose constant is CCC 0."""

    def valid(decided: list[np.ndarray]) -> float:
        return headline(task, _pooled(table, decided, task, "valid"))

    def constant(value: float, width: int) -> list[np.ndarray]:
        return [np.full((len(t.frame_times), width), value, np.float32) for t in table.tracks]

    if task.kind == "multiclass":
        train = [t.labels[:, 0] for t in table.tracks if t.split == "train" and t.labels is not None]
        seen = np.concatenate(train) if train else np.zeros(0)
        seen = seen[np.isfinite(seen)].astype(np.int64)
        majority = int(np.bincount(seen, minlength=len(task.outputs)).argmax())
        return {"majority_class": valid(constant(majority, 1))}
    if task.kind == "multilabel":
        width = len(task.outputs)
        return {
            "all_negative": valid(constant(0.0, width)),
            "all_positive": valid(constant(1.0, width)),
            "thresholds_fixed": valid([decide(task, s) for s in scores]),
        }
    return {}


def _confusion(table: FrameTable, decided: list[np.ndarray], task: Task) -> np.ndarray | None:
    if task.kind != "multiclass":
        return None
    keep = [k for k, t in enumerate(table.tracks) if t.split == "valid" and t.labels is not None]
    true = np.concatenate([table.tracks[k].labels[:, 0] for k in keep])
    pred = np.concatenate([decided[k][:, 0] for k in keep])
    ok = np.isfinite(true)
    return confusion(pred[ok], true[ok], len(task.outputs))


def evaluate_frames(
    *,
    model: nn.Module,
    table: FrameTable,
    task: Task,
    settings: FrameSettings,
    device: torch.device,
    missing_fraction: float,
    seed: int,
) -> FrameEvaluation:
    """Predict every annotated frame of every track; score the splits; run the robustness conditions."""
    scores, decided = _decided(model, table, task, settings, device)
    metrics: dict = {
        "n_tracks": {s: sum(t.split == s for t in table.tracks) for s in SPLITS},
        "n_frames": {s: int(sum(len(t.frame_times) for t in table.tracks if t.split == s)) for s in SPLITS},
    }
    valid = _pooled(table, decided, task, "valid")
    if valid is None:
        raise ValueError("the task has no labelled valid track to evaluate on")
    metrics[task.metric] = valid
    if (test := _pooled(table, decided, task, "test")) is not None:
        metrics["test"] = {task.metric: test}
    if (train := _pooled(table, decided, task, "train")) is not None:
        metrics["train"] = {task.metric: {next(iter(train)): headline(task, train)}}
    if settings.thresholds is not None:
        metrics["thresholds"] = dict(zip(task.outputs, settings.thresholds, strict=True))
    if reference := _reference(table, scores, task):
        metrics["reference"] = reference
    robust = _robustness(model, table, task, settings, device, missing_fraction, seed, headline(task, valid))
    metrics["robustness"] = robust
    per_track = [
        (t.clip_id, t.split, headline(task, report(task, decided[k], t.labels)))
        for k, t in enumerate(table.tracks)
        if t.labels is not None and t.split in ("valid", "test")
    ]
    return FrameEvaluation(metrics, scores, decided, robust, per_track, _confusion(table, decided, task))

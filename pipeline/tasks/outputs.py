"""What a frame-level model's outputs mean, per task: scores, decisions and the metric report.

A model emits ``C`` raw outputs per frame (va: 2, expr: 8 logits, au: 12 logits). Its **scores** are
what gets averaged over overlapping windows, interpolated to the annotated frames and smoothed:
va the values themselves, expr the softmax probabilities, au the sigmoid probabilities. Its
**decisions** are what the challenge scores and the submission holds, in the label arrays' format
(``pipeline.tasks``): va the values clipped to [-1, 1], expr the class index of the largest
probability (soft voting when the probabilities were smoothed), au 1 where a probability reaches
its AU's threshold (0.5, or chosen on the validation split: ``choose_thresholds``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.evaluate.metrics import ccc, f1_binary, f1_per_class
from pipeline.tasks import Task


def n_outputs(task: Task) -> int:
    """Width C of the model's output per frame."""
    return len(task.outputs)


def to_scores(task: Task, raw: np.ndarray) -> np.ndarray:
    """(..., C) raw outputs -> (..., C) float64 scores."""
    raw = np.asarray(raw, np.float64)
    if task.kind == "multiclass":
        shifted = np.exp(raw - raw.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    if task.kind == "multilabel":
        return 1.0 / (1.0 + np.exp(-raw))
    return raw


def decide(task: Task, scores: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """(N, C) scores -> (N, K) decisions in the label arrays' format (float32)."""
    scores = np.asarray(scores, np.float64)
    if task.kind == "multiclass":
        return np.argmax(scores, axis=1).astype(np.float32)[:, None]
    if task.kind == "multilabel":
        limits = np.full(scores.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, np.float64)
        return (scores >= limits[None, :]).astype(np.float32)
    return np.clip(scores, task.low, task.high).astype(np.float32)


def report(task: Task, decided: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The task's metric on the rows with a valid label, headline first: va ``{"mean", "valence",
    "arousal"}`` (CCC), expr ``{"macro", <class>...}`` (F1), au ``{"mean", <AU>...}`` (F1)."""
    decided, labels = np.asarray(decided, np.float64), np.asarray(labels, np.float64)
    keep = np.isfinite(labels).all(axis=1)
    decided, labels = decided[keep], labels[keep]
    if task.kind == "multiclass":
        per = f1_per_class(decided[:, 0], labels[:, 0], len(task.outputs))
        head = "macro"
    elif task.kind == "multilabel":
        per = np.array([f1_binary(decided[:, j], labels[:, j]) for j in range(len(task.outputs))])
        head = "mean"
    else:
        per = np.array([ccc(decided[:, j], labels[:, j]) for j in range(len(task.outputs))])
        head = "mean"
    return {head: float(per.mean()), **{name: float(v) for name, v in zip(task.outputs, per, strict=True)}}


def headline(task: Task, metrics: dict[str, float]) -> float:
    """The single number of a :func:`report` (its first entry)."""
    return next(iter(metrics.values()))


def choose_thresholds(scores: np.ndarray, labels: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per-AU thresholds maximising each AU's F1 on (N, 12) probabilities against (N, 12) labels
    (NaN rows skipped), searched over ``grid`` (0.05 .. 0.95 by 0.05); ties go to the threshold
    nearest 0.5. Only ever called on the validation split."""
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2) if grid is None else np.asarray(grid)
    keep = np.isfinite(labels).all(axis=1)
    scores, labels = scores[keep], labels[keep].astype(bool)
    order = np.argsort(np.abs(grid - 0.5), kind="stable")  # nearest 0.5 first wins ties
    chosen = []
    for j in range(scores.shape[1]):
        f1s = np.array([f1_binary(scores[:, j] >= grid[g], labels[:, j]) for g in order])
        chosen.append(float(grid[order[int(np.argmax(f1s))]]))
    return np.array(chosen)

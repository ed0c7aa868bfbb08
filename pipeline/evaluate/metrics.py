"""The challenge metric: Pearson correlation per emotion and its mean over the six emotions.

Conventions (both papers' definition, plus what they leave open):

- Computed in float64 on the rows where that emotion's label is finite (NaN = unknown label).
- A constant prediction (or a constant label column, or fewer than two labelled rows) has no
  defined correlation; it scores 0, not NaN, so a collapsed model ranks below any informative one
  and the mean stays a number that ``dvc metrics diff`` and the CI gate can compare.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.emotions import EMOTIONS


def pearson(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson correlation of two (N,) vectors, NaN labels skipped; 0 when undefined."""
    pred = np.asarray(pred, np.float64)
    true = np.asarray(true, np.float64)
    keep = np.isfinite(true)
    pred, true = pred[keep], true[keep]
    # Constant columns are found by their range, not by a zero denominator: the mean of ten 0.3s
    # is not exactly 0.3 on every CPU (summation order), which would leave rounding noise.
    if pred.size < 2 or np.ptp(pred) == 0.0 or np.ptp(true) == 0.0:
        return 0.0
    dp = pred - pred.mean()
    dt = true - true.mean()
    denom = np.sqrt(np.dot(dp, dp) * np.dot(dt, dt))
    if not np.isfinite(denom) or denom == 0.0:
        return 0.0
    return float(np.clip(np.dot(dp, dt) / denom, -1.0, 1.0))


def pearson_per_emotion(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """pred, true: (N, 6) -> (6,) float64 correlations in EMOTIONS order."""
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != len(EMOTIONS):
        raise ValueError(f"expected two (N, {len(EMOTIONS)}) arrays, got {pred.shape} and {true.shape}")
    return np.array([pearson(pred[:, k], true[:, k]) for k in range(pred.shape[1])], np.float64)


def pearson_report(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """{"mean": ..., "<Emotion>": ...} for the metrics file."""
    per = pearson_per_emotion(pred, true)
    return {"mean": float(per.mean()), **{name: float(v) for name, v in zip(EMOTIONS, per, strict=True)}}


def pearson_loss(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - mean over emotions of the batch Pearson correlation; pred, true: (B, 6) -> scalar.

    ``eps`` keeps the gradient finite when a column of the batch is constant.
    """
    dp = pred - pred.mean(dim=0, keepdim=True)
    dt = true - true.mean(dim=0, keepdim=True)
    r = (dp * dt).sum(dim=0) / torch.sqrt((dp * dp).sum(dim=0) * (dt * dt).sum(dim=0) + eps)
    return 1.0 - r.mean()


# ---------------------------------------------------------------------------- frame-level tasks
def ccc(pred: np.ndarray, true: np.ndarray) -> float:
    """Concordance correlation coefficient of two (N,) vectors over the rows where ``true`` is finite:
    ``2 cov / (var_p + var_t + (mean_p - mean_t)^2)`` with population (1/N) moments, in float64, as
    the ABAW VA metric pools every valid frame of a split; 0 when undefined (fewer than two rows,
    both constant)."""
    pred = np.asarray(pred, np.float64)
    true = np.asarray(true, np.float64)
    keep = np.isfinite(true)
    pred, true = pred[keep], true[keep]
    if pred.size < 2:
        return 0.0
    dp, dt = pred - pred.mean(), true - true.mean()
    denom = np.mean(dp * dp) + np.mean(dt * dt) + (pred.mean() - true.mean()) ** 2
    return 0.0 if denom <= 0.0 or not np.isfinite(denom) else float(2.0 * np.mean(dp * dt) / denom)


def f1_binary(pred: np.ndarray, true: np.ndarray) -> float:
    """F1 of the positive class of two (N,) 0/1 vectors: 2 TP / (2 TP + FP + FN); 0 when both hold no
    positive (scikit-learn's ``f1_score`` with ``zero_division=0``)."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    tp = np.count_nonzero(pred & true)
    wrong = np.count_nonzero(pred != true)
    return 0.0 if 2 * tp + wrong == 0 else float(2 * tp / (2 * tp + wrong))


def f1_per_class(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes,) one-vs-rest F1 of class indices; their mean is scikit-learn's macro F1 over
    ``labels=range(n_classes)`` (a class absent from both scores 0)."""
    pred, true = np.asarray(pred, np.int64), np.asarray(true, np.int64)
    return np.array([f1_binary(pred == c, true == c) for c in range(n_classes)], np.float64)


def confusion(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows the true class, columns the predicted one."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(counts, (np.asarray(true, np.int64), np.asarray(pred, np.int64)), 1)
    return counts

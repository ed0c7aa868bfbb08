"""The frame-level tasks' losses, on the frames of a batch that have a valid label (NaN rows skipped).

- va (``va.loss``): ``ccc`` = 1 - mean over valence and arousal of the CCC of the batch's valid
  frames pooled (the metric itself, as every strong ABAW VA system trains), plus ``va.mse_weight``
  times their MSE; or ``mse`` alone.
- expr (``expr.loss``): cross-entropy or focal loss ``(1 - p_y)^gamma * CE`` (Lin et al.; seed 003
  abstract 4), both with the class weights ``w_c`` of :func:`class_weights` when ``expr.class_weights``:
  the weighted mean ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` over the valid frames.
- au: binary cross-entropy on the 12 logits, positives of AU j weighted by ``pos_weight_j``
  (:func:`pos_weights`, when ``au.pos_weight``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.config import AuParams, ExprParams, VaParams
from pipeline.tasks import Task


def _valid(targets: torch.Tensor) -> torch.Tensor:
    """(B, W, K) -> (B, W) bool: frames with a label."""
    return torch.isfinite(targets).all(dim=-1)


def ccc_loss(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 - mean over columns of the CCC of (N, K) predictions and labels (population moments)."""
    mp, mt = pred.mean(dim=0), true.mean(dim=0)
    vp, vt = pred.var(dim=0, unbiased=False), true.var(dim=0, unbiased=False)
    cov = ((pred - mp) * (true - mt)).mean(dim=0)
    return 1.0 - (2.0 * cov / (vp + vt + (mp - mt) ** 2 + eps)).mean()


def class_weights(labels: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """(n_classes,) inverse frequency of the classes among the valid training frames, normalised to
    mean 1 over the classes that occur; a class that never occurs gets weight 1."""
    counts = np.zeros(n_classes, np.float64)
    for y in labels:
        y = y[np.isfinite(y[:, 0]), 0].astype(np.int64)
        counts += np.bincount(y, minlength=n_classes)[:n_classes]
    seen = counts > 0
    weights = np.ones(n_classes)
    weights[seen] = counts[seen].sum() / (seen.sum() * counts[seen])
    weights[seen] /= weights[seen].mean()
    return weights


def pos_weights(labels: Sequence[np.ndarray]) -> np.ndarray:
    """(K,) negatives / positives of each AU among the valid training frames (1 where an AU is never
    or always positive)."""
    stacked = np.concatenate([y[np.isfinite(y).all(axis=1)] for y in labels]) if labels else np.zeros((0, 0))
    positives, negatives = stacked.sum(axis=0), (1.0 - stacked).sum(axis=0)
    return np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1.0), 1.0)


class FrameLoss:
    """The task's loss on (B, W, C) raw outputs and (B, W, K) targets; ``weights``: class weights (expr)
    or positive weights (au) from the training frames, None for none."""

    def __init__(self, task: Task, section: VaParams | ExprParams | AuParams, weights: np.ndarray | None) -> None:
        self.task, self.section = task, section
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)

    @property
    def name(self) -> str:
        return getattr(self.section, "loss", "bce")

    def __call__(self, pred: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ok = _valid(targets)
        if not ok.any():
            return pred.sum() * 0.0  # a batch without a valid label: no gradient, no NaN
        pred, true = pred.float()[ok], targets[ok]
        weights = None if self.weights is None else self.weights.to(pred.device)
        if self.task.kind == "regression":
            loss = ccc_loss(pred, true) if self.section.loss == "ccc" else F.mse_loss(pred, true)
            if self.section.loss == "ccc" and self.section.mse_weight > 0:
                loss = loss + self.section.mse_weight * F.mse_loss(pred, true)
            return loss
        if self.task.kind == "multiclass":
            y = true[:, 0].long()
            ce = F.cross_entropy(pred, y, reduction="none")
            if self.section.loss == "focal":
                p_true = torch.exp(-ce)
                ce = (1.0 - p_true) ** self.section.focal_gamma * ce
            w = torch.ones_like(ce) if weights is None else weights[y]
            return (w * ce).sum() / w.sum()
        return F.binary_cross_entropy_with_logits(pred, true, pos_weight=weights)

"""The frame-level tasks' metrics, decisions and losses: checked against scikit-learn and the formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score

from pipeline.config import AuParams, ExprParams, VaParams
from pipeline.evaluate.metrics import ccc, confusion, f1_binary, f1_per_class
from pipeline.tasks import AU, EXPR, VA
from pipeline.tasks.outputs import choose_thresholds, decide, report, to_scores
from pipeline.train.losses import FrameLoss, ccc_loss, class_weights, pos_weights


def test_ccc_is_the_population_formula_and_pools_valid_rows() -> None:
    rng = np.random.default_rng(0)
    true = rng.uniform(-1, 1, 500)
    pred = 0.6 * true + 0.2 + 0.1 * rng.standard_normal(500)
    cov = np.mean((pred - pred.mean()) * (true - true.mean()))
    expected = 2 * cov / (pred.var() + true.var() + (pred.mean() - true.mean()) ** 2)
    assert ccc(pred, true) == pytest.approx(expected, rel=1e-12)
    assert ccc(true, true) == pytest.approx(1.0)
    assert ccc(true + 0.5, true) < 1.0  # a shift costs CCC, unlike Pearson
    with_nan = np.concatenate([true, [np.nan] * 3])
    assert ccc(np.concatenate([pred, [9.0, 9.0, 9.0]]), with_nan) == pytest.approx(expected, rel=1e-12)
    assert ccc(np.ones(3), np.ones(3)) == 0.0 and ccc([1.0], [2.0]) == 0.0


def test_expr_macro_f1_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    true = rng.integers(0, 8, 400)
    true[true == 3] = 2  # class 3 (Fear) never occurs in truth
    pred = np.where(rng.random(400) < 0.6, true, rng.integers(0, 8, 400))
    pred[pred == 7] = 0  # class 7 (Other) never predicted
    per = f1_per_class(pred, true, 8)
    np.testing.assert_allclose(per, f1_score(true, pred, labels=range(8), average=None, zero_division=0))
    assert per.mean() == pytest.approx(f1_score(true, pred, labels=range(8), average="macro", zero_division=0))
    np.testing.assert_array_equal(confusion(pred, true, 8), confusion_matrix(true, pred, labels=range(8)))
    labels = np.where(rng.random(400) < 0.1, np.nan, true).astype(np.float32)[:, None]
    metrics = report(EXPR, pred.astype(np.float32)[:, None], labels)
    keep = np.isfinite(labels[:, 0])
    assert list(metrics)[:2] == ["macro", "Neutral"]
    assert metrics["macro"] == pytest.approx(
        f1_score(true[keep], pred[keep], labels=range(8), average="macro", zero_division=0)
    )


def test_au_mean_f1_matches_scikit_learn_and_drops_frames_with_an_invalid_au() -> None:
    rng = np.random.default_rng(2)
    true = (rng.random((300, 12)) < np.linspace(0.03, 0.6, 12)).astype(np.float32)
    pred = np.where(rng.random((300, 12)) < 0.8, true, 1 - true)
    pred[:, 3] = 0  # never predicted: F1 0 unless never true either
    labels = true.copy()
    labels[:20] = np.nan  # a frame with any -1 is dropped whole
    metrics = report(AU, pred, labels)
    expected = [f1_score(true[20:, j], pred[20:, j], zero_division=0) for j in range(12)]
    np.testing.assert_allclose([metrics[a] for a in AU.outputs], expected)
    assert metrics["mean"] == pytest.approx(np.mean(expected))
    assert f1_binary(np.zeros(5), np.zeros(5)) == 0.0


def test_scores_and_decisions_per_task() -> None:
    logits = np.array([[2.0, 0.0, -1.0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 3.0]])
    probs = to_scores(EXPR, logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert decide(EXPR, probs)[:, 0].tolist() == [0, 7]
    au = to_scores(AU, np.zeros((1, 12)))
    assert decide(AU, au).tolist() == [[1.0] * 12]  # 0.5 reaches the default threshold
    assert decide(AU, au, [0.6] * 12).tolist() == [[0.0] * 12]
    np.testing.assert_allclose(decide(VA, np.array([[1.7, -0.2]])), [[1.0, -0.2]], atol=1e-7)


def test_thresholds_chosen_on_validation_beat_one_half() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random((2000, 12)) < 0.1).astype(np.float32)
    scores = np.clip(0.25 * labels + 0.2 * rng.random((2000, 12)), 0, 1)  # positives score 0.25-0.45: all below 0.5
    chosen = choose_thresholds(scores, labels)
    assert report(AU, decide(AU, scores, chosen), labels)["mean"] > report(AU, decide(AU, scores), labels)["mean"] + 0.5
    assert np.all((chosen > 0.2) & (chosen < 0.5))


def test_losses_skip_invalid_frames_and_weight_the_rare_classes() -> None:
    pred = torch.randn(2, 5, 2, requires_grad=True)
    targets = torch.rand(2, 5, 2) * 2 - 1
    targets[0, :2] = float("nan")
    loss = FrameLoss(VA, VaParams(), None)(pred, targets)
    ok = torch.isfinite(targets).all(-1)
    assert loss.item() == pytest.approx(ccc_loss(pred[ok], targets[ok]).item())
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, :2].abs().sum() == 0
    nothing = FrameLoss(VA, VaParams(), None)(pred, torch.full((2, 5, 2), float("nan")))
    assert nothing.item() == 0.0
    labels = [np.array([[0], [0], [0], [1], [np.nan]], np.float32)]
    weights = class_weights(labels, 8)
    assert weights[1] == pytest.approx(3 * weights[0]) and weights[2] == 1.0
    logits = torch.zeros(1, 4, 8)
    y = torch.tensor([[[0.0], [0.0], [0.0], [1.0]]])
    ce = FrameLoss(EXPR, ExprParams(loss="ce", class_weights=False), None)(logits, y)
    assert ce.item() == pytest.approx(np.log(8))
    focal = FrameLoss(EXPR, ExprParams(loss="focal", focal_gamma=2.0), torch.tensor(weights))(logits, y)
    assert focal.item() == pytest.approx((1 - 1 / 8) ** 2 * np.log(8), rel=1e-5)
    au = [np.array([[1] + [0] * 11, [0] * 12, [0] * 12, [np.nan] * 12], np.float32)]
    assert pos_weights(au)[0] == pytest.approx(2.0) and pos_weights(au)[1] == 1.0
    bce = FrameLoss(AU, AuParams(), torch.tensor(pos_weights(au)))(torch.zeros(1, 4, 12), torch.tensor(au[0])[None])
    assert torch.isfinite(bce)

"""The challenge metric against scipy, its conventions for undefined cases, and the Pearson loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from pipeline.emotions import EMOTIONS
from pipeline.evaluate.metrics import pearson, pearson_loss, pearson_per_emotion, pearson_report


def _pair(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true = rng.random((n, 6))
    pred = 0.6 * true + 0.4 * rng.random((n, 6)) + rng.normal(0, 0.2, (n, 6))
    return pred, true


def test_per_emotion_matches_scipy() -> None:
    pred, true = _pair()
    ours = pearson_per_emotion(pred, true)
    theirs = np.array([pearsonr(pred[:, k], true[:, k]).statistic for k in range(6)])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    assert 0.3 < ours.min() and ours.max() < 0.99  # a real correlation, not a degenerate case


def test_report_has_mean_and_every_emotion() -> None:
    pred, true = _pair(seed=1)
    report = pearson_report(pred, true)
    assert list(report) == ["mean", *EMOTIONS]
    assert report["mean"] == pytest.approx(np.mean([report[e] for e in EMOTIONS]), abs=1e-12)


def test_nan_labels_are_skipped() -> None:
    pred, true = _pair(seed=2)
    true[::7, 3] = np.nan
    keep = np.isfinite(true[:, 3])
    expected = pearsonr(pred[keep, 3], true[keep, 3]).statistic
    assert pearson_per_emotion(pred, true)[3] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("pred", "true"),
    [
        (np.full(10, 0.3), np.linspace(0, 1, 10)),  # constant prediction
        (np.linspace(0, 1, 10), np.full(10, 0.5)),  # constant labels
        (np.array([0.2]), np.array([0.7])),  # one row
        (np.array([]), np.array([])),  # no rows
        (np.array([0.1, 0.4]), np.array([np.nan, np.nan])),  # no known label
    ],
)
def test_undefined_correlation_is_zero_not_nan(pred: np.ndarray, true: np.ndarray) -> None:
    assert pearson(pred, true) == 0.0


def test_constant_prediction_is_zero_whatever_the_rounding_of_its_mean() -> None:
    """The mean of three 0.1s is 0.10000000000000002 in float64 on any CPU, so the deviations are
    not zero: a rule that tests the denominator for zero returned -8.7e-17 here, not 0."""
    pred = np.full(3, 0.1)
    assert pred.mean() != 0.1  # the premise: summation leaves rounding noise
    assert pearson(pred, np.array([0.0, 0.25, 1.0])) == 0.0
    per = pearson_per_emotion(np.tile(np.array([[0.1], [0.1], [0.1]]), (1, 6)), np.random.default_rng(0).random((3, 6)))
    assert (per == 0.0).all()
    assert pearson_report(np.full((5, 6), 0.3, np.float32), np.random.default_rng(1).random((5, 6)))["mean"] == 0.0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        pearson_per_emotion(np.zeros((4, 5)), np.zeros((4, 5)))


def test_pearson_loss_is_one_minus_mean_pearson_and_stays_finite() -> None:
    pred, true = _pair(n=64, seed=3)
    loss = pearson_loss(torch.tensor(pred), torch.tensor(true))
    assert float(loss) == pytest.approx(1.0 - pearson_per_emotion(pred, true).mean(), abs=1e-6)

    constant = torch.full((8, 6), 0.5, requires_grad=True)
    loss = pearson_loss(constant, torch.rand(8, 6))
    loss.backward()
    assert loss.item() == pytest.approx(1.0, abs=1e-6)
    assert torch.isfinite(constant.grad).all()

"""Long clips are used whole: a sequence over its frame budget is pooled into segments spanning the
clip (``pipeline.train.dataset.pool_segments``), the same in training, evaluation and predict."""

from __future__ import annotations

import numpy as np

from pipeline.features import ClipFeatures
from pipeline.features.shards import ModalityInfo
from pipeline.train.dataset import build_clip_table, pool_segments


def test_segments_average_their_valid_frames() -> None:
    values = np.arange(10, dtype=np.float32)[:, None] * np.array([[1.0, -1.0]], np.float32)  # (10, 2)
    valid = np.array([1, 1, 0, 0, 0, 1, 1, 1, 1, 0], bool)
    pooled, ok = pool_segments(values, valid, 4)  # segments [0, 2) [2, 5) [5, 7) [7, 10)
    assert pooled.dtype == np.float32 and pooled.shape == (4, 2)
    np.testing.assert_array_equal(pooled[:, 0], [0.5, 0.0, 5.5, 7.5])
    np.testing.assert_array_equal(pooled[:, 1], -pooled[:, 0])
    np.testing.assert_array_equal(ok, [True, False, True, True])


def test_within_the_budget_nothing_changes() -> None:
    values = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float16)
    valid = np.array([1, 0, 1, 1, 1, 0, 1], bool)
    for limit in (7, 8, None):
        pooled, ok = pool_segments(values, valid, limit)
        assert pooled is values and ok is valid


def test_every_frame_lands_in_exactly_one_segment() -> None:
    for T, limit in [(6000, 400), (601, 600), (401, 400), (1250 * 5, 400)]:
        values = np.ones((T, 1), np.float32)
        pooled, ok = pool_segments(values, np.ones(T, bool), limit)
        assert pooled.shape == (limit, 1) and ok.all()
        starts = (np.arange(limit) * T) // limit
        lengths = np.diff(np.r_[starts, T])
        assert lengths.sum() == T and lengths.min() >= T // limit and lengths.max() <= -(-T // limit)


def _record(clip_id: str, values: np.ndarray, valid: np.ndarray) -> ClipFeatures:
    return ClipFeatures(clip_id, values, np.arange(len(valid), dtype=np.float32) / 5, valid, True)


def test_the_end_of_a_long_clip_reaches_the_model() -> None:
    """A 20-minute clip at 5 fps has 6,000 visual frames; the budget is 400. Before, the model saw
    frames 0-399 (the first 80 s): a clip that changes later, or whose face appears only later,
    looked the same as its first minutes or had no visual modality at all."""
    T, dim = 6000, 4
    start = np.zeros((T, dim), np.float32)
    changed = start.copy()
    changed[T // 2 :] = 1.0  # the second half differs
    late = np.zeros(T, bool)
    late[5000:] = True  # a face only in the last 200 s
    table = build_clip_table(
        clip_ids=["same", "changed", "late"],
        splits=["test"] * 3,
        labels=np.full((3, 6), np.nan),
        records={"visual": [_record("same", start, np.ones(T, bool)), _record("changed", changed, np.ones(T, bool)),
                            _record("late", start + 2.0, late)]},
        info={"visual": ModalityInfo(dim=dim, model="synthetic")},
        max_frames={"visual": 400},
    )  # fmt: skip
    same, changed_steps, late_steps = table.values["visual"]
    assert same.shape == changed_steps.shape == (400, dim) and same.dtype == np.float16
    assert (changed_steps[:200] == 0).all() and (changed_steps[200:] == 1).all()
    assert late_steps is not None and table.valid["visual"][2].sum() == 400 - 5000 * 400 // T
    assert (late_steps[table.valid["visual"][2]] == 2).all()

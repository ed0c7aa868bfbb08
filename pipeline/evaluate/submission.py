"""The ABAW EMI submission file: one row per test clip, six intensities clipped to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER


def submission_stem(clip_id: str) -> str:
    """ABAW file stem: digit ids are 5-digit zero-padded (12 -> 00012); other ids are kept as they are."""
    return clip_id.zfill(5) if clip_id.isdigit() else clip_id


def submission_frame(clip_ids: Sequence[str], values: np.ndarray) -> pl.DataFrame:
    """``Filename`` + the six emotions, values (N, 6) clipped to [0, 1]."""
    clipped = np.clip(np.asarray(values, np.float64).reshape(len(clip_ids), len(EMOTIONS)), 0.0, 1.0)
    columns = {"Filename": [submission_stem(c) for c in clip_ids]}
    columns.update({e: clipped[:, k] for k, e in enumerate(EMOTIONS)})
    frame = pl.DataFrame(columns, schema={"Filename": pl.String, **{e: pl.Float64 for e in EMOTIONS}})
    assert tuple(frame.columns) == LABEL_CSV_HEADER
    return frame


def submission_csv(clip_ids: Sequence[str], values: np.ndarray) -> str:
    """The submission CSV text: the exact header, then one row per clip, six decimals."""
    return submission_frame(clip_ids, values).write_csv(float_precision=6)

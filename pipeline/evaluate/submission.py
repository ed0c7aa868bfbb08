"""The ABAW submission files: EMI, one row per test clip with six intensities clipped to [0, 1]; the
frame-level tasks, the organisers' sample file's rows with each frame's prediction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER
from pipeline.ingest.frame_labels import SampleRow
from pipeline.tasks import Task


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


def frame_submission_csv(task: Task, sample: Sequence[SampleRow], decisions: Mapping[str, np.ndarray]) -> str:
    """The ABAW submission of a frame-level task: the sample file's header, then its rows in its
    order, each with the decision of that track's annotated frame (``decisions[clip_id]``: (N, K) in
    the labels' format). Raises when a row has no prediction (an unknown track, a frame past the
    track's frames): a file whose rows do not match the sample is never written."""
    lines = [",".join(("image_location", *task.outputs))]
    missing = []
    for row in sample:
        values = decisions.get(row.clip_id)
        if values is None or not 1 <= row.frame <= len(values):
            missing.append(row.image_location)
            continue
        decided = values[row.frame - 1]
        if task.kind == "regression":
            cells = [f"{v:.6f}" for v in np.clip(decided, task.low, task.high)]
        else:
            cells = [str(int(v)) for v in decided]
        lines.append(",".join((row.image_location, *cells)))
    if missing:
        raise ValueError(f"{len(missing)} sample rows have no prediction (first: {missing[0]}); no submission written")
    return "\n".join(lines) + "\n"

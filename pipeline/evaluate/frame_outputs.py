"""What evaluate writes for a frame-level task: metrics, per-frame predictions, submission, plot data.

- ``predictions.parquet``: one row per annotated frame of every track (clip_id, split, frame
  (1-based, the label file's numbering), time_s, ``score_<output>`` (va values, expr and au
  probabilities), the decisions (va ``valence``/``arousal`` clipped to [-1, 1], expr ``class``, au one
  0/1 column per AU) and ``label_*`` (null where unknown or invalid).
- ``submission.csv``: the sample submission file's rows with the decisions
  (``pipeline.evaluate.submission.frame_submission_csv``); a release without a sample file gets the
  header only, and the run says so.
- ``plots/frames/``: ``per_output.csv`` (output, score: valid), ``per_track.csv`` (clip_id, split,
  score: each labelled valid/test track's own headline), ``robustness.csv`` (condition, score), and
  for expr ``confusion.csv`` (actual, predicted, count: valid frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.atomic import write_json, write_parquet, write_text
from pipeline.evaluate.frame_evaluation import FrameEvaluation
from pipeline.evaluate.submission import frame_submission_csv
from pipeline.ingest.frame_labels import SampleRow
from pipeline.tasks import Task
from pipeline.train.frames import FrameTable


def decision_columns(task: Task) -> list[str]:
    """Names of the decision columns: the outputs for va and au, ``class`` for expr."""
    return ["class"] if task.kind == "multiclass" else list(task.outputs)


def label_columns(task: Task) -> list[str]:
    return [f"label_{c}" for c in decision_columns(task)]


def predictions_table(task: Task, table: FrameTable, evaluation: FrameEvaluation) -> pa.Table:
    """One row per annotated frame of every track (see the module docstring)."""
    tracks = table.tracks
    counts = [len(t.frame_times) for t in tracks]
    columns: dict[str, pa.Array] = {
        "clip_id": pa.array(np.repeat([t.clip_id for t in tracks], counts).tolist(), pa.string()),
        "split": pa.array(np.repeat([t.split for t in tracks], counts).tolist(), pa.string()),
        "frame": pa.array(np.concatenate([np.arange(1, n + 1) for n in counts] or [[]]).astype(np.int32)),
        "time_s": pa.array(np.concatenate([t.frame_times for t in tracks] or [[]]).astype(np.float64)),
    }
    scores = np.concatenate(evaluation.scores) if tracks else np.zeros((0, len(task.outputs)))
    for j, name in enumerate(task.outputs):
        columns[f"score_{name}"] = pa.array(scores[:, j].astype(np.float32))
    decided = np.concatenate(evaluation.decisions) if tracks else np.zeros((0, task.label_width))
    kind = np.float32 if task.kind == "regression" else np.int8
    for j, name in enumerate(decision_columns(task)):
        columns[name] = pa.array(decided[:, j].astype(kind))
    width = task.label_width
    labels = np.concatenate(
        [
            t.labels if t.labels is not None else np.full((n, width), np.nan, np.float32)
            for t, n in zip(tracks, counts, strict=True)
        ]
        or [np.zeros((0, width), np.float32)]
    )
    for j, name in enumerate(label_columns(task)):
        columns[name] = pa.array(labels[:, j], pa.float32(), mask=~np.isfinite(labels[:, j]))
    return pa.table(columns)


def _csv(columns: dict[str, list]) -> str:
    return pl.DataFrame(columns).write_csv()


def write_frame_outputs(
    out_dir: str | Path,
    *,
    task: Task,
    table: FrameTable,
    evaluation: FrameEvaluation,
    sample: list[SampleRow],
    best_epoch: int,
) -> int:
    """Write everything; -> the number of submission rows."""
    out = Path(out_dir)
    write_json({**evaluation.metrics, "best_epoch": int(best_epoch)}, out / "metrics.json")
    write_parquet(predictions_table(task, table, evaluation), out / "predictions.parquet")
    decisions = {t.clip_id: d for t, d in zip(table.tracks, evaluation.decisions, strict=True)}
    write_text(frame_submission_csv(task, sample, decisions), out / "submission.csv")
    plots = out / "plots" / "frames"
    valid = evaluation.metrics[task.metric]
    write_text(
        _csv({"output": list(task.outputs), "score": [valid[o] for o in task.outputs]}), plots / "per_output.csv"
    )
    rows = evaluation.per_track
    write_text(
        _csv({"clip_id": [r[0] for r in rows], "split": [r[1] for r in rows], "score": [r[2] for r in rows]}),
        plots / "per_track.csv",
    )
    robust = evaluation.robustness
    write_text(_csv({"condition": list(robust), "score": list(robust.values())}), plots / "robustness.csv")
    if evaluation.confusion is not None:
        n = len(task.outputs)
        write_text(
            _csv({
                "actual": [task.outputs[i] for i in range(n) for _ in range(n)],
                "predicted": [task.outputs[j] for _ in range(n) for j in range(n)],
                "count": evaluation.confusion.reshape(-1).tolist(),
            }),
            plots / "confusion.csv",
        )  # fmt: skip
    return len(sample)

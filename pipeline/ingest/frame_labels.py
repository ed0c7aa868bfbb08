"""The frame-level labels ingest hands to train and evaluate: their tables, written and read here.

For a frame-level release (Aff-Wild2, or the built-in tracks demo) ingest writes, beside the
manifest of tracks, a folder ``data/frame_labels/`` with, per frame-level task present:

``<task>.parquet``, one row per track of the task (LABELS_SCHEMA): its split, ``n_frames`` (how many
per-frame outputs the track needs: the label file's data lines, or for an unlabelled test track its
rows in the sample submission file), ``labels`` ((n_frames, K) float32, NaN rows where the label is
invalid; null for an unlabelled test track) and ``source`` (the file the count came from);

``<task>_sample.parquet``, the organisers' sample submission file as rows (SAMPLE_SCHEMA), in its
order: the submission writer reproduces exactly these rows.

A clip-level release (task emi) keeps its labels in the manifest and gets only a note file, so
every release gives the folder DVC expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import write_parquet, write_text
from pipeline.tasks import Task

TRACK_MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),  # the track: <video>, or <video>_left / _right
        pa.field("path", pa.string(), nullable=False),  # its video file (shared by a _left/_right pair)
        pa.field("split", pa.string(), nullable=False),  # in the first task listing it (va, expr, au)
        pa.field("video", pa.string(), nullable=False),
        pa.field("side", pa.string()),  # left / right when two people share the video, else null
        pa.field("crop_dir", pa.string()),  # the organisers' face crops of this track, null when absent
    ]
)
SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("image_location", pa.string(), nullable=False),
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("frame", pa.int32(), nullable=False),  # 1-based annotated frame
    ]
)
CLIP_LEVEL_NOTE = "clip-level.txt"


def labels_schema(width: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("n_frames", pa.int32(), nullable=False),
            pa.field("labels", pa.list_(pa.list_(pa.float32(), width))),
            pa.field("source", pa.string(), nullable=False),
        ]
    )


@dataclass
class TrackLabels:
    """One track's labels for one task."""

    clip_id: str
    split: str
    n_frames: int
    labels: np.ndarray | None  # (n_frames, K) float32, NaN rows invalid; None: not annotated
    source: str


@dataclass(frozen=True)
class SampleRow:
    image_location: str
    clip_id: str
    frame: int


def write_task_labels(
    folder: str | Path, task: Task, tracks: Sequence[TrackLabels], sample: Sequence[SampleRow]
) -> None:
    """``<task>.parquet`` and ``<task>_sample.parquet`` in ``folder``, each written atomically."""
    width = task.label_width
    rows = {
        "clip_id": [t.clip_id for t in tracks],
        "split": [t.split for t in tracks],
        "n_frames": [t.n_frames for t in tracks],
        "labels": [None if t.labels is None else t.labels.astype(np.float32).tolist() for t in tracks],
        "source": [t.source for t in tracks],
    }
    write_parquet(pa.table(rows, schema=labels_schema(width)), Path(folder) / f"{task.name}.parquet")
    columns = {
        "image_location": [r.image_location for r in sample],
        "clip_id": [r.clip_id for r in sample],
        "frame": [r.frame for r in sample],
    }
    write_parquet(pa.table(columns, schema=SAMPLE_SCHEMA), Path(folder) / f"{task.name}_sample.parquet")


def write_release_labels(folder: str | Path, tasks: Sequence, source: str) -> None:
    """The folder for a release: each task's tables (``tasks``: ``affwild2.TaskLabels``), or the
    clip-level note; files of an earlier run that this one does not write are removed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = set()
    for labels in tasks:
        write_task_labels(folder, labels.task, list(labels.tracks.values()), labels.sample)
        written |= {f"{labels.task.name}.parquet", f"{labels.task.name}_sample.parquet"}
    if not tasks:
        note = f"data.source {source} is clip-level: its labels are in the manifest.\n"
        write_text(note, folder / CLIP_LEVEL_NOTE)
        written.add(CLIP_LEVEL_NOTE)
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in written:
            stale.unlink()


def read_task_labels(folder: str | Path, task: Task) -> list[TrackLabels]:
    """The task's rows written by :func:`write_task_labels`; raises when the release has no such labels."""
    path = Path(folder) / f"{task.name}.parquet"
    if not path.is_file():
        found = sorted(p.stem for p in Path(folder).glob("*.parquet") if not p.stem.endswith("_sample"))
        raise FileNotFoundError(
            f"{path}: no {task.name} labels in this release (it has {found or 'no frame-level labels'}); "
            "check task and data.source"
        )
    out = []
    width = task.label_width
    for row in pq.read_table(path).to_pylist():
        labels = None if row["labels"] is None else np.asarray(row["labels"], np.float32).reshape(-1, width)
        out.append(TrackLabels(row["clip_id"], row["split"], row["n_frames"], labels, row["source"]))
    return out


def read_sample(folder: str | Path, task: Task) -> list[SampleRow]:
    """The sample submission rows of ``task`` in file order ([] when the release has no sample file)."""
    path = Path(folder) / f"{task.name}_sample.parquet"
    if not path.is_file():
        return []
    table = pq.read_table(path)
    return [SampleRow(**row) for row in table.to_pylist()]

"""Loading the frame-level tasks' tracks: labels (ingest), timeline (decode) and feature shards, aligned.

Every track of the task in the requested splits is kept, whatever is missing: a track whose video
did not decode has no steps (it is predicted from the model's prior at every annotated frame), a
track without a face or audio has that modality missing (``FrameTable.missing_counts`` says why).
The alignment rules are in ``pipeline/train/frames.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pipeline.config import MODALITIES
from pipeline.features import ClipFeatures
from pipeline.features.shards import ModalityInfo, read_features, shard_info
from pipeline.ingest.frame_labels import TrackLabels, read_task_labels
from pipeline.tasks import Task
from pipeline.timeline import Timeline, read_timelines
from pipeline.train.frames import CONTEXT_MODALITIES, FrameTable, FrameTrack


def frame_times(timeline: Timeline | None, n_frames: int) -> np.ndarray:
    """(n_frames,) times of annotated frames 1..n: the pts of decoded frame k, then (label lines past
    the decoded frames) on at the median frame gap; without decoded frames, k / fps of the samples."""
    pts = np.zeros(0) if timeline is None else timeline.frame_pts
    if len(pts) >= n_frames:
        return pts[:n_frames].astype(np.float64)
    gap = float(np.median(np.diff(pts))) if len(pts) > 1 else 1.0 / (timeline.fps if timeline else 5.0)
    start = pts[-1] if len(pts) else -gap
    extra = start + gap * np.arange(1, n_frames - len(pts) + 1)
    return np.concatenate([pts, extra]).astype(np.float64)


def align(
    record: ClipFeatures | None, times: np.ndarray, context: bool
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """A modality's record on the track's steps -> ((T, D) float16, (T,) valid, reason if missing).

    Each step takes the record frame whose time span covers it: frames at spacing d cover
    ``[t_j - d/2, t_j + d/2)``. A context record (one vector per track) stays one row."""
    if record is None:
        return None, None, "no record in the feature shards"
    if not record.available or not np.asarray(record.valid, bool).any():
        return None, None, record.reason or ("unavailable" if not record.available else "no valid frame")
    values, valid = np.asarray(record.values, np.float16), np.asarray(record.valid, bool)
    if context:
        return values[:1], valid[:1].copy(), ""
    rt = np.asarray(record.times, np.float64)
    spacing = (
        float(np.median(np.diff(rt))) if len(rt) > 1 else (float(np.median(np.diff(times))) if len(times) > 1 else 0.2)
    )
    # The epsilon keeps a step exactly on a span's lower edge inside it (float32 record times).
    index = np.floor((times - rt[0]) / spacing + 0.5 + 1e-4).astype(np.int64)
    inside = (index >= 0) & (index < len(rt))
    index = np.clip(index, 0, len(rt) - 1)
    aligned = np.where(inside[:, None], values[index], 0).astype(np.float16)
    return aligned, valid[index] & inside, ""


def step_targets(labels: np.ndarray | None, timeline: Timeline | None, width: int) -> np.ndarray:
    """(T, K) labels at the steps: step i takes the label of its source frame (NaN where none)."""
    if timeline is None:
        return np.zeros((0, width), np.float32)
    out = np.full((len(timeline.sample_frame), width), np.nan, np.float32)
    if labels is not None:
        source = timeline.sample_frame
        inside = source < len(labels)
        out[inside] = labels[source[inside]]
    return out


def _track(
    row: TrackLabels, timeline: Timeline | None, records: Mapping[str, ClipFeatures | None], width: int, reasons
) -> FrameTrack:
    times = timeline.sample_times if timeline is not None else np.zeros(0)
    values, valid = {}, {}
    for m, record in records.items():
        values[m], valid[m], why = align(record, times, m in CONTEXT_MODALITIES)
        if why:
            reasons[m][why] = reasons[m].get(why, 0) + 1
    return FrameTrack(
        clip_id=row.clip_id, split=row.split, times=times, values=values, valid=valid,
        targets=step_targets(row.labels, timeline, width), frame_times=frame_times(timeline, row.n_frames),
        labels=row.labels,
    )  # fmt: skip


def load_tracks(
    *,
    task: Task,
    labels: str | Path,
    timeline: str | Path,
    features: str | Path,
    splits: Sequence[str],
    modalities: Sequence[str],
) -> FrameTable:
    """The task's tracks of ``splits`` (labels folder order) with ``modalities`` from their shards."""
    rows = [r for r in read_task_labels(labels, task) if r.split in splits]
    ids = [r.clip_id for r in rows]
    timelines = read_timelines(timeline, ids)
    wanted = [m for m in MODALITIES if m in modalities]
    info: dict[str, ModalityInfo] = {m: shard_info(Path(features) / m) for m in wanted}
    records: dict[str, dict[str, ClipFeatures]] = {m: {} for m in wanted}
    for m in wanted:
        for rec in read_features(Path(features) / m, clip_ids=ids, modality=m):
            records[m][rec.clip_id] = rec
    reasons: dict[str, dict[str, int]] = {m: {} for m in wanted}
    tracks = []
    for row in rows:
        # A track with no decoded frame still needs a timeline entry: its steps are then none.
        known = timelines.get(row.clip_id)
        tl = known if known is not None and len(known.sample_frame) else None
        tracks.append(_track(row, tl, {m: records[m].get(row.clip_id) for m in wanted}, task.label_width, reasons))
    return FrameTable(tracks, info, reasons)

"""``pipeline.predict`` with a frame-level model (tasks va, expr, au): one row per video frame.

Each file goes through the same decode, ASR and feature code as the pipeline
(``Predictor.features_of``), becomes one track whose steps are its decoded samples and whose
annotated frames are *every decoded video frame* (``ClipReport.frame_pts``: a new video has no
label file, so every frame gets a prediction), and the model predicts as evaluate does
(``pipeline.train.frame_inference.frame_scores``: windows averaged, interpolated to every frame,
smoothed as trained, the AU thresholds chosen on valid). A file with nothing to decode keeps one
row (no frame, its status and reason), so every input is accounted for.

CSV columns: clip_id, path, frame (1-based; empty for a file without frames), time_s, the
decisions (va ``valence``, ``arousal``; expr ``class`` and ``expression``; au one 0/1 column per
AU), ``face`` (the decoded sample covering the frame had a face), ``audio``, ``text`` (the file has
them), status, message. ``--submission`` writes the ABAW layout instead: ``<clip_id>/<frame>.jpg``
rows with the task's header.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipeline.cli import describe
from pipeline.features import ClipFeatures
from pipeline.predict.predictor import Predictor
from pipeline.tasks import Task
from pipeline.tasks.outputs import decide
from pipeline.train.frame_data import align
from pipeline.train.frame_inference import frame_scores
from pipeline.train.frames import CONTEXT_MODALITIES, FrameTable, FrameTrack


@dataclass
class FramePrediction:
    clip_id: str
    path: str
    times: np.ndarray  # (N,) every decoded frame's time; N = 0 for a file without frames
    scores: np.ndarray  # (N, C)
    decisions: np.ndarray  # (N, K)
    face: np.ndarray  # (N,) bool
    present: dict[str, bool]
    status: str
    message: str


def _track(clip_id: str, fps: float, frame_pts: list[float], n_steps: int, records: dict[str, ClipFeatures]):
    times = np.arange(n_steps) / fps
    values, valid = {}, {}
    for m, record in records.items():
        values[m], valid[m], _ = align(record, times, m in CONTEXT_MODALITIES)
    pts = np.asarray(frame_pts, np.float64)
    return FrameTrack(clip_id, "test", times, values, valid, np.zeros((n_steps, 1), np.float32), pts, None)


def predict_frames(predictor: Predictor, path: Path, clip_id: str) -> FramePrediction:
    """Never raises for a bad file: whatever goes wrong is the row's status and message."""
    task, meta = predictor.task, predictor.meta
    try:
        report, records = predictor.features_of(path, clip_id)
    except Exception as error:  # noqa: BLE001 - one file's failure is its row, never the run's end
        print(f"warning: {path}: {describe(error)}", file=sys.stderr)
        return unreadable_frames(predictor, path, clip_id, f"error while predicting: {describe(error)}")
    track = _track(clip_id, predictor.params.decode.fps, report.frame_pts, len(report.sample_frame), records)
    table = FrameTable([track], dict(predictor.info))
    scores = frame_scores(
        predictor.model, table, task, window=meta["frames"]["window"], stride=meta["frames"]["stride"],
        smoothing=meta[task.name]["smoothing"], batch_size=meta["train"]["batch_size"], device=predictor.device,
    )[0]  # fmt: skip
    face = np.zeros(len(track.frame_times), bool)
    if len(track) and track.valid.get("visual") is not None:
        step = np.clip(np.searchsorted(track.times, track.frame_times, side="right") - 1, 0, len(track) - 1)
        face = track.valid["visual"][step]
    present = {m: track.values.get(m) is not None for m in ("visual", "audio", "text")}
    decisions = decide(task, scores, meta.get("thresholds"))
    return FramePrediction(
        clip_id, str(path), track.frame_times, scores, decisions, face, present, report.status, report.message
    )


def unreadable_frames(predictor: Predictor, path: Path, clip_id: str, problem: str) -> FramePrediction:
    task = predictor.task
    empty = np.zeros((0, len(task.outputs)))
    return FramePrediction(
        clip_id, str(path), np.zeros(0), empty, np.zeros((0, task.label_width), np.float32), np.zeros(0, bool),
        dict.fromkeys(("visual", "audio", "text"), False), "corrupt", problem,
    )  # fmt: skip


def decision_frame(task: Task, decisions: np.ndarray) -> dict[str, list]:
    """The decision columns of a row block (va values, expr class and its name, au 0/1 per AU)."""
    if task.kind == "multiclass":
        classes = decisions[:, 0].astype(int).tolist()
        return {"class": classes, "expression": [task.outputs[c] for c in classes]}
    if task.kind == "multilabel":
        return {name: decisions[:, j].astype(int).tolist() for j, name in enumerate(task.outputs)}
    return {name: decisions[:, j].astype(float).tolist() for j, name in enumerate(task.outputs)}


def frames_csv(task: Task, rows: list[FramePrediction]) -> str:
    """One CSV row per frame of every input (one row, without a frame, for an input without frames)."""
    names = list(decision_frame(task, np.zeros((0, task.label_width))))
    blocks = []
    for r in rows:
        n = len(r.times)
        if n:
            block = {"clip_id": [r.clip_id] * n, "path": [r.path] * n, "frame": list(range(1, n + 1))}
            block |= {"time_s": r.times.tolist(), **decision_frame(task, r.decisions), "face": r.face.tolist()}
        else:
            block = {"clip_id": [r.clip_id], "path": [r.path], "frame": [None], "time_s": [None],
                     **{k: [None] for k in names}, "face": [False]}  # fmt: skip
        rows_here = max(n, 1)
        block.update({m: [r.present[m]] * rows_here for m in ("audio", "text")})
        block.update(status=[r.status] * rows_here, message=[r.message] * rows_here)
        blocks.append(pl.DataFrame(block, strict=False))
    return pl.concat(blocks, how="diagonal_relaxed").write_csv(float_precision=6)


def frames_submission(task: Task, rows: list[FramePrediction]) -> str:
    """The ABAW layout: the task's header, then ``<clip_id>/<frame:05d>.jpg`` and the decisions."""
    lines = [",".join(("image_location", *task.outputs))]
    for r in rows:
        for k, decided in enumerate(r.decisions, start=1):
            cells = [f"{v:.6f}" for v in decided] if task.kind == "regression" else [str(int(v)) for v in decided]
            lines.append(",".join((f"{r.clip_id}/{k:05d}.jpg", *cells)))
    return "\n".join(lines) + "\n"

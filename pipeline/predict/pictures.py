"""``pipeline.predict --plots DIR``: one PNG per input, ``DIR/<clip_id>.png`` (for a frame-level
task, the predictions over time: :func:`draw_frames`).

Each picture is ``pipeline.plots.specs.prediction_spec`` of the row (the six intensities as bars
on a fixed [0, 1] axis, the modalities present, the status and message), drawn offline by
``pipeline.plots.render`` and written atomically as soon as the row is known, so a long run can be
watched. An input that could not be read has its row, so it has its picture: grey bars (the
model's prior) under a line saying nothing in it was usable, and the reason. Clip ids are unique
within a run (``cli.clip_ids``), so no picture overwrites another.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pipeline.cli import UsageError, describe
from pipeline.emotions import EMOTIONS
from pipeline.plots.render import render_png
from pipeline.plots.specs import prediction_spec, trajectory_spec
from pipeline.predict.frames import FramePrediction
from pipeline.predict.predictor import Prediction


def check_folder(folder: str | Path) -> Path:
    """``folder`` made ready before any work: a folder (made when missing) that takes new files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--plots {folder} is a file; give a folder for the pictures")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".", suffix=".check"):
            pass
    except OSError as error:
        raise UsageError(f"--plots {folder}: cannot write there: {error.strerror or error}") from None
    return folder


def draw(row: Prediction, folder: Path) -> Path | None:
    """Write the row's picture; a picture that cannot be drawn is a warning, never the run's end."""
    spec = prediction_spec(
        clip_id=row.clip_id,
        values={e: float(v) for e, v in zip(EMOTIONS, row.values, strict=True)},
        present=row.present,
        status=row.status,
        message=row.message,
        emotions=EMOTIONS,
    )
    try:
        return render_png(spec, folder / f"{row.clip_id}.png")
    except Exception as error:  # noqa: BLE001 - the CSV row stands without its picture
        print(f"warning: {row.path}: no picture drawn: {describe(error)}", file=sys.stderr)
        return None


def draw_frames(row: FramePrediction, folder: Path, task) -> Path | None:
    """A frame-level row's picture: its predictions over time (``pipeline.plots.specs.trajectory_spec``)."""
    spec = trajectory_spec(
        clip_id=row.clip_id, task=task, times=row.times, decisions=row.decisions, face=row.face,
        status=row.status, message=row.message,
    )  # fmt: skip
    try:
        return render_png(spec, folder / f"{row.clip_id}.png")
    except Exception as error:  # noqa: BLE001 - the CSV rows stand without their picture
        print(f"warning: {row.path}: no picture drawn: {describe(error)}", file=sys.stderr)
        return None

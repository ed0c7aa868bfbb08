"""``pipeline.predict`` on a hostile corpus, generated here: every input gets its row.

The corpus holds media under extensions the folder search used to miss (.mpg .ts .mts .3gp .wmv
.flv .aac .opus .wma), a recording without an extension, a folder named ``x.mp4``, a symlink loop,
a dangling symlink, a FIFO, a clip cut at 30% of its bytes, float WAVs with a few and with many
NaN samples, random bytes, an empty file, hidden and non-media files. Predicted once as one folder
and once as explicit paths: rows out == inputs in, every value finite in [0, 1], every status one of
docs/pipeline.md's, each with the reason it should have.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ffmpeg
import numpy as np
import pytest
import yaml
from scipy.io import wavfile

from fixtures.models import untrained_model
from pipeline.decode import STATUSES
from pipeline.emotions import EMOTIONS

from .conftest import REALDATA, REPO
from .test_decode_damage import speech_level_signal, with_nonfinite

# name -> (ffmpeg output options) for re-encodes of the first 2 s of a real clip
REENCODES = {
    "clip.mpg": dict(vcodec="mpeg1video", acodec="mp2", format="mpeg"),
    "clip.ts": dict(vcodec="libx264", acodec="aac", format="mpegts"),
    "clip.mts": dict(vcodec="libx264", acodec="aac", format="mpegts"),
    "clip.3gp": dict(vcodec="libx264", acodec="aac", format="3gp"),
    "clip.wmv": dict(vcodec="wmv2", acodec="wmav2", format="asf"),
    "clip.flv": dict(vcodec="flv1", acodec="libmp3lame", ar=22050, format="flv"),
    "clip.aac": dict(vn=None, acodec="aac", format="adts"),
    "clip.opus": dict(vn=None, acodec="libopus", format="opus"),
    "clip.wma": dict(vn=None, acodec="wmav2", format="asf"),
}
PROBLEMS = {  # inputs that are never opened, and the reason their row gives
    "x.mp4": "a folder, not a media file",
    "loop.mp4": "symlink loop",
    "dangling.mov": "dangling symlink to nowhere.mov",
    "pipe.mp4": "a FIFO, not a media file",
}


def _reencode(source: Path, out: Path, options: dict) -> None:
    stream = ffmpeg.input(str(source), t=2).output(str(out), vf="scale=256:-2", **options) if "vn" not in options else (
        ffmpeg.input(str(source), t=2).output(str(out), **options)
    )  # fmt: skip
    stream.overwrite_output().run(quiet=True)


def make_corpus(root: Path, realdata: Path) -> Path:
    folder = root / "corpus"
    (folder / "sub").mkdir(parents=True)
    good = realdata / "video" / "video-retalking_2.mp4"
    shutil.copy(good, folder / "good.mp4")
    for name, options in REENCODES.items():
        _reencode(good, folder / name, options)
    shutil.copy(folder / "clip.ts", folder / "recording")  # no extension: found by its first bytes
    fast = root / "faststart.mp4"  # index in front, so a cut file still decodes up to the cut
    ffmpeg.input(str(good)).output(str(fast), c="copy", movflags="+faststart").overwrite_output().run(quiet=True)
    (folder / "truncated30.mp4").write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.3)])
    wavfile.write(folder / "sub" / "glitch.wav", 16000, with_nonfinite(speech_level_signal(176_400, 16000), 10))
    wavfile.write(folder / "sub" / "voice-memo", 16000, speech_level_signal(32_000, 16000))  # RIFF, no extension
    wavfile.write(folder / "mostly_nan.wav", 16000, with_nonfinite(speech_level_signal(32_000, 16000), 3_200))
    (folder / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5_000))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "x.mp4").mkdir()
    os.symlink("loop.mp4", folder / "loop.mp4")
    os.symlink("nowhere.mov", folder / "dangling.mov")
    os.mkfifo(folder / "pipe.mp4")
    (folder / ".hidden.mp4").write_bytes(good.read_bytes())
    (folder / "notes.txt").write_text("not media")
    (folder / "README").write_text("no extension, not media either")
    os.symlink("notes.txt", folder / "notes-link")
    return folder


# Every input of the folder search, and what its row must say: (status, visual, audio) or a status only.
EXPECTED = {
    "good.mp4": ("ok", True, True),
    **{name: (None, True, True) for name in ("clip.mpg", "clip.ts", "clip.mts", "clip.3gp", "clip.wmv", "clip.flv")},
    **{name: ("no_video_stream", False, True) for name in ("clip.aac", "clip.opus", "clip.wma")},
    "recording": (None, True, True),
    "truncated30.mp4": ("partial", True, True),
    "sub/glitch.wav": ("partial", False, True),
    "sub/voice-memo": ("no_video_stream", False, True),
    "mostly_nan.wav": ("corrupt", False, False),
    "random.mp4": ("corrupt", False, False),
    "empty.mp4": ("corrupt", False, False),
    **{name: ("corrupt", False, False) for name in PROBLEMS},
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder {REALDATA} is absent")
    return make_corpus(tmp_path_factory.mktemp("hostile"), REALDATA)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """An untrained model with the default feature models, and beside it the params to run it
    with: the defaults but ASR by tiny.en (3x faster; transcripts are not under test here)."""
    folder = untrained_model(tmp_path_factory.mktemp("model"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["asr"]["model"] = "tiny.en"
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def predict(paths: list[Path], out: Path, model_dir: Path) -> tuple[list[dict], str]:
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", *map(str, paths), "--out", str(out), "--model", str(model_dir),
         "--params", str(model_dir / "params.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    with open(out, newline="") as handle:
        return list(csv.DictReader(handle)), run.stderr


def _check_values(rows: list[dict]) -> None:
    for row in rows:
        values = [float(row[e]) for e in EMOTIONS]
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), row
        assert row["status"] in STATUSES, row


@pytest.mark.slow
def test_every_input_of_a_hostile_folder_gets_its_row(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    rows, stderr = predict([corpus], tmp_path / "preds.csv", model_dir)
    by_name = {str(Path(r["path"]).relative_to(corpus)): r for r in rows}
    assert len(rows) == len(by_name) == len(EXPECTED) and set(by_name) == set(EXPECTED)
    _check_values(rows)
    for name, (status, visual, audio) in EXPECTED.items():
        row = by_name[name]
        got = (row["status"], row["visual"] == "true", row["audio"] == "true")
        assert got[1:] == (visual, audio) and (status is None or got[0] == status), (name, row)
        if status is None:
            assert row["status"] not in ("corrupt", "partial"), (name, row)
    for name, reason in PROBLEMS.items():
        assert by_name[name]["message"] == reason
    assert "using what decoded: " in by_name["truncated30.mp4"]["message"]
    assert "10 of 176,400 samples at 16000 Hz were NaN/Inf, set to 0" in by_name["sub/glitch.wav"]["message"]
    assert "audio dropped" in by_name["mostly_nan.wav"]["message"]
    # A corrupt file gets the learned prior (every modality absent); a partial one a real prediction.
    prior = [float(by_name["x.mp4"][e]) for e in EMOTIONS]
    for name in ("random.mp4", "empty.mp4", "loop.mp4", "mostly_nan.wav"):
        assert [float(by_name[name][e]) for e in EMOTIONS] == prior
    assert [float(by_name["truncated30.mp4"][e]) for e in EMOTIONS] != prior
    assert "skipped 4 entries: 1 hidden (" in stderr and "3 not media (" in stderr and "notes.txt" in stderr


@pytest.mark.slow
def test_explicit_paths_each_get_a_row(corpus: Path, model_dir: Path, tmp_path: Path) -> None:
    """12 paths in, 12 rows out: an empty folder, a missing file and a non-media file named on the
    command line get their rows too (an empty folder used to vanish)."""
    (tmp_path / "empty_folder").mkdir()
    (tmp_path / "one").mkdir()
    shutil.copy(corpus / "clip.aac", tmp_path / "one" / "a.aac")
    paths = [
        corpus / "clip.opus", corpus / "x.mp4", corpus / "loop.mp4", corpus / "dangling.mov", corpus / "pipe.mp4",
        corpus / "notes.txt", corpus / "README", corpus / ".hidden.mp4", tmp_path / "empty_folder",
        tmp_path / "missing.mp4", corpus / "random.mp4", tmp_path / "one",
    ]  # fmt: skip
    rows, _ = predict(paths, tmp_path / "preds.csv", model_dir)
    assert [r["path"] for r in rows] == [str(p) for p in paths[:-1]] + [str(tmp_path / "one" / "a.aac")]
    _check_values(rows)
    status = {Path(r["path"]).name: (r["status"], r["message"]) for r in rows}
    assert status["x.mp4"] == ("corrupt", "folder holds no video or audio file")
    assert status["empty_folder"] == ("corrupt", "folder holds no video or audio file")
    assert status["missing.mp4"] == ("corrupt", "no such file or folder")
    assert status["pipe.mp4"] == ("corrupt", "a FIFO, not a media file")
    assert status["notes.txt"][0] == "corrupt" and status["notes.txt"][1].startswith("cannot open: ")
    assert status[".hidden.mp4"][0] == "ok" and status["a.aac"][0] == "no_video_stream"


def test_submission_refuses_two_files_with_one_stem(tmp_path: Path, model_dir: Path) -> None:
    """12.mp4 and 00012.mov both became Filename 00012; refused before any work, naming both."""
    for name in ("12.mp4", "00012.mov"):
        (tmp_path / name).write_bytes(b"")
    out = tmp_path / "sub.csv"
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", str(tmp_path), "--out", str(out), "--model", str(model_dir),
         "--submission"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and not out.exists()
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: --submission: {tmp_path / '00012.mov'} and {tmp_path / '12.mp4'} would both be Filename 00012; "
        "rename one or predict them in separate runs"
    )


@pytest.mark.parametrize("kind", ["folder", "parent is a file"])
def test_a_bad_out_is_refused_before_any_work(tmp_path: Path, model_dir: Path, kind: str) -> None:
    """--out pointing at a folder used to do all the work, then die with a traceback."""
    clip = tmp_path / "a.wav"
    wavfile.write(clip, 16000, speech_level_signal(16_000, 16000))
    (tmp_path / "file").write_text("")
    out = tmp_path if kind == "folder" else tmp_path / "file" / "preds.csv"
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", str(clip), "--out", str(out), "--model", str(model_dir)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr and "predict:" not in run.stderr
    expected = (
        f"error: --out {tmp_path} is a folder; give a file name, e.g. {tmp_path / 'predictions.csv'}"
        if kind == "folder"
        else f"error: --out {out}: {tmp_path / 'file'} is not a folder"
    )
    assert run.stderr.strip() == expected


def test_params_that_do_not_match_the_model_are_one_line(tmp_path: Path, model_dir: Path) -> None:
    params = yaml.safe_load((model_dir / "params.yaml").read_text())
    params["features"]["visual"]["landmarks"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", str(tmp_path), "--out", str(tmp_path / "p.csv"), "--model",
         str(model_dir), "--params", str(tmp_path / "params.yaml")],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "error: visual: params give fer-mini-xception (135-d) but the model was trained on "
        "fer-mini-xception+face-mesh-geometry (146-d); pass the params.yaml it was trained with"
    )

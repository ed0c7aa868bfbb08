"""A 20-minute clip is predicted from all of it, within the memory bound of docs/predict.md.

The clip (generated: the demo face at 5 fps, 160 px, a -30 dBFS tone-and-noise track without
speech) shows one expression for its first ten minutes and another for the last ten. The model
used to see its first 80 s of video and 120 s of audio only, so it predicted exactly what it
predicts for the clip's first two minutes; pooled over its whole length
(``pipeline.train.dataset.pool_segments``) the second half now counts. Both run in one
``pipeline.predict`` call whose peak RSS is measured (before: 2.5 GB, the 20-minute clip's face
crops and the one-pass log-mel of its audio).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixtures.clips import concat_clips, face_segment
from fixtures.models import untrained_model
from fixtures.processes import run_measured
from pipeline.config import parse_params
from pipeline.emotions import EMOTIONS

from .conftest import REPO

# docs/predict.md (Long clips and memory): peak RSS of one predict call, any clip length, default params.
# The same code peaked at 1482-1714 MB over six runs of this test on one day (cause of the spread
# not found); before the memory work a 20-minute clip alone took 2528 MB.
README_PEAK_MB = 1800


@pytest.mark.slow
def test_a_long_clip_counts_whole_and_stays_in_memory_bound(tmp_path: Path) -> None:
    first = face_segment(tmp_path / "a.mp4", seconds=60, fps=5, size=160, smile=0.6, audio_dbfs=-30)
    second = face_segment(tmp_path / "b.mp4", seconds=60, fps=5, size=160, smile=-0.8, audio_dbfs=-30)
    start = concat_clips(tmp_path / "first-2min.mp4", [first, first])
    long = concat_clips(tmp_path / "long-20min.mp4", [first] * 10 + [second] * 10)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["features"]["visual"]["landmarks"] = False  # the face mesh costs a minute here; not under test
    # ASR keeps its defaults (base, no VAD): it decodes all 22 minutes of this speechless track, the
    # most of this test's five minutes, and must stay inside the memory bound while doing it.
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw))
    model = untrained_model(tmp_path / "model", parse_params(raw))
    out = tmp_path / "preds.csv"
    argv = [sys.executable, "-m", "pipeline.predict", str(start), str(long), "--out", str(out), "--model", str(model)]
    done, peak_mb, _ = run_measured([*argv, "--params", str(params_path)])
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out, newline="") as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    for row in rows.values():
        assert (row["status"], row["visual"], row["audio"], row["text"]) == ("ok", "true", "true", "false"), row
    whole = np.array([float(rows["long-20min.mp4"][e]) for e in EMOTIONS])
    head = np.array([float(rows["first-2min.mp4"][e]) for e in EMOTIONS])
    # The untrained model barely moves (outputs near 0 and clipped): 1.4e-3 here, and 1.2e-5 (rounding
    # noise) when the model saw only the first 80 s of video and 120 s of audio.
    assert np.abs(whole - head).max() > 3e-4, (whole, head)
    print(f"predict on 2 + 20 minutes: peak RSS {peak_mb:.0f} MB, largest difference {np.abs(whole - head).max():.4f}")
    assert peak_mb < README_PEAK_MB, peak_mb

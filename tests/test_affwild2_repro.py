"""A miniature Aff-Wild2 release in the exact layout (fixtures/affwild2.py: a _left/_right pair sharing
one video, a label file one line longer than the decoded frames, a name whose fps lies, an .avi,
invalid frames, frames without organiser crops, a track annotated for one task only) goes through
``dvc repro`` to the VA submission file, whose rows are the sample file's; switching the task to EXPR
and to AU retrains only, and their submissions hold their sample files' rows too. The left and right
tracks read their own organiser crops.

Slow: the whole pipeline on generated videos in a copy of the repository (tests/test_affwild2_ingest.py
and tests/test_frames.py check the adapter and the frame machinery on small inputs in seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from fixtures.affwild2 import MISSING_CROPS, make_release
from fixtures.project import project_copy, run_in
from pipeline.decoded import iter_clip_frames
from pipeline.timeline import read_timelines

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("affwild2-repro")
    release = make_release(root / "release")
    repo = project_copy(root / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params |= {"task": "va"}
    params["fusion"]["model"] = "reliability"
    params["data"] |= {"source": "affwild2", "root": str(release)}
    params["asr"] |= {"model": "tiny.en", "workers": 1}
    params["decode"] |= {"workers": 1, "clips_per_shard": 3}
    params["features"]["clips_per_shard"] = 3
    params["train"] |= {"max_epochs": 3, "patience": 2, "batch_size": 4}
    params["frames"] |= {"window": 16, "stride": 8}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_in(repo, "git", "commit", "-qam", "the miniature release")
    log = run_in(repo, "python", "-m", "dvc", "repro").stdout
    return repo, release, log


def _sample_rows(release: Path, tag: str) -> list[str]:
    lines = (release / "prediction_files_format" / f"CVPR_6th_ABAW_{tag}_test_set_sample.txt").read_text().splitlines()
    return [line.split(",", 1)[0] for line in lines]


def _submission_rows(repo: Path) -> list[str]:
    return [line.split(",", 1)[0] for line in (repo / "eval" / "submission.csv").read_text().splitlines()]


def test_va_submission_has_the_sample_files_rows(run: tuple[Path, Path, str]) -> None:
    repo, release, _ = run
    assert _submission_rows(repo) == _sample_rows(release, "VA")
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    assert set(metrics["ccc"]) == {"mean", "valence", "arousal"} and metrics["n_tracks"]["test"] == 2
    values = np.array(
        [line.split(",")[1:] for line in (repo / "eval" / "submission.csv").read_text().splitlines()[1:]], float
    )
    assert np.isfinite(values).all() and (np.abs(values) <= 1).all()


def test_left_and_right_read_their_own_crops(run: tuple[Path, Path, str]) -> None:
    repo, release, _ = run
    timelines = read_timelines(repo / "data" / "timeline.parquet")
    crops = release / "cropped_aligned" / "cropped_aligned"
    names = ["2-25-256x128_left", "2-25-256x128_right", "1-30-128x128"]
    found = {v.clip_id: v for v in iter_clip_frames(repo / "data" / "decoded", names)}
    for name in names[:2]:
        frames, sources = found[name], timelines[name].sample_frame
        for crop, source in zip(frames.crops, sources, strict=True):
            own = cv2.cvtColor(cv2.imread(str(crops / name / f"{source + 1:05d}.jpg")), cv2.COLOR_BGR2RGB)
            own = cv2.resize(own, crop.shape[:2][::-1], interpolation=cv2.INTER_AREA)
            stem, _, side = name.rpartition("_")
            other = f"{stem}_{'right' if side == 'left' else 'left'}"
            theirs = cv2.cvtColor(cv2.imread(str(crops / other / f"{source + 1:05d}.jpg")), cv2.COLOR_BGR2RGB)
            theirs = cv2.resize(theirs, crop.shape[:2][::-1], interpolation=cv2.INTER_AREA)
            diff = np.abs(crop.astype(float) - own).mean()
            assert diff < 6 and diff < np.abs(crop.astype(float) - theirs).mean() / 3, name
    # Track 1 has no organiser crop for frames 10-14: its samples there have no face.
    track = found["1-30-128x128"]
    missing = [crop is None for crop in track.crops]
    assert missing == [int(s) + 1 in MISSING_CROPS for s in timelines["1-30-128x128"].sample_frame]
    status = {r["clip_id"]: r for r in pq.read_table(repo / "data" / "decode_status.parquet").to_pylist()}
    assert status["1-30-128x128"]["face_source"] == "organiser crops"
    assert status["4-24-128x128"]["face_source"] == "detector"  # no crop folder: the pipeline's detector


@pytest.mark.parametrize(("task", "model", "tag"), [("expr", "dual_branch", "Expr"), ("au", "moe", "AU")])
def test_another_task_retrains_only_and_fills_its_sample_rows(run: tuple[Path, Path, str], task, model, tag) -> None:
    repo, release, _ = run
    log = run_in(repo, "python", "-m", "dvc", "exp", "run", "-S", f"task={task}", "-S", f"fusion.model={model}").stdout
    for stage in ("ingest", "decode", "asr", "features@visual"):
        assert f"Running stage '{stage}'" not in log, stage
    assert "Running stage 'train'" in log and "Running stage 'evaluate'" in log
    assert _submission_rows(repo) == _sample_rows(release, tag)
    metrics = json.loads((repo / "eval" / "metrics.json").read_text())
    assert "f1" in metrics and (("macro" in metrics["f1"]) == (task == "expr"))

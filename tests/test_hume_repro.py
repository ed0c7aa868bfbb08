"""A generated miniature Hume-Vidmimic2 release with the organisers' ``vit/`` and ``wav2vec2/``
pickles goes through ``dvc repro`` with ``hume-vit`` / ``hume-wav2vec2`` (decode, ASR and text
still run), DVC tracks the pickle folders, and the baseline rows run by the one grid command.

Slow: the whole pipeline on real (generated) videos in a copy of the repository, then three queued
experiments; tests/test_hume_features.py checks the loader, the timeline and the feature stage on
small inputs in seconds.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from fixtures.clips import face_segment
from fixtures.hume import ReleaseClip, SideEffect, make_clips, write_pickle, write_release
from pipeline.features.shards import read_features

from .conftest import REPO

pytestmark = pytest.mark.slow


def _run(repo: Path, *argv: str) -> str:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "DVC_NO_ANALYTICS": "1", "HOME": str(repo.parent)}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stderr[-4000:]}{done.stdout[-4000:]}"
    return done.stdout + done.stderr


def _video(path: Path, clip: ReleaseClip) -> None:
    smile = 2 * clip.labels[1] - 1  # Amusement moves the mouth
    face_segment(path, seconds=clip.duration_s, fps=25.0, size=128, smile=smile, audio_dbfs=-25.0)


def _project_copy(repo: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        if (REPO / name).is_file() and not name.startswith(("eval/", "tests/")):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.email", "hume@test")
    _run(repo, "git", "config", "user.name", "hume test")
    return repo


def test_miniature_release_through_dvc_repro_and_the_baseline_grid(tmp_path: Path) -> None:
    clips = make_clips({"train": 6, "valid": 4, "test": 2}, durations=(2.0, 3.0))
    release = write_release(tmp_path / "Hume-Vidmimic2", clips, video=_video)
    marker = tmp_path / "ran.txt"
    write_pickle(release / "vit" / "00002.pkl", SideEffect(marker))  # hostile, beside real ones
    repo = _project_copy(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"] |= {"source": "hume", "root": str(release)}
    params["features"]["visual"]["model"] = "hume-vit"
    params["features"]["audio"]["model"] = "hume-wav2vec2"
    params["features"]["clips_per_shard"] = 3
    params["asr"] |= {"model": "tiny.en", "workers": 1}
    params["decode"]["workers"] = 1
    params["train"] |= {"max_epochs": 3, "patience": 2, "batch_size": 4}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "miniature release")

    log = _run(repo, sys.executable, "-m", "dvc", "repro")
    assert not marker.exists()  # the hostile pickle never ran
    assert f"{release / 'vit' / '00002.pkl'}: refused global fixtures.hume.touch" in log
    visual = {r.clip_id: r for r in read_features(repo / "data/features/visual")}
    audio = {r.clip_id: r for r in read_features(repo / "data/features/audio")}
    assert len(visual) == len(audio) == 12
    assert {c for c, r in visual.items() if not r.available} == {"00002"}
    assert visual["00002"].reason.startswith("unsafe pickle:") and all(r.available for r in audio.values())
    status = {r["clip_id"]: r for r in pq.read_table(repo / "data/decode_status.parquet").to_pylist()}
    for clip in clips:
        if clip.stem == "00002":
            continue
        base = release / ("test_data" if clip.split == "test" else "")
        frames = pickle.loads((base / "vit" / f"{clip.stem}.pkl").read_bytes())  # noqa: S301 - our own file
        rate = len(frames) / status[clip.stem]["duration_s"]  # the rate inferred from the decoded duration
        assert abs(rate - 6.0) < 0.1
        np.testing.assert_allclose(visual[clip.stem].times, (np.arange(len(frames)) + 0.5) / rate, rtol=1e-5)
        assert len(audio[clip.stem].times) == round(clip.duration_s * 5)  # 50 Hz pooled to 5 fps
    metrics = json.loads((repo / "eval/metrics.json").read_text())
    assert np.isfinite(metrics["pearson"]["mean"])
    assert json.loads(_run(repo, sys.executable, "-m", "dvc", "status", "--json") or "{}") == {}

    # DVC tracks the pickle folders: a changed pickle reruns the feature stages, and the per-clip
    # digests recompute only the shard holding that clip.
    write_pickle(release / "vit" / "00002.pkl", np.ones((12, 384), np.float32))
    stale = json.loads(_run(repo, sys.executable, "-m", "dvc", "status", "--json"))
    assert {"features@visual", "features@audio"} <= set(stale) and "decode" not in stale
    log = _run(repo, sys.executable, "-m", "dvc", "repro")
    assert "features@visual: hume-vit (384-d, float16)" in log and "computed 1, up to date 4" in log
    assert "features@audio: hume-wav2vec2 (768-d, float16)" in log and "computed 0, up to date 5" in log
    assert "Running stage 'decode'" not in log and "Running stage 'asr'" not in log
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-qm", "fixed pickle")

    # The baseline rows by one command (already prepared: prepare recomputes nothing, commits nothing).
    try:
        _run(
            repo, sys.executable, "-m", "pipeline.experiments.grid", "run", "--tables", "hume_baselines",
            "--seeds", "1", "--jobs", "2", "--poll", "2", "--prepare", "--set", f"data.root={release}",
        )  # fmt: skip
    finally:
        subprocess.run([sys.executable, "-m", "dvc", "queue", "stop"], cwd=repo, capture_output=True)
    assert _run(repo, "git", "log", "-1", "--format=%s").strip() == "fixed pickle"  # nothing to commit
    page = (repo / "grids" / "hume_baselines.md").read_text()
    for label, paper in [("ViT only", "0.09"), ("wav2vec2 only", "0.24"), ("ViT + wav2vec2 (concat)", "0.25")]:
        row = next(line for line in page.splitlines() if line.startswith(f"| {label} |"))
        assert "(1 seed)" in row and f"| {paper} |" in row, row

"""The stages make_demo → ingest → decode → asr → features on a tiny demo: every planted fault clip
gets its named decode status, and each modality's availability flag matches what the file really
holds (faults.json), with rows out == rows in at every stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.features import MODALITIES
from pipeline.features.shards import read_features

from .conftest import REPO


def _stage(module: str, *args: str) -> None:
    run = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, f"{module} failed:\n{run.stderr[-3000:]}"


@pytest.mark.slow
def test_fault_clips_get_their_status_and_availability(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["demo"].update(n_train=2, n_valid=2, n_test=2)
    params["data"]["root"] = str(tmp_path / "demo")
    params["asr"]["model"] = "tiny.en"  # the fault logic, not accuracy, is under test here
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    p = ["--params", str(params_path)]
    manifest, decoded, status, asr = (
        tmp_path / n for n in ("manifest.parquet", "decoded", "status.parquet", "asr.parquet")
    )
    _stage("stages.make_demo", *p, "--out", str(tmp_path / "demo"))
    _stage("stages.ingest", *p, "--out", str(manifest), "--labels", str(manifest.parent / "labels"))
    timeline = ("--timeline", str(tmp_path / "timeline.parquet"))
    _stage("stages.decode", *p, "--manifest", str(manifest), "--out", str(decoded), "--status", str(status), *timeline)
    encoder = tmp_path / "encoder"
    asr_io = ("--decoded", str(decoded), "--status", str(status), "--out", str(asr), "--encoder-out", str(encoder))
    _stage("stages.asr", *p, *asr_io)
    for m in MODALITIES:
        _stage(
            "stages.features",
            *p,
            "--modality",
            m,
            "--manifest",
            str(manifest),
            "--decoded",
            str(decoded),
            "--status",
            str(status),
            "--asr",
            str(asr),
            "--encoder",
            str(encoder),
            "--out",
            str(tmp_path / "features" / m),
        )

    ids = pq.read_table(manifest).column("clip_id").to_pylist()
    rows = pq.read_table(status).to_pylist()
    assert [r["clip_id"] for r in rows] == ids and len(ids) == 12  # 6 clips + 6 planted faults
    assert pq.read_table(asr).column("clip_id").to_pylist() == ids
    faults = json.loads((tmp_path / "demo" / "faults.json").read_text())
    assert sorted(f["status"] for f in faults.values()) == sorted(
        ["no_audio_stream", "silent_audio", "no_face", "too_short", "corrupt", "ok"]
    )
    by_id = {r["clip_id"]: r for r in rows}
    available = {m: {r.clip_id: r.available for r in read_features(tmp_path / "features" / m)} for m in MODALITIES}
    for clip_id, fault in faults.items():
        assert by_id[clip_id]["status"] == fault["status"], (clip_id, fault, by_id[clip_id]["message"])
        got = {m: available[m][clip_id] for m in MODALITIES}
        assert got == fault["modalities"], (clip_id, fault["fault"], got)
    normal = [c for c in ids if c not in faults]
    assert all(by_id[c]["status"] == "ok" and all(available[m][c] for m in MODALITIES) for c in normal)

"""Ingest adapters: demo, a miniature Hume-Vidmimic2 copy in its exact layout, a user CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER
from pipeline.manifest import IngestError, build_manifest

from .conftest import REPO

HEADER = ",".join(LABEL_CSV_HEADER)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" * 16)  # ingest checks existence, not content (decode judges content)
    return path


def make_mini_hume(root: Path) -> Path:
    """3 train + 2 valid + 2 test clips, laid out as docs/hume-vidmimic2.md describes."""
    train = ["00000,0.5,0,0.333,0,1,0.4", "00001,0,0,0,0,0,0", "00012,0.25,0.5,0.75,1,0.1,0.2"]
    valid = ["00003,0.1,0.2,0.3,0.4,0.5,0.6", "12,0.6,0.5,0.4,0.3,0.2,0.1"]  # 12: a CSV tool dropped the zeros
    (root / "raw").mkdir(parents=True)
    (root / "train_split.csv").write_text(HEADER + "\n" + "\n".join(train) + "\n")
    (root / "valid_split.csv").write_text(HEADER + "\n" + "\n".join(valid) + "\n")
    for stem in ("00000", "00001", "00012", "00003"):
        _touch(root / "raw" / f"{stem}.mp4")
        _touch(root / "audio" / f"{stem}.mp3")
    for stem in ("12660", "12661"):
        _touch(root / "test_data" / "raw" / f"{stem}.mp4")
    return root


def test_hume_adapter_reads_exact_layout(tmp_path: Path) -> None:
    root = make_mini_hume(tmp_path / "hume")
    # 00012 is listed in train and, as "12", in valid: a duplicate id the adapter must catch.
    with pytest.raises(IngestError, match="duplicate clip id '00012'"):
        build_manifest("hume", root)
    (root / "valid_split.csv").write_text(HEADER + "\n00003,0.1,0.2,0.3,0.4,0.5,0.6\n")
    table = build_manifest("hume", root).to_pylist()
    assert [(r["clip_id"], r["split"]) for r in table] == [
        ("00000", "train"),
        ("00001", "train"),
        ("00012", "train"),
        ("00003", "valid"),
        ("12660", "test"),
        ("12661", "test"),
    ]
    assert table[0]["path"] == str(root / "raw" / "00000.mp4")
    assert [table[0][e] for e in EMOTIONS] == [0.5, 0, 0.333, 0, 1, 0.4]
    assert all(table[-1][e] is None for e in EMOTIONS)


def test_hume_wrong_header_names_the_row(tmp_path: Path) -> None:
    root = make_mini_hume(tmp_path / "hume")
    (root / "train_split.csv").write_text(HEADER.replace("Empathic Pain", "EmpathicPain") + "\n00000,0,0,0,0,0,0\n")
    with pytest.raises(IngestError, match=r"train_split.csv: row 1 \(header\).*missing \['Empathic Pain'\]"):
        build_manifest("hume", root)


def test_hume_missing_video_names_the_row(tmp_path: Path) -> None:
    root = make_mini_hume(tmp_path / "hume")
    (root / "raw" / "00001.mp4").unlink()
    with pytest.raises(IngestError, match=r"train_split.csv: row 3 \(Filename 00001\).*00001.mp4 does not exist"):
        build_manifest("hume", root)


def test_hume_label_out_of_range(tmp_path: Path) -> None:
    root = make_mini_hume(tmp_path / "hume")
    (root / "train_split.csv").write_text(HEADER + "\n00000,0,0,1.5,0,0,0\n")
    with pytest.raises(IngestError, match=r"row 2 .*'Determination' = 1.5 is outside"):
        build_manifest("hume", root)


def _user_csv(tmp_path: Path, rows: list[str], header: str | None = None) -> Path:
    header = header or "Filename,path,split," + ",".join(EMOTIONS)
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return csv_path


def test_user_manifest_video_and_audio_only(tmp_path: Path) -> None:
    _touch(tmp_path / "videos" / "a.mp4")
    _touch(tmp_path / "voice.wav")
    csv_path = _user_csv(
        tmp_path, ["a,videos/a.mp4,train,0.1,0.2,0.3,0.4,0.5,0.6", f"b,{tmp_path / 'voice.wav'},test,,,,,,"]
    )
    rows = build_manifest("manifest", csv_path).to_pylist()
    assert [(r["clip_id"], r["split"]) for r in rows] == [("a", "train"), ("b", "test")]
    assert rows[0]["path"] == str(tmp_path / "videos" / "a.mp4")
    assert rows[1]["Joy"] is None


@pytest.mark.parametrize(
    ("rows", "header", "match"),
    [
        (["a,a.mp4,train,0,0,0,0,0,0"], "Filename,path,split,Admiration", r"row 1 \(header\)"),
        (["a,nope.mp4,train,0,0,0,0,0,0"], None, r"row 2 \(Filename a\).*nope.mp4 does not exist"),
        (["a,a.mp4,train,0,0,0,0,0,0", "a,a.mp4,valid,0,0,0,0,0,0"], None, "duplicate clip id 'a'"),
        (["a,a.mp4,dev,0,0,0,0,0,0"], None, r"row 2 \(Filename a\): split 'dev'"),
        (["a,a.mp4,train,0,x,0,0,0,0"], None, r"row 2 .*'Amusement' is 'x'"),
        (["a,a.mp4,train,0,0"], None, "row 2 has 5 fields"),
    ],
)
def test_user_manifest_errors_name_the_row(tmp_path: Path, rows, header, match) -> None:
    _touch(tmp_path / "a.mp4")
    with pytest.raises(IngestError, match=match):
        build_manifest("manifest", _user_csv(tmp_path, rows, header))


def test_limit_per_split_keeps_first_ids(tmp_path: Path) -> None:
    root = make_mini_hume(tmp_path / "hume")
    (root / "valid_split.csv").write_text(HEADER + "\n00003,0.1,0.2,0.3,0.4,0.5,0.6\n")
    rows = build_manifest("hume", root, limit_per_split=1).to_pylist()
    assert [r["clip_id"] for r in rows] == ["00000", "00003", "12660"]


def test_ingest_stage_writes_manifest_and_reports_errors(tmp_path: Path) -> None:
    root = make_mini_hume(tmp_path / "hume")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"] = {"source": "hume", "root": str(root), "limit_per_split": None}
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params))
    out = tmp_path / "manifest.parquet"
    run = subprocess.run(
        [sys.executable, "-m", "stages.ingest", "--params", str(params_path), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "duplicate clip id '00012'" in run.stderr and not out.exists()
    (root / "valid_split.csv").write_text(HEADER + "\n00003,0.1,0.2,0.3,0.4,0.5,0.6\n")
    run = subprocess.run(
        [sys.executable, "-m", "stages.ingest", "--params", str(params_path), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    table = pq.read_table(out)
    assert table.num_rows == 6 and table.schema.field("clip_id").type == "string"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hume", "manifest.parquet", "params.yaml"]  # no temp left

"""Ingest adapters: demo, a miniature Hume-Vidmimic2 copy in its exact layout, a user CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER
from pipeline.ingest.manifest import IngestError, build_manifest

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
        (["a,a.mp4,train,0,0,0,0,0,0,0"], None, "row 2 has more than 9 fields"),
        (["a,a.mp4,train,0,0"], None, r"row 2 \(Filename a\): labels 'Determination', .*'Joy' empty"),
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
        [
            sys.executable,
            "-m",
            "stages.ingest",
            "--params",
            str(params_path),
            "--out",
            str(out),
            "--labels",
            str(out.parent / "labels"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "duplicate clip id '00012'" in run.stderr and not out.exists()
    (root / "valid_split.csv").write_text(HEADER + "\n00003,0.1,0.2,0.3,0.4,0.5,0.6\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.ingest",
            "--params",
            str(params_path),
            "--out",
            str(out),
            "--labels",
            str(out.parent / "labels"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    table = pq.read_table(out)
    assert table.num_rows == 6 and table.schema.field("clip_id").type == "string"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hume",
        "labels",
        "manifest.parquet",
        "params.yaml",
    ]  # no temp
    assert [p.name for p in (tmp_path / "labels").iterdir()] == ["clip-level.txt"]


def test_duplicate_id_names_both_files_and_rows(tmp_path: Path) -> None:
    root = make_mini_hume(tmp_path / "hume")
    with pytest.raises(IngestError) as caught:
        build_manifest("hume", root)
    assert str(caught.value) == (
        f"duplicate clip id '00012': {root / 'train_split.csv'}: row 4 (Filename 00012) and "
        f"{root / 'valid_split.csv'}: row 3 (Filename 12)"
    )


def test_a_folder_is_not_reported_as_missing(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").mkdir()
    with pytest.raises(IngestError, match=r"row 2 \(Filename a\): media path .*a.mp4 is a folder, not a file"):
        build_manifest("manifest", _user_csv(tmp_path, ["a,a.mp4,train,0,0,0,0,0,0"]))
    with pytest.raises(IngestError, match=r"dir.csv: is a folder, expected a CSV file"):
        (tmp_path / "dir.csv").mkdir()
        build_manifest("manifest", tmp_path / "dir.csv")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("a,a.mp4,train,0.1,,0.3,0.4,0.5,0.6", r"row 2 \(Filename a\): label 'Amusement' empty \(a train row needs"),
        ("a,a.mp4,valid,,,,,,", r"row 2 \(Filename a\): labels 'Admiration', .* empty \(a valid row needs all six\)"),
        ("a,a.mp4,test,0.1,0.2,,,,", r"row 2 \(Filename a\): labels .* empty \(a test row has all six labels or"),
    ],
)  # fmt: skip
def test_some_labels_empty_is_rejected(tmp_path: Path, row: str, match: str) -> None:
    """A train row with one empty label used to be accepted, and its clip then had no labels at all."""
    _touch(tmp_path / "a.mp4")
    with pytest.raises(IngestError, match=match):
        build_manifest("manifest", _user_csv(tmp_path, [row]))


def test_user_filenames_are_kept_as_written(tmp_path: Path) -> None:
    """Only the hume adapter pads stems: in a user manifest 12 and 00012 are two clips."""
    _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "b.mp4")
    rows = build_manifest(
        "manifest", _user_csv(tmp_path, ["12,a.mp4,test,,,,,,", "00012,b.mp4,test,,,,,,"])
    ).to_pylist()
    assert sorted((r["clip_id"], Path(r["path"]).name) for r in rows) == [("00012", "b.mp4"), ("12", "a.mp4")]


def test_rows_keep_their_numbers_and_media_is_recognised_by_content(tmp_path: Path, realdata: Path) -> None:
    (tmp_path / "recording").write_bytes((realdata / "video" / "video-retalking_2.mp4").read_bytes()[:4096])
    (tmp_path / "notes.txt").write_text("Filename,path\n")
    header = "Filename,path,split," + ",".join(EMOTIONS)
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text(header + '\n\n"x, y",recording,test,,,,,,\n\nz,notes.txt,test,,,,,,\n')
    with pytest.raises(IngestError, match=r"row 5 \(Filename z\): notes.txt is neither a known video or audio"):
        build_manifest("manifest", csv_path)
    csv_path.write_text(header + '\n\n"x, y",recording,test,,,,,,\n')
    assert [r["clip_id"] for r in build_manifest("manifest", csv_path).to_pylist()] == ["x, y"]

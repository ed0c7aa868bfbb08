"""The Aff-Wild2 adapter on a miniature release in the exact layout (fixtures/affwild2.py): tracks,
left/right pairs, old folder names, off-by-one label files, invalid frames, test lists and sample
files, and a clear error for each way a release can fail to match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fixtures.affwild2 import TRACKS, make_release, n_frames, truth
from pipeline.ingest.affwild2 import read_label_file
from pipeline.ingest.frame_labels import read_sample, read_task_labels, write_release_labels
from pipeline.ingest.manifest import IngestError
from pipeline.ingest.release import read_release
from pipeline.tasks import AU, EXPR, VA

BY_NAME = {t.name: t for t in TRACKS}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_release(tmp_path_factory.mktemp("affwild2") / "release", videos=False)


def test_tracks_not_videos(release: Path) -> None:
    rows = {r["clip_id"]: r for r in read_release("affwild2", release).manifest.to_pylist()}
    assert set(rows) == set(BY_NAME)
    left, right = rows["2-25-256x128_left"], rows["2-25-256x128_right"]
    assert left["path"] == right["path"] == str(release / "batch1" / "2-25-256x128.mp4")
    assert (left["side"], right["side"], left["video"]) == ("left", "right", "2-25-256x128")
    assert left["crop_dir"].endswith("cropped_aligned/2-25-256x128_left")
    assert right["crop_dir"].endswith("cropped_aligned/2-25-256x128_right")
    assert rows["4-24-128x128"]["path"].endswith(".avi") and rows["4-24-128x128"]["crop_dir"] is None
    assert rows["1-30-128x128"]["side"] is None
    assert [r["split"] for r in read_release("affwild2", release).manifest.to_pylist()][-2:] == ["test", "test"]


def test_every_task_read_with_its_splits_and_counts(release: Path) -> None:
    tasks = {t.task.name: t for t in read_release("affwild2", release).tasks}
    assert set(tasks) == {"va", "expr", "au"}
    va = tasks["va"].tracks
    assert "5-25-128x128" not in va and "5-25-128x128" in tasks["au"].tracks  # an AU-only track
    # Off by one: the label file's lines, never the video's frames, set the count.
    assert va["3-30-128x128"].n_frames == n_frames(BY_NAME["3-30-128x128"]) + 1
    labels = va["1-30-128x128"].labels
    np.testing.assert_allclose(labels, truth(VA, np.arange(1, len(labels) + 1)), atol=5e-4)
    invalid = va["3-30-128x128"].labels
    assert np.isnan(invalid[19:29]).all() and np.isfinite(invalid[:19]).all() and np.isfinite(invalid[29:]).all()
    # EXPR lives in the old folder name (EXPR_Classification_Challenge); its -1 frames are NaN.
    expr = tasks["expr"].tracks["3-30-128x128"].labels
    assert expr.shape[1] == 1 and np.isnan(expr[19:29]).all()
    au = tasks["au"].tracks["2-25-256x128_right"]
    assert au.split == "valid" and au.labels.shape == (n_frames(BY_NAME["2-25-256x128_right"]), 12)


def test_test_tracks_count_the_sample_file_rows(release: Path) -> None:
    tasks = {t.task.name: t for t in read_release("affwild2", release).tasks}
    test = tasks["va"].tracks["6-25-128x128"]
    assert (test.split, test.labels) == ("test", None)
    assert test.n_frames == n_frames(BY_NAME["6-25-128x128"]) + 1  # one row more than the video's frames
    sample = tasks["va"].sample
    assert [r.image_location for r in sample[:2]] == ["6-25-128x128/00001.jpg", "6-25-128x128/00002.jpg"]
    assert {r.clip_id for r in sample} == {"6-25-128x128", "7-25-128x128"}
    assert "7-25-128x128" not in tasks["au"].tracks  # not in the AU test list


def test_labels_folder_round_trip_and_clip_level_note(release: Path, tmp_path: Path) -> None:
    ingested = read_release("affwild2", release)
    write_release_labels(tmp_path / "labels", ingested.tasks, "affwild2")
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == [
        "au.parquet", "au_sample.parquet", "expr.parquet", "expr_sample.parquet", "va.parquet", "va_sample.parquet",
    ]  # fmt: skip
    back = {t.clip_id: t for t in read_task_labels(tmp_path / "labels", AU)}
    np.testing.assert_array_equal(back["1-30-128x128"].labels, ingested.tasks[2].tracks["1-30-128x128"].labels)
    assert len(read_sample(tmp_path / "labels", EXPR)) == len(ingested.tasks[1].sample)
    write_release_labels(tmp_path / "labels", [], "hume")  # a clip-level run afterwards: only the note stays
    assert [p.name for p in (tmp_path / "labels").iterdir()] == ["clip-level.txt"]
    with pytest.raises(FileNotFoundError, match="no va labels"):
        read_task_labels(tmp_path / "labels", VA)


def test_limit_per_split_keeps_the_first_tracks_of_each_task(release: Path) -> None:
    limited = read_release("affwild2", release, limit_per_split=1)
    va = limited.tasks[0]
    assert sorted((t.split, n) for n, t in va.tracks.items()) == [
        ("test", "6-25-128x128"), ("train", "1-30-128x128"), ("valid", "2-25-256x128_right"),
    ]  # fmt: skip
    assert {r.clip_id for r in va.sample} == {"6-25-128x128"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0.5", "1 fields, expected 2"),
        ("0.5,abc", "is not 2 number"),
        ("1.5,0.2", r"in \[-1, 1\] or -5"),
    ],
)
def test_a_bad_label_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(f"valence,arousal\n0.1,0.2\n{line}\n0.3,0.4\n\n")
    with pytest.raises(IngestError, match=rf"t\.txt: line 3: .*{message}"):
        read_label_file(path, VA)


def test_bad_headers_and_values_per_task(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("Neutral,Anger\n0\n")
    with pytest.raises(IngestError, match="line 1 \\(header\\)"):
        read_label_file(path, EXPR)
    path.write_text(",".join(EXPR.header) + "\n3\n8\n")
    with pytest.raises(IngestError, match=r"line 3: '8': values must be 0\.\.7"):
        read_label_file(path, EXPR)
    path.write_text(",".join(AU.header) + "\n" + ",".join(["0"] * 11 + ["2"]) + "\n")
    with pytest.raises(IngestError, match="line 2: .* must be 0 or 1"):
        read_label_file(path, AU)
    path.write_text(",".join(AU.header) + "\n" + ",".join(["1"] * 11 + ["-1"]) + "\n")
    assert np.isnan(read_label_file(path, AU)).all()


def test_a_release_that_does_not_match_is_one_clear_error(release: Path, tmp_path: Path) -> None:
    broken = make_release(tmp_path / "broken", videos=False)
    (broken / "batch1" / "1-30-128x128.mp4").unlink()
    with pytest.raises(IngestError, match=r"1-30-128x128\.txt: no video for track '1-30-128x128'"):
        read_release("affwild2", broken)
    broken = make_release(tmp_path / "broken", videos=False)
    sample = broken / "prediction_files_format" / "CVPR_6th_ABAW_VA_test_set_sample.txt"
    sample.write_text("\n".join(line for line in sample.read_text().splitlines() if not line.startswith("7-")) + "\n")
    with pytest.raises(IngestError, match=r"test track '7-25-128x128' has no row in .*VA_test_set_sample"):
        read_release("affwild2", broken)
    broken = make_release(tmp_path / "broken", videos=False)
    listed = broken / "names_of_videos_in_each_test_set" / VA.test_list
    listed.write_text(listed.read_text() + "1-30-128x128\n")
    with pytest.raises(IngestError, match="test track '1-30-128x128' also has train labels"):
        read_release("affwild2", broken)


def test_ingest_stage_writes_manifest_and_labels(release: Path, tmp_path: Path) -> None:
    from stages.ingest import main

    params = tmp_path / "params.yaml"
    params.write_text(f"task: va\nfusion:\n  model: reliability\ndata:\n  source: affwild2\n  root: {release}\n")
    out, labels = tmp_path / "manifest.parquet", tmp_path / "labels"
    assert main(["--params", str(params), "--out", str(out), "--labels", str(labels)]) == 0
    assert pq.read_table(out).num_rows == len(TRACKS)
    assert len(read_task_labels(labels, VA)) == sum("va" in t.tasks for t in TRACKS)

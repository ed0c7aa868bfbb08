"""The features stage end to end on a small decoded fixture: records, reasons, resumability."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.config import Params
from pipeline.decode.faces import crop_face
from pipeline.decoded import AUDIO_SCHEMA, STATUS_SCHEMA, frames_schema, to_pcm16
from pipeline.emotions import EMOTIONS
from pipeline.features.shards import read_features, shard_metadata
from pipeline.ingest.manifest import MANIFEST_SCHEMA
from stages.features import main

from .conftest import REPO

CROP = 96
SPLITS = ["train"] * 8 + ["valid"] * 2 + ["test"] * 2
# Clips with a decode fault, and clips that decode fine but hold nothing usable.
FAULTS = {"c03": ["no_face"], "c05": ["no_video_stream"], "c08": ["silent_audio"], "c09": ["corrupt"]}
EMPTY = ("c05", "c09")  # no frames decoded; c09 has no audio either
NO_CROPS = "c06"
TRANSCRIPTS = {"c00": "I am so glad to see you.", "c01": "What a wonderful day.", "c04": "Oh no, that is terrible."}


def _crops(n: int, seed: int) -> list[np.ndarray]:
    """Jittered crops of the astronaut's face (a real face, so the face mesh finds it)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    image = data.astronaut()
    out = []
    for _ in range(n):
        dx, dy = rng.uniform(-6, 6, 2)
        box = np.array([173.7 + dx, 67.8 + dy, 277.6 + dx, 171.7 + dy], np.float32)
        out.append(crop_face(image, box, size=CROP, margin=0.25))
    return out


def make_fixture(root: Path, *, frames_per_clip: int = 6) -> dict[str, str]:
    """manifest, two decoded shards, status and transcripts for 12 clips; returns the CLI paths."""
    ids = [f"c{i:02d}" for i in range(len(SPLITS))]
    manifest = {"clip_id": ids, "path": [f"/media/{c}.mp4" for c in ids], "split": SPLITS}
    manifest.update({e: [0.5] * len(ids) for e in EMOTIONS})
    pq.write_table(pa.table(manifest, schema=MANIFEST_SCHEMA), root / "manifest.parquet")
    decoded = root / "decoded"
    decoded.mkdir()
    for shard, members in enumerate([ids[:7], ids[7:]]):
        rows: dict[str, list] = {k: [] for k in frames_schema(CROP).names}
        audio: dict[str, list] = {k: [] for k in AUDIO_SCHEMA.names}
        for c in members:
            k = int(c[1:])
            n = 0 if c in EMPTY else frames_per_clip
            crops = _crops(n, seed=k)
            for i in range(n):
                crop = None if (c == NO_CROPS or i % 4 == 3) else crops[i]
                rows["clip_id"].append(c)
                rows["frame_index"].append(i)
                rows["time_s"].append(i / 5)
                rows["pts_s"].append(i / 5)
                rows["face_score"].append(0.0 if crop is None else 0.9)
                rows["face_box"].append([np.nan] * 4 if crop is None else [10.0, 10.0, 80.0, 80.0])
                rows["crop"].append(None if crop is None else crop.tobytes())
            audio["clip_id"].append(c)
            audio["sample_rate"].append(16000)
            noise = np.random.default_rng(k).normal(scale=0.1, size=16000).astype(np.float32)
            audio["samples"].append(None if c == "c09" else to_pcm16(noise))
            audio["duration_s"].append(1.0)
        pq.write_table(pa.table(rows, schema=frames_schema(CROP)), decoded / f"frames-{shard:05d}.parquet")
        pq.write_table(pa.table(audio, schema=AUDIO_SCHEMA), decoded / f"audio-{shard:05d}.parquet")
    status = []
    for c, split in zip(ids, SPLITS, strict=True):
        faults = FAULTS.get(c, [])
        status.append(
            dict(
                clip_id=c,
                split=split,
                path=f"/media/{c}.mp4",
                status=faults[0] if faults else "ok",
                message="",
                faults=faults,
                duration_s=1.0,
                n_frames=0 if c in EMPTY else frames_per_clip,
                n_face_frames=0,
                face_fraction=0.0,
                has_video=c != "c05",
                has_audio=c != "c09",
                audio_dbfs=-20.0,
                face_source="detector",
            )
        )
    pq.write_table(pa.Table.from_pylist(status, schema=STATUS_SCHEMA), root / "decode_status.parquet")
    (root / "asr").mkdir()
    text = [
        dict(
            clip_id=c,
            text=TRANSCRIPTS.get(c),
            has_speech=c in TRANSCRIPTS,
            status="ok" if c in TRANSCRIPTS else "no_speech",
        )
        for c in ids
    ]
    pq.write_table(pa.Table.from_pylist(text), root / "asr" / "transcripts.parquet")
    return {
        "manifest": str(root / "manifest.parquet"),
        "decoded": str(decoded),
        "status": str(root / "decode_status.parquet"),
        "asr": str(root / "asr" / "transcripts.parquet"),
    }


def write_params(path: Path, **features: object) -> Path:
    raw = Params().model_dump(mode="json")
    for key, value in features.items():
        section, _, leaf = key.rpartition("__")
        (raw["features"][section] if section else raw["features"])[leaf] = value
    path.write_text(yaml.safe_dump(raw))
    return path


def argv(paths: dict[str, str], params: Path, modality: str, out: Path) -> list[str]:
    return [
        "--params",
        str(params),
        "--modality",
        modality,
        "--manifest",
        paths["manifest"],
        "--decoded",
        paths["decoded"],
        "--status",
        paths["status"],
        "--asr",
        paths["asr"],
        "--out",
        str(out),
    ]


def _state(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("features")
    return root, make_fixture(root)


def test_visual_stage_records_reasons_and_rerun(
    fixture: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture
) -> None:
    root, paths = fixture
    params = write_params(root / "visual.yaml", clips_per_shard=3, visual__batch_size=4)
    out = root / "out-visual"
    assert main(argv(paths, params, "visual", out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "test-00000.parquet",
        "train-00000.parquet",
        "train-00001.parquet",
        "train-00002.parquet",
        "valid-00000.parquet",
    ]
    records = {r.clip_id: r for r in read_features(out, modality="visual")}
    assert sorted(records) == [f"c{i:02d}" for i in range(12)]
    assert {c: r.reason for c, r in records.items() if not r.available} == {
        "c03": "no_face",
        "c05": "no_video_stream",
        NO_CROPS: "no face in any frame",
        "c09": "corrupt",
    }
    ok = records["c00"]
    assert ok.values.shape == (6, 146) and ok.values.dtype == np.float32
    np.testing.assert_array_equal(ok.valid, [True, True, True, False, True, True])
    np.testing.assert_allclose(ok.times, np.arange(6) / 5, atol=1e-7)
    assert not ok.values[3].any() and ok.values[ok.valid, -1].min() == 1.0  # mesh found on every face crop
    assert ok.values[ok.valid, 3].mean() > 0.5  # FER "happy" on the smiling astronaut
    meta = shard_metadata(out / "train-00000.parquet")
    assert (meta["model"], meta["dim"], meta["dtype"]) == ("fer-mini-xception+face-mesh-geometry", "146", "float16")
    assert "computed 5, up to date 0" in capsys.readouterr().out

    before = _state(out)
    assert main(argv(paths, params, "visual", out)) == 0
    assert "computed 0, up to date 5" in capsys.readouterr().out
    assert _state(out) == before

    # A new shard size re-plans: every name is rewritten or removed, nothing stale stays.
    assert (
        main(argv(paths, write_params(root / "visual4.yaml", clips_per_shard=4, visual__batch_size=4), "visual", out))
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "test-00000.parquet",
        "train-00000.parquet",
        "train-00001.parquet",
        "valid-00000.parquet",
    ]
    again = {r.clip_id: r for r in read_features(out)}
    np.testing.assert_array_equal(again["c07"].values, records["c07"].values)


def test_text_stage_and_per_clip_invalidation(
    fixture: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, paths = fixture
    params = write_params(tmp_path / "p.yaml", clips_per_shard=4)
    out = tmp_path / "text"
    assert main(argv(paths, params, "text", out)) == 0
    records = {r.clip_id: r for r in read_features(out, modality="text")}
    assert sorted(c for c, r in records.items() if r.available) == sorted(TRANSCRIPTS)
    assert records["c02"].reason == "no_speech" and records["c00"].values.shape == (1, 384)
    before = _state(out)
    capsys.readouterr()

    table = pq.read_table(paths["asr"]).to_pylist()
    table[4]["text"] = "Oh no, that is awful."  # c04 lives in train-00001
    changed = dict(paths, asr=str(tmp_path / "transcripts.parquet"))
    pq.write_table(pa.Table.from_pylist(table), changed["asr"])
    assert main(argv(changed, params, "text", out)) == 0
    assert "computed 1, up to date 3" in capsys.readouterr().out
    after = _state(out)
    assert [n for n in after if after[n] != before[n]] == ["train-00001.parquet"]


def test_audio_stage_respects_decode_status(fixture: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    pytest.importorskip("pipeline.features.audio")
    root, paths = fixture
    out = tmp_path / "audio"
    params = write_params(tmp_path / "p.yaml", clips_per_shard=6, audio__whisper_model="tiny.en")  # the fast one
    assert main(argv(paths, params, "audio", out)) == 0
    records = {r.clip_id: r for r in read_features(out, modality="audio")}
    assert len(records) == 12 and records["c08"].reason == "silent_audio" and records["c09"].reason == "corrupt"
    assert all(records[c].available for c in records if c not in ("c08", "c09"))


@pytest.mark.slow
def test_killed_run_keeps_finished_shards_and_redoes_the_rest(tmp_path: Path) -> None:
    paths = make_fixture(tmp_path, frames_per_clip=20)
    params = write_params(tmp_path / "p.yaml", clips_per_shard=1, visual__batch_size=8)
    command = [sys.executable, "-m", "stages.features", *argv(paths, params, "visual", tmp_path / "out")]
    reference = tmp_path / "reference"
    subprocess.run([*command[:-1], str(reference)], cwd=REPO, check=True, capture_output=True)

    out = tmp_path / "out"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(out.glob("[!.]*.parquet")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = _state(out)
    finished = {n: s for n, s in finished.items() if not n.startswith(".")}
    assert 1 <= len(finished) < 12, f"the run was not interrupted mid-way ({len(finished)} shards)"
    for name, (_, _, data) in finished.items():  # every file under a final name is complete
        assert data == (reference / name).read_bytes()

    rerun = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    assert f"computed {12 - len(finished)}, up to date {len(finished)}" in rerun.stdout
    final = _state(out)
    assert sorted(final) == sorted(p.name for p in reference.iterdir())  # temp files of the killed run gone
    for name, state in finished.items():
        assert final[name][:2] == state[:2]  # same inode and mtime: not rewritten
    for name in final:
        assert final[name][2] == (reference / name).read_bytes()

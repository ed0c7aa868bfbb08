"""Feature shards: schema, round trip, subset reads, fingerprints, and the resumable runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.features import ClipFeatures, TextInput
from pipeline.features.runner import INCOMPLETE_PREFIX, ShardTask, Unavailable, build_shards, plan_shards
from pipeline.features.shards import (
    ROW_GROUP_CLIPS,
    read_features,
    shard_fingerprint,
    shard_info,
    shard_metadata,
    write_shard,
)

DIM = 6


def _records(n: int, seed: int = 0) -> list[ClipFeatures]:
    """Mixed records: every 5th clip missing, one available clip with T = 0, random T otherwise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        clip_id = f"{i:05d}"
        if i % 5 == 4:
            out.append(ClipFeatures.missing(clip_id, DIM, "no_face"))
            continue
        T = 0 if i == 1 else int(rng.integers(1, 12))
        out.append(
            ClipFeatures(
                clip_id=clip_id,
                values=rng.normal(scale=3.0, size=(T, DIM)).astype(np.float32),
                times=(np.arange(T) / 5.0).astype(np.float32),
                valid=rng.random(T) > 0.3,
                available=True,
            )
        )
    return out


def _write(path: Path, records: list[ClipFeatures], dtype: str = "float16", fingerprint: str = "fp") -> None:
    write_shard(path, records, modality="visual", model_name="toy", dim=DIM, dtype=dtype, fingerprint=fingerprint)


@pytest.mark.parametrize("dtype, rtol", [("float16", 1e-3), ("float32", 0.0)])
def test_round_trip(tmp_path: Path, dtype: str, rtol: float) -> None:
    records = _records(50)
    _write(tmp_path / "train-00000.parquet", records, dtype=dtype)
    back = list(read_features(tmp_path))
    assert [r.clip_id for r in back] == [r.clip_id for r in records]
    for a, b in zip(records, back, strict=True):
        assert b.values.dtype == np.float32 and b.times.dtype == np.float32 and b.valid.dtype == bool
        assert (a.available, a.reason) == (b.available, b.reason)
        assert b.values.shape == a.values.shape
        # float16 keeps 11 significant bits: relative error <= 2^-11 (plus subnormals near 0).
        np.testing.assert_allclose(b.values, a.values, rtol=rtol, atol=1e-4 if rtol else 0.0)
        np.testing.assert_array_equal(b.times, a.times)
        np.testing.assert_array_equal(b.valid, a.valid)
    schema = pq.read_schema(tmp_path / "train-00000.parquet")
    assert schema.field("values").type == pa.list_(pa.list_(pa.float16() if dtype == "float16" else pa.float32(), DIM))
    assert shard_metadata(tmp_path / "train-00000.parquet") == {
        "modality": "visual",
        "model": "toy",
        "dim": str(DIM),
        "dtype": dtype,
        "fingerprint": "fp",
    }
    assert shard_info(tmp_path) == (DIM, "toy")


def test_subset_read_decodes_only_the_row_groups_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records(4 * ROW_GROUP_CLIPS)
    _write(tmp_path / "train-00000.parquet", records)
    _write(tmp_path / "valid-00000.parquet", _records(3, seed=1)[:1])
    assert pq.ParquetFile(tmp_path / "train-00000.parquet").num_row_groups == 4
    decoded: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, *args: object, **kwargs: object) -> pa.Table:
        decoded.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    wanted = [records[3].clip_id, records[2 * ROW_GROUP_CLIPS + 1].clip_id, "not-there"]
    back = list(read_features(tmp_path, clip_ids=wanted))
    assert [r.clip_id for r in back] == wanted[:2]
    assert decoded == [0, 2]  # train groups 0 and 2 only; the valid shard holds none of the ids
    np.testing.assert_allclose(back[1].values, records[2 * ROW_GROUP_CLIPS + 1].values, rtol=1e-3, atol=1e-4)


def test_same_records_give_identical_bytes(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "x.parquet", _records(20))
    _write(tmp_path / "b" / "x.parquet", _records(20))
    assert (tmp_path / "a" / "x.parquet").read_bytes() == (tmp_path / "b" / "x.parquet").read_bytes()


def test_bad_records_and_overflow_are_refused_without_touching_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train-00000.parquet"
    _write(path, _records(3))
    before = path.read_bytes()
    big = ClipFeatures("big", np.full((2, DIM), 1e5, np.float32), np.zeros(2, np.float32), np.ones(2, bool), True)
    with pytest.raises(ValueError, match="float16 overflow"):
        _write(path, [big])
    _write(tmp_path / "f32.parquet", [big], dtype="float32")  # float32 holds it
    wrong = ClipFeatures("w", np.zeros((2, DIM + 1), np.float32), np.zeros(2, np.float32), np.ones(2, bool), True)
    with pytest.raises(ValueError, match="expected"):
        _write(path, [wrong])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f32.parquet", "train-00000.parquet"]  # no temp files


def test_modality_guard_and_fingerprint_of_bad_files(tmp_path: Path) -> None:
    _write(tmp_path / "train-00000.parquet", _records(2))
    with pytest.raises(ValueError, match="expected 'audio'"):
        list(read_features(tmp_path, modality="audio"))
    assert len(list(read_features(tmp_path, modality="visual"))) == 2
    assert shard_fingerprint(tmp_path / "train-00000.parquet") == "fp"
    assert shard_fingerprint(tmp_path / "absent.parquet") is None
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    assert shard_fingerprint(tmp_path / "junk.parquet") is None


def test_plan_shards() -> None:
    plan = plan_shards({"train": [str(i) for i in range(5)], "valid": [], "test": ["a", "b"]}, 2)
    assert plan == [
        ("train-00000.parquet", ["0", "1"]),
        ("train-00001.parquet", ["2", "3"]),
        ("train-00002.parquet", ["4"]),
        ("test-00000.parquet", ["a", "b"]),
    ]
    with pytest.raises(ValueError):
        plan_shards({"train": ["a"]}, 0)


class LengthExtractor:
    """A toy text extractor: features = (length, vowel count); raises on the text "boom"."""

    modality, model_name, dim = "text", "toy-length", 2

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def extract_batch(self, inputs: list[TextInput]) -> list[ClipFeatures]:
        self.calls.append([x.clip_id for x in inputs])
        if any(x.text == "boom" for x in inputs):
            raise RuntimeError("boom")
        return [
            ClipFeatures(
                x.clip_id,
                np.array([[len(x.text), sum(c in "aeiou" for c in x.text)]], np.float32),
                np.zeros(1, np.float32),
                np.ones(1, bool),
                True,
            )
            for x in inputs
        ]


def _texts(ids: list[str], texts: dict[str, str]):
    for c in ids:
        yield Unavailable(c, "no_speech") if texts[c] == "" else TextInput(c, texts[c])


def test_runner_skips_fresh_shards_recomputes_changed_ones_and_removes_stale(tmp_path: Path) -> None:
    texts = {f"c{i}": "hello world"[: i + 1] for i in range(7)}
    texts["c2"] = ""
    tasks = [ShardTask(n, ids, f"fp-{n}") for n, ids in plan_shards({"train": list(texts)}, 3)]
    (tmp_path / ".train-00000.parquet.abc.parquet.tmp").write_bytes(b"left by a killed run")
    (tmp_path / "valid-00000.parquet").write_bytes(b"stale")
    extractor = LengthExtractor()
    report = build_shards(
        tmp_path,
        tasks,
        extractor=extractor,
        inputs=lambda ids: _texts(ids, texts),
        dtype="float32",
        chunk_clips=2,
        progress=False,
    )
    assert report.computed == ["train-00000.parquet", "train-00001.parquet", "train-00002.parquet"]
    assert report.removed == ["valid-00000.parquet"] and report.reasons == {"no_speech": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == report.computed
    assert extractor.calls[:2] == [["c0", "c1"], ["c3", "c4"]]  # chunks of 2 clips, c2 never reaches it
    back = {r.clip_id: r for r in read_features(tmp_path)}
    assert list(back) == list(texts) and not back["c2"].available
    np.testing.assert_array_equal(back["c4"].values, [[5, 2]])

    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    tasks[1] = ShardTask(tasks[1].name, tasks[1].clip_ids, "changed")
    again = build_shards(
        tmp_path,
        tasks,
        extractor=LengthExtractor(),
        inputs=lambda ids: _texts(ids, texts),
        dtype="float32",
        chunk_clips=2,
        progress=False,
    )
    assert again.computed == ["train-00001.parquet"] and again.skipped == ["train-00000.parquet", "train-00002.parquet"]
    for name in again.skipped:
        p = tmp_path / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stats[name]


def test_runner_isolates_a_failing_clip_and_marks_its_shard_for_retry(tmp_path: Path) -> None:
    texts = {"a": "fine", "b": "boom", "c": "also fine"}
    tasks = [ShardTask("train-00000.parquet", list(texts), "fp")]
    report = build_shards(
        tmp_path,
        tasks,
        extractor=LengthExtractor(),
        inputs=lambda ids: _texts(ids, texts),
        dtype="float32",
        chunk_clips=8,
        progress=False,
    )
    back = {r.clip_id: r for r in read_features(tmp_path)}
    assert back["a"].available and back["c"].available
    assert not back["b"].available and back["b"].reason == "error: RuntimeError: boom"
    assert report.reasons == {"error: RuntimeError: boom": 1}
    assert shard_fingerprint(tmp_path / "train-00000.parquet") == INCOMPLETE_PREFIX + "fp"
    texts["b"] = "fixed"  # the next run retries the shard
    again = build_shards(
        tmp_path,
        tasks,
        extractor=LengthExtractor(),
        inputs=lambda ids: _texts(ids, texts),
        dtype="float32",
        chunk_clips=8,
        progress=False,
    )
    assert again.computed == ["train-00000.parquet"]
    assert shard_fingerprint(tmp_path / "train-00000.parquet") == "fp"


def test_runner_fails_loudly_when_every_clip_fails(tmp_path: Path) -> None:
    texts = {"a": "boom", "b": "boom"}
    with pytest.raises(RuntimeError, match="every clip"):
        build_shards(
            tmp_path,
            [ShardTask("train-00000.parquet", list(texts), "fp")],
            extractor=LengthExtractor(),
            inputs=lambda ids: _texts(ids, texts),
            dtype="float32",
            chunk_clips=8,
            progress=False,
        )
    assert not (tmp_path / "train-00000.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert os.listdir(tmp_path) == []

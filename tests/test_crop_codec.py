"""Stored face crops are JPEG: about 9 KB instead of 77 KB, with the visual features unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config import DecodeParams, VisualFeatureParams
from pipeline.decode import decode_clip, decode_manifest
from pipeline.decoded import VisualInput, decode_crop, encode_crop, iter_clip_frames
from pipeline.features.visual import build_visual_extractor

from .conftest import REALDATA

FACES = ("video-retalking_1.mp4", "sadtalker_WDA_KatieHill_000.mp4", "liveportrait_d19.mp4")


def test_jpeg_crops_are_deterministic_and_decode_to_the_crop_size() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    data = encode_crop(rgb, "jpeg", 95)
    assert data == encode_crop(rgb, "jpeg", 95) and data[:2] == b"\xff\xd8"
    assert decode_crop(data, "jpeg", 160).shape == (160, 160, 3)
    assert np.array_equal(decode_crop(encode_crop(rgb, "raw", 95), "raw", 160), rgb)


@pytest.fixture(scope="module")
def decoded_both() -> dict[str, list]:
    """The real face clips decoded with raw and with JPEG crops."""
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder {REALDATA} is absent")
    realdata = REALDATA
    out = {}
    for fmt in ("raw", "jpeg"):
        params = DecodeParams(crop_format=fmt)
        out[fmt] = [decode_clip(realdata / "video" / name, params).visual for name in FACES]
    return out


def test_jpeg_crops_keep_the_visual_features(decoded_both: dict[str, list]) -> None:
    extractor = build_visual_extractor(VisualFeatureParams(), device="cpu")
    raw = extractor.extract_batch(decoded_both["raw"])
    jpeg = extractor.extract_batch(decoded_both["jpeg"])
    for a, b in zip(raw, jpeg, strict=True):
        assert np.array_equal(a.valid, b.valid) and a.valid.sum() > 20
        x, y = a.values[a.valid].astype(np.float64), b.values[b.valid].astype(np.float64)
        cosine = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        assert cosine.min() >= 0.99, (a.clip_id, cosine.min())


def test_stored_crops_average_under_10_kb(realdata: Path, tmp_path: Path) -> None:
    clips = [(Path(n).stem, str(realdata / "video" / n)) for n in FACES]
    decode_manifest(clips, tmp_path, DecodeParams(workers=1), log=lambda _: None)
    sizes = [len(c) for c in pq.read_table(tmp_path / "frames-00000.parquet").column("crop").to_pylist() if c]
    assert len(sizes) > 60 and np.mean(sizes) <= 10 * 1024, np.mean(sizes)
    # The stage's reader returns exactly what decode_clip (predict's path) holds in memory.
    for stored, name in zip(iter_clip_frames(tmp_path), FACES, strict=True):
        single = decode_clip(realdata / "video" / name, DecodeParams())
        assert isinstance(stored, VisualInput)
        assert all(
            (a is None and b is None) or np.array_equal(a, b)
            for a, b in zip(stored.crops, single.visual.crops, strict=True)
        )

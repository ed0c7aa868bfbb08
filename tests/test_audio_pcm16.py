"""Decoded audio is stored as 16-bit PCM and read back as float32: on a real talking-head clip the
stored track is the decoder's float track on the 16-bit grid (what ASR reads anyway), the audio
features of both agree (cosine >= 0.9999 per frame) and the shard is about half the bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import AudioFeatureParams, DecodeParams
from pipeline.decode import ClipDecoder, decode_shard
from pipeline.decoded import AudioInput, audio_path, from_pcm16, iter_clip_audio, to_pcm16
from pipeline.features.audio import build_audio_extractor
from pipeline.whisper.models import as_16bit

from .conftest import REPO

VIDEO = REPO.parent / "shared" / "realdata" / "video" / "video-retalking_2.mp4"
PARAMS = DecodeParams()


def test_pcm16_round_trip_is_the_16bit_grid() -> None:
    x = np.random.default_rng(0).uniform(-1.2, 1.2, 10_000).astype(np.float32)
    stored = to_pcm16(x)
    assert stored.dtype == np.int16 and stored.min() == -32768 and stored.max() == 32767  # clipped, not wrapped
    np.testing.assert_array_equal(from_pcm16(stored), as_16bit(x))
    assert from_pcm16(stored).dtype == np.float32
    extremes = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38], np.float32)
    assert to_pcm16(extremes).tolist() == [0, 32767, -32768, 32767, -32768]
    # float32 is rounded in float32: the same integers as through float64, half steps included
    halves = (np.arange(-40, 40) + 0.5).astype(np.float32) / np.float32(32768.0)
    for values in (x, halves, np.random.default_rng(1).standard_normal(10_000).astype(np.float32) * 1e-3):
        np.testing.assert_array_equal(to_pcm16(values), to_pcm16(values.astype(np.float64)))
        expected = np.clip(np.rint(values.astype(np.float64) * 32768.0), -32768, 32767)
        np.testing.assert_array_equal(to_pcm16(values), expected)


@pytest.mark.skipif(not VIDEO.is_file(), reason="needs ../shared/realdata")
@pytest.mark.parametrize("model", ["whisper-encoder", "prosody"])
def test_stored_audio_gives_the_float_features(tmp_path: Path, model: str) -> None:
    with ClipDecoder(PARAMS, threads=1) as decoder:
        _, floats = decoder.decode(VIDEO, "clip", lambda rows: None)
    decode_shard([("clip", str(VIDEO))], tmp_path, 0, PARAMS)
    (stored,) = iter_clip_audio(tmp_path)
    assert stored.samples.dtype == np.float32 and len(stored.samples) == len(floats.samples)
    assert np.abs(stored.samples - floats.samples).max() <= 0.5 / 32768 + 1e-9
    # int16 values in zstd Parquet: at most about half the bytes of the float32 track.
    assert audio_path(tmp_path, 0).stat().st_size < 0.6 * floats.samples.nbytes
    extractor = build_audio_extractor(AudioFeatureParams(model=model), device="cpu")
    a, b = extractor.extract_batch([floats, AudioInput("clip", stored.samples, stored.sample_rate, stored.duration_s)])
    assert a.values.shape == b.values.shape and a.valid.all()
    cos = np.sum(a.values * b.values, 1) / np.linalg.norm(a.values, axis=1) / np.linalg.norm(b.values, axis=1)
    assert cos.min() >= 0.9999

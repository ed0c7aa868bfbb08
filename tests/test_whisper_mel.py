"""Whisper's log-mel front end on long audio: computed in pieces (bounded memory), the same values as
faster-whisper's one-pass code, for ASR and the audio features alike."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from pipeline.whisper.models import MEL_PIECE_FRAMES, PIECEWISE_MIN_SAMPLES, load_whisper_model, piecewise_log_mel


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = round(seconds * 16000)
    t = np.arange(n) / 16000
    return (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(t)) + 0.02 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("extra", [0, 77, 159, 160, 3 * MEL_PIECE_FRAMES * 160 + 1])
def test_piecewise_log_mel_matches_the_one_pass_code(extra: int) -> None:
    """Edges (reflection at both ends, the zero padding, the dropped last frame) and piece borders.
    Equal to float32 rounding: the one-pass matrix product itself differs by 1 ulp where BLAS
    splits its columns between threads."""
    extractor = FeatureExtractor()
    audio = _audio(121)[: PIECEWISE_MIN_SAMPLES + 1 + extra] if extra < 1000 else _audio(121 + extra / 16000)
    whole, pieces = extractor(audio), piecewise_log_mel(extractor, audio)
    assert pieces.shape == whole.shape and pieces.dtype == np.float32
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=2e-7)


def test_long_audio_log_mel_memory_is_bounded() -> None:
    """10 minutes: the one-pass STFT peaks near 500 MB, the piecewise code at its output plus a piece."""
    audio = _audio(600, seed=1)
    extractor = FeatureExtractor()
    tracemalloc.start()
    try:
        extractor(audio)
        one_pass = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        out = piecewise_log_mel(extractor, audio)
        piecewise = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert one_pass > 400e6
    assert piecewise < out.nbytes + 60e6, piecewise / 1e6


def test_the_loaded_model_uses_the_piecewise_front_end() -> None:
    model = load_whisper_model("tiny.en", compute_type="int8")
    audio = _audio(130, seed=2)
    np.testing.assert_array_equal(model.feature_extractor(audio), piecewise_log_mel(model.feature_extractor, audio))
    short = audio[: 16000 * 5]
    np.testing.assert_array_equal(model.feature_extractor(short), FeatureExtractor()(short))

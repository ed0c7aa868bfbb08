"""Prosody features (features.audio.model: prosody): pitch of a known tone and of real speech, level
that follows the gain (the point of not normalising), voicing on and off, the 5 fps pooling, and a
record for every clip however bad its audio."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.speech import load_audio, ravdess
from pipeline.config import AudioFeatureParams
from pipeline.decoded import AudioInput
from pipeline.features.audio import build_audio_extractor
from pipeline.features.audio.prosody import NAMES, prosody_frames

from .conftest import REALDATA

SR = 16_000


def _voice(f0: float, seconds: float = 1.0, amplitude: float = 0.1) -> np.ndarray:
    """A glottal-like pulse train at ``f0`` (harmonics falling at 6 dB per octave)."""
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 12) if f0 * h < SR / 2)
    return (amplitude * wave / np.abs(wave).max()).astype(np.float32)


@pytest.mark.parametrize("f0", [80.0, 150.0, 220.0, 350.0])
def test_the_pitch_of_a_steady_voice_without_octave_errors(f0: float) -> None:
    frames = prosody_frames(_voice(f0))
    inner = frames[3:-3]  # away from the edges' half windows
    assert inner[:, NAMES.index("voiced")].all()
    assert np.median(2 ** inner[:, NAMES.index("log2_f0")]) == pytest.approx(f0, rel=0.03)


def test_level_follows_the_gain_and_noise_is_unvoiced() -> None:
    voice = _voice(150.0)
    loud, quiet = prosody_frames(voice)[3:-3], prosody_frames(voice / 10)[3:-3]
    level = NAMES.index("level_db")
    np.testing.assert_allclose(loud[:, level] - quiet[:, level], 20.0, atol=0.01)
    np.testing.assert_allclose(loud[:, 1:], quiet[:, 1:], atol=1e-3)  # nothing but the level moves
    noise = prosody_frames(0.05 * np.random.default_rng(0).standard_normal(SR).astype(np.float32))
    assert noise[:, NAMES.index("voiced")].mean() < 0.1
    assert noise[:, NAMES.index("log2_centroid")].mean() > loud[:, NAMES.index("log2_centroid")].mean() + 1
    silence = prosody_frames(np.zeros(SR, np.float32))
    assert (silence[:, level] == -100).all() and not silence[:, 1:].any()


def test_one_frame_per_20_ms_pooled_to_5_fps_and_a_record_for_every_clip() -> None:
    extractor = build_audio_extractor(AudioFeatureParams(model="prosody", pool_fps=5.0), device="cpu")
    assert extractor.dim == len(NAMES) and extractor.model_name == "prosody"
    assert prosody_frames(np.zeros(321, np.float32)).shape == (2, len(NAMES))
    inputs = [
        AudioInput("voice", _voice(150.0, 2.1), SR, 2.1),
        AudioInput("at 48 kHz", np.repeat(_voice(150.0, 1.0), 3), 48_000, 1.0),
        AudioInput("none", None, SR, 0.0, reason="no decodable audio"),
        AudioInput("zeros", np.zeros(SR, np.float32), SR, 1.0),
        AudioInput("short", np.zeros(100, np.float32) + 0.1, SR, 0.01),
    ]
    records = extractor.extract_batch(inputs)
    assert [r.clip_id for r in records] == [i.clip_id for i in inputs]
    voice, resampled = records[0], records[1]
    assert voice.values.shape == (11, len(NAMES))  # 105 frames of 20 ms in 11 bins of 200 ms
    np.testing.assert_allclose(voice.times, (np.arange(11) + 0.5) / 5, atol=1e-6)
    assert resampled.values.shape == (5, len(NAMES))
    assert np.median(2 ** resampled.values[1:-1, NAMES.index("log2_f0")]) == pytest.approx(150, rel=0.03)
    assert [r.available for r in records] == [True, True, False, False, False]
    assert all(r.reason for r in records[2:])


def test_real_speech_has_voiced_frames_in_the_human_pitch_range() -> None:
    first = ravdess(REALDATA / "audio" / "ravdess")[0]
    samples, _ = load_audio(first.path, 16_000)
    frames = prosody_frames(samples)
    voiced = frames[frames[:, NAMES.index("voiced")] > 0]
    assert 0.1 < len(voiced) / len(frames) < 0.9
    assert 70 < np.median(2 ** voiced[:, NAMES.index("log2_f0")]) < 350

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
from pipeline.features.audio.prosody import FEATURES, LEVEL_FLOOR_DB, NAMES, prosody_bins, prosody_frames

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
    silence = prosody_frames(np.zeros(SR, np.float32))
    assert (silence[:, level] == -100).all() and not silence[:, 1:].any()


def test_bins_speaker_normalised_voice_pitch_and_level() -> None:
    # One speaker: 1 s at 150 Hz, 1 s of silence, 1 s an octave up and 20 dB louder.
    audio = np.concatenate([_voice(150.0, amplitude=0.01), np.zeros(SR, np.float32), _voice(300.0, amplitude=0.1)])
    values, times = prosody_bins(prosody_frames(audio), 5.0)
    assert values.shape == (15, len(FEATURES)) and np.allclose(times, (np.arange(15) + 0.5) / 5)
    col = {name: values[:, FEATURES.index(name)] for name in FEATURES}
    low, silent, high = slice(1, 4), slice(6, 9), slice(11, 14)  # bins away from the edges
    assert (col["voiced"][low] == 1).all() and (col["voiced"][silent] == 0).all() and (col["voiced"][high] == 1).all()
    assert (col["level_db"][silent] == LEVEL_FLOOR_DB).all()  # digital silence at the floor, not -100
    assert (col["voice_level_rel_db"][silent] == 0).all() and (col["voice_pitch_rel_oct"][silent] == 0).all()
    pitch, level = col["voice_pitch_rel_oct"], col["voice_level_rel_db"]
    assert np.median(pitch[high]) - np.median(pitch[low]) == pytest.approx(1.0, abs=0.05)  # one octave
    assert np.median(level[high]) - np.median(level[low]) == pytest.approx(20.0, abs=1.0)
    # Relative to the clip's own median voiced frame: the same person further away gives the same bins.
    quieter, _ = prosody_bins(prosody_frames(audio / 3), 5.0)
    np.testing.assert_allclose(quieter[:, 1:], values[:, 1:], atol=1e-3)


def test_a_record_for_every_clip_at_any_rate() -> None:
    extractor = build_audio_extractor(AudioFeatureParams(model="prosody", pool_fps=5.0), device="cpu")
    assert extractor.dim == len(FEATURES) and extractor.model_name == "prosody"
    assert prosody_frames(np.zeros(321, np.float32)).shape == (2, len(NAMES))
    voice = np.concatenate([_voice(150.0, 1.0), _voice(200.0, 1.1)])
    inputs = [
        AudioInput("voice", voice, SR, 2.1),
        AudioInput("at 48 kHz", np.repeat(voice, 3), 48_000, 2.1),
        AudioInput("none", None, SR, 0.0, reason="no decodable audio"),
        AudioInput("zeros", np.zeros(SR, np.float32), SR, 1.0),
        AudioInput("short", np.zeros(100, np.float32) + 0.1, SR, 0.01),
    ]
    records = extractor.extract_batch(inputs)
    assert [r.clip_id for r in records] == [i.clip_id for i in inputs]
    assert [r.available for r in records] == [True, True, False, False, False]
    assert all(r.reason for r in records[2:])
    assert records[0].values.shape == (11, len(FEATURES))  # 105 frames of 20 ms in 11 bins of 200 ms
    # The 48 kHz copy is resampled to 16 kHz first: the same bins up to the resampler.
    np.testing.assert_allclose(records[1].values[1:-1, 1:], records[0].values[1:-1, 1:], atol=0.1)


RAVDESS = REALDATA / "audio" / "ravdess"


@pytest.mark.skipif(not (RAVDESS / "labels.csv").is_file(), reason="needs ../shared/realdata")
def test_real_speech_has_voiced_frames_in_the_human_pitch_range() -> None:
    first = ravdess(RAVDESS)[0]
    samples, _ = load_audio(first.path, 16_000)
    frames = prosody_frames(samples)
    voiced = frames[frames[:, NAMES.index("voiced")] > 0]
    assert 0.1 < len(voiced) / len(frames) < 0.9
    assert 70 < np.median(2 ** voiced[:, NAMES.index("log2_f0")]) < 350

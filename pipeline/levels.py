"""Audio levels, one home for decode's silence rule and ASR's speech test: numpy only, so that ASR
can use them without importing decode (PyAV, the video readers), whose code changes would then
rerun ASR.

The active level is the RMS of the loudest 10% of 50 ms frames: speech fills a fraction of a clip
(RAVDESS clips hold about a second of room tone at each end), so the whole-clip RMS sits 10-15 dB
below the level of the speech itself and ranks quiet deliveries (calm, sad) as silence first.
Silero VAD misses quiet speech on raw audio (its threshold is tuned for speaking levels), so both
speech tests scale the audio to ``TARGET_ACTIVE_DBFS`` first (``to_speaking_level``).
"""

from __future__ import annotations

import math

import numpy as np

SILENCE_FLOOR_DBFS = -200.0
ACTIVE_FRAME_S = 0.05
ACTIVE_FRACTION = 0.10
# The loudest frames are scaled to this level before VAD: a normal speaking level in a recording.
TARGET_ACTIVE_DBFS = -20.0


def without_dc(samples: np.ndarray) -> np.ndarray:
    """``samples`` minus their mean, float64. A track that only holds a DC offset (a recorder's
    input with nothing plugged in, a bad ADC) has an RMS of its offset but says nothing: every
    level check reads the signal around the mean."""
    values = samples.astype(np.float64)
    return values - values.mean() if values.size else values


def _dbfs(rms: float) -> float:
    return max(SILENCE_FLOOR_DBFS, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_FLOOR_DBFS


def _rms_dbfs(centred: np.ndarray) -> float:
    return _dbfs(math.sqrt(float(np.mean(np.square(centred))))) if centred.size else SILENCE_FLOOR_DBFS


def _active_dbfs(centred: np.ndarray, sample_rate: int) -> float:
    frame = max(1, round(ACTIVE_FRAME_S * sample_rate))
    n_frames = len(centred) // frame
    if n_frames == 0:
        return _rms_dbfs(centred)
    power = np.mean(np.square(centred[: n_frames * frame].reshape(n_frames, frame)), axis=1)
    loudest = np.sort(power)[-max(1, math.ceil(ACTIVE_FRACTION * n_frames)) :]
    return _dbfs(math.sqrt(float(np.mean(loudest))))


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level around the mean (DC removed) in dB full scale, floored at ``SILENCE_FLOOR_DBFS``."""
    return _rms_dbfs(without_dc(samples))


def active_level_dbfs(samples: np.ndarray, sample_rate: int) -> float:
    """RMS of the loudest ``ACTIVE_FRACTION`` of ``ACTIVE_FRAME_S`` frames in dB full scale (the
    whole track when shorter than one frame), floored at ``SILENCE_FLOOR_DBFS``; the track's
    mean (DC offset) is removed first."""
    return _active_dbfs(without_dc(samples), sample_rate)


def track_levels_dbfs(samples: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """(:func:`level_dbfs`, :func:`active_level_dbfs`) of one track, its mean removed once (a
    float64 copy of a long track each time otherwise)."""
    centred = without_dc(samples)
    return _rms_dbfs(centred), _active_dbfs(centred, sample_rate)


def to_speaking_level(samples: np.ndarray, active_dbfs: float) -> np.ndarray:
    """float32 ``samples`` scaled so that their active level ``active_dbfs`` becomes
    ``TARGET_ACTIVE_DBFS``, clipped to [-1, 1]; digital silence stays silence."""
    if active_dbfs <= SILENCE_FLOOR_DBFS:
        return np.asarray(samples, np.float32)
    gain = 10.0 ** ((TARGET_ACTIVE_DBFS - active_dbfs) / 20.0)
    return np.clip(samples * np.float32(gain), -1.0, 1.0).astype(np.float32)

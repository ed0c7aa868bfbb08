"""Is there speech in a quiet track? Silero VAD on the track scaled to a speaking level.

Used by decode only for tracks whose active level (``pipeline.levels.active_level_dbfs``) lies between
``decode.silence_dbfs`` and ``decode.speech_check_dbfs``: that band holds both quiet real speech
(RAVDESS attenuated by 20-30 dB: loudest frames down to -76 dBFS) and near-silence (hum, hiss,
dither at -60 to -75 dBFS), which no level separates. Silero VAD separates them once the gain is
normalised: on raw quiet audio it misses whole clips of speech (its threshold is tuned for
speaking levels), while hum and noise scaled up to a speaking level are still not speech.
"""

from __future__ import annotations

import numpy as np

from pipeline.decoded import resample
from pipeline.levels import to_speaking_level

VAD_SAMPLE_RATE = 16000  # Silero's rate


def speech_found(samples: np.ndarray, sample_rate: int, active_dbfs: float) -> bool:
    """True when Silero VAD (faster-whisper's, default options) finds at least one speech segment
    in ``samples`` scaled so that its active level is ``TARGET_ACTIVE_DBFS``."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps  # onnxruntime: only when needed

    scaled = to_speaking_level(resample(samples, sample_rate, VAD_SAMPLE_RATE), active_dbfs)
    return bool(get_speech_timestamps(scaled, VadOptions()))

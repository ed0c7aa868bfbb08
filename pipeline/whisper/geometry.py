"""Whisper's frame geometry, the one home of these numbers: 16 kHz audio, 10 ms log-mel frames,
20 ms encoder frames (the encoder's convolution halves the mel rate), 30 s encoder windows.

ASR (which encodes a clip's windows before decoding them), the encoder states it keeps, and the
audio features (which cut their windows as faster-whisper does) all count frames with these.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16_000
HOP_SAMPLES = 160  # samples per mel frame: 10 ms
FRAME_SAMPLES = 320  # samples per encoder frame: 20 ms
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
WINDOW_MEL = 3000  # mel frames of the encoder's fixed input: 30 s
WINDOW_FRAMES = WINDOW_MEL // 2  # encoder frames out of one window: 1500
WINDOW_SAMPLES = WINDOW_MEL * HOP_SAMPLES  # 30 s


def real_frames(n_samples: int) -> int:
    """Encoder frames that cover real audio: ``ceil(N / 320)``."""
    return math.ceil(n_samples / FRAME_SAMPLES)


def frame_times(n_frames: int, offset_s: float = 0.0) -> np.ndarray:
    """(n_frames,) float64 centres of encoder frames in clip time, counted from ``offset_s``."""
    return offset_s + (np.arange(n_frames) + 0.5) * FRAME_S

"""The regular cover of a clip by encoder windows: window k holds log-mel frames
``[k * window_mel, (k + 1) * window_mel)`` of the clip's content, zero-padded to the encoder's 3000.

The audio features encode exactly these windows, and faster-whisper cuts the same window whenever
its decoder seeks to a multiple of 30 s (``generate_segments``: ``features[:, seek : seek +
segment_size]`` then ``pad_or_trim``, with ``segment_size = min(3000, content - seek)``). Its other
seeks (after a segment that ends mid-window, or inside ``clip_timestamps``) give windows at other
offsets, whose states are not the features' and are never kept; ASR encodes the cover windows its
decoder did not (pipeline/asr/encoder_cover.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from pipeline.whisper.geometry import HOP_SAMPLES, WINDOW_MEL, real_frames


def content_frames(mel: np.ndarray) -> int:
    """Mel frames that cover audio: the extractor's last frame covers only its padding, and
    faster-whisper leaves it out of every window."""
    return mel.shape[-1] - 1


def count(n_samples: int, window_mel: int = WINDOW_MEL) -> int:
    """Windows in the cover of a clip of ``n_samples`` 16 kHz samples."""
    return math.ceil(n_samples / (window_mel * HOP_SAMPLES))


def window(mel: np.ndarray, k: int, window_mel: int = WINDOW_MEL) -> np.ndarray:
    """(n_mels, 3000) float32: cover window ``k`` of a clip's log-mel, zero-padded."""
    first = k * window_mel
    piece = mel[:, first : min(first + window_mel, content_frames(mel))]
    padded = np.zeros((mel.shape[0], WINDOW_MEL), np.float32)
    padded[:, : piece.shape[1]] = piece
    return padded


def real_window_frames(n_samples: int, k: int, window_mel: int = WINDOW_MEL) -> int:
    """Encoder frames of window ``k`` that cover real audio (the rest cover its zero padding)."""
    window_samples = window_mel * HOP_SAMPLES
    return real_frames(min(window_samples, n_samples - k * window_samples))


def cover(mel: np.ndarray, n_samples: int, window_mel: int = WINDOW_MEL) -> Iterator[tuple[int, np.ndarray]]:
    """(k, window) for every window of the cover, one at a time."""
    for k in range(count(n_samples, window_mel)):
        yield k, window(mel, k, window_mel)


def which(segment: np.ndarray, mel: np.ndarray, n_samples: int) -> int | None:
    """The cover window (30 s) that ``segment`` (n_mels, 3000), a window faster-whisper encodes, is
    exactly; None when it is none of them (another offset or length). Exact equality: both are
    slices of the same log-mel array, zero-padded alike."""
    content = content_frames(mel)
    for k in range(count(n_samples)):
        first = k * WINDOW_MEL
        size = min(WINDOW_MEL, content - first)
        if size <= 0 or not np.array_equal(segment[:, 0], mel[:, first]):
            continue  # faster-whisper never encodes a window without content
        if np.array_equal(segment[:, :size], mel[:, first : first + size]) and not segment[:, size:].any():
            return k
    return None

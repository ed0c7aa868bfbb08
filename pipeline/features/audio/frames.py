"""What both audio extractors share: which samples can give features, the model windows, pooling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.decoded import AudioInput
from pipeline.features import ClipFeatures
from pipeline.whisper.geometry import FRAME_SAMPLES, SAMPLE_RATE

# Fewer samples than one encoder frame carry nothing a 20 ms frame can describe.
MIN_SAMPLES = FRAME_SAMPLES


def samples_problem(item: AudioInput) -> str:
    """Why a clip's samples give no audio features, "" when they do (the decode status has its say
    earlier: ``pipeline.features.unavailable_reason``)."""
    if item.samples is None:
        return item.reason or "no_audio"
    if len(item.samples) * SAMPLE_RATE < MIN_SAMPLES * item.sample_rate:
        return f"too_short: {len(item.samples)} samples at {item.sample_rate} Hz"
    if not np.any(item.samples):
        return "silent: all samples are zero"
    if not np.isfinite(item.samples).all():
        return "invalid: non-finite samples"
    return ""


def pool_frames(values: np.ndarray, times: np.ndarray, pool_fps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Average (T, D) frames at ``times`` (T,) into bins of ``1 / pool_fps`` s -> ((B, D), (B,) bin centres).

    Bin b holds the frames with ``floor(time * pool_fps) == b``; frames are contiguous, so no
    bin between the first and the last is empty.
    """
    if pool_fps is None or len(times) == 0:
        return values, times
    bins = np.floor(times.astype(np.float64) * pool_fps).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    sums = np.add.reduceat(values.astype(np.float64), starts, axis=0)
    counts = np.diff(np.r_[starts, len(bins)])[:, None]
    return (sums / counts).astype(np.float32), ((bins[starts] + 0.5) / pool_fps).astype(np.float32)


def finish_clip(clip_id: str, parts: list[tuple[np.ndarray, np.ndarray]], pool_fps: float | None) -> ClipFeatures:
    """Concatenate a clip's windows, each ((T_w, D) states, (T_w,) times), then pool (``pool_fps``
    None: the windows were pooled already, or are kept at 50 Hz)."""
    frames = np.concatenate([states for states, _ in parts]).astype(np.float32)
    times = np.concatenate([times for _, times in parts]).astype(np.float32)
    values, times = pool_frames(frames, times, pool_fps)
    return ClipFeatures(clip_id, values, times, np.ones(len(times), bool), available=True)


@dataclass
class Window:
    clip: int  # index into the batch's inputs
    array: np.ndarray  # the model input of this window
    offset_s: float  # where the window starts in its clip
    n_frames: int = 0  # output frames that cover real audio (Whisper; HF models cut their own)

    def times(self, n_frames: int, frame_s: float) -> np.ndarray:
        """(n_frames,) frame centres in clip time; each window restarts the count at its own start."""
        return self.offset_s + (np.arange(n_frames) + 0.5) * frame_s

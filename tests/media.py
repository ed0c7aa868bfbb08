"""Test clips that show their own frame index, so a test can read back which frame a decoder chose."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.demo.media import mux_clip

INDEX_GRID = 4  # index clips show a 4x4 grid of black/white cells: 16 bits, frame k < 65536


def index_frame(index: int, *, size: int = 64) -> np.ndarray:
    """(size, size, 3) uint8 RGB frame showing ``index`` as 16 black/white cells, MSB top-left."""
    if not 0 <= index < 2 ** (INDEX_GRID * INDEX_GRID):
        raise ValueError(f"frame index {index} does not fit in {INDEX_GRID * INDEX_GRID} bits")
    bits = (index >> np.arange(INDEX_GRID * INDEX_GRID - 1, -1, -1)) & 1
    cells = bits.reshape(INDEX_GRID, INDEX_GRID).astype(np.uint8) * 255
    edges = np.diff(np.linspace(0, size, INDEX_GRID + 1).round().astype(int))
    grid = np.repeat(np.repeat(cells, edges, axis=0), edges, axis=1)
    return np.repeat(grid[:, :, None], 3, axis=2)


def read_index(frame_rgb: np.ndarray) -> int:
    """Inverse of :func:`index_frame` for a decoded (H, W, 3) uint8 frame, any size or scaling.

    Reads the mean of the central half of each cell, so compression noise and resizing at the cell
    borders do not flip bits.
    """
    grey = np.asarray(frame_rgb, np.float32).mean(axis=2)
    height, width = grey.shape
    value = 0
    for row in range(INDEX_GRID):
        for col in range(INDEX_GRID):
            y0, y1 = height * row / INDEX_GRID, height * (row + 1) / INDEX_GRID
            x0, x1 = width * col / INDEX_GRID, width * (col + 1) / INDEX_GRID
            qy, qx = (y1 - y0) / 4, (x1 - x0) / 4
            cell = grey[int(y0 + qy) : math.ceil(y1 - qy), int(x0 + qx) : math.ceil(x1 - qx)]
            value = (value << 1) | int(cell.mean() > 127.5)
    return value


def write_index_clip(
    path: str | Path,
    pts_s: Sequence[float],
    *,
    size: int = 64,
    declared_fps: float | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> None:
    """Write a clip whose frame k (shown from ``pts_s[k]``) encodes k; see :func:`read_index`.

    Constant or variable frame rate: pass any strictly increasing pts (seconds, kept to the
    millisecond). The video lasts ``pts_s[-1]`` plus the median frame gap. ``declared_fps``: the
    rate the container claims (honoured by .mkv; an .mp4 with irregular pts reports 1000/1 as
    ``r_frame_rate`` from its 1/1000 time base, like Hume-Vidmimic2's VFR files). ``audio``: (N,)
    float32 mono at ``sample_rate`` or None for no audio stream. Encoded lossless (x264 crf 0, no
    B-frames) so every decoded frame reads back exactly.
    """
    frames = (index_frame(k, size=size) for k in range(len(pts_s)))
    mux_clip(path, frames, pts_s, declared_fps=declared_fps, audio=audio, sample_rate=sample_rate, crf=0, bframes=False)

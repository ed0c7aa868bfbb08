"""The decoded frames in time, ``data/timeline.parquet``: written by decode, read by the frame-level tasks.

One row per manifest row (TIMELINE_SCHEMA): ``fps`` (``decode.fps``: sample i is at ``i / fps``),
``frame_pts`` the clip-timeline pts of every decoded video frame in order (frame k of a per-frame
label file is ``frame_pts[k - 1]``: labels are mapped to time by the container's real timestamps,
never by a rate in the file name) and ``sample_frame`` the index in that list of each sample's
source frame (the frame on screen at the sample's time). A clip with no decoded frame has empty lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TIMELINE_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("fps", pa.float64(), nullable=False),  # decode.fps: sample i is at i / fps
        pa.field("frame_pts", pa.list_(pa.float64()), nullable=False),
        pa.field("sample_frame", pa.list_(pa.int32()), nullable=False),
    ]
)


@dataclass
class Timeline:
    """One clip's decoded frames in time (a row of ``data/timeline.parquet``)."""

    clip_id: str
    fps: float  # sample i is at i / fps
    frame_pts: np.ndarray  # (F,) float64 seconds, clip timeline, every decoded frame
    sample_frame: np.ndarray  # (T,) int64: sample i shows frame_pts[sample_frame[i]]

    @property
    def sample_times(self) -> np.ndarray:
        """(T,) float64 times of the samples."""
        return np.arange(len(self.sample_frame)) / self.fps


def read_timelines(path: str | Path, clip_ids: Iterable[str] | None = None) -> dict[str, Timeline]:
    """{clip_id: Timeline} from ``data/timeline.parquet`` (only ``clip_ids`` when given)."""
    table = pq.read_table(path)
    if clip_ids is not None:
        table = table.filter(pc.is_in(table.column("clip_id"), value_set=pa.array(sorted(set(clip_ids)), pa.string())))
    out = {}
    for row in table.to_pylist():
        pts = np.asarray(row["frame_pts"], np.float64)
        frames = np.asarray(row["sample_frame"], np.int64)
        out[row["clip_id"]] = Timeline(row["clip_id"], row["fps"], pts, frames)
    return out

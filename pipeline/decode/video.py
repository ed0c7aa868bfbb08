"""Video sampling: the frame on screen at each ``i / fps`` (rule in ``pipeline/decode/__init__.py``)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.decode.probe import StreamLog, decoded_frames, probe, stream_times, video_end_by_demux
from pipeline.runtime.devices import usable_cpus

# A video whose frames end this much before its header duration is truncated (corrupt).
TRUNCATION_TOLERANCE_S = 0.5


def display_size(frame: av.VideoFrame, sar: Fraction | None, rotation: int, max_side: int) -> tuple[int, int]:
    """(width, height) to ask swscale for, before rotation: longer display side <= max_side."""
    width = frame.width * (float(sar) if sar else 1.0)
    height = float(frame.height)
    if rotation % 180:
        width, height = height, width
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    return (out_h, out_w) if rotation % 180 else (out_w, out_h)


class VideoSampler:
    """Samples the video stream of one file by the rule of the module docstring.

    Iterating yields ``(i, pts_s, rgb, new)`` for i = 0..T-1 in order: rgb is (H, W, 3) uint8 with
    the longer side <= ``max_side``; ``new`` is False when the sample repeats the previous
    sample's source frame (then ``rgb`` is the same array). One streaming pass: sample i is emitted
    once a frame with pts > t_i arrives (or the stream ends), so only the previous frame is held,
    and only chosen frames are converted to RGB. After iterating, ``n_decoded``, ``end``,
    ``truncated`` and ``log`` describe the stream, ``frame_pts`` holds the clip-timeline pts of every
    decoded frame kept (in order: the frames a per-frame label file counts) and ``sample_frame`` the
    index into it of each sample's source frame. ``header_times``: the stream's (start, duration)
    as :func:`pipeline.decode.probe.probe` read them, else the constructor opens the file for them
    (and raises when it cannot be read). Iterating raises on decoder bugs (a bad packet is only
    counted in ``log``).
    """

    def __init__(
        self,
        path: str,
        video_index: int,
        *,
        fps: Fraction,
        max_side: int,
        threads: int,
        pictures: bool = True,
        header_times: tuple[Fraction | None, Fraction | None] | None = None,
    ) -> None:
        self.path, self.index, self.fps, self.max_side, self.threads = path, video_index, fps, max_side, threads
        # False: yield None for rgb (a track with organiser crops needs the timeline, not the pixels).
        self.pictures = pictures
        self.log = StreamLog("video")
        self.n_decoded = 0
        self.frame_pts: list[float] = []
        self.sample_frame: list[int] = []
        self.end: Fraction | None = None  # end of the last decoded frame (pts + duration), clip timeline
        self.truncated = False
        # Output geometry, fixed by the first converted frame (a mid-clip size change is rescaled).
        self._size: tuple[int, int] | None = None
        self._sar: Fraction | None = None
        self._rotation = 0
        if header_times is None:  # else the stream's (start, duration) as a probe read them
            with av.open(path) as container:
                header_times = stream_times(container.streams[video_index])
        self.origin, self.duration = header_times
        self.header_duration = self.duration is not None
        if self.duration is None:
            first, end = video_end_by_demux(path, video_index)
            self.origin = first if self.origin is None else self.origin
            if end is not None and self.origin is not None:
                self.duration = max(end - self.origin, Fraction(0))

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray | None, bool]]:
        converted: tuple[av.VideoFrame, np.ndarray | None] | None = None
        for i, pts, frame in self._chosen():
            new = converted is None or converted[0] is not frame
            if new:
                converted = (frame, self._to_rgb(frame) if self.pictures else None)
            yield i, float(pts), converted[1], new

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self._size is None:
            self._rotation = frame.rotation  # the display matrix's counter-clockwise angle
            self._size = display_size(frame, self._sar, self._rotation, self.max_side)
        width, height = self._size
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA", threads=1)
        if self._rotation % 360:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=round(self._rotation / 90) % 4))
        return rgb

    def _chosen(self) -> Iterator[tuple[int, float, av.VideoFrame]]:
        """(i, pts on the clip timeline in seconds, source frame) for every sample i.

        Times are kept in integer ticks of the stream's time base and compared in integers
        (``i / fps < d * tb`` as ``i * fps.den * tb.den < d * tb.num * fps.num``): exact as with
        Fractions, without a Fraction per decoded frame (a tenth of the decode's CPU on 25 fps
        video). Seconds are ``d * tb.num / tb.den``, an int division Python rounds correctly, so
        they equal ``float(Fraction(d) * tb)`` bit for bit.
        """
        if self.duration is None:
            return
        n_samples = math.floor(self.duration * self.fps)
        with av.open(self.path) as container:
            stream = container.streams[self.index]
            stream.codec_context.thread_count = self.threads
            if self.threads > 1:
                stream.thread_type = "AUTO"
            self._sar = stream.codec_context.sample_aspect_ratio
            tb = stream.time_base
            num, den = tb.numerator, tb.denominator
            per_sample, per_tick = self.fps.denominator * den, num * self.fps.numerator
            origin = None if self.origin is None else math.floor(self.origin / tb)
            i = 0
            prev = prev_d = prev_s = prev_ticks = None
            gap = None  # the last gap between frames in ticks, for a last frame without a duration
            for frame in decoded_frames(container, stream, self.log):
                ticks = frame.pts
                if ticks is None:
                    ticks = 0 if prev is None else prev_ticks + max(prev.duration or 1, 1)
                if origin is None:
                    origin = ticks
                    self.origin = Fraction(ticks) * tb
                if prev is not None and ticks <= prev_ticks:
                    if ticks == prev_ticks:
                        prev = frame  # the later frame with an equal pts wins
                    continue
                d = ticks - origin
                seconds = d * num / den
                while i < n_samples and i * per_sample < d * per_tick:
                    # prev is the last kept frame; before the first one, samples take the first.
                    self.sample_frame.append(max(len(self.frame_pts) - 1, 0))
                    yield (i, prev_s, prev) if prev is not None else (i, seconds, frame)
                    i += 1
                if prev_d is not None:
                    gap = d - prev_d
                prev, prev_d, prev_s, prev_ticks = frame, d, seconds, ticks
                self.frame_pts.append(seconds)
                self.n_decoded += 1
            if prev is None:
                return
            if prev.duration:
                last = Fraction(prev.duration) * tb
            else:
                last = Fraction(gap) * tb if gap is not None else 1 / self.fps
            self.end = Fraction(prev_d) * tb + last
            self.truncated = self.header_duration and self.end < self.duration - TRUNCATION_TOLERANCE_S
            while i < n_samples and (not self.truncated or Fraction(i) / self.fps < self.end):
                self.sample_frame.append(len(self.frame_pts) - 1)
                yield i, prev_s, prev
                i += 1


def sample_frames(
    path: str | Path, *, fps: float = 5.0, max_side: int = 640, threads: int = 0
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(i, pts_s, rgb) for every sample of the file's video stream, as the decode stage samples them.

    rgb: (H, W, 3) uint8, longer side <= ``max_side``. For tools and tests that need whole frames;
    raises when the file cannot be opened or has no video stream.
    """
    found = probe(str(path))
    if found.video_index is None:
        raise ValueError(f"{path}: no video stream")
    sampler = VideoSampler(
        str(path),
        found.video_index,
        fps=Fraction(fps).limit_denominator(1_000_000),
        max_side=max_side,
        threads=threads or usable_cpus(),
    )
    for i, pts, rgb, _ in sampler:
        yield i, pts, rgb

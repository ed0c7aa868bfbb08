"""Encoding clips: RGB frames (H.264) and mono audio (AAC) at exact millisecond timestamps; in AVI, which
stores no timestamps, MPEG-4 Part 2 video at a constant rate and PCM audio."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from pipeline.atomic import atomic_path

# Timestamps of every clip written here are whole milliseconds, as in Hume-Vidmimic2's VFR files.
TIME_BASE = Fraction(1, 1000)


def _container_format(path: Path) -> str:
    formats = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi"}
    if path.suffix.lower() not in formats:
        raise ValueError(f"{path}: unsupported container suffix; use one of {sorted(formats)}")
    return formats[path.suffix.lower()]


def frame_durations_ms(pts_ms: Sequence[int]) -> list[int]:
    """Each frame lasts until the next one; the last lasts the median gap (40 ms for one frame)."""
    gaps = np.diff(np.asarray(pts_ms, np.int64))
    last = int(np.median(gaps)) if gaps.size else 40
    return [int(g) for g in gaps] + [max(last, 1)]


def mux_clip(
    path: str | Path,
    frames: Iterable[np.ndarray],
    pts_s: Sequence[float],
    *,
    declared_fps: float | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 23,
    preset: str = "veryfast",
    bframes: bool = True,
) -> None:
    """Encode RGB frames (H.264, yuv420p) and optional mono audio (AAC) into ``path``, atomically.

    frames: iterable of (H, W, 3) uint8 RGB, one per entry of ``pts_s`` (seconds, strictly
    increasing, stored as whole milliseconds in a 1/1000 time base). audio: (N,) float32 in
    [-1, 1] at ``sample_rate``; None writes no audio stream at all. ``declared_fps`` is the rate the
    stream declares (in Matroska it becomes the track's default duration, which ffprobe and PyAV
    report as both ``r_frame_rate`` and ``avg_frame_rate``; MP4 stores no rate, ffprobe guesses it
    from the timestamps); None declares the mean rate of ``pts_s``. The container is chosen by the
    suffix (.mp4, .mkv, .mov, .avi). Encoders run single-threaded with bit-exact muxing, so the same
    inputs give byte-identical files.

    AVI keeps no timestamps (frame k at k / rate): ``pts_s`` must lie on the grid of ``declared_fps``
    (required); the streams are MPEG-4 Part 2 without B-frames (as DivX / Xvid) and 16-bit PCM audio.
    """
    path = Path(path)
    pts_ms = _pts_ms(pts_s)
    if _container_format(path) == "avi":
        _mux_avi(path, frames, pts_s, declared_fps=declared_fps, audio=audio, sample_rate=sample_rate)
        return
    durations = dict(zip(pts_ms, frame_durations_ms(pts_ms), strict=True))
    if declared_fps is None:
        span = pts_ms[-1] + durations[pts_ms[-1]] - pts_ms[0]
        declared_fps = 1000.0 * len(pts_ms) / span
    rate = Fraction(declared_fps).limit_denominator(1001)
    fmt = _container_format(path)
    options = {"fflags": "+bitexact"}
    if fmt in ("mp4", "mov"):
        options["video_track_timescale"] = "1000"  # keep the millisecond pts exact in the file
    frame_iter = iter(frames)
    first = next(frame_iter)
    with atomic_path(path, path.suffix) as tmp:
        with av.open(str(tmp), "w", format=fmt, options=options) as container:
            video = _video_stream(container, rate, first.shape, crf=crf, preset=preset, bframes=bframes)
            sound = None
            if audio is not None:
                sound = container.add_stream("aac", rate=sample_rate, layout="mono")
                sound.codec_context.thread_count = 1
            written = 0
            for pts, image in zip(pts_ms, itertools.chain([first], frame_iter), strict=False):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts, frame.time_base = pts, TIME_BASE
                _mux_video(container, video.encode(frame), durations)
                written += 1
            if written != len(pts_ms):
                raise ValueError(f"got {written} frames for {len(pts_ms)} timestamps")
            _mux_video(container, video.encode(None), durations)
            if sound is not None:
                _mux_audio(container, sound, np.asarray(audio, np.float32), sample_rate)


def _pts_ms(pts_s: Sequence[float]) -> list[int]:
    pts_ms = [round(p * 1000) for p in pts_s]
    if not pts_ms or pts_ms[0] < 0 or any(b <= a for a, b in zip(pts_ms, pts_ms[1:], strict=False)):
        raise ValueError("pts_s must be non-negative and strictly increasing at millisecond resolution")
    return pts_ms


def _mux_avi(
    path: Path,
    frames: Iterable[np.ndarray],
    pts_s: Sequence[float],
    *,
    declared_fps: float | None,
    audio: np.ndarray | None,
    sample_rate: int,
) -> None:
    """mux_clip for AVI: frame k at k / declared_fps exactly (checked), MPEG-4 Part 2 + PCM s16le."""
    if declared_fps is None:
        raise ValueError(f"{path}: AVI stores no timestamps; give declared_fps (frames lie on its grid)")
    rate = Fraction(declared_fps).limit_denominator(1001)
    off_grid = [k for k, p in enumerate(pts_s) if abs(p - k / rate) > 5e-4]
    if off_grid:
        raise ValueError(
            f"{path}: AVI needs frame k at k / {declared_fps} s; frame {off_grid[0]} is at {pts_s[off_grid[0]]}"
        )
    frame_iter = iter(frames)
    first = next(frame_iter)
    with atomic_path(path, path.suffix) as tmp:
        with av.open(str(tmp), "w", format="avi", options={"fflags": "+bitexact"}) as container:
            video = container.add_stream("mpeg4", rate=rate)
            video.height, video.width = first.shape[:2]
            video.pix_fmt = "yuv420p"
            video.bit_rate = 4 * first.shape[0] * first.shape[1]  # bits per second: 0.16 bit per pixel at 25 fps
            video.codec_context.thread_count = 1
            video.options = {"threads": "1", "bf": "0"}
            sound = None
            if audio is not None:
                sound = container.add_stream("pcm_s16le", rate=sample_rate, layout="mono")
            written = 0
            for k, image in enumerate(itertools.chain([first], frame_iter)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts, frame.time_base = k, 1 / rate
                container.mux(video.encode(frame))
                written += 1
            if written != len(pts_s):
                raise ValueError(f"got {written} frames for {len(pts_s)} timestamps")
            container.mux(video.encode(None))
            if sound is not None:
                _mux_audio(container, sound, np.asarray(audio, np.float32), sample_rate, format="s16")


def _video_stream(container: Any, rate: Fraction, shape: tuple, *, crf: int, preset: str, bframes: bool) -> Any:
    """A single-threaded libx264 yuv420p stream with a 1/1000 time base."""
    video = container.add_stream("libx264", rate=rate)
    video.height, video.width = shape[:2]
    video.pix_fmt = "yuv420p"
    video.time_base = TIME_BASE
    video.codec_context.time_base = TIME_BASE
    video.codec_context.thread_count = 1
    video.options = {"crf": str(crf), "preset": preset, "threads": "1", "bf": "3" if bframes else "0"}
    return video


def _mux_video(container: Any, packets: Iterable[Any], durations: dict[int, int]) -> None:
    for packet in packets:
        # Explicit durations fix the clip's end (last pts + last duration) whatever rate is declared.
        packet.duration = durations[packet.pts]
        container.mux(packet)


def _mux_audio(container: Any, stream: Any, samples: np.ndarray, sample_rate: int, format: str = "fltp") -> None:
    chunk = 1024  # AAC frame size
    if format == "s16":
        samples = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)
    for start in range(0, len(samples), chunk):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + chunk], format=format, layout="mono")
        frame.sample_rate = sample_rate
        frame.pts, frame.time_base = start, Fraction(1, sample_rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))

"""Decode stage: frames at ``decode.fps`` chosen by timestamp, face crops, 16 kHz mono audio, status.

Timeline of a clip
------------------
t = 0 is the start of the video stream (its header ``start_time``, else its first frame's pts);
for an audio-only file, the start of the audio stream. Frames and audio share this origin: audio
that starts later than the video (the real .mov test clip starts its audio 2.43 s in) is padded
with zeros in front, audio that starts earlier is cropped, so sample n of the audio and a frame at
``time_s`` refer to the same instant.

Duration (``duration_s``)
-------------------------
Video file: the video stream's header duration; when the header has none (Matroska, WebM), the end
(pts + duration) of its last packet, found by a demux-only pass (no decoding). Audio-only file:
the audio stream's header duration, else the decoded length. The container's fps is never used.

Frames
------
``T = floor(duration * fps)``. Sample i (i = 0..T-1) at ``t_i = i / fps`` is the decoded frame
with the largest pts <= t_i, the frame on screen at t_i (samples before the first frame take the
first frame). Frames whose pts go backwards are dropped; a later frame with an equal pts replaces
the earlier one. Each chosen frame is converted to RGB inside the decoder (swscale area
averaging: no aliasing, 25% less CPU than bicubic) at ``max_side`` for its longer display side
(sample aspect ratio and rotation metadata applied, never upscaled); only chosen frames are
converted. A video whose decoded frames end more than
``TRUNCATION_TOLERANCE_S`` before the header's duration is truncated: it is ``corrupt`` and its
samples past the last frame's end are not written.

Audio
-----
swresample to mono float32 at ``sample_rate`` (flushed), aligned to the clip origin, then cropped
or zero-padded to ``floor(duration * sample_rate + 1/2)`` samples (this drops AAC's end padding).
The level is the RMS of those samples in dB full scale (floored at -200 for digital silence).

Status
------
``faults`` lists every fault found; ``status`` is the first of ``STATUS_PRIORITY`` present, else
``ok``; ``message`` joins the faults' messages in the same order ("" when ok). corrupt: the file is
missing, cannot be opened, has no audio or video stream, a stream fails to demux or decode (any
packet), the video is truncated, or its decoder process crashed twice. too_short: duration < ``min_duration_s``. no_video_stream: an
audio-only file (its audio is still decoded). no_audio_stream: no audio stream at all.
silent_audio: level below ``silence_dbfs``. no_face: fewer than ``min_face_fraction`` of the
sampled frames have a face (only for clips with at least one sampled frame).

Faces
-----
Each distinct source frame goes through ``pipeline.faces.FaceDetector`` (MediaPipe BlazeFace,
short-range model, full-range where it finds nothing; the largest face scoring at least
``min_face_score``); ``face_score`` is its confidence, ``crop`` a ``crop_size`` square around the
box with ``crop_margin`` of the box side on each edge (black outside the frame), INTER_AREA.

Outputs and reading
-------------------
``decode_manifest`` writes ``frames-NNNNN.parquet`` / ``audio-NNNNN.parquet`` (one pair per shard
of ``clips_per_shard`` manifest rows, in manifest order, each file renamed into place when
complete); ``iter_clip_frames`` and ``iter_clip_audio`` read them back shard by shard.
``decode_clip`` decodes one file in memory (for predicting on a single video) through exactly the
same code path. Output is deterministic: the same inputs give byte-identical shards, whatever
``workers`` is.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.atomic import atomic_path
from pipeline.config import DecodeParams
from pipeline.faces import FaceDetector, crop_face
from pipeline.features import AudioInput, VisualInput

STATUS_PRIORITY: tuple[str, ...] = (
    "corrupt",
    "too_short",
    "no_video_stream",
    "no_audio_stream",
    "silent_audio",
    "no_face",
)
STATUSES: tuple[str, ...] = STATUS_PRIORITY + ("ok",)

# Frames per Parquet row group (and per in-memory batch): 256 crops of 160x160 RGB are 20 MB, so
# a 20-minute clip (6,000 samples at 5 fps) is never held in memory at once.
FRAME_ROW_GROUP = 256
# Audio rows are buffered up to this many samples (64 MB of float32) before a row group is written.
AUDIO_ROW_GROUP_SAMPLES = 16_000_000
# A video whose frames end this much before its header duration is truncated (corrupt).
TRUNCATION_TOLERANCE_S = 0.5
SILENCE_FLOOR_DBFS = -200.0

AUDIO_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("samples", pa.list_(pa.float32())),
        pa.field("duration_s", pa.float64()),
    ]
)

STATUS_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("faults", pa.list_(pa.string()), nullable=False),
        pa.field("duration_s", pa.float64()),
        pa.field("n_frames", pa.int32(), nullable=False),
        pa.field("n_face_frames", pa.int32(), nullable=False),
        pa.field("face_fraction", pa.float64()),
        pa.field("has_video", pa.bool_(), nullable=False),
        pa.field("has_audio", pa.bool_(), nullable=False),
        pa.field("audio_dbfs", pa.float64()),
    ]
)


def frames_schema(crop_size: int) -> pa.Schema:
    """Schema of ``frames-NNNNN.parquet``; the crop side is in the metadata key ``crop_size``."""
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("frame_index", pa.int32(), nullable=False),
            pa.field("time_s", pa.float64(), nullable=False),
            pa.field("pts_s", pa.float64(), nullable=False),
            pa.field("face_score", pa.float32(), nullable=False),
            # Never null, NaN where no face: pyarrow 20 writes a null fixed-size list to Parquet as
            # an empty list and then cannot read the file back.
            pa.field("face_box", pa.list_(pa.float32(), 4), nullable=False),
            pa.field("crop", pa.binary()),
        ],
        metadata={b"crop_size": str(crop_size).encode()},
    )


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def frames_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / f"frames-{shard:05d}.parquet"


def audio_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / f"audio-{shard:05d}.parquet"


# ------------------------------------------------------------------------------ result types
@dataclass
class ClipReport:
    """The decode status of one clip (a row of the status table without ``split`` and ``path``)."""

    clip_id: str
    status: str
    message: str
    faults: list[str]
    duration_s: Optional[float]
    n_frames: int
    n_face_frames: int
    face_fraction: Optional[float]  # None when no frame was sampled
    has_video: bool
    has_audio: bool
    audio_dbfs: Optional[float]  # None when no audio was decoded


@dataclass
class FrameRows:
    """A batch of n consecutive sampled frames of one clip, as written to a frames shard."""

    clip_id: str
    frame_index: np.ndarray  # (n,) int32
    time_s: np.ndarray  # (n,) float64, frame_index / fps
    pts_s: np.ndarray  # (n,) float64, pts of the chosen source frame, clip timeline
    face_score: np.ndarray  # (n,) float32, 0 where no face
    face_box: np.ndarray  # (n, 4) float32 x0, y0, x1, y1 in decoded-frame pixels; NaN where no face
    crops: list[Optional[np.ndarray]]  # n entries, (S, S, 3) uint8 RGB or None

    def to_arrow(self, schema: pa.Schema) -> pa.Table:
        boxes = pa.FixedSizeListArray.from_arrays(pa.array(self.face_box.reshape(-1), pa.float32()), 4)
        crops = pa.array([None if c is None else c.tobytes() for c in self.crops], pa.binary())
        n = len(self.frame_index)
        return pa.Table.from_arrays(
            [
                pa.array([self.clip_id] * n, pa.string()),
                pa.array(self.frame_index, pa.int32()),
                pa.array(self.time_s, pa.float64()),
                pa.array(self.pts_s, pa.float64()),
                pa.array(self.face_score, pa.float32()),
                boxes,
                crops,
            ],
            schema=schema,
        )


@dataclass
class DecodedClip:
    """One clip decoded in memory by :func:`decode_clip`: T sampled frames and the audio track."""

    report: ClipReport
    visual: VisualInput  # times (T,), crops T x ((S, S, 3) uint8 | None), face_scores (T,)
    audio: AudioInput  # samples (N,) float32 at sample_rate, or None
    pts_s: np.ndarray  # (T,) float64 pts of the source frame of each sample
    face_boxes: np.ndarray  # (T, 4) float32, NaN rows where no face


# ------------------------------------------------------------------------------ probing
@dataclass
class _Probe:
    video_index: Optional[int]  # global stream index
    audio_index: Optional[int]
    audio_origin: Optional[Fraction]
    audio_duration: Optional[Fraction]


def _stream_times(stream: av.stream.Stream) -> tuple[Optional[Fraction], Optional[Fraction]]:
    tb = stream.time_base
    start = Fraction(stream.start_time) * tb if stream.start_time is not None and tb else None
    duration = Fraction(stream.duration) * tb if stream.duration and tb else None
    return start, duration


def _probe(path: str) -> _Probe:
    with av.open(path) as container:
        # Cover art in audio files is a video stream of one picture, not a video.
        videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        audios = list(container.streams.audio)
        video = videos[0] if videos else None
        audio = audios[0] if audios else None
        a_start, a_dur = _stream_times(audio) if audio is not None else (None, None)
        return _Probe(
            video_index=video.index if video is not None else None,
            audio_index=audio.index if audio is not None else None,
            audio_origin=a_start,
            audio_duration=a_dur,
        )


def _video_end_by_demux(path: str, index: int) -> tuple[Optional[Fraction], Optional[Fraction]]:
    """(first pts, end of the last packet) of stream ``index`` in seconds, reading packets only."""
    first = end = None
    with av.open(path) as container:
        stream = container.streams[index]
        tb = stream.time_base
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            pts = Fraction(packet.pts) * tb
            first = pts if first is None else min(first, pts)
            stop = pts + Fraction(packet.duration or 0) * tb
            end = stop if end is None else max(end, stop)
    return first, end


# ------------------------------------------------------------------------------ decoding
@dataclass
class _StreamLog:
    """What went wrong while demuxing and decoding one stream."""

    kind: str
    packets: int = 0
    decode_errors: int = 0
    first_error: str = ""
    demux_error: str = ""

    def problem(self) -> str:
        """A message when the stream failed to demux or decode, else ""."""
        parts = []
        if self.decode_errors:
            parts.append(
                f"{self.kind}: {self.decode_errors} of {self.packets} packets failed to decode "
                f"(first: {self.first_error})"
            )
        if self.demux_error:
            parts.append(f"{self.kind}: demuxing stopped: {self.demux_error}")
        return "; ".join(parts)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _decoded_frames(container: av.container.InputContainer, stream: av.stream.Stream, log: _StreamLog) -> Iterator:
    """Every frame of ``stream``; a packet that fails to decode is counted and skipped, as ffmpeg does."""
    try:
        for packet in container.demux(stream):
            if packet.size:
                log.packets += 1
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                log.decode_errors += 1
                log.first_error = log.first_error or _describe(error)
                continue
            yield from frames
    except av.error.FFmpegError as error:
        log.demux_error = _describe(error)
        with contextlib.suppress(av.error.FFmpegError):
            yield from stream.codec_context.decode(None)  # frames still buffered in the decoder


def _display_size(frame: av.VideoFrame, sar: Optional[Fraction], rotation: int, max_side: int) -> tuple[int, int]:
    """(width, height) to ask swscale for, before rotation: longer display side <= max_side."""
    width = frame.width * (float(sar) if sar else 1.0)
    height = float(frame.height)
    if rotation % 180:
        width, height = height, width
    scale = min(1.0, max_side / max(width, height))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    return (out_h, out_w) if rotation % 180 else (out_w, out_h)


class _VideoSampler:
    """Samples the video stream of one file by the rule of the module docstring.

    Iterating yields ``(i, pts_s, rgb, new)`` for i = 0..T-1 in order: rgb is (H, W, 3) uint8 with
    the longer side <= ``max_side``; ``new`` is False when the sample repeats the previous
    sample's source frame (then ``rgb`` is the same array). One streaming pass: sample i is emitted
    once a frame with pts > t_i arrives (or the stream ends), so only the previous frame is held,
    and only chosen frames are converted to RGB. After iterating, ``n_decoded``, ``end``,
    ``truncated`` and ``log`` describe the stream. The constructor raises when the file cannot be
    read; iterating raises on decoder bugs (a bad packet is only counted in ``log``).
    """

    def __init__(self, path: str, video_index: int, *, fps: Fraction, max_side: int, threads: int) -> None:
        self.path, self.index, self.fps, self.max_side, self.threads = path, video_index, fps, max_side, threads
        self.log = _StreamLog("video")
        self.n_decoded = 0
        self.end: Optional[Fraction] = None  # end of the last decoded frame (pts + duration), clip timeline
        self.truncated = False
        # Output geometry, fixed by the first converted frame (a mid-clip size change is rescaled).
        self._size: Optional[tuple[int, int]] = None
        self._sar: Optional[Fraction] = None
        self._rotation = 0
        with av.open(path) as container:
            stream = container.streams[video_index]
            self.origin, self.duration = _stream_times(stream)
        self.header_duration = self.duration is not None
        if self.duration is None:
            first, end = _video_end_by_demux(path, video_index)
            self.origin = first if self.origin is None else self.origin
            if end is not None and self.origin is not None:
                self.duration = max(end - self.origin, Fraction(0))

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray, bool]]:
        converted: Optional[tuple[av.VideoFrame, np.ndarray]] = None
        for i, pts, frame in self._chosen():
            new = converted is None or converted[0] is not frame
            if new:
                converted = (frame, self._to_rgb(frame))
            yield i, float(pts), converted[1], new

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self._size is None:
            self._rotation = frame.rotation  # the display matrix's counter-clockwise angle
            self._size = _display_size(frame, self._sar, self._rotation, self.max_side)
        width, height = self._size
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA", threads=1)
        if self._rotation % 360:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=round(self._rotation / 90) % 4))
        return rgb

    def _chosen(self) -> Iterator[tuple[int, Fraction, av.VideoFrame]]:
        """(i, pts on the clip timeline in seconds, source frame) for every sample i."""
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
            origin = None if self.origin is None else math.floor(self.origin / tb)
            i = 0
            prev = prev_rel = prev_ticks = None
            gap = None  # the last gap between frames, for a last frame without a duration
            for frame in _decoded_frames(container, stream, self.log):
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
                rel = Fraction(ticks - origin) * tb
                while i < n_samples and Fraction(i) / self.fps < rel:
                    yield (i, prev_rel, prev) if prev is not None else (i, rel, frame)
                    i += 1
                if prev_rel is not None:
                    gap = rel - prev_rel
                prev, prev_rel, prev_ticks = frame, rel, ticks
                self.n_decoded += 1
            if prev is None:
                return
            last = Fraction(prev.duration) * tb if prev.duration else (gap if gap is not None else 1 / self.fps)
            self.end = prev_rel + last
            self.truncated = self.header_duration and self.end < self.duration - TRUNCATION_TOLERANCE_S
            while i < n_samples and (not self.truncated or Fraction(i) / self.fps < self.end):
                yield i, prev_rel, prev
                i += 1


def sample_frames(
    path: str | Path, *, fps: float = 5.0, max_side: int = 640, threads: int = 0
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(i, pts_s, rgb) for every sample of the file's video stream, as the decode stage samples them.

    rgb: (H, W, 3) uint8, longer side <= ``max_side``. For tools and tests that need whole frames;
    raises when the file cannot be opened or has no video stream.
    """
    probe = _probe(str(path))
    if probe.video_index is None:
        raise ValueError(f"{path}: no video stream")
    sampler = _VideoSampler(
        str(path),
        probe.video_index,
        fps=Fraction(fps).limit_denominator(1_000_000),
        max_side=max_side,
        threads=threads or usable_cpus(),
    )
    for i, pts, rgb, _ in sampler:
        yield i, pts, rgb


def _decode_audio(
    path: str, index: int, *, sample_rate: int, origin: Fraction, log: _StreamLog
) -> Optional[np.ndarray]:
    """(N,) float32 mono at ``sample_rate`` starting at ``origin`` (clip timeline), or None when
    no frame decodes. Not yet cropped to the clip duration."""
    chunks: list[np.ndarray] = []
    start: Optional[Fraction] = None
    with av.open(path) as container:
        stream = container.streams[index]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        for frame in _decoded_frames(container, stream, log):
            if start is None:
                start = Fraction(frame.pts) * frame.time_base if frame.pts is not None else origin
            try:
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            except (av.error.FFmpegError, ValueError) as error:  # e.g. a mid-stream layout change
                log.decode_errors += 1
                log.first_error = log.first_error or _describe(error)
        if start is None:
            return None
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    shift = math.floor((start - origin) * sample_rate + Fraction(1, 2))
    if shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        samples = samples[-shift:]
    return samples.astype(np.float32, copy=False)


def _dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return SILENCE_FLOOR_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_FLOOR_DBFS, 20.0 * math.log10(rms)) if rms > 0 else SILENCE_FLOOR_DBFS


class _Faults:
    def __init__(self) -> None:
        self.messages: dict[str, list[str]] = {}

    def add(self, kind: str, message: str) -> None:
        self.messages.setdefault(kind, []).append(message)

    def resolve(self) -> tuple[str, str, list[str]]:
        """(status, message, faults) by ``STATUS_PRIORITY``."""
        kinds = [k for k in STATUS_PRIORITY if k in self.messages]
        message = "; ".join(m for k in kinds for m in self.messages[k])
        return (kinds[0] if kinds else "ok"), message, kinds


class ClipDecoder:
    """Decodes clips one after another with one face detector; create one per process.

    ``threads``: decoder threads per file (0: all CPUs). Use as a context manager.
    """

    def __init__(self, params: DecodeParams, *, threads: int = 0) -> None:
        self.params = params
        self.threads = threads or usable_cpus()
        self.fps = Fraction(params.fps).limit_denominator(1_000_000)
        self._detector = FaceDetector(min_score=params.min_face_score)

    def close(self) -> None:
        self._detector.close()

    def __enter__(self) -> "ClipDecoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decode(
        self, path: str | Path, clip_id: str, on_frames: Callable[[FrameRows], None]
    ) -> tuple[ClipReport, AudioInput]:
        """Decode one clip; frames go to ``on_frames`` in batches of at most ``FRAME_ROW_GROUP``.

        Never raises for a bad file: the fault goes into the report. Exceptions raised by
        ``on_frames`` (a full disk) do propagate.
        """
        path = str(path)
        params = self.params
        faults = _Faults()
        n_frames = n_faces = 0
        duration: Optional[Fraction] = None
        origin: Optional[Fraction] = None  # clip timeline origin in seconds, file time
        samples: Optional[np.ndarray] = None
        has_video = False

        def report() -> tuple[ClipReport, AudioInput]:
            status, message, kinds = faults.resolve()
            level = None if samples is None else _dbfs(samples)
            dur = None if duration is None else float(duration)
            audio = AudioInput(
                clip_id=clip_id,
                samples=samples,
                sample_rate=params.sample_rate,
                duration_s=dur if dur is not None else 0.0,
                reason="" if samples is not None else "no decodable audio",
            )
            return (
                ClipReport(
                    clip_id=clip_id,
                    status=status,
                    message=message,
                    faults=kinds,
                    duration_s=dur,
                    n_frames=n_frames,
                    n_face_frames=n_faces,
                    face_fraction=n_faces / n_frames if n_frames else None,
                    has_video=has_video,
                    has_audio=samples is not None,
                    audio_dbfs=level,
                ),
                audio,
            )

        if not os.path.isfile(path):
            faults.add("corrupt", f"file not found: {path}")
            return report()
        try:
            probe = _probe(path)
        except Exception as error:  # any failure to open is this file's fault, never the run's
            faults.add("corrupt", f"cannot open: {_describe(error)}")
            return report()
        if probe.video_index is None and probe.audio_index is None:
            faults.add("corrupt", "no audio or video stream")
            return report()

        if probe.video_index is not None:
            sampler = None
            try:
                sampler = _VideoSampler(
                    path, probe.video_index, fps=self.fps, max_side=params.max_side, threads=self.threads
                )
            except Exception as error:  # the stream cannot even be demuxed
                faults.add("corrupt", f"video: {_describe(error)}")
            if sampler is not None and sampler.duration is None:
                faults.add("corrupt", "video: no packet with a timestamp")
            elif sampler is not None:
                duration = sampler.duration
                try:
                    for rows in self._frame_batches(clip_id, sampler):
                        on_frames(rows)  # outside the except below: a writer error is not the clip's
                        n_frames += len(rows.frame_index)
                        n_faces += int(np.count_nonzero(rows.face_score > 0))
                except _DecodeFailure as failure:
                    faults.add("corrupt", f"video: {_describe(failure.__cause__)}")
            if sampler is not None:
                origin = sampler.origin  # known only once the first frame is decoded, for some files
                has_video = sampler.n_decoded > 0
                if sampler.log.problem():
                    faults.add("corrupt", sampler.log.problem())
                elif duration is not None and not has_video:
                    faults.add("corrupt", "video: no decodable frame")
                if sampler.truncated:
                    faults.add(
                        "corrupt",
                        f"video truncated: frames end at {float(sampler.end):.3f} s, "
                        f"header says {float(duration):.3f} s",
                    )
        else:
            origin = probe.audio_origin
            duration = probe.audio_duration

        if probe.audio_index is not None:
            audio_log = _StreamLog("audio")
            try:
                samples = _decode_audio(
                    path,
                    probe.audio_index,
                    sample_rate=params.sample_rate,
                    origin=origin if origin is not None else Fraction(0),
                    log=audio_log,
                )
            except Exception as error:  # a decoder bug on one file must not stop the run
                faults.add("corrupt", f"audio: {_describe(error)}")
            if audio_log.problem():
                faults.add("corrupt", audio_log.problem())
            if samples is None and not audio_log.problem():
                faults.add("corrupt", "audio: no decodable frame")
            if samples is not None:
                if duration is None:  # audio-only file without a header duration
                    duration = Fraction(len(samples), params.sample_rate)
                n_out = math.floor(duration * params.sample_rate + Fraction(1, 2))
                samples = samples[:n_out] if len(samples) >= n_out else np.pad(samples, (0, n_out - len(samples)))
        else:
            faults.add("no_audio_stream", "no audio stream")

        if probe.video_index is None:
            faults.add("no_video_stream", "no video stream (audio-only file)")
        if duration is not None and duration < Fraction(params.min_duration_s):
            faults.add("too_short", f"duration {float(duration):.3f} s < min_duration_s {params.min_duration_s} s")
        if samples is not None and _dbfs(samples) < params.silence_dbfs:
            faults.add("silent_audio", f"audio level {_dbfs(samples):.1f} dBFS < silence_dbfs {params.silence_dbfs}")
        if n_frames and n_faces / n_frames < params.min_face_fraction:
            faults.add(
                "no_face",
                f"{n_faces} of {n_frames} frames have a face "
                f"({n_faces / n_frames:.2f} < min_face_fraction {params.min_face_fraction})",
            )
        return report()

    def _frame_batches(self, clip_id: str, sampler: _VideoSampler) -> Iterator[FrameRows]:
        """Sampled frames face-detected and cropped, in batches of ``FRAME_ROW_GROUP``.

        Decoder-side exceptions come out as :class:`_DecodeFailure` so the caller can tell them
        from exceptions of its own frame sink.
        """
        params = self.params
        batch: list[tuple[int, float, float, Optional[tuple], Optional[np.ndarray]]] = []
        samples = iter(sampler)
        current = (0.0, None, None)
        while True:
            try:
                item = next(samples, None)
                if item is None:
                    break
                index, pts, rgb, new = item
                if new:  # a frame held over several samples is detected once
                    face = self._detector.detect(rgb)
                    current = (0.0, None, None)
                    if face is not None:
                        crop = crop_face(rgb, face.box, size=params.crop_size, margin=params.crop_margin)
                        current = (face.score, face.box, crop)
            except Exception as error:
                raise _DecodeFailure() from error
            batch.append((index, pts, *current))
            if len(batch) == FRAME_ROW_GROUP:
                yield self._rows(clip_id, batch)
                batch = []
        if batch:
            yield self._rows(clip_id, batch)

    def _rows(self, clip_id: str, batch: list) -> FrameRows:
        boxes = np.full((len(batch), 4), np.nan, np.float32)
        for row, (_, _, _, box, _) in enumerate(batch):
            if box is not None:
                boxes[row] = box
        index = np.array([b[0] for b in batch], np.int32)
        return FrameRows(
            clip_id=clip_id,
            frame_index=index,
            time_s=index / float(self.fps),
            pts_s=np.array([b[1] for b in batch], np.float64),
            face_score=np.array([b[2] for b in batch], np.float32),
            face_box=boxes,
            crops=[b[4] for b in batch],
        )


class _DecodeFailure(Exception):
    """Wraps an exception raised while decoding a clip (the cause), as opposed to writing it."""


def decode_clip(path: str | Path, params: DecodeParams, *, clip_id: Optional[str] = None, threads: int = 0) -> DecodedClip:
    """Decode one file in memory (frames, face crops, audio, status), as the decode stage does.

    For predicting on a single video; a 20-minute clip holds its 6,000 crops (460 MB at 160 px)
    in memory here, the stage streams them to disk instead. ``clip_id`` defaults to the file stem.
    """
    clip_id = Path(path).stem if clip_id is None else clip_id
    batches: list[FrameRows] = []
    with ClipDecoder(params, threads=threads) as decoder:
        report, audio = decoder.decode(path, clip_id, batches.append)

    def joined(name: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in batches]) if batches else empty

    visual = VisualInput(
        clip_id=clip_id,
        times=joined("time_s", np.zeros(0, np.float64)),
        crops=[crop for b in batches for crop in b.crops],
        face_scores=joined("face_score", np.zeros(0, np.float32)),
    )
    return DecodedClip(
        report=report,
        visual=visual,
        audio=audio,
        pts_s=joined("pts_s", np.zeros(0, np.float64)),
        face_boxes=joined("face_box", np.zeros((0, 4), np.float32)),
    )


# ------------------------------------------------------------------------------ shards
class _ShardWriter:
    """Streams one shard's frames and audio into two Parquet files, each renamed into place on close."""

    def __init__(self, out_dir: Path, shard: int, crop_size: int) -> None:
        self._stack = contextlib.ExitStack()
        self._frames_schema = frames_schema(crop_size)
        frames_tmp = self._stack.enter_context(atomic_path(frames_path(out_dir, shard), ".parquet"))
        audio_tmp = self._stack.enter_context(atomic_path(audio_path(out_dir, shard), ".parquet"))
        # Crops are raw pixels: zstd still saves about a fifth (real faces), for little CPU.
        self._frames = pq.ParquetWriter(frames_tmp, self._frames_schema, compression="zstd")
        self._audio = pq.ParquetWriter(audio_tmp, AUDIO_SCHEMA, compression="zstd")
        self._frame_buffer: list[FrameRows] = []
        self._frame_rows = 0
        self._audio_buffer: list[tuple[AudioInput, Optional[float]]] = []
        self._audio_samples = 0

    def add_frames(self, rows: FrameRows) -> None:
        self._frame_buffer.append(rows)
        self._frame_rows += len(rows.frame_index)
        if self._frame_rows >= FRAME_ROW_GROUP:
            self._flush_frames()

    def add_audio(self, audio: AudioInput, duration_s: Optional[float]) -> None:
        """Buffer one clip's audio row; ``duration_s`` None (unknown) is written as null."""
        self._audio_buffer.append((audio, duration_s))
        self._audio_samples += 0 if audio.samples is None else len(audio.samples)
        if self._audio_samples >= AUDIO_ROW_GROUP_SAMPLES:
            self._flush_audio()

    def _flush_frames(self) -> None:
        if self._frame_buffer:
            tables = [rows.to_arrow(self._frames_schema) for rows in self._frame_buffer]
            self._frames.write_table(pa.concat_tables(tables), row_group_size=self._frame_rows)
        self._frame_buffer, self._frame_rows = [], 0

    def _flush_audio(self) -> None:
        if self._audio_buffer:
            rows = [audio for audio, _ in self._audio_buffer]
            lengths = [0 if a.samples is None else len(a.samples) for a in rows]
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
            values = [a.samples for a in rows if a.samples is not None]
            flat = np.concatenate(values).astype(np.float32, copy=False) if values else np.zeros(0, np.float32)
            samples = pa.ListArray.from_arrays(
                pa.array(offsets, pa.int32()),
                pa.array(flat, pa.float32()),
                mask=pa.array([a.samples is None for a in rows]),
            )
            table = pa.Table.from_arrays(
                [
                    pa.array([a.clip_id for a in rows], pa.string()),
                    pa.array([a.sample_rate for a in rows], pa.int32()),
                    samples,
                    pa.array([d for _, d in self._audio_buffer], pa.float64()),
                ],
                schema=AUDIO_SCHEMA,
            )
            self._audio.write_table(table, row_group_size=len(self._audio_buffer))
        self._audio_buffer, self._audio_samples = [], 0

    def close(self) -> None:
        """Write what is buffered and rename both files into place."""
        self._flush_frames()
        self._flush_audio()
        self._frames.close()
        self._audio.close()
        self._stack.close()

    def abort(self) -> None:
        """Call from an ``except`` block: drop both temporary files, leave the final names untouched."""
        with contextlib.suppress(Exception):
            self._frames.close()
            self._audio.close()
        self._stack.__exit__(*sys.exc_info())


def _crashed(clip_id: str, sample_rate: int) -> tuple[ClipReport, AudioInput]:
    """Report and (empty) audio row of a clip whose decoder process died."""
    message = "the decoder process crashed on this file (retried alone: crashed again)"
    report = ClipReport(
        clip_id=clip_id,
        status="corrupt",
        message=message,
        faults=["corrupt"],
        duration_s=None,
        n_frames=0,
        n_face_frames=0,
        face_fraction=None,
        has_video=False,
        has_audio=False,
        audio_dbfs=None,
    )
    return report, AudioInput(clip_id=clip_id, samples=None, sample_rate=sample_rate, duration_s=0.0, reason=message)


def progress_path(out_dir: str | Path, shard: int) -> Path:
    """Scratch file holding the index (in its shard) of the clip a worker is decoding."""
    return Path(out_dir) / f".progress-{shard:05d}"


def decode_shard(
    clips: Sequence[tuple[str, str]],
    out_dir: str | Path,
    shard: int,
    params: DecodeParams,
    *,
    threads: int = 1,
    crashed: frozenset[int] = frozenset(),
) -> list[ClipReport]:
    """Decode ``clips`` ((clip_id, path) pairs) into ``frames-<shard>`` and ``audio-<shard>``.

    Rows follow ``clips`` order; every clip gets an audio row and a report, bad files included.
    Clips whose position is in ``crashed`` are not opened: they killed an earlier attempt. Before
    each clip, its position is written to :func:`progress_path` so a crash can be traced to it.
    """
    writer = _ShardWriter(Path(out_dir), shard, params.crop_size)
    marker = progress_path(out_dir, shard)
    reports = []
    try:
        with ClipDecoder(params, threads=threads) as decoder:
            for position, (clip_id, path) in enumerate(clips):
                if position in crashed:
                    report, audio = _crashed(clip_id, params.sample_rate)
                else:
                    marker.write_text(str(position))
                    report, audio = decoder.decode(path, clip_id, writer.add_frames)
                writer.add_audio(audio, report.duration_s)
                reports.append(report)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    marker.unlink(missing_ok=True)
    return reports


def _worker_init() -> None:
    # Decoder threads are set per file; keep OpenCV (only the crop resize) from adding its own pool.
    import cv2

    cv2.setNumThreads(1)


def _shard_task(args: tuple) -> tuple[int, list[ClipReport], float]:
    clips, out_dir, shard, params, threads, crashed = args
    start = time.perf_counter()
    reports = decode_shard(clips, out_dir, shard, params, threads=threads, crashed=crashed)
    return shard, reports, time.perf_counter() - start


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: a forked child would inherit the parent's decoder and MediaPipe threads' locks.
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init)


def decode_manifest(
    clips: Sequence[tuple[str, str]], out_dir: str | Path, params: DecodeParams, *, log: Callable[[str], None] = print
) -> list[ClipReport]:
    """Decode every (clip_id, path) into shards under ``out_dir``; one report per clip, in order.

    Shard k holds clips [k * clips_per_shard, (k + 1) * clips_per_shard). Shards run in
    ``workers`` processes with CPUs // workers decoder threads per file. A process that dies (a
    crash in a native decoder, the OOM killer) takes only its shard with it: the shard is run again
    alone, and each time it dies again the clip it was on is marked corrupt and skipped, so one
    bad file never stops the run. Shard files of an earlier run are removed first.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("frames-*.parquet"), *out_dir.glob("audio-*.parquet"), *_scratch_files(out_dir)]:
        stale.unlink()
    size = params.clips_per_shard
    shards = [list(clips[k : k + size]) for k in range(0, len(clips), size)]
    workers = max(1, min(params.workers, len(shards)))
    threads = max(1, usable_cpus() // workers)
    results: dict[int, list[ClipReport]] = {}
    broken: list[int] = []

    def done(shard: int, reports: list[ClipReport], seconds: float) -> None:
        results[shard] = reports
        bad = sum(r.status != "ok" for r in reports)
        log(f"decode: shard {shard + 1}/{len(shards)}: {len(reports)} clips, {bad} not ok, {seconds:.1f} s")

    with _pool(workers) as pool:
        futures = {
            pool.submit(_shard_task, (chunk, out_dir, k, params, threads, frozenset())): k
            for k, chunk in enumerate(shards)
        }
        for future in as_completed(futures):
            try:
                done(*future.result())
            except BrokenProcessPool:
                broken.append(futures[future])
    for shard in sorted(broken):
        crashed: set[int] = set()
        while shard not in results:
            marker = progress_path(out_dir, shard)
            marker.unlink(missing_ok=True)
            try:
                with _pool(1) as pool:
                    task = (shards[shard], out_dir, shard, params, threads, frozenset(crashed))
                    done(*pool.submit(_shard_task, task).result())
            except BrokenProcessPool:
                if not marker.is_file():
                    raise  # died outside any clip: nothing to blame, so stop
                position = int(marker.read_text())
                crashed.add(position)
                log(f"decode: shard {shard + 1}: the worker died on clip {shards[shard][position][0]}; skipping it")
    for leftover in _scratch_files(out_dir):  # a dead worker leaves its temporary shard files behind
        leftover.unlink()
    return [report for shard in range(len(shards)) for report in results[shard]]


def _scratch_files(out_dir: Path) -> list[Path]:
    """Progress markers and the temporary files of unfinished shard writes (atomic_path's names)."""
    return [*out_dir.glob(".progress-*"), *out_dir.glob(".frames-*.tmp"), *out_dir.glob(".audio-*.tmp")]


def status_table(reports: Sequence[ClipReport], splits: Sequence[str], paths: Sequence[str]) -> pa.Table:
    """The status table (``STATUS_SCHEMA``): one row per report, with the manifest's split and path."""
    columns = {name: [] for name in STATUS_SCHEMA.names}
    for report, split, path in zip(reports, splits, paths, strict=True):
        row = dict(report.__dict__, split=split, path=path)
        for name in STATUS_SCHEMA.names:
            columns[name].append(row[name])
    return pa.Table.from_pydict(columns, schema=STATUS_SCHEMA)


# ------------------------------------------------------------------------------ reading
def _shard_ids(decoded_dir: Path) -> list[int]:
    found = sorted(int(p.stem.split("-")[1]) for p in decoded_dir.glob("audio-*.parquet"))
    missing = [k for k in found if not frames_path(decoded_dir, k).is_file()]
    if missing:
        raise FileNotFoundError(f"{decoded_dir}: audio shards {missing} have no frames shard")
    return found


def _wanted(names: list[str], clip_ids: Optional[set[str]]) -> list[str]:
    return names if clip_ids is None else [c for c in names if c in clip_ids]


def iter_clip_frames(decoded_dir: str | Path, clip_ids: Optional[Iterable[str]] = None) -> Iterator[VisualInput]:
    """One :class:`VisualInput` per decoded clip (or per clip of ``clip_ids``), in manifest order.

    Reads one shard at a time and one clip's frames at a time, so memory stays at about one clip.
    Clips without sampled frames (no video, too short, unreadable) come out with T = 0; ids of
    ``clip_ids`` that are not in the decoded output are skipped.
    ``crops[t]`` is a (S, S, 3) uint8 array or None; ``face_scores[t]`` is 0 where there is no face.
    """
    decoded_dir = Path(decoded_dir)
    wanted_ids = None if clip_ids is None else set(clip_ids)
    for shard in _shard_ids(decoded_dir):
        names = pq.read_table(audio_path(decoded_dir, shard), columns=["clip_id"]).column(0).to_pylist()
        wanted = _wanted(names, wanted_ids)
        if not wanted:
            continue
        groups = _frame_groups(frames_path(decoded_dir, shard), set(wanted))
        pending = next(groups, None)
        for clip_id in wanted:
            if pending is not None and pending.clip_id == clip_id:
                yield pending
                pending = next(groups, None)
            else:
                yield VisualInput(
                    clip_id=clip_id,
                    times=np.zeros(0, np.float64),
                    crops=[],
                    face_scores=np.zeros(0, np.float32),
                )


def _frame_groups(path: Path, wanted: set[str]) -> Iterator[VisualInput]:
    """The clips of one frames shard, in file order, rows of a clip being contiguous."""
    handle = pq.ParquetFile(path)
    size = int(handle.schema_arrow.metadata[b"crop_size"])
    current: Optional[str] = None
    times: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    crops: list[Optional[np.ndarray]] = []

    def finish() -> VisualInput:
        return VisualInput(clip_id=current, times=np.concatenate(times), crops=crops, face_scores=np.concatenate(scores))

    value_set = pa.array(sorted(wanted), pa.string())
    for batch in handle.iter_batches(batch_size=FRAME_ROW_GROUP, columns=["clip_id", "time_s", "face_score", "crop"]):
        batch = batch.filter(pc.is_in(batch.column("clip_id"), value_set=value_set))
        if batch.num_rows == 0:
            continue
        ids = batch.column("clip_id").to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        for start, stop in zip(starts, [*starts[1:], len(ids)]):
            if ids[start] != current:
                if current is not None:
                    yield finish()
                current, times, scores, crops = ids[start], [], [], []
            times.append(batch.column("time_s").to_numpy()[start:stop])
            scores.append(batch.column("face_score").to_numpy()[start:stop])
            crops.extend(
                None if raw is None else np.frombuffer(raw, np.uint8).reshape(size, size, 3)
                for raw in batch.column("crop")[start:stop].to_pylist()
            )
    if current is not None:
        yield finish()


def iter_clip_audio(decoded_dir: str | Path, clip_ids: Optional[Iterable[str]] = None) -> Iterator[AudioInput]:
    """One :class:`AudioInput` per decoded clip (or per clip of ``clip_ids``), in manifest order.

    ``samples`` is (N,) float32 mono at ``sample_rate``, N = round(duration_s * sample_rate), or
    None (reason "no decodable audio") when the clip has no audio stream or it failed to decode.
    Silent tracks come with their samples; their status says silent_audio.
    """
    decoded_dir = Path(decoded_dir)
    wanted_ids = None if clip_ids is None else set(clip_ids)
    for shard in _shard_ids(decoded_dir):
        handle = pq.ParquetFile(audio_path(decoded_dir, shard))
        for batch in handle.iter_batches(batch_size=16):
            ids = batch.column("clip_id").to_pylist()
            rates = batch.column("sample_rate").to_pylist()
            durations = batch.column("duration_s").to_pylist()
            samples = batch.column("samples")
            for row, clip_id in enumerate(ids):
                if wanted_ids is not None and clip_id not in wanted_ids:
                    continue
                values = samples[row]
                present = values.is_valid
                yield AudioInput(
                    clip_id=clip_id,
                    samples=values.values.to_numpy().copy() if present else None,
                    sample_rate=rates[row],
                    duration_s=durations[row] if durations[row] is not None else 0.0,
                    reason="" if present else "no decodable audio",
                )

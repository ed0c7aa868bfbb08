"""The decode stage's output: its layout, schemas, the input types it hands on, and the readers.

This module is all that ASR and the feature stages depend on, so a change inside the decoder
(``pipeline/decode/``) does not rerun them; only a change of what is written here does.

Layout of ``data/decoded/`` (one pair per shard of ``decode.clips_per_shard`` manifest rows, in
manifest order)::

    frames-NNNNN.parquet   one row per sampled frame (FRAMES schema, row groups of FRAME_ROW_GROUP)
    audio-NNNNN.parquet    one row per clip (AUDIO_SCHEMA), also for clips without audio

and ``data/decode_status.parquet`` (STATUS_SCHEMA), one row per manifest row. The decoded frames'
times, ``data/timeline.parquet``, have their own module (``pipeline/timeline.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Frames per Parquet row group (and per in-memory batch): 256 crops of 160x160 RGB are 20 MB, so
# a 20-minute clip (6,000 samples at 5 fps) is never held in memory at once.
FRAME_ROW_GROUP = 256

AUDIO_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        # 16-bit PCM (:func:`to_pcm16`), half the bytes of float32; the readers hand on float32
        # (:func:`from_pcm16`). ASR rounds its input to this grid anyway
        # (``pipeline.whisper.models.as_16bit``), so its text is unchanged; shards written as
        # float32 before this are still read.
        pa.field("samples", pa.list_(pa.int16())),
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
        pa.field("audio_active_dbfs", pa.float64()),
        # "detector" (optionally "detector, left half") or "organiser crops" (pipeline.decode.faces).
        pa.field("face_source", pa.string(), nullable=False),
    ]
)


def frames_schema(crop_size: int, crop_format: str = "raw") -> pa.Schema:
    """Schema of ``frames-NNNNN.parquet``; the crop side and codec are in the metadata keys
    ``crop_size`` and ``crop_format`` (a shard without the latter holds raw crops)."""
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
        metadata={b"crop_size": str(crop_size).encode(), b"crop_format": crop_format.encode()},
    )


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1] -> int16 on the grid of ``pipeline.whisper.models.as_16bit``
    (x * 32768 rounded, clipped to [-32768, 32767]): ``from_pcm16(to_pcm16(x)) == as_16bit(x)``."""
    values = np.asarray(samples)
    if values.dtype != np.float32:
        values = values.astype(np.float64)
    # In the input's own precision: scaling by a power of two is exact and every float32 below 2**24
    # rounds to a whole number exactly, so float32 gives the float64 path's values without its
    # copies (a sixth of decode's own CPU on long videos went here).
    with np.errstate(over="ignore"):  # a float32 past 2**113 overflows to inf: clipped below like inf
        scaled = values * values.dtype.type(32768.0)
    if not np.isfinite(scaled).all():
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=32767.0, neginf=-32768.0)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype(np.int16)


def from_pcm16(samples: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1) (exact: every int16 / 32768 is a float32)."""
    return (np.asarray(samples, np.float32) / np.float32(32768.0)).astype(np.float32, copy=False)


def encode_crop(rgb: np.ndarray, crop_format: str, quality: int) -> bytes:
    """A (S, S, 3) uint8 RGB crop as stored: JPEG bytes (deterministic for the same input) or raw."""
    if crop_format == "raw":
        return np.ascontiguousarray(rgb).tobytes()
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding of a face crop failed")
    return data.tobytes()


def decode_crop(data: bytes, crop_format: str, size: int) -> np.ndarray:
    """Inverse of :func:`encode_crop`: (size, size, 3) uint8 RGB."""
    if crop_format == "raw":
        return np.frombuffer(data, np.uint8).reshape(size, size, 3)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape != (size, size, 3):
        raise ValueError(f"a stored face crop does not decode to {size}x{size} RGB")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(N,) float32 at ``rate`` -> float32 at ``target`` (polyphase; the same array when equal)."""
    if rate == target:
        return samples
    from scipy.signal import resample_poly

    divisor = np.gcd(int(rate), int(target))
    return resample_poly(samples, int(target) // divisor, int(rate) // divisor).astype(np.float32)


def frames_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / f"frames-{shard:05d}.parquet"


def audio_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / f"audio-{shard:05d}.parquet"


# ------------------------------------------------------------------------------ input types
@dataclass
class VisualInput:
    """Decoded frames of one clip: T face crops (None where no face) at their sample times."""

    clip_id: str
    times: np.ndarray  # (T,) float
    crops: list[np.ndarray | None]  # each (S, S, 3) uint8 RGB or None
    face_scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))  # (T,)


@dataclass
class AudioInput:
    """16 kHz mono float32 audio of one clip; samples is None when there is no usable audio."""

    clip_id: str
    samples: np.ndarray | None  # (N,) float32
    sample_rate: int
    duration_s: float
    reason: str = ""
    # Whisper encoder states of this audio that ASR computed (pipeline.whisper.encoder_states), (T, D)
    # float32, and the encoder's name; features@audio uses them in place of a second encoder pass.
    encoder_states: np.ndarray | None = None
    encoder_model: str = ""


# ------------------------------------------------------------------------------ reading
def shard_ids(decoded_dir: str | Path) -> list[int]:
    """The shard numbers present in ``decoded_dir`` (every audio shard must have its frames shard)."""
    decoded_dir = Path(decoded_dir)
    found = sorted(int(p.stem.split("-")[1]) for p in decoded_dir.glob("audio-*.parquet"))
    missing = [k for k in found if not frames_path(decoded_dir, k).is_file()]
    if missing:
        raise FileNotFoundError(f"{decoded_dir}: audio shards {missing} have no frames shard")
    return found


def _wanted(names: list[str], clip_ids: set[str] | None) -> list[str]:
    return names if clip_ids is None else [c for c in names if c in clip_ids]


def iter_clip_frames(decoded_dir: str | Path, clip_ids: Iterable[str] | None = None) -> Iterator[VisualInput]:
    """One :class:`VisualInput` per decoded clip (or per clip of ``clip_ids``), in manifest order.

    Reads one shard at a time and one clip's frames at a time, so memory stays at about one clip.
    Clips without sampled frames (no video, too short, unreadable) come out with T = 0; ids of
    ``clip_ids`` that are not in the decoded output are skipped.
    ``crops[t]`` is a (S, S, 3) uint8 array or None; ``face_scores[t]`` is 0 where there is no face.
    """
    decoded_dir = Path(decoded_dir)
    wanted_ids = None if clip_ids is None else set(clip_ids)
    for shard in shard_ids(decoded_dir):
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
                    clip_id=clip_id, times=np.zeros(0, np.float64), crops=[], face_scores=np.zeros(0, np.float32)
                )


class _ClipFrames:
    """The rows of one clip gathered across record batches."""

    def __init__(self, clip_id: str, size: int, crop_format: str) -> None:
        self.clip_id, self.size, self.crop_format = clip_id, size, crop_format
        self.times: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.crops: list[np.ndarray | None] = []

    def add(self, batch: pa.RecordBatch, start: int, stop: int) -> None:
        self.times.append(batch.column("time_s").to_numpy()[start:stop])
        self.scores.append(batch.column("face_score").to_numpy()[start:stop])
        self.crops.extend(
            None if raw is None else decode_crop(raw, self.crop_format, self.size)
            for raw in batch.column("crop")[start:stop].to_pylist()
        )

    def finish(self) -> VisualInput:
        return VisualInput(
            clip_id=self.clip_id,
            times=np.concatenate(self.times),
            crops=self.crops,
            face_scores=np.concatenate(self.scores),
        )


def _frame_groups(path: Path, wanted: set[str]) -> Iterator[VisualInput]:
    """The clips of one frames shard, in file order, rows of a clip being contiguous."""
    handle = pq.ParquetFile(path)
    meta = handle.schema_arrow.metadata
    size, crop_format = int(meta[b"crop_size"]), meta.get(b"crop_format", b"raw").decode()
    current: _ClipFrames | None = None
    value_set = pa.array(sorted(wanted), pa.string())
    for batch in handle.iter_batches(batch_size=FRAME_ROW_GROUP, columns=["clip_id", "time_s", "face_score", "crop"]):
        batch = batch.filter(pc.is_in(batch.column("clip_id"), value_set=value_set))
        if batch.num_rows == 0:
            continue
        ids = batch.column("clip_id").to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        for start, stop in zip(starts, [*starts[1:], len(ids)], strict=True):
            if current is None or ids[start] != current.clip_id:
                if current is not None:
                    yield current.finish()
                current = _ClipFrames(ids[start], size, crop_format)
            current.add(batch, start, stop)
    if current is not None:
        yield current.finish()


def _as_float(stored: np.ndarray) -> np.ndarray:
    """A stored track as float32: 16-bit PCM scaled, float32 (shards of before) copied."""
    return from_pcm16(stored) if stored.dtype == np.int16 else stored.astype(np.float32)


def iter_clip_audio(decoded_dir: str | Path, clip_ids: Iterable[str] | None = None) -> Iterator[AudioInput]:
    """One :class:`AudioInput` per decoded clip (or per clip of ``clip_ids``), in manifest order.

    ``samples`` is (N,) float32 mono at ``sample_rate``, N = round(duration_s * sample_rate), or
    None (reason "no decodable audio") when the clip has no audio stream or it failed to decode.
    Silent tracks come with their samples; their status says silent_audio.
    """
    decoded_dir = Path(decoded_dir)
    wanted_ids = None if clip_ids is None else set(clip_ids)
    for shard in shard_ids(decoded_dir):
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
                    samples=_as_float(values.values.to_numpy()) if present else None,
                    sample_rate=rates[row],
                    duration_s=durations[row] if durations[row] is not None else 0.0,
                    reason="" if present else "no decodable audio",
                )

"""Whisper encoder states that ASR hands to features@audio, so one encoder pass serves both.

ASR (faster-whisper, no VAD) encodes each clip's first 30 s window before decoding it; the audio
features with ``model: whisper-encoder`` are states of the same encoder on the same window
(``pipeline/features/audio`` cuts its windows as faster-whisper does). For a clip of at most
30 s that is its only window, so ASR keeps the states of its real frames and features@audio
pools them instead of running the encoder again: the encoder is 78% of ASR's CPU time and
nearly all of features@audio's (docs/scale.md).

Layout: ``<folder>/encoder-NNNNN.parquet``, one row per clip that has states (clip_id, frames T,
width D, states as float16 (T, D) row-major bytes); the file metadata names the encoder
(``model``: as ``WhisperEncoderExtractor.model_name``, e.g. ``whisper-encoder:base:int8``) and
the device it ran on. features@audio uses a clip's states only when its own model name matches;
float16 rounds a state by at most 2^-11 of its magnitude, far below what pooling keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import write_parquet
from pipeline.whisper.geometry import WINDOW_SAMPLES

STORED = np.dtype("<f2")
ROWS_PER_SHARD = 256

SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("n_frames", pa.int32(), nullable=False),
        pa.field("dim", pa.int32(), nullable=False),
        pa.field("states", pa.binary(), nullable=False),
    ]
)


def model_name(whisper_model: str, compute_type: str) -> str:
    """The name both sides compare: the audio extractor's ``model_name`` for the same encoder."""
    return f"whisper-encoder:{whisper_model}:{compute_type}"


def shareable(n_samples: int) -> bool:
    """A 16 kHz clip of this length fits one encoder window (its states are the whole clip's)."""
    return 0 < n_samples <= WINDOW_SAMPLES


def as_stored(states: np.ndarray) -> np.ndarray:
    """The states as a reader gets them back: rounded to float16, as float32."""
    return states.astype(STORED).astype(np.float32)


def shard_path(folder: str | Path, shard: int) -> Path:
    return Path(folder) / f"encoder-{shard:05d}.parquet"


class StatesWriter:
    """Writes (clip_id, (T, D) states) as they come, ``ROWS_PER_SHARD`` clips per shard file, each
    written atomically; shards of an earlier run are removed when it opens."""

    def __init__(self, folder: str | Path, *, model: str, device: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("encoder-*.parquet"):
            stale.unlink()
        self.metadata = {b"model": model.encode(), b"device": device.encode()}
        self.rows: list[dict] = []
        self.shards = 0
        self.clips = 0

    def add(self, clip_id: str, states: np.ndarray) -> None:
        states = np.ascontiguousarray(states, dtype=STORED)
        self.rows.append(
            {"clip_id": clip_id, "n_frames": states.shape[0], "dim": states.shape[1], "states": states.tobytes()}
        )
        if len(self.rows) == ROWS_PER_SHARD:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            table = pa.Table.from_pylist(self.rows, schema=SCHEMA.with_metadata(self.metadata))
            write_parquet(table, shard_path(self.folder, self.shards))
            self.shards, self.clips, self.rows = self.shards + 1, self.clips + len(self.rows), []

    def close(self) -> None:
        self._flush()


def index(folder: str | Path | None, model: str) -> dict[str, Path]:
    """{clip_id: shard file} of the clips whose states come from encoder ``model`` ({} when the
    folder is absent or None: features then encode every clip themselves)."""
    if folder is None or not Path(folder).is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).glob("encoder-*.parquet")):
        if shard_model(path) == model:
            found.update((c, path) for c in pq.read_table(path, columns=["clip_id"]).column(0).to_pylist())
    return found


def shard_model(path: Path) -> str:
    """The encoder a shard's states come from (its ``model`` metadata)."""
    return (pq.ParquetFile(path).schema_arrow.metadata or {}).get(b"model", b"").decode()


def read(where: dict[str, Path], clip_ids: Iterable[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(clip_id, (T, D) float32 states) for the ``clip_ids`` found in ``where`` (from :func:`index`),
    one shard file read per group of clips."""
    by_file: dict[Path, list[str]] = {}
    for c in clip_ids:
        if c in where:
            by_file.setdefault(where[c], []).append(c)
    for path, wanted in by_file.items():
        rows = pq.read_table(path, filters=[("clip_id", "in", wanted)]).to_pylist()
        for row in rows:
            flat = np.frombuffer(row["states"], STORED)
            yield row["clip_id"], flat.reshape(row["n_frames"], row["dim"]).astype(np.float32)

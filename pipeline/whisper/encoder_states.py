"""Whisper encoder states that ASR hands to features@audio, so one encoder pass serves both.

ASR (faster-whisper, no VAD) encodes a clip's windows before decoding them; the audio features with
``model: whisper-encoder`` are states of the same encoder on the regular 30 s cover of the clip
(``pipeline/whisper/windows.py``). ASR keeps the states of every cover window, encoding those its
decoder did not (``pipeline/asr/encoder_cover.py``), and features@audio pools them instead of
running the encoder again, at any clip length: the encoder is 78% of ASR's CPU time and nearly
all of features@audio's (docs/scale.md).

Layout: ``<folder>/encoder-NNNNN.parquet``, one row per clip that has states (clip_id, frames T,
width D, states as float16 (T, D) row-major bytes: the cover windows' real frames one after the
other, T = ``ceil(N / 320)``), one row group per clip, so a reader reads one clip without the rest
of its shard; the file metadata names the encoder
(``model``: as ``WhisperEncoderExtractor.model_name``, e.g. ``whisper-encoder:base:int8``) and
the device it ran on. features@audio uses a clip's states only when its own model name matches;
float16 rounds a state by at most 2^-11 of its magnitude, far below what pooling keeps.

Storage: 1500 x 512 float16 per 30 s window with base, 1.5 MB, 184 MB per media hour (zstd saves
about 7% on these). Pooled to 5 Hz before storing it would be 10x less, but ASR would then have to
know features@audio's pooling (a change of ``pool_fps`` would rerun ASR); 50 Hz keeps the stages
independent, at 4.8 GB for Aff-Wild2's 28 media hours (171 MB per media hour measured, docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import write_parquet

STORED = np.dtype("<f2")
ROWS_PER_SHARD = 256
# A shard is written once its clips' states reach this, so long clips never pile up in memory
# (256 clips of 20 minutes would be 15 GB).
BYTES_PER_SHARD = 256 << 20

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


def as_stored(states: np.ndarray) -> np.ndarray:
    """The states as a reader gets them back: rounded to float16, as float32."""
    return states.astype(STORED).astype(np.float32)


def shard_path(folder: str | Path, shard: int) -> Path:
    return Path(folder) / f"encoder-{shard:05d}.parquet"


class StatesWriter:
    """Writes (clip_id, (T, D) states) as they come, ``ROWS_PER_SHARD`` clips or
    ``BYTES_PER_SHARD`` per shard file, each written atomically; shards of an earlier run are
    removed when it opens."""

    def __init__(self, folder: str | Path, *, model: str, device: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("encoder-*.parquet"):
            stale.unlink()
        self.metadata = {b"model": model.encode(), b"device": device.encode()}
        self.rows: list[dict] = []
        self.bytes = 0
        self.shards = 0
        self.clips = 0

    def add(self, clip_id: str, states: np.ndarray) -> None:
        states = np.ascontiguousarray(states, dtype=STORED)
        self.rows.append(
            {"clip_id": clip_id, "n_frames": states.shape[0], "dim": states.shape[1], "states": states.tobytes()}
        )
        self.bytes += states.nbytes
        if len(self.rows) == ROWS_PER_SHARD or self.bytes >= BYTES_PER_SHARD:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            table = pa.Table.from_pylist(self.rows, schema=SCHEMA.with_metadata(self.metadata))
            # Statistics on clip_id only: they let a reader skip to one clip's row group; on the
            # states they would copy megabytes of bytes per clip into the footer.
            write_parquet(table, shard_path(self.folder, self.shards), row_group_size=1, write_statistics=["clip_id"])
            self.shards, self.clips, self.rows, self.bytes = self.shards + 1, self.clips + len(self.rows), [], 0

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
    one clip at a time (its own row group), so a reader holds one clip's states at once."""
    for c in clip_ids:
        if c in where:
            for row in pq.read_table(where[c], filters=[("clip_id", "==", c)]).to_pylist():
                flat = np.frombuffer(row["states"], STORED)
                yield row["clip_id"], flat.reshape(row["n_frames"], row["dim"]).astype(np.float32)

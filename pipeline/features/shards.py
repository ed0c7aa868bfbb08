"""Feature shards: the format that defines, writes and reads them (built by ``runner.py`` beside it).

A modality's features live in ``data/features/<modality>/<split>-NNNNN.parquet``: few large files
(DVC hashes directories of many small files slowly), one row per clip, columns

    clip_id string, modality string, model string, available bool, reason string, T int32, dim int32,
    values list<fixed_size_list<float16|float32, dim>>  (T frames of dim values)
    times list<float32>  (seconds from clip start),  valid list<bool>

and schema metadata ``modality``, ``model``, ``dim``, ``dtype``, ``fingerprint`` (no timestamps, so
the same inputs give byte-identical files). An unavailable record has T = 0 and a ``reason``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import atomic_path
from pipeline.features import ClipFeatures

DTYPES: dict[str, pa.DataType] = {"float16": pa.float16(), "float32": pa.float32()}
# Clips per Parquet row group: a reader asking for a few clips decodes only their row groups.
ROW_GROUP_CLIPS = 32


def feature_schema(*, dim: int, dtype: str) -> pa.Schema:
    """The Arrow schema of a shard whose values are ``dim`` wide and stored as ``dtype``."""
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("modality", pa.string(), nullable=False),
            pa.field("model", pa.string(), nullable=False),
            pa.field("available", pa.bool_(), nullable=False),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("T", pa.int32(), nullable=False),
            pa.field("dim", pa.int32(), nullable=False),
            pa.field("values", pa.list_(pa.list_(DTYPES[dtype], dim)), nullable=False),
            pa.field("times", pa.list_(pa.float32()), nullable=False),
            pa.field("valid", pa.list_(pa.bool_()), nullable=False),
        ]
    )


def _check_record(rec: ClipFeatures, dim: int) -> int:
    T = rec.values.shape[0] if rec.values.ndim == 2 else -1
    if rec.values.ndim != 2 or rec.values.shape[1] != dim:
        raise ValueError(f"clip {rec.clip_id}: values have shape {rec.values.shape}, expected (T, {dim})")
    if rec.times.shape != (T,) or rec.valid.shape != (T,):
        raise ValueError(f"clip {rec.clip_id}: times {rec.times.shape} / valid {rec.valid.shape} do not match T={T}")
    if not rec.available and T:
        raise ValueError(f"clip {rec.clip_id}: an unavailable record must have T = 0, got {T}")
    return T


def records_table(records: Sequence[ClipFeatures], *, modality: str, model_name: str, dim: int, dtype: str) -> pa.Table:
    """The shard table of ``records`` (values cast to ``dtype``; non-finite values raise)."""
    lengths = np.array([_check_record(r, dim) for r in records], np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    flat = np.concatenate([r.values for r in records]) if records else np.zeros((0, dim), np.float32)
    with np.errstate(over="ignore"):  # overflow is reported below, naming the clip
        flat = np.ascontiguousarray(flat, dtype=np.dtype(dtype))
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        owner = records[int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(bad)[0], side="right"))].clip_id
        hint = " (float16 overflow? set features.dtype: float32)" if dtype == "float16" else ""
        raise ValueError(f"clip {owner}: non-finite feature values after casting to {dtype}{hint}")
    values = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), DTYPES[dtype]), dim)
    times = np.concatenate([r.times for r in records]).astype(np.float32) if records else np.zeros(0, np.float32)
    valid = np.concatenate([r.valid for r in records]).astype(bool) if records else np.zeros(0, bool)
    n = len(records)
    columns = {
        "clip_id": pa.array([r.clip_id for r in records], pa.string()),
        "modality": pa.array([modality] * n, pa.string()),
        "model": pa.array([model_name] * n, pa.string()),
        "available": pa.array([bool(r.available) for r in records], pa.bool_()),
        "reason": pa.array([r.reason for r in records], pa.string()),
        "T": pa.array(lengths.astype(np.int32)),
        "dim": pa.array(np.full(n, dim, np.int32)),
        "values": pa.ListArray.from_arrays(offsets, values),
        "times": pa.ListArray.from_arrays(offsets, pa.array(times)),
        "valid": pa.ListArray.from_arrays(offsets, pa.array(valid)),
    }
    schema = feature_schema(dim=dim, dtype=dtype)
    return pa.Table.from_arrays([columns[f.name].cast(f.type) for f in schema], schema=schema)


def write_shard(
    path: str | os.PathLike[str],
    records: Sequence[ClipFeatures],
    *,
    modality: str,
    model_name: str,
    dim: int,
    dtype: str,
    fingerprint: str,
) -> None:
    """Write ``records`` to ``path`` atomically (temp name, fsync, rename), zstd, deterministic."""
    table = records_table(records, modality=modality, model_name=model_name, dim=dim, dtype=dtype)
    meta = {"modality": modality, "model": model_name, "dim": str(dim), "dtype": dtype, "fingerprint": fingerprint}
    table = table.replace_schema_metadata(meta)
    with atomic_path(path, ".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_CLIPS)


def shard_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The shard's schema metadata (modality, model, dim, dtype, fingerprint), read from the footer."""
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"ARROW:")}


def shard_fingerprint(path: str | os.PathLike[str]) -> str | None:
    """The fingerprint stored in ``path``; None if the file is absent, unreadable or has none."""
    try:
        return shard_metadata(path).get("fingerprint")
    except (OSError, pa.ArrowException):
        return None


def shard_paths(directory: str | os.PathLike[str]) -> list[Path]:
    """The shard files of a directory in name order (temporary files start with a dot)."""
    return sorted(p for p in Path(directory).glob("*.parquet") if not p.name.startswith("."))


class ModalityInfo(NamedTuple):
    """What a modality's shards hold: the feature width and the extractor's name."""

    dim: int
    model: str


def shard_info(directory: str | os.PathLike[str]) -> ModalityInfo:
    """Feature width and extractor name of a modality directory (all shards must agree)."""
    paths = shard_paths(directory)
    if not paths:
        raise FileNotFoundError(f"{directory}: no feature shards")
    infos = {(int(m["dim"]), m["model"]) for m in map(shard_metadata, paths)}
    if len(infos) != 1:
        raise ValueError(f"{directory}: shards disagree on (dim, model): {sorted(infos)}")
    return ModalityInfo(*infos.pop())


def _records(table: pa.Table) -> Iterator[ClipFeatures]:
    """(rows of a shard table) -> ClipFeatures with float32 values, one per row."""
    lengths = table.column("T").to_numpy()
    dim = int(table.column("dim")[0].as_py()) if table.num_rows else 0
    flat = table.column("values").combine_chunks().flatten().flatten().to_numpy(zero_copy_only=False)
    values = np.asarray(flat, np.float32).reshape(-1, dim) if dim else np.zeros((0, 0), np.float32)
    times = table.column("times").combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    valid = table.column("valid").combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(bool)
    ids = table.column("clip_id").to_pylist()
    available = table.column("available").to_pylist()
    reasons = table.column("reason").to_pylist()
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for i, clip_id in enumerate(ids):
        a, b = starts[i], starts[i + 1]
        yield ClipFeatures(
            clip_id=clip_id,
            values=values[a:b],
            times=times[a:b],
            valid=valid[a:b],
            available=bool(available[i]),
            reason=reasons[i],
        )


def read_features(
    directory: str | os.PathLike[str],
    *,
    clip_ids: Iterable[str] | None = None,
    modality: str | None = None,
) -> Iterator[ClipFeatures]:
    """Stream the records of a modality directory, shard by shard, in file then row order.

    With ``clip_ids``, only the row groups holding those clips are decoded (the ``clip_id`` column
    is read first); ids with no record are simply not yielded. ``modality``, when given, must match
    every shard's metadata (guards against pointing at the wrong folder). Values come back float32.
    """
    wanted = None if clip_ids is None else set(clip_ids)
    for path in shard_paths(directory):
        handle = pq.ParquetFile(path)
        meta = {k.decode(): v.decode() for k, v in (handle.schema_arrow.metadata or {}).items()}
        if modality is not None and meta.get("modality") != modality:
            raise ValueError(f"{path}: holds modality {meta.get('modality')!r}, expected {modality!r}")
        if wanted is None:
            for group in range(handle.num_row_groups):
                yield from _records(handle.read_row_group(group))
            continue
        ids = handle.read(columns=["clip_id"]).column(0).to_pylist()
        bounds = np.cumsum([0] + [handle.metadata.row_group(g).num_rows for g in range(handle.num_row_groups)])
        for group in range(handle.num_row_groups):
            rows = [i - bounds[group] for i in range(bounds[group], bounds[group + 1]) if ids[i] in wanted]
            if rows:
                yield from _records(handle.read_row_group(group).take(rows))

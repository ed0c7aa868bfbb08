"""The resumable runner behind ``stages/features.py``: plan, fingerprint, compute and write shards.

:func:`build_shards` keeps a shard whose final file carries the expected fingerprint and computes
any other, writing it atomically (``shards.write_shard``), so a killed run keeps its finished
shards and redoes only the rest; files not in the plan are removed at the end. Shards are computed
in the stage's process (local executor) or by workers that each load the extractor once (Ray
executor, ``pipeline.features.pooled``); either way the bytes are the same.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from pipeline.features import ClipFeatures, FeatureExtractor
from pipeline.features.shards import shard_fingerprint, shard_paths, write_shard

# Reason prefix of clips whose extraction raised, and the fingerprint mark of shards holding them.
ERROR_PREFIX = "error: "
# The reason of a clip skipped because it killed the worker extracting it twice (runtime.executors.units.run_units).
CRASHED = f"{ERROR_PREFIX}the worker process died on this clip twice (a crash in native code or the OOM killer)"
INCOMPLETE_PREFIX = "incomplete:"


def plan_shards(clip_ids_by_split: Mapping[str, Sequence[str]], clips_per_shard: int) -> list[tuple[str, list[str]]]:
    """Cut each split's clips (in the given order) into ``<split>-NNNNN.parquet`` shards."""
    if clips_per_shard < 1:
        raise ValueError(f"clips_per_shard must be >= 1, got {clips_per_shard}")
    plan = []
    for split, ids in clip_ids_by_split.items():
        ids = list(ids)
        for k in range(math.ceil(len(ids) / clips_per_shard)):
            plan.append((f"{split}-{k:05d}.parquet", ids[k * clips_per_shard : (k + 1) * clips_per_shard]))
    return plan


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def code_and_versions(modules: Iterable[str], packages: Iterable[str]) -> dict[str, str]:
    """{module: sha256 of its source, package: installed version}: what makes features change
    besides params and inputs (DVC reruns the stage on a code change; this makes the runner
    recompute instead of keeping shards with a matching fingerprint)."""
    import importlib
    import importlib.metadata

    out = {m: file_digest(importlib.import_module(m).__file__) for m in sorted(modules)}
    for name in sorted(packages):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def fingerprint_tasks(
    plan: Sequence[tuple[str, Sequence[str]]], *, config: Mapping[str, object], clip_digest: Callable[[str], str]
) -> list[ShardTask]:
    """One task per planned shard, fingerprinted by ``config`` (params, model, code, versions,
    device) and, per clip, its id and ``clip_digest(clip_id)`` (a hash of that clip's inputs)."""
    base = json.dumps(config, sort_keys=True, default=str).encode()
    tasks = []
    for name, ids in plan:
        h = hashlib.sha256(base)
        for clip_id in ids:
            h.update(f"\n{clip_id}\0{clip_digest(clip_id)}".encode())
        tasks.append(ShardTask(name=name, clip_ids=list(ids), fingerprint=h.hexdigest()))
    return tasks


# ------------------------------------------------------------------------------------- runner
@dataclass(frozen=True)
class Unavailable:
    """An input provider's verdict that a clip has no usable input for the modality."""

    clip_id: str
    reason: str


@dataclass(frozen=True)
class ShardTask:
    name: str
    clip_ids: list[str]
    fingerprint: str


@dataclass
class BuildReport:
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)  # missing-record reasons of computed clips
    available: int = 0


InputProvider = Callable[[list[str]], Iterable[object | Unavailable]]


def extract_robustly(extractor: FeatureExtractor, inputs: list) -> list[ClipFeatures]:
    """extract_batch, falling back to one clip at a time so one bad clip cannot sink a batch;
    a clip that still raises, or yields non-finite values, becomes a missing record."""
    try:
        out = extractor.extract_batch(inputs)
    except Exception:  # noqa: BLE001 - retried per clip below, where the culprit is recorded
        out = []
        for item in inputs:
            try:
                out.extend(extractor.extract_batch([item]))
            except Exception as error:  # noqa: BLE001 - one clip's failure is its missing record, never the shard's
                reason = f"{ERROR_PREFIX}{type(error).__name__}: {error}"
                print(f"warning: {item.clip_id}: {reason}", file=sys.stderr)
                out.append(ClipFeatures.missing(item.clip_id, extractor.dim, reason))
    return [
        r
        if np.isfinite(r.values).all()
        else ClipFeatures.missing(r.clip_id, extractor.dim, f"{ERROR_PREFIX}non-finite features")
        for r in out
    ]


def crash_marker(out_dir: str | os.PathLike[str], name: str) -> Path:
    """Scratch file where a worker computing shard ``name`` writes the positions of the clips it is
    extracting (``pipeline.runtime.run_units`` reads it when the worker dies)."""
    return Path(out_dir) / f".progress-{name.removesuffix('.parquet')}"


def _compute(
    task: ShardTask,
    *,
    extractor: FeatureExtractor,
    inputs: InputProvider,
    chunk_clips: int,
    bar: tqdm,
    crashes: Crashes,
) -> list[ClipFeatures]:
    position = {c: k for k, c in enumerate(task.clip_ids)}
    done = {c: ClipFeatures.missing(c, extractor.dim, CRASHED) for c in task.clip_ids if position[c] in crashes.crashed}
    pending: list = []

    def flush() -> None:
        if crashes.marker is not None:
            crashes.marker.write_text(" ".join(str(position[item.clip_id]) for item in pending))
        for rec in extract_robustly(extractor, pending):
            done[rec.clip_id] = rec
        if crashes.marker is not None:
            crashes.marker.unlink()
        bar.update(len(pending))
        pending.clear()

    for item in inputs([c for c in task.clip_ids if c not in done]):
        if isinstance(item, Unavailable):
            done[item.clip_id] = ClipFeatures.missing(item.clip_id, extractor.dim, item.reason)
            bar.update(1)
            continue
        alone = position[item.clip_id] in crashes.isolate
        if alone and pending:
            flush()
        pending.append(item)
        if alone or len(pending) >= chunk_clips:
            flush()
    if pending:
        flush()
    absent = [c for c in task.clip_ids if c not in done]
    bar.update(len(absent))
    return [done.get(c) or ClipFeatures.missing(c, extractor.dim, "no decoded input") for c in task.clip_ids]


@dataclass(frozen=True)
class Crashes:
    """What earlier attempts at a shard left (``pipeline.runtime.Unit``): clips that killed the
    worker (skipped as errors), clips to extract one at a time, and the marker to write (None in
    the stage's own process, where nothing can be retried)."""

    crashed: frozenset[int] = frozenset()
    isolate: frozenset[int] = frozenset()
    marker: Path | None = None


@dataclass(frozen=True)
class ShardOutcome:
    """A computed shard: its name and the availability of its clips."""

    name: str
    available: int
    reasons: dict[str, int]  # missing-record reasons


def compute_shard(
    task: ShardTask,
    out_dir: str | os.PathLike[str],
    *,
    extractor: FeatureExtractor,
    inputs: InputProvider,
    dtype: str,
    chunk_clips: int,
    bar: tqdm | None = None,
    crashes: Crashes | None = None,
) -> ShardOutcome:
    """Compute ``task``'s records and write its shard atomically into ``out_dir``."""
    crashes = crashes or Crashes()
    bar = bar if bar is not None else tqdm(disable=True)
    records = _compute(task, extractor=extractor, inputs=inputs, chunk_clips=chunk_clips, bar=bar, crashes=crashes)
    errors = [r.reason for r in records if r.reason.startswith(ERROR_PREFIX)]
    raised = [reason for reason in errors if reason != CRASHED]
    if raised and len(raised) == len(records):
        raise RuntimeError(f"{task.name}: extraction failed for every clip, first: {raised[0]}")
    write_shard(
        Path(out_dir) / task.name,
        records,
        modality=extractor.modality,
        model_name=extractor.model_name,
        dim=extractor.dim,
        dtype=dtype,
        # A shard with failed clips is kept for downstream stages but never matches its
        # fingerprint, so the next run retries it (the failure may have been transient).
        fingerprint=f"{INCOMPLETE_PREFIX}{task.fingerprint}" if errors else task.fingerprint,
    )
    reasons: dict[str, int] = {}
    for rec in records:
        if not rec.available:
            reasons[rec.reason] = reasons.get(rec.reason, 0) + 1
    return ShardOutcome(task.name, sum(r.available for r in records), reasons)


class ShardRunner(Protocol):
    """Computes and writes shards somewhere else than in this process (``pipeline.features.pooled``)."""

    def run(
        self, todo: Sequence[ShardTask], out_dir: Path, *, dtype: str, chunk_clips: int, bar: tqdm
    ) -> Iterator[ShardOutcome]: ...


def build_shards(
    out_dir: str | os.PathLike[str],
    tasks: Sequence[ShardTask],
    *,
    extractor: FeatureExtractor,
    inputs: InputProvider,
    dtype: str,
    chunk_clips: int,
    progress: bool = True,
    runner: ShardRunner | None = None,
) -> BuildReport:
    """Bring ``out_dir`` to exactly the shards of ``tasks``.

    ``inputs(clip_ids)`` yields, for those clips, the extractor's input objects or
    :class:`Unavailable`; the extractor sees ``chunk_clips`` clips per ``extract_batch`` call.
    A shard whose file already carries its task's fingerprint is skipped. The others are computed
    here, one after the other, or by ``runner`` (workers with their own extractor). Leftover
    temporary files of killed runs and shards not in ``tasks`` are deleted.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for tmp in [*out_dir.glob(".*.tmp"), *out_dir.glob(".progress-*")]:
        tmp.unlink()
    report = BuildReport()
    todo = []
    for task in tasks:
        if shard_fingerprint(out_dir / task.name) == task.fingerprint:
            report.skipped.append(task.name)
        else:
            todo.append(task)
    total = sum(len(t.clip_ids) for t in todo)
    with tqdm(
        total=total, unit="clip", desc=f"features@{extractor.modality}", disable=not progress, file=sys.stderr
    ) as bar:
        if runner is None:
            options = dict(extractor=extractor, inputs=inputs, dtype=dtype, chunk_clips=chunk_clips, bar=bar)
            outcomes = (compute_shard(task, out_dir, **options) for task in todo)
        else:
            outcomes = runner.run(todo, out_dir, dtype=dtype, chunk_clips=chunk_clips, bar=bar)
        for outcome in outcomes:
            report.computed.append(outcome.name)
            report.available += outcome.available
            for reason, count in outcome.reasons.items():
                report.reasons[reason] = report.reasons.get(reason, 0) + count
    order = {t.name: k for k, t in enumerate(tasks)}
    report.computed.sort(key=order.__getitem__)
    for leftover in [*out_dir.glob(".*.tmp"), *out_dir.glob(".progress-*")]:  # left by dead workers
        leftover.unlink()
    planned = {t.name for t in tasks}
    for stale in shard_paths(out_dir):
        if stale.name not in planned:
            stale.unlink()
            report.removed.append(stale.name)
    return report

"""A feature stage's shards on an executor's workers (``runtime.executor: ray``).

Each worker loads the modality's extractor and opens its input provider once (the pool's
initializer), then computes whole shards: one planned shard is one unit, written atomically by the
worker into the stage's output folder (a path every node shares), which returns a small
:class:`pipeline.features.shards.ShardOutcome`. The driver (``pipeline.features.shards.build_shards``) keeps the
fingerprint checks, the skipping of finished shards and the removal of stale ones. A worker that
dies is handled by ``pipeline.runtime.run_units``: the shard is run again alone, and a clip that
kills its worker twice becomes a missing record whose reason starts with ``error:``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from tqdm import tqdm

from pipeline.features import FeatureExtractor, build_extractor
from pipeline.features.inputs import provider
from pipeline.features.runner import Crashes, InputProvider, ShardOutcome, ShardTask, compute_shard, crash_marker
from pipeline.runtime.devices import deterministic_torch, usable_cpus
from pipeline.runtime.executors import Executor
from pipeline.runtime.executors.units import Unit, run_units


@dataclass(frozen=True)
class ExtractorSpec:
    """What a worker needs to build the extractor and its inputs (picklable: files, not tables)."""

    modality: str
    section: BaseModel  # the params section features.<modality>
    device: str
    decoded: str
    status: str
    asr: str
    encoder: str | None = None
    manifest: str = ""


_worker: tuple[FeatureExtractor, InputProvider] | None = None  # this worker process's extractor and inputs


def init_worker(spec: ExtractorSpec) -> None:
    """Pool initializer: the extractor with this worker's CPUs as threads, and the inputs."""
    global _worker
    deterministic_torch(usable_cpus())
    extractor = build_extractor(spec.modality, spec.section, device=spec.device)
    _, inputs = provider(
        spec.modality,
        manifest=spec.manifest,
        decoded=spec.decoded,
        status=spec.status,
        asr=spec.asr,
        encoder=spec.encoder,
        model=extractor.model_name,
    )
    _worker = (extractor, inputs)


def shard_unit(
    task: ShardTask, out_dir: Path, dtype: str, chunk_clips: int, crashed: frozenset[int], isolate: frozenset[int]
) -> ShardOutcome:
    """One unit: compute and write ``task``'s shard with this worker's extractor."""
    extractor, inputs = _worker
    crashes = Crashes(crashed, isolate, crash_marker(out_dir, task.name))
    return compute_shard(
        task, out_dir, extractor=extractor, inputs=inputs, dtype=dtype, chunk_clips=chunk_clips, crashes=crashes
    )


@dataclass(frozen=True)
class PooledShards:
    """A :class:`pipeline.features.shards.ShardRunner` on ``executor``'s workers, each set up by
    ``initializer(*initargs)`` (the stage's: :func:`init_worker` with an :class:`ExtractorSpec`)."""

    executor: Executor
    modality: str
    initializer: Callable[..., None]
    initargs: tuple

    def run(
        self, todo: Sequence[ShardTask], out_dir: Path, *, dtype: str, chunk_clips: int, bar: tqdm
    ) -> Iterator[ShardOutcome]:
        if not todo:
            return
        units = [
            Unit(
                key=k,
                name=f"features@{self.modality}: {task.name}",
                items=task.clip_ids,
                args=lambda crashed, isolate, task=task: (task, out_dir, dtype, chunk_clips, crashed, isolate),
                marker=crash_marker(out_dir, task.name),
            )
            for k, task in enumerate(todo)
        ]
        workers = min(self.executor.size(1), len(todo))
        for k, outcome in run_units(
            self.executor,
            shard_unit,
            units,
            workers=workers,
            initializer=self.initializer,
            initargs=self.initargs,
            log=lambda line: print(f"warning: {line}", file=sys.stderr, flush=True),
        ):
            bar.update(len(todo[k].clip_ids))
            yield outcome

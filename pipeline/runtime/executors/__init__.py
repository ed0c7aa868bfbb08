"""Executors: where decode, asr and the feature stages run their units of work (shards, clips).

The executor is chosen by ``runtime.executor`` in params.yaml: ``local`` (``local.py``), a spawn
pool of processes on this machine (the feature stages compute in their own process), or ``ray``
(``ray.py``, imported only then), Ray actors on a local Ray or a cluster. Both give the same
:class:`WorkerPool` (``base.py``): futures whose ``result()`` raises :class:`WorkerDied` when the
worker process died under the unit, so one piece of retry logic (``units.run_units``, ASR's own)
serves both. Outputs never depend on the executor: the same inputs give byte-identical files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.runtime.executors.base import WorkerDied, WorkerPool
from pipeline.runtime.executors.local import LOCAL, LocalExecutor

if TYPE_CHECKING:
    from pipeline.config import RuntimeParams

__all__ = ["LOCAL", "STAGES", "Executor", "LocalExecutor", "WorkerDied", "WorkerPool", "executor"]


class Executor(Protocol):
    """Runs one stage's units of work; made by :func:`open_executor` for that stage."""

    name: str  # "local" or "ray"
    # True when units must run on the executor's workers, never in the stage's own process.
    remote: bool

    def size(self, workers: int) -> int:
        """How many workers run at once: local, ``workers`` (the stage's param); Ray, as many as
        the cluster holds of the stage's per-worker CPUs and GPUs."""
        ...

    def threads(self, workers: int) -> int:
        """CPU threads of one worker of a pool of ``workers``."""
        ...

    def device(self, detect: Callable[[], str]) -> str:
        """The device the stage's model runs on: local, ``detect()`` here; Ray, "cuda" when the
        stage's actors get GPUs, else "cpu"."""
        ...

    def pool(
        self, workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = ()
    ) -> WorkerPool: ...


# The stages that run on an executor, and the RuntimeParams fields of their per-worker resources.
STAGES: tuple[str, ...] = ("decode", "asr", "features")


@contextlib.contextmanager
def open_executor(params: RuntimeParams, stage: str, *, workers: int = 1) -> Iterator[Executor]:
    """The executor ``params`` choose, for ``stage`` (one of STAGES): local, or Ray for the length
    of the block (a local Ray started here and stopped after, or the cluster at ``ray_address``).

    ``workers`` is how many processes the local executor gives the stage (decode.workers,
    asr.workers; 1 for a feature stage, which computes in its own process). A Ray worker's CPUs
    (``runtime.<stage>_cpus``) default to one local worker's share of this machine: the same
    thread count, so the same output bytes.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    if params.executor == "local":
        yield LOCAL
        return
    from pipeline.runtime.executors.ray import RayExecutor, ray_session

    cpus = getattr(params, f"{stage}_cpus") or LOCAL.threads(workers)
    gpus = getattr(params, f"{stage}_gpus", 0.0)
    with ray_session(params.ray_address):
        yield RayExecutor(cpus=cpus, gpus=gpus)

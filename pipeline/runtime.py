"""Where work runs: CPUs, devices, worker processes, executors. The one home of these helpers.

Every stage asks this module how many CPUs it may use, which device a model runtime sees, and for
its pool of worker processes, so the choices (affinity-aware CPU count, spawn start method, quiet
OpenMP) are made once.

Executors
---------
decode, asr and the feature stages run their units of work (shards, clips) on an executor, chosen
by ``runtime.executor`` in params.yaml: ``local``, a spawn pool of processes on this machine (the
feature stages compute in their own process), or ``ray``, Ray actors on a local Ray or a cluster
(``pipeline/ray_executor.py``, imported only then). Both give the same :class:`WorkerPool`: futures
whose ``result()`` raises :class:`WorkerDied` when the worker process died under the unit, so one
piece of retry logic (:func:`run_units`, ASR's own) serves both. Outputs never depend on the
executor: the same inputs give byte-identical files.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pipeline.config import RuntimeParams


def usable_cpus() -> int:
    """CPUs this process may use: inside a Ray worker the CPUs Ray assigned it (Ray does not narrow
    the affinity mask), else this process's affinity mask where the OS has one."""
    assigned = _ray_assigned_cpus()
    if assigned is not None:
        return assigned
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _ray_assigned_cpus() -> int | None:
    ray = sys.modules.get("ray")  # never imported here: a process that has not loaded Ray is no Ray worker
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    cpus = context.get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else None


def passive_openmp() -> None:
    """Make idle OpenMP threads sleep instead of spinning; call before torch is first imported.

    With other processes on the cores (a dvc queue with -j 2, another stage), spinning made the
    2-thread FER forward pass take 19 ms per face against 2.9 ms when passive (1 thread: 3.0 ms).
    libgomp reads the variable when it loads, so it must be set before the import.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def deterministic_torch(threads: int) -> None:
    """Passive OpenMP, ``threads`` intra-op threads and deterministic kernels: what a feature
    extractor needs for byte-identical outputs (call before torch is first imported)."""
    passive_openmp()
    import torch

    torch.set_num_threads(threads)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True


def torch_device() -> str:
    """ "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def ctranslate2_device() -> str:
    """ "cuda" when CTranslate2 (faster-whisper's runtime) sees a GPU, else "cpu"."""
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def spawn_pool(
    workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = ()
) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started with spawn.

    Never fork: the parent may already hold decoder, MediaPipe, OpenMP or CTranslate2 thread pools,
    whose locks a forked child would inherit in whatever state they were.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs)


# ------------------------------------------------------------------------------------ executors
class WorkerDied(RuntimeError):
    """The worker process running a unit died under it (a crash in native code, the OOM killer, a
    SIGKILL): a local pool's BrokenProcessPool, Ray's WorkerCrashedError or RayActorError."""


def relay(inner: Future, died: tuple[type[BaseException], ...]) -> Future:
    """A future that takes ``inner``'s outcome, with the exceptions in ``died`` turned into WorkerDied."""
    outer: Future = Future()

    def settle(done: Future) -> None:
        if done.cancelled():
            outer.cancel()
            outer.set_running_or_notify_cancel()  # wakes as_completed / wait
            return
        if not outer.set_running_or_notify_cancel():
            return  # its owner cancelled it
        error = done.exception()
        if error is None:
            outer.set_result(done.result())
        elif isinstance(error, died):
            dead = WorkerDied(f"the worker process died: {type(error).__name__}: {error}")
            dead.__cause__ = error
            outer.set_exception(dead)
        else:
            outer.set_exception(error)

    inner.add_done_callback(settle)
    return outer


class WorkerPool(Protocol):
    """Long-lived workers, each set up once by the pool's initializer (a model loaded once)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        """Run ``fn(*args)`` on a free worker; the future raises WorkerDied if the worker died."""
        ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...

    def __enter__(self) -> WorkerPool: ...

    def __exit__(self, *exc: object) -> None: ...


class _LocalPool:
    """A spawn pool whose futures report a dead worker as WorkerDied."""

    def __init__(self, workers: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
        self._pool = spawn_pool(workers, initializer=initializer, initargs=initargs)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        return relay(self._pool.submit(fn, *args), (BrokenProcessPool,))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __enter__(self) -> _LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class Executor(Protocol):
    """Runs one stage's units of work; made by :func:`executor` for that stage."""

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


@dataclass(frozen=True)
class LocalExecutor:
    """Processes on this machine sharing its CPUs: today's behaviour, and the default."""

    name: str = "local"
    remote: bool = False

    def size(self, workers: int) -> int:
        return workers

    def threads(self, workers: int) -> int:
        return max(1, usable_cpus() // workers)

    def device(self, detect: Callable[[], str]) -> str:
        return detect()

    def pool(self, workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> WorkerPool:
        return _LocalPool(workers, initializer, initargs)


LOCAL = LocalExecutor()
# The stages that run on an executor, and the RuntimeParams fields of their per-worker resources.
STAGES: tuple[str, ...] = ("decode", "asr", "features")


@contextlib.contextmanager
def executor(params: RuntimeParams, stage: str, *, workers: int = 1) -> Iterator[Executor]:
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
    from pipeline.ray_executor import RayExecutor, ray_session

    cpus = getattr(params, f"{stage}_cpus") or LOCAL.threads(workers)
    gpus = getattr(params, f"{stage}_gpus", 0.0)
    with ray_session(params.ray_address):
        yield RayExecutor(cpus=cpus, gpus=gpus)


# ------------------------------------------------------------------------ crash-safe unit runner
@dataclass(frozen=True)
class Unit:
    """One unit of work for :func:`run_units`: a shard of ``items`` (clip ids, by position).

    ``args(crashed, isolate)`` gives the unit function's arguments: it must skip the positions in
    ``crashed`` (reporting them as errors) and run those in ``isolate`` one at a time. While it
    works, the function writes to ``marker`` the positions it is on (space-separated) and removes
    the file when the unit is done.
    """

    key: Hashable
    name: str
    items: Sequence[str]
    args: Callable[[frozenset[int], frozenset[int]], tuple]
    marker: Path


def run_units(
    ex: Executor,
    fn: Callable[..., Any],
    units: Sequence[Unit],
    *,
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
    log: Callable[[str], None] = print,
) -> Iterator[tuple[Hashable, Any]]:
    """``(unit.key, fn(*unit.args(...)))`` for every unit, as they complete, on ``workers`` workers.

    A worker that dies (a crash in native code, the OOM killer) takes only its unit with it (a
    local pool loses every unit in flight): each such unit is run again alone, after the others,
    on a fresh worker. Each time it dies alone, its marker names the culprit: a single position is
    skipped from then on (``crashed``), several (a batch in flight) are run one at a time (so the
    next death names one). One bad clip never stops the run; a death outside any item raises.
    """
    broken: list[Unit] = []
    with ex.pool(workers, initializer=initializer, initargs=initargs) as pool:
        futures = {pool.submit(fn, *unit.args(frozenset(), frozenset())): unit for unit in units}
        for future in as_completed(futures):
            try:
                yield futures[future].key, future.result()
            except WorkerDied:
                broken.append(futures[future])
    order = {id(unit): k for k, unit in enumerate(units)}
    for unit in sorted(broken, key=lambda u: order[id(u)]):
        log(f"{unit.name}: its worker died; running it again alone")
        yield unit.key, _run_alone(ex, fn, unit, initializer, initargs, log)


def _run_alone(
    ex: Executor, fn: Callable[..., Any], unit: Unit, initializer: Callable[..., Any] | None, initargs: tuple, log
) -> Any:
    crashed: set[int] = set()
    isolate: set[int] = set()
    while True:
        unit.marker.unlink(missing_ok=True)
        try:
            with ex.pool(1, initializer=initializer, initargs=initargs) as pool:
                return pool.submit(fn, *unit.args(frozenset(crashed), frozenset(isolate))).result()
        except WorkerDied:
            if not unit.marker.is_file():
                raise  # died outside any item: nothing to blame, so stop
            positions = [int(p) for p in unit.marker.read_text().split()]
        if len(positions) == 1:
            crashed.add(positions[0])
            log(f"{unit.name}: the worker died on clip {unit.items[positions[0]]}; skipping it")
        else:
            isolate.update(positions)
            names = ", ".join(unit.items[p] for p in positions)
            log(f"{unit.name}: the worker died on a batch of clips ({names}); running them one at a time")

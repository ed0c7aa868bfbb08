"""The Ray executor (``runtime.executor: ray``): a stage's workers as Ray actors, locally or on a cluster.

Imported by ``pipeline.runtime.executors.executor`` only when Ray is chosen, so local runs never load Ray.
A pool is a set of actors, each set up once by the pool's initializer (a model loaded once) and
given one unit at a time by a dispatcher thread, as a process pool would; an actor that dies takes
only its unit with it (:class:`pipeline.runtime.executors.WorkerDied`) and leaves the pool, so the stage's
retry logic is the same as on a local pool. Work that writes files writes them on the workers, so
on a cluster the stage's output folders (``data/``) must be on storage every node shares, at the
same path, as must the repository itself (workers import its code from there).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.runtime.devices import usable_cpus
from pipeline.runtime.executors.base import WorkerDied, relay

# Environment a worker needs from the stage's process: a cluster's workers do not inherit it.
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "EMI_CACHE_DIR", "GLOG_minloglevel")
# A local Ray's shared-memory object store: units pass small arguments and reports (ASR: one clip's
# audio); Ray spills to disk past it.
OBJECT_STORE_BYTES = 256 * 2**20


def _ray(*, local: bool) -> Any:
    """The ray module, imported with the environment a local, loopback-only Ray needs."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local and "ray" not in sys.modules:
        # Ray otherwise replaces 127.0.0.1 by the host's address and its servers listen on every
        # interface; read once, when ray is imported. A local Ray then cannot take other nodes.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("runtime.executor: ray needs the ray package (`make setup` installs it)") from error
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray for the length of the block: a local Ray on 127.0.0.1 with this machine's CPUs (and
    GPUs) when ``address`` is None, else the cluster at ``address``; disconnected after. A Ray the
    caller already started (a test session, a notebook) is used as it is and left running."""
    ray = _ray(local=address is None)
    if ray.is_initialized():
        yield
        return
    temp = None
    if address is None:
        # Short: Ray's socket paths live under it and AF_UNIX paths stop at 107 bytes.
        temp = Path("/tmp") / f"emi-ray-{os.getpid()}"
        ray.init(
            address="local",
            num_cpus=usable_cpus(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=OBJECT_STORE_BYTES,
            _temp_dir=str(temp),
            logging_level="warning",
        )
    else:
        ray.init(address=address, logging_level="warning")
    try:
        yield
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def worker_env() -> dict[str, str]:
    """Environment variables of the stage's workers: this repository first on the import path (a
    worker must run this checkout's code, not an installed copy), offline model flags, and the
    OpenMP settings of a local worker process on this machine."""
    root = str(Path(__file__).resolve().parents[1])
    env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    paths = [root, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    # Ray sets OMP_NUM_THREADS to a worker's CPUs; a local process leaves OpenMP (and OpenBLAS) at
    # this machine's CPUs. CTranslate2 runs some work on that pool besides its cpu_threads, and its
    # Whisper decoder's float rounding follows the pool's size (ASR word probabilities moved by
    # ~0.01 with 1 against 2 threads): keep the local size, so the bytes are a local run's.
    env["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS") or str(usable_cpus())
    return env


def _died() -> tuple[type[BaseException], ...]:
    """Ray's exceptions for a worker process that died under its unit."""
    from ray import exceptions

    names = ("RayActorError", "WorkerCrashedError", "OutOfMemoryError", "NodeDiedError")
    return tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))


@dataclass(frozen=True)
class RayExecutor:
    """One stage's Ray workers: actors of ``cpus`` CPUs (their thread count) and ``gpus`` GPUs."""

    cpus: int
    gpus: float = 0.0
    name: str = "ray"
    remote: bool = True

    def size(self, workers: int) -> int:
        """Actors of this size that the cluster's live nodes hold at once (an actor runs on one node)."""
        import ray

        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        fits = sum(self._fits(resources) for resources in nodes)
        if fits < 1:
            largest = max(nodes, key=lambda r: r.get("CPU", 0), default={})
            raise RuntimeError(
                f"no node of the Ray cluster (largest: {largest.get('CPU', 0):g} CPUs, {largest.get('GPU', 0):g} "
                f"GPUs) holds one worker of {self.cpus} CPUs and {self.gpus:g} GPUs: lower runtime.*_cpus / *_gpus"
            )
        return fits

    def _fits(self, resources: dict[str, float]) -> int:
        fits = int(resources.get("CPU", 0) // self.cpus)
        if self.gpus:
            fits = min(fits, int(resources.get("GPU", 0) // self.gpus))
        return fits

    def threads(self, workers: int) -> int:
        return self.cpus

    def device(self, detect: Callable[[], str]) -> str:
        return "cuda" if self.gpus > 0 else "cpu"

    def pool(self, workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> RayPool:
        return RayPool(workers, cpus=self.cpus, gpus=self.gpus, initializer=initializer, initargs=initargs)


class EmiWorker:
    """A pool's actor (process title ``ray::EmiWorker``): set up once, then runs one unit at a time."""

    def __init__(self, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
        if initializer is not None:
            initializer(*initargs)

    def run(self, fn: Callable[..., Any], args: tuple) -> Any:
        return fn(*args)


class RayPool:
    """``workers`` EmiWorker actors fed one unit at a time from a queue (a local pool's semantics)."""

    def __init__(
        self, workers: int, *, cpus: int, gpus: float, initializer: Callable[..., Any] | None, initargs: tuple
    ) -> None:
        import ray

        self._ray = ray
        self._died = _died()
        actor = ray.remote(EmiWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0, runtime_env={"env_vars": worker_env()}
        )
        self._actors = [actor.remote(initializer, initargs) for _ in range(workers)]
        self._idle = list(self._actors)
        self._alive = len(self._actors)
        self._queue: deque[tuple[Future, Callable[..., Any], tuple]] = deque()
        self._running: dict[Any, tuple[Any, Future]] = {}  # ObjectRef -> (actor, future)
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, name="emi-ray-pool", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future:
        inner: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            self._queue.append((inner, fn, args))
            self._cond.notify_all()
        return relay(inner, self._died)

    def _dispatch(self) -> None:
        """(Holding the lock) give queued units to idle actors; fail them if no actor is left."""
        while self._queue and self._idle:
            inner, fn, args = self._queue.popleft()
            if inner.set_running_or_notify_cancel():
                actor = self._idle.pop(0)
                self._running[actor.run.remote(fn, args)] = (actor, inner)
        if self._queue and not self._alive:
            for inner, _, _ in self._queue:
                if inner.set_running_or_notify_cancel():
                    inner.set_exception(WorkerDied("every worker of the pool died"))
            self._queue.clear()

    def _pump(self) -> None:
        while True:
            with self._cond:
                self._dispatch()
                while not self._running and not (self._closed and not self._queue):
                    self._cond.wait()
                    self._dispatch()
                if not self._running:
                    return
                refs = list(self._running)
            ready, _ = self._ray.wait(refs, num_returns=1, timeout=0.1)
            for ref in ready:
                self._settle(ref)

    def _settle(self, ref: Any) -> None:
        with self._cond:
            actor, inner = self._running.pop(ref)
        try:
            inner.set_result(self._ray.get(ref))
            died = False
        except BaseException as error:  # noqa: BLE001 - handed to the unit's future, which raises it
            died = isinstance(error, self._died)
            inner.set_exception(error)
        with self._cond:
            if died:
                self._alive -= 1
                with contextlib.suppress(Exception):
                    self._ray.kill(actor)
            else:
                self._idle.append(actor)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking units; with ``wait``, let those running finish; then end every actor."""
        with self._cond:
            self._closed = True
            if cancel_futures:
                for inner, _, _ in self._queue:
                    inner.cancel()
                self._queue.clear()
            self._cond.notify_all()
        if wait:
            self._thread.join()
        for actor in self._actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

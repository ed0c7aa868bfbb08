"""The local executor: a spawn pool of processes on this machine (the default)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from pipeline.runtime.devices import usable_cpus
from pipeline.runtime.executors.base import WorkerPool, relay
from pipeline.runtime.pools import spawn_pool


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

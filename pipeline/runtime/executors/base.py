"""What every executor's pool gives: futures that report a dead worker as :class:`WorkerDied`."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol


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

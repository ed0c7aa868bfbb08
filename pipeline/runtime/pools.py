"""Process pools started with spawn (never fork): the demo renderer's, and the local executor's."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def spawn_pool(
    workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = ()
) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started with spawn.

    Never fork: the parent may already hold decoder, MediaPipe, OpenMP or CTranslate2 thread pools,
    whose locks a forked child would inherit in whatever state they were.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs)

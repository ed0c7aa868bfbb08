"""Where work runs: CPUs, devices, worker processes. The one home of these helpers.

Every stage asks this module how many CPUs it may use, which device a model runtime sees, and for
its pool of worker processes, so the choices (affinity-aware CPU count, spawn start method, quiet
OpenMP) are made once.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def passive_openmp() -> None:
    """Make idle OpenMP threads sleep instead of spinning; call before torch is first imported.

    With other processes on the cores (a dvc queue with -j 2, another stage), spinning made the
    2-thread FER forward pass take 19 ms per face against 2.9 ms when passive (1 thread: 3.0 ms).
    libgomp reads the variable when it loads, so it must be set before the import.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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

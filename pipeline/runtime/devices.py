"""CPUs and devices: the one home of these helpers.

Every stage asks this module how many CPUs it may use and which device a model runtime sees, so
the choices (affinity-aware CPU count, Ray's assignment inside a Ray worker, quiet OpenMP,
deterministic torch kernels) are made once.
"""

from __future__ import annotations

import os
import sys


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

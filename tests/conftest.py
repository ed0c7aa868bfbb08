"""Shared fixtures: the repo root, the shared real media, fixed seeds."""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALDATA = SHARED / "realdata"


@pytest.fixture(autouse=True)
def _fixed_seeds() -> None:
    random.seed(0)
    np.random.seed(0)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real media folder {REALDATA} is absent (it sits beside the repo in CI)")
    return REALDATA


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """One local Ray for the whole session, started the way a stage starts one: this machine's
    CPUs, every server on 127.0.0.1, a short temporary folder removed at the end. Stages run in
    this process use it (``pipeline.runtime.executors.ray.ray_session`` keeps a running Ray)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (make setup installs it)")
    from pipeline.runtime.executors.ray import ray_session

    with ray_session(None):
        yield


# Subprocesses (stages, dvc, predict) run this checkout's code wherever their working folder is, not
# whichever checkout the shared environment's editable install last pointed at.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

"""Running ``dvc`` and ``git`` from Python, and reading a dotted metric: shared by the gate and the grid."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class DvcError(RuntimeError):
    """A dvc command failed; the message holds the command and its error output."""


def run_command(repo: str | Path, argv: Sequence[str], *, stream: bool = False) -> tuple[int, str, str]:
    """Run ``argv`` in ``repo`` -> (exit code, stdout, stderr).

    The interpreter's bin directory leads PATH, so stage commands (``python -m stages...``) that
    DVC starts, also in queue workers, find this environment. Output goes through files, not
    pipes: ``dvc queue start`` leaves workers holding its stdout, and reading a pipe would wait
    for them to exit. ``stream``: the output goes to this process's own stdout and stderr as it
    comes (a long ``dvc repro``), and the returned texts are empty.
    """
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if stream:
        sys.stdout.flush()
        return subprocess.run(list(argv), cwd=repo, env=env, stdin=subprocess.DEVNULL).returncode, "", ""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(
            list(argv), cwd=repo, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        ).returncode
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def run_dvc(repo: str | Path, *args: str, check: bool = True) -> str:
    """``dvc <args>`` in ``repo`` with this interpreter's DVC; its stdout. Raises DvcError on failure."""
    code, out, err = run_command(repo, [sys.executable, "-m", "dvc", *args])
    if check and code != 0:
        raise DvcError(f"dvc {' '.join(args)} failed (exit {code}):\n{err.strip() or out.strip()}")
    return out


def metric_value(metrics: Any, dotted: str) -> float | None:
    """The number at ``dotted`` (``pearson.mean``) in a nested metrics dict; None if absent or not a number."""
    node: Any = metrics
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)) or node != node:
        return None
    return float(node)

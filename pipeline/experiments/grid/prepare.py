"""``run --prepare``: put what the tables need upstream into params.yaml, compute it once, commit.

A table's ``requires`` (the organisers' features for ``hume_baselines``) selects what the stages
upstream of the grid compute. Queued experiments run in copies of the HEAD commit and check an
upstream stage out of the DVC cache only when HEAD's dvc.lock matches it (the feature stages'
outputs are ``persist``, which DVC's run cache never stores), so these params cannot be ``-S``
overrides of each experiment: every experiment would extract the features again. ``prepare``
writes them (and the user's ``--set`` values, e.g. ``data.root``) into params.yaml with DVC's own
``-S`` code, runs ``dvc repro`` of the upstream stages once, and commits exactly params.yaml and
dvc.lock; ``run`` then finds everything upstream cached and committed and queues only training.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from pipeline.config import STAGE_SECTIONS, ParamsError, load_params
from pipeline.experiments.dvc_commands import run_command
from pipeline.experiments.grid.experiments import GridError
from pipeline.experiments.grid.overrides import PARAMS_FILE, format_value
from pipeline.experiments.grid.tables import Table

LOCK_FILE = "dvc.lock"


def upstream_stages(stages: Sequence[str]) -> list[str]:
    """The stages before the first of ``stages`` in ``STAGE_SECTIONS``, which lists them in
    pipeline order (``dvc repro`` of each also runs the stages it depends on)."""
    order = list(STAGE_SECTIONS)
    return order[: min(order.index(s) for s in stages)]


def _apply(repo: Path, strings: list[str]) -> None:
    """``key=value`` overrides into params.yaml as ``dvc exp run -S`` writes them; the file is left
    as it was when one does not apply, the result does not validate, or no value changes (DVC
    rewrites the whole file in its own style, which would rerun every stage that reads it)."""
    from dvc.exceptions import DvcException
    from dvc.utils.hydra import apply_overrides

    path = repo / PARAMS_FILE
    original = path.read_bytes()
    try:
        apply_overrides(path, strings)
        load_params(path)
    except (DvcException, ParamsError) as error:
        path.write_bytes(original)
        cause = f"{error}: {error.__cause__}" if error.__cause__ else str(error)
        raise GridError(f"--prepare: cannot set {' '.join(strings)} in {PARAMS_FILE}: {cause}") from None
    if yaml.safe_load(path.read_bytes()) == yaml.safe_load(original):
        path.write_bytes(original)


def _git(repo: Path, *argv: str) -> str:
    code, out, err = run_command(repo, ["git", *argv])
    if code != 0:
        raise GridError(f"git {' '.join(argv)} failed (exit {code}):\n{err.strip() or out.strip()}")
    return out


def prepare(repo: Path, tables: Sequence[Table], sets: Sequence[str], *, upstream: Sequence[str]) -> None:
    """Set the tables' ``requires`` and ``sets`` (``key=value``) in params.yaml, ``dvc repro`` the
    ``upstream`` stages (their output streams to this terminal) and commit params.yaml and dvc.lock."""
    strings = [f"{k}={format_value(v)}" for t in tables for k, v in (t.requires or {}).items()] + list(sets)
    if strings:
        _apply(repo, strings)
        print(f"[grid] {PARAMS_FILE}: {' '.join(strings)}", flush=True)
    print(f"[grid] computing the stages upstream of the grid once: dvc repro {' '.join(upstream)}", flush=True)
    code = run_command(repo, [sys.executable, "-m", "dvc", "repro", *upstream], stream=True)[0]
    if code != 0:
        raise GridError(
            f"--prepare: dvc repro {' '.join(upstream)} failed (exit {code}); {PARAMS_FILE} keeps the prepared "
            "values; fix the cause and rerun"
        )
    _git(repo, "add", "--", PARAMS_FILE, LOCK_FILE)
    if _git(repo, "status", "--porcelain", "--", PARAMS_FILE, LOCK_FILE).strip():
        message = f"grid: upstream stages for {', '.join(t.key for t in tables)}"
        detail = f"{PARAMS_FILE}: {' '.join(strings)}" if strings else "dvc repro of the upstream stages"
        _git(repo, "commit", "-q", "-m", message, "-m", detail, "--", PARAMS_FILE, LOCK_FILE)
        print(f"[grid] committed {PARAMS_FILE} and {LOCK_FILE}: {message}", flush=True)

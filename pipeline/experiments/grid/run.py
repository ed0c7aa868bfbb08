"""Running the grid: plan the experiments, check the upstream cache, queue, wait, render."""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import STAGE_SECTIONS, ParamsError, load_params, parse_params
from pipeline.experiments.dvc_commands import DvcError, run_command, run_dvc
from pipeline.experiments.grid.experiments import Baseline, GridError, parse_exp_show
from pipeline.experiments.grid.overrides import PARAMS_FILE, apply_overrides, format_value, set_args, signature
from pipeline.experiments.grid.render import render_all, write_pages
from pipeline.experiments.grid.tables import Table

_PENDING = ("Queued", "Running")


def _dvc(repo: Path, *args: str, check: bool = True) -> str:
    try:
        return run_dvc(repo, *args, check=check)
    except DvcError as error:
        raise GridError(str(error)) from None


def exp_show(repo: Path, rev: str | None = None) -> list[Baseline]:
    return parse_exp_show(json.loads(_dvc(repo, "exp", "show", "--json", *(["--rev", rev] if rev else []))))


def queue_status(repo: Path, names: Sequence[str]) -> tuple[dict[str, list[str]], int]:
    """Statuses (Queued, Running, Success, Failed) of queue tasks with these names, and the number
    of queue workers (active + idle), from ``dvc queue status`` (it has no JSON output)."""
    wanted = set(names)
    states: dict[str, list[str]] = {}
    workers = 0
    for line in _dvc(repo, "queue", "status").splitlines():
        tokens = line.split()
        if line.startswith("Worker status:"):
            workers = sum(int(n) for n in re.findall(r"(\d+) (?:active|idle)", line))
        elif len(tokens) >= 3 and tokens[1] in wanted:
            states.setdefault(tokens[1], []).append(tokens[-1])
    return states, workers


def grid_stages(tables: Sequence[Table]) -> list[str]:
    """The stages whose params the grid varies (``STAGE_SECTIONS``); all else must be cached."""
    varied = {key.split(".")[0] for t in tables for r in t.rows for key in t.overrides(r)} | {"train"}
    return [s for s, prefixes in STAGE_SECTIONS.items() if any(p.split(".")[0] in varied for p in prefixes)]


def _describe_changes(changes: Any) -> str:
    """``dvc status --json`` entries of one stage in a line: 'changed deps: a (modified), ...'."""
    parts = []
    for change in changes if isinstance(changes, list) else [changes]:
        if isinstance(change, dict):
            for kind, paths in change.items():
                items = [f"{k} ({v})" for k, v in paths.items()] if isinstance(paths, dict) else [str(paths)]
                more = f", +{len(items) - 4} more" if len(items) > 4 else ""
                parts.append(f"{kind}: {', '.join(items[:4])}{more}")
        else:
            parts.append(str(change))
    return "; ".join(parts)


def check_upstream(repo: Path, stages: Sequence[str], *, runs: int) -> None:
    """Refuse (GridError) unless every stage upstream of ``stages`` is up to date and committed."""
    problems = []
    if run_command(repo, ["git", "ls-files", "--error-unmatch", "dvc.lock"])[0] != 0:
        problems.append("dvc.lock is not committed in git")
    dirty = run_command(repo, ["git", "status", "--porcelain", "--", "dvc.lock", "dvc.yaml", PARAMS_FILE])[1]
    problems += [f"uncommitted change: {line.strip()}" for line in dirty.splitlines() if line.strip()]
    # --with-deps walks every ancestor; the grid's own stages are expected to rerun.
    status = json.loads(_dvc(repo, "status", "--json", "--with-deps", *stages) or "{}")
    stale = [stage for stage in status if stage not in stages]
    problems += [f"stage '{stage}' is not up to date: {_describe_changes(status[stage])}" for stage in stale]
    if problems:
        fix = (
            f"dvc repro {' '.join(stale)}; then " if stale else ""
        ) + f"git add dvc.lock dvc.yaml {PARAMS_FILE} && git commit"
        raise GridError(
            f"refusing to queue the grid: every stage upstream of {', '.join(stages)} must be up to date "
            "and committed first.\n  - "
            + "\n  - ".join(problems)
            + f"\nQueued experiments run in temporary copies of the HEAD commit: an upstream stage whose "
            f"committed dvc.lock entry matches its inputs is checked out from the DVC cache, anything "
            f"else is recomputed inside every one of the {runs} experiments (DVC issues #6465, #8980). "
            f"Rows are also matched to experiments relative to HEAD's {PARAMS_FILE}.\n"
            f"Fix: {fix}; then rerun."
        )


def unmet_requirements(tables: Sequence[Table], base_params: Mapping[str, Any]) -> list[str]:
    """'<table> needs <key>=<value> (params.yaml has <actual>)' for every ``Table.requires`` entry
    that ``base_params`` does not hold already (compared through the schema, as rows are)."""
    problems = []
    for table in tables:
        for key, value in (table.requires or {}).items():
            try:
                same = signature(apply_overrides(base_params, {key: value})) == signature(base_params)
            except KeyError:
                same = False
            if not same:
                node: Any = base_params
                for part in key.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                problems.append(f"{table.key} needs {key}={format_value(value)} ({PARAMS_FILE} has {node!r})")
    return problems


def check_requirements(tables: Sequence[Table], base_params: Mapping[str, Any]) -> None:
    """Refuse (GridError) when the configured params lack what a table needs upstream (``Table.requires``)."""
    problems = unmet_requirements(tables, base_params)
    if problems:
        keys = ",".join(t.key for t in tables if unmet_requirements([t], base_params))
        raise GridError(
            f"refusing to queue the grid: these tables read upstream features the committed {PARAMS_FILE} "
            "does not select:\n  - " + "\n  - ".join(problems) + "\nUpstream features are computed once "
            "and checked out by every experiment, never set per experiment. Fix: python -m "
            f"pipeline.experiments.grid run --tables {keys} --prepare (sets them in {PARAMS_FILE}, runs "
            f"dvc repro of the stages upstream of the grid, commits {PARAMS_FILE} and dvc.lock); or set "
            "them yourself, dvc repro, commit, and rerun."
        )


@dataclass(frozen=True)
class Job:
    """One experiment to run: a distinct configuration x seed, shared by ``rows``."""

    name: str
    overrides: dict[str, Any]
    seed: int
    signature: str
    rows: tuple[str, ...]


def plan(tables: Sequence[Table], seeds: int, base_params: Mapping[str, Any]) -> tuple[list[Job], list[str]]:
    """Jobs for every row x seed, one per distinct configuration, and warnings about rows of one
    table that the configured params make identical (an ablation that ablates nothing)."""
    jobs: dict[tuple[str, int], Job] = {}
    warnings = []
    for table in tables:
        seen: dict[str, str] = {}
        for row in table.rows:
            try:
                # A table's requirements are in the committed params it runs on (``run --prepare``).
                params = apply_overrides(base_params, {**(table.requires or {}), **table.overrides(row)})
                parse_params(params)
            except (KeyError, ParamsError) as error:
                raise GridError(f"row '{row.label}' of {table.key} does not apply to {PARAMS_FILE}: {error}") from None
            sig = signature(params)
            if sig in seen:
                warnings.append(f"{table.key}: rows '{seen[sig]}' and '{row.label}' have the same params")
            seen[sig] = row.label
            for seed in range(seeds):
                key = (sig, seed)
                tag = f"{table.key}/{row.slug}"
                if key in jobs:
                    jobs[key] = replace(jobs[key], rows=(*jobs[key].rows, tag))
                else:
                    name = f"{table.slug}-{row.slug}-s{seed}"
                    jobs[key] = Job(name, {**table.overrides(row), "train.seed": seed}, seed, sig, (tag,))
    return list(jobs.values()), warnings


def log(message: str) -> None:
    print(f"[grid] {message}", flush=True)


def wait_for_queue(repo: Path, names: Sequence[str], *, jobs: int, poll_s: float) -> None:
    """Poll ``dvc queue status`` until none of ``names`` is queued or running; restart the workers
    if tasks wait with no worker alive for three polls (a worker killed from outside)."""
    last = None
    idle_polls = 0
    while True:
        states, workers = queue_status(repo, names)
        pending = [n for n in names if any(s in _PENDING for s in states.get(n, []))]
        running = sum("Running" in states.get(n, []) for n in names)
        failed = sum("Failed" in states.get(n, []) and "Success" not in states.get(n, []) for n in names)
        summary = f"{len(names) - len(pending)}/{len(names)} finished ({failed} failed), {running} running"
        if summary != last:
            log(summary)
            last = summary
        if not pending:
            return
        idle_polls = idle_polls + 1 if workers == 0 else 0
        if idle_polls >= 3:
            log(f"{len(pending)} experiments wait but no queue worker runs: dvc queue start -j {jobs}")
            _dvc(repo, "queue", "start", "-j", str(jobs))
            idle_polls = 0
        time.sleep(poll_s)


def run(
    *,
    repo: Path,
    tables: Sequence[Table],
    seeds: int,
    jobs: int,
    out: Path,
    poll_s: float = 10.0,
    dry_run: bool = False,
    stages: Sequence[str] | None = None,
) -> int:
    """Queue every row x seed not yet finished, run the queue, wait, render; returns the exit code
    (0: every row has all seeds, 1: some experiments failed). Raises GridError before queueing
    anything when the upstream stages are not cached and committed."""
    base = yaml.safe_load((repo / PARAMS_FILE).read_text(encoding="utf-8"))
    load_params(repo / PARAMS_FILE)
    all_jobs, warnings = plan(tables, seeds, base)
    for warning in [*warnings, *unmet_requirements(tables, base)]:
        log(f"warning: {warning}")
    if dry_run:
        for job in all_jobs:
            shared = f"  # also {', '.join(job.rows[1:])}" if len(job.rows) > 1 else ""
            print(shlex.join(["dvc", "exp", "run", "--queue", "--name", job.name, *set_args(job.overrides)]) + shared)
        return 0
    check_requirements(tables, base)
    check_upstream(repo, stages or grid_stages(tables), runs=len(all_jobs))
    head = exp_show(repo)[0]
    finished = {(signature(e.params), e.seed) for e in head.experiments if e.finished}
    known = {e.name for e in head.experiments if e.name}
    states, _ = queue_status(repo, [j.name for j in all_jobs])
    todo = [j for j in all_jobs if (j.signature, j.seed) not in finished]
    waiting = [j.name for j in todo if any(s in _PENDING for s in states.get(j.name, []))]
    log(
        f"{len(all_jobs)} runs ({len(tables)} tables x {seeds} seeds, shared configurations once): "
        f"{len(all_jobs) - len(todo)} finished, {len(waiting)} already queued, {len(todo) - len(waiting)} to queue"
    )
    for job in todo:
        if job.name in waiting:
            continue
        # A same-named experiment that does not match (failed, or made by older grid rows) is replaced.
        force = ["--force"] if job.name in known or job.name in states else []
        _dvc(repo, "exp", "run", "--queue", "--name", job.name, *force, *set_args(job.overrides))
        log(f"queued {job.name} ({', '.join(job.rows)})")
    if todo:
        _dvc(repo, "queue", "start", "-j", str(jobs))
        wait_for_queue(repo, [j.name for j in todo], jobs=jobs, poll_s=poll_s)
    head = exp_show(repo)[0]
    done = {(signature(e.params), e.seed) for e in head.experiments if e.finished}
    failures = [j for j in all_jobs if (j.signature, j.seed) not in done]
    for job in failures:
        log(f"FAILED {job.name} ({', '.join(job.rows)}): see `dvc queue logs {job.name}`")
    for job in failures[:3]:
        tail = _dvc(repo, "queue", "logs", job.name, check=False).strip().splitlines()[-8:]
        print("\n".join(f"    {line}" for line in tail), flush=True)
    for path in write_pages(render_all(tables, head, seeds=seeds), out):
        log(f"wrote {path}")
    return 1 if failures else 0

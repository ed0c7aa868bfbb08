"""Experiments from ``dvc exp show --json``, matched to the tables' rows by their params."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.experiments.dvc_commands import metric_value
from pipeline.experiments.grid.overrides import PARAMS_FILE, apply_overrides, signature
from pipeline.experiments.grid.tables import Row, Table
from pipeline.tasks import TASKS

METRICS_FILE = "eval/metrics.json"
METRIC = "pearson.mean"  # task emi's headline, the papers' EMI tables' metric
# Every task's headline (pipeline.tasks): an experiment with one of them finished its evaluation.
HEADLINES: tuple[str, ...] = tuple(task.headline for task in TASKS.values())


class GridError(RuntimeError):
    """The grid cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Experiment:
    name: str | None
    rev: str
    state: str  # queued | running | success | failed
    timestamp: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def seed(self) -> Any:
        train = self.params.get("train")
        return train.get("seed") if isinstance(train, dict) else None

    def metric(self, dotted: str = METRIC) -> float | None:
        return metric_value(self.metrics, dotted)

    @property
    def finished(self) -> bool:
        """Succeeded and wrote its task's headline metric."""
        return self.state == "success" and any(self.metric(h) is not None for h in HEADLINES)


@dataclass(frozen=True)
class Baseline:
    rev: str
    name: str | None
    params: dict[str, Any]
    experiments: tuple[Experiment, ...]


def _file_data(section: Any, path: str) -> dict[str, Any]:
    entry = section.get(path) if isinstance(section, dict) else None
    data = entry.get("data") if isinstance(entry, dict) else None
    return data if isinstance(data, dict) else {}


def parse_exp_show(doc: Any) -> list[Baseline]:
    """Baselines and their experiments from ``dvc exp show --json`` (DVC 3.x layout).

    The layout: a list of commits ``{rev, name, data: {params: {file: {data}}, metrics: {...}},
    error, experiments: [{name, executor: {state, ...} | null, revs: [{rev, name, data, error}]}]}``;
    the ``workspace`` entry is skipped. A failed experiment carries its baseline's metrics in
    ``data``, so its state (not the presence of metrics) decides whether it counts.
    """
    if not isinstance(doc, list):
        raise GridError("dvc exp show --json: expected a list of commits (DVC 3.x layout)")
    baselines = []
    for commit in doc:
        if not isinstance(commit, dict) or commit.get("rev") == "workspace":
            continue
        experiments = []
        for exp in commit.get("experiments") or []:
            revs = exp.get("revs") or []
            if not revs:
                continue
            tip = revs[0]
            data = tip.get("data") or {}
            executor = exp.get("executor")
            state = (executor or {}).get("state") or "success"
            if tip.get("error"):
                state = "failed"
            experiments.append(
                Experiment(
                    name=exp.get("name") or tip.get("name"),
                    rev=str(tip.get("rev")),
                    state=str(state),
                    timestamp=data.get("timestamp"),
                    params=_file_data(data.get("params"), PARAMS_FILE),
                    metrics=_file_data(data.get("metrics"), METRICS_FILE),
                )
            )
        data = commit.get("data") or {}
        baselines.append(
            Baseline(
                rev=str(commit.get("rev")),
                name=commit.get("name"),
                params=_file_data(data.get("params"), PARAMS_FILE),
                experiments=tuple(experiments),
            )
        )
    return baselines


@dataclass(frozen=True)
class RowResult:
    """The finished experiments of one row: ``runs`` is ``(seed, value, name)`` sorted by seed."""

    table: Table
    row: Row
    runs: tuple[tuple[Any, float, str | None], ...] = ()

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(v for _, v, _ in self.runs) if self.runs else None

    @property
    def std(self) -> float | None:
        # Sample standard deviation (ddof=1): the spread a new seed would show.
        return statistics.stdev(v for _, v, _ in self.runs) if self.n >= 2 else None


def row_signature(table: Table, row: Row, base_params: Mapping[str, Any]) -> str | None:
    """Signature of the row's runs on ``base_params``; None if an override does not apply there."""
    try:
        return signature(apply_overrides(base_params, {**(table.requires or {}), **table.overrides(row)}))
    except KeyError:
        return None


def _seed_order(run: tuple[Any, float, str | None]) -> tuple[int, Any]:
    return (0, run[0]) if isinstance(run[0], int) else (1, repr(run[0]))


def collect(tables: Sequence[Table], baseline: Baseline) -> dict[tuple[str, str], RowResult]:
    """Match the baseline's successful experiments to rows by params; newest run per seed wins."""
    by_signature: dict[str, dict[Any, Experiment]] = {}
    for exp in baseline.experiments:
        if not exp.finished:
            continue
        per_seed = by_signature.setdefault(signature(exp.params), {})
        kept = per_seed.get(exp.seed)
        if kept is None or (exp.timestamp or "") > (kept.timestamp or ""):
            per_seed[exp.seed] = exp
    results = {}
    for table in tables:
        for row in table.rows:
            sig = row_signature(table, row, baseline.params)
            found = by_signature.get(sig, {}) if sig else {}
            scored = ((s, e.metric(table.metric), e.name) for s, e in found.items())
            runs = tuple(sorted((r for r in scored if r[1] is not None), key=_seed_order))
            results[(table.key, row.slug)] = RowResult(table=table, row=row, runs=runs)
    return results

"""The papers' ablation grids by one command: queue every row x seed as a DVC experiment, wait
for the queue, and write each table in its paper's layout beside the paper's own numbers.

    python -m pipeline.grid run [--tables taemi_components,taemi_anchor,ustc_modules,ustc_modalities]
                                [--seeds N] [--jobs 1] [--out grids/] [--poll 10] [--dry-run]
    python -m pipeline.grid render [--tables ...] [--seeds N] [--out grids/] [--rev REV]
                                   [--exp-show-json FILE]

A row is data (:data:`TABLES`): the paper's label, ``-S`` overrides relative to the configured
params.yaml (the table's fixed ones plus the row's own) and the paper's number. Experiments are
matched to rows by their params, not by name: an experiment counts for a row when its params equal
its baseline's params with the row's overrides applied (any ``train.seed``). So a configuration
shared by two tables (TAEMI full = Text-Anchored, USTC +TFE+QAM = V+A+T) is queued once, and a rerun
of ``run`` only queues what has no finished experiment yet (and waits for what is still queued).
Experiments are named ``<table>-<row>-s<seed>`` (``taemi3-no-lmt-s1``); seeds are ``0 .. N-1`` with N
from ``--seeds`` or ``grid.seeds`` in params.yaml.

``run`` refuses to queue unless every stage upstream of the ones the grid varies (``train``, from
``STAGE_SECTIONS``) is up to date and committed in dvc.lock, so each queued experiment checks those
outputs out of the DVC cache instead of recomputing them.

Only experiments are counted, never the baseline commit itself: its committed eval/metrics.json is
the CI-size gate baseline, not a run of its own params.yaml.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from pipeline.atomic import write_text
from pipeline.config import STAGE_SECTIONS, ParamsError, load_params, parse_params

PARAMS_FILE = "params.yaml"
METRICS_FILE = "eval/metrics.json"
METRIC = "pearson.mean"
_PENDING = ("Queued", "Running")
_SAFE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ALL3 = ["visual", "audio", "text"]


# ------------------------------------------------------------------------------------ the grids
@dataclass(frozen=True)
class Row:
    """One row of a paper's table.

    ``marks`` fills the table's mark columns (True: ✓, False: ×, None: blank); ``note`` becomes a
    numbered footnote under the table.
    """

    slug: str
    label: str
    overrides: Mapping[str, Any]
    paper: float
    marks: tuple[Optional[bool], ...] = ()
    note: Optional[str] = None


@dataclass(frozen=True)
class Table:
    """One ablation table: ``fixed`` overrides apply to every row; Δ is taken against ``reference``."""

    key: str
    slug: str
    title: str
    source: str
    label_header: str
    mark_headers: tuple[str, ...]
    fixed: Mapping[str, Any]
    rows: tuple[Row, ...]
    reference: str
    notes: tuple[str, ...] = ()

    def overrides(self, row: Row) -> dict[str, Any]:
        return {**self.fixed, **row.overrides}

    def row(self, slug: str) -> Row:
        return next(r for r in self.rows if r.slug == slug)


_TAEMI = "TAEMI, *Anchoring Emotions in Text* (ABAW 10; seeds/002)"
_USTC = "USTC, *Technical Approach for the EMI Challenge in the 8th ABAW Competition* (seeds/001)"
_TAEMI_ON = {
    "fusion.model": "taemi",
    "fusion.modalities": _ALL3,
    "fusion.concat": False,
    "fusion.cross_attention": True,
    "fusion.missing_tokens": True,
}
# Seed 001 fine-tunes with a weight EMA of decay 0.999 (its SGDR schedule is for the pretraining).
# The USTC paper uses no modality dropout; EMA 0.999 validates as it does.
_USTC_ON = {"fusion.model": "ustc", "train.ema": 0.999, "fusion.modality_dropout": 0.0}

TABLES: tuple[Table, ...] = (
    Table(
        key="taemi_components",
        slug="taemi3",
        title="TAEMI Table 3: ablation of the key components",
        source=_TAEMI + ", Table 3",
        label_header="Variant",
        mark_headers=("TA-CA", "LMT", "MD"),
        fixed={**_TAEMI_ON, "fusion.anchor": "text"},
        rows=(
            Row("concat", "Simple Feature Concat", {"fusion.concat": True}, 0.45, (None, None, None)),
            Row("no-taca", "w/o TA-CA", {"fusion.cross_attention": False}, 0.48, (False, True, True)),
            Row("no-lmt", "w/o LMT", {"fusion.missing_tokens": False}, 0.52, (True, False, True)),
            Row("no-md", "w/o MD", {"fusion.modality_dropout": 0.0}, 0.51, (True, True, False)),
            Row("full", "TAEMI (full)", {}, 0.55, (True, True, True)),
        ),
        reference="full",
        notes=("MD is the configured `fusion.modality_dropout` in every row but w/o MD (0).",),
    ),
    Table(
        key="taemi_anchor",
        slug="taemi4",
        title="TAEMI Table 4: choice of the anchor (query) modality",
        source=_TAEMI + ", Table 4",
        label_header="Anchor Modality (Query)",
        mark_headers=(),
        fixed=_TAEMI_ON,
        rows=(
            Row(
                "vision", "Vision-Anchored", {"fusion.anchor": "vision"}, 0.39,
                note="The paper's Table 4 prints 0.39 for Vision-Anchored; its text (Choice of Anchor "
                "Modality) says 0.49. The table's number is shown.",
            ),
            Row("audio", "Audio-Anchored", {"fusion.anchor": "audio"}, 0.51),
            Row("text", "Text-Anchored", {"fusion.anchor": "text"}, 0.55),
        ),
        reference="text",
    ),
    Table(
        key="ustc_modules",
        slug="ustc3",
        title="USTC Table 3: module ablation (TFE, QAM)",
        source=_USTC + ", Table 3",
        label_header="Experimental Combination",
        mark_headers=("TFE", "QAM"),
        fixed={**_USTC_ON, "fusion.modalities": _ALL3},
        rows=(
            Row("base", "Baseline (V+A+T)", {"fusion.ustc.tfe": False, "fusion.ustc.qam": False}, 0.3505, (False, False)),
            Row("tfe", "+TFE", {"fusion.ustc.tfe": True, "fusion.ustc.qam": False}, 0.4219, (True, False)),
            Row("qam", "+QAM", {"fusion.ustc.tfe": False, "fusion.ustc.qam": True}, 0.4881, (False, True)),
            Row("tfe-qam", "+TFE + QAM", {"fusion.ustc.tfe": True, "fusion.ustc.qam": True}, 0.5126, (True, True)),
        ),
        reference="tfe-qam",
        notes=("The paper's baseline is ViT+Wav2Vec2.0+BERT; ours uses the configured feature extractors.",),
    ),
    Table(
        key="ustc_modalities",
        slug="ustc4",
        title="USTC Table 4: modality subsets (TFE and QAM on)",
        source=_USTC + ", Table 4",
        label_header="Modalities",
        mark_headers=("Visual", "Audio", "Text"),
        fixed={**_USTC_ON, "fusion.ustc.tfe": True, "fusion.ustc.qam": True},
        rows=(
            Row("v", "V", {"fusion.modalities": ["visual"]}, 0.2683, (True, False, False)),
            Row("vt", "V+T", {"fusion.modalities": ["visual", "text"]}, 0.2834, (True, False, True)),
            Row("a", "A", {"fusion.modalities": ["audio"]}, 0.4703, (False, True, False)),
            Row("va", "V+A", {"fusion.modalities": ["visual", "audio"]}, 0.4846, (True, True, False)),
            Row("at", "A+T", {"fusion.modalities": ["audio", "text"]}, 0.4918, (False, True, True)),
            Row("vat", "V+A+T", {"fusion.modalities": _ALL3}, 0.5126, (True, True, True)),
        ),
        reference="vat",
    ),
)
TABLES_BY_KEY = {t.key: t for t in TABLES}


class GridError(RuntimeError):
    """The grid cannot run as asked; the message says why and what to do."""


# ----------------------------------------------------------------------------- overrides, params
def format_value(value: Any) -> str:
    """A value in Hydra's override grammar, the one ``dvc exp run -S`` parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        # Bare words like true/null would parse as bool/None: quote everything not a plain word.
        plain = _SAFE_WORD.fullmatch(value) and value.lower() not in ("true", "false", "null")
        return value if plain else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"no override syntax for {value!r}")


def set_args(overrides: Mapping[str, Any]) -> list[str]:
    """``["-S", "key=value", ...]`` for ``dvc exp run``."""
    args: list[str] = []
    for key, value in overrides.items():
        args += ["-S", f"{key}={format_value(value)}"]
    return args


def apply_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with dotted ``overrides`` set; like DVC, a key must already exist."""
    result = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise KeyError(f"override '{key}': '{part}' is not a section of {PARAMS_FILE}")
        if leaf not in node:
            raise KeyError(f"override '{key}': no such key in {PARAMS_FILE}")
        node[leaf] = copy.deepcopy(list(value) if isinstance(value, tuple) else value)
    return result


def signature(params: Mapping[str, Any]) -> str:
    """Canonical form of ``params`` without ``train.seed``: equal for runs of the same grid row.

    Validated through the schema when possible, so aliases (``vision``) and int/float spellings of
    the same value compare equal; params of an older schema compare as written.
    """
    try:
        canonical: Any = parse_params(dict(params)).model_dump(mode="json")
    except ParamsError:
        canonical = copy.deepcopy(dict(params))
    if isinstance(canonical.get("train"), dict):
        canonical["train"].pop("seed", None)
    return json.dumps(canonical, sort_keys=True)


# ------------------------------------------------------------------------------ dvc exp show JSON
@dataclass(frozen=True)
class Experiment:
    name: Optional[str]
    rev: str
    state: str  # queued | running | success | failed
    timestamp: Optional[str]
    params: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def seed(self) -> Any:
        train = self.params.get("train")
        return train.get("seed") if isinstance(train, dict) else None

    def metric(self, dotted: str = METRIC) -> Optional[float]:
        node: Any = self.metrics
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        if isinstance(node, bool) or not isinstance(node, (int, float)) or node != node:
            return None
        return float(node)


@dataclass(frozen=True)
class Baseline:
    rev: str
    name: Optional[str]
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
            experiments.append(Experiment(
                name=exp.get("name") or tip.get("name"),
                rev=str(tip.get("rev")),
                state=str(state),
                timestamp=data.get("timestamp"),
                params=_file_data(data.get("params"), PARAMS_FILE),
                metrics=_file_data(data.get("metrics"), METRICS_FILE),
            ))
        data = commit.get("data") or {}
        baselines.append(Baseline(
            rev=str(commit.get("rev")),
            name=commit.get("name"),
            params=_file_data(data.get("params"), PARAMS_FILE),
            experiments=tuple(experiments),
        ))
    return baselines


# --------------------------------------------------------------------------------- matching rows
@dataclass(frozen=True)
class RowResult:
    """The finished experiments of one row: ``runs`` is ``(seed, value, name)`` sorted by seed."""

    table: Table
    row: Row
    runs: tuple[tuple[Any, float, Optional[str]], ...] = ()

    @property
    def n(self) -> int:
        return len(self.runs)

    @property
    def mean(self) -> Optional[float]:
        return statistics.fmean(v for _, v, _ in self.runs) if self.runs else None

    @property
    def std(self) -> Optional[float]:
        # Sample standard deviation (ddof=1): the spread a new seed would show.
        return statistics.stdev(v for _, v, _ in self.runs) if self.n >= 2 else None


def row_signature(table: Table, row: Row, base_params: Mapping[str, Any]) -> Optional[str]:
    """Signature of the row's runs on ``base_params``; None if an override does not apply there."""
    try:
        return signature(apply_overrides(base_params, table.overrides(row)))
    except KeyError:
        return None


def _seed_order(run: tuple[Any, float, Optional[str]]) -> tuple[int, Any]:
    return (0, run[0]) if isinstance(run[0], int) else (1, repr(run[0]))


def collect(tables: Sequence[Table], baseline: Baseline) -> dict[tuple[str, str], RowResult]:
    """Match the baseline's successful experiments to rows by params; newest run per seed wins."""
    by_signature: dict[str, dict[Any, Experiment]] = {}
    for exp in baseline.experiments:
        if exp.state != "success" or exp.metric() is None:
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
            runs = tuple(sorted(((s, e.metric(), e.name) for s, e in found.items()), key=_seed_order))
            results[(table.key, row.slug)] = RowResult(table=table, row=row, runs=runs)
    return results


# ------------------------------------------------------------------------------------- markdown
def _ours(result: RowResult) -> str:
    if result.mean is None:
        return "–"
    if result.std is None:
        return f"{result.mean:.4f} (1 seed)"
    return f"{result.mean:.4f} ± {result.std:.4f} ({result.n} seeds)"


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


def _mark(mark: Optional[bool]) -> str:
    return "" if mark is None else ("✓" if mark else "×")


def render_table(table: Table, results: Mapping[tuple[str, str], RowResult], *, seeds: Optional[int] = None) -> str:
    """Markdown of one table in the paper's layout, ours beside the paper's numbers, Δ vs reference.

    ``seeds``: the expected seeds ``0 .. seeds-1``; rows missing some are listed as incomplete.
    """
    ref = results[(table.key, table.reference)]
    ref_row = table.row(table.reference)
    header = [table.label_header, *table.mark_headers, "Mean ρ_val (ours)", "Δ (ours)", "Mean ρ_val (paper)", "Δ (paper)"]
    align = ["---", *([":-:"] * len(table.mark_headers)), "--:", "--:", "--:", "--:"]
    lines = [f"## {table.title}", "", f"Source: {table.source}.", "",
             "| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    footnotes: list[str] = []
    missing: list[str] = []
    for row in table.rows:
        result = results[(table.key, row.slug)]
        label = row.label
        if row.note:
            footnotes.append(row.note)
            label += f" [{len(footnotes)}]"
        if row.slug == table.reference:
            delta_ours = delta_paper = "ref"
        else:
            delta_ours = "–" if result.mean is None or ref.mean is None else f"{result.mean - ref.mean:+.4f}"
            digits = max(_decimals(row.paper), _decimals(ref_row.paper))
            delta_paper = f"{row.paper - ref_row.paper:+.{digits}f}"
        cells = [label, *(_mark(m) for m in row.marks), _ours(result), delta_ours, repr(row.paper), delta_paper]
        lines.append("| " + " | ".join(cells) + " |")
        got = {s for s, _, _ in result.runs}
        if not result.runs:
            missing.append(f"{row.label}: no finished experiment")
        elif seeds is not None and (lost := [s for s in range(seeds) if s not in got]):
            missing.append(f"{row.label}: no finished run for seed {', '.join(map(str, lost))}")
    notes = [f"[{i}] {note}" for i, note in enumerate(footnotes, 1)] + [f"Note: {note}" for note in table.notes]
    lines += [""] + ([*notes, ""] if notes else [])
    every = f"`{shlex.join(set_args(table.fixed))}` and " if table.fixed else ""
    lines += [f"Every row: {every}`-S train.seed=<seed>`; per row:", ""]
    for row in table.rows:
        result = results[(table.key, row.slug)]
        own = f"`{shlex.join(set_args(row.overrides))}`" if row.overrides else "(nothing more)"
        runs = ", ".join(f"{name or '?'} (seed {seed}: {value:.4f})" for seed, value, name in result.runs)
        lines.append(f"- {row.label}: {own}; runs: {runs or '–'}")
    if missing:
        lines += ["", "**Missing** (`python -m pipeline.grid run --tables " + table.key + "` queues them):", ""]
        lines += [f"- {m}" for m in missing]
    return "\n".join(lines).rstrip() + "\n"


def render_all(tables: Sequence[Table], baseline: Baseline, *, seeds: Optional[int] = None) -> dict[str, str]:
    """``{file name: markdown}``: one file per table plus README.md combining them."""
    results = collect(tables, baseline)
    pages = {f"{t.key}.md": render_table(t, results, seeds=seeds) for t in tables}
    short = baseline.rev[:7] + (f" ({baseline.name})" if baseline.name else "")
    intro = [
        "# Ablation grids", "",
        f"Written by `python -m pipeline.grid render` from `dvc exp show --json`, baseline commit {short}.",
        f"Ours: `{METRIC}` of `{METRICS_FILE}` (mean Pearson over the six emotions, valid split), "
        "mean ± sample std (ddof=1) over seeds; Δ is against the table's reference row. "
        "Experiments are matched to rows by their params; – marks a row with no finished experiment.", "",
    ]
    pages["README.md"] = "\n".join(intro) + "\n" + "\n".join(pages[f"{t.key}.md"] for t in tables)
    return pages


def write_pages(pages: Mapping[str, str], out: Path) -> list[Path]:
    written = []
    for name, text in pages.items():
        write_text(text, out / name)
        written.append(out / name)
    return written


# ------------------------------------------------------------------------------------ dvc, git
def _command(repo: Path, argv: Sequence[str]) -> tuple[int, str, str]:
    """Run ``argv`` in ``repo``; the interpreter's bin directory leads PATH so stage commands
    (``python -m stages...``) in queue workers find this environment.

    Output goes through files, not pipes: ``dvc queue start`` leaves workers holding its stdout,
    and reading a pipe would wait for them to exit.
    """
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        code = subprocess.run(list(argv), cwd=repo, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL).returncode
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()


def _dvc(repo: Path, *args: str, check: bool = True) -> str:
    code, out, err = _command(repo, [sys.executable, "-m", "dvc", *args])
    if check and code != 0:
        raise GridError(f"dvc {' '.join(args)} failed (exit {code}):\n{err.strip() or out.strip()}")
    return out


def exp_show(repo: Path, rev: Optional[str] = None) -> list[Baseline]:
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
    if _command(repo, ["git", "ls-files", "--error-unmatch", "dvc.lock"])[0] != 0:
        problems.append("dvc.lock is not committed in git")
    dirty = _command(repo, ["git", "status", "--porcelain", "--", "dvc.lock", "dvc.yaml", PARAMS_FILE])[1]
    problems += [f"uncommitted change: {line.strip()}" for line in dirty.splitlines() if line.strip()]
    # --with-deps walks every ancestor; the grid's own stages are expected to rerun.
    status = json.loads(_dvc(repo, "status", "--json", "--with-deps", *stages) or "{}")
    stale = [stage for stage in status if stage not in stages]
    problems += [f"stage '{stage}' is not up to date: {_describe_changes(status[stage])}" for stage in stale]
    if problems:
        fix = (f"dvc repro {' '.join(stale)}; then " if stale else "") + f"git add dvc.lock dvc.yaml {PARAMS_FILE} && git commit"
        raise GridError(
            f"refusing to queue the grid: every stage upstream of {', '.join(stages)} must be up to date "
            "and committed first.\n  - " + "\n  - ".join(problems)
            + f"\nQueued experiments run in temporary copies of the HEAD commit: an upstream stage whose "
            f"committed dvc.lock entry matches its inputs is checked out from the DVC cache, anything "
            f"else is recomputed inside every one of the {runs} experiments (DVC issues #6465, #8980). "
            f"Rows are also matched to experiments relative to HEAD's {PARAMS_FILE}.\n"
            f"Fix: {fix}; then rerun."
        )


# ----------------------------------------------------------------------------------------- run
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
                params = apply_overrides(base_params, table.overrides(row))
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


def _log(message: str) -> None:
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
            _log(summary)
            last = summary
        if not pending:
            return
        idle_polls = idle_polls + 1 if workers == 0 else 0
        if idle_polls >= 3:
            _log(f"{len(pending)} experiments wait but no queue worker runs: dvc queue start -j {jobs}")
            _dvc(repo, "queue", "start", "-j", str(jobs))
            idle_polls = 0
        time.sleep(poll_s)


def run(*, repo: Path, tables: Sequence[Table], seeds: int, jobs: int, out: Path, poll_s: float = 10.0,
        dry_run: bool = False, stages: Optional[Sequence[str]] = None) -> int:
    """Queue every row x seed not yet finished, run the queue, wait, render; returns the exit code
    (0: every row has all seeds, 1: some experiments failed). Raises GridError before queueing
    anything when the upstream stages are not cached and committed."""
    base = yaml.safe_load((repo / PARAMS_FILE).read_text(encoding="utf-8"))
    load_params(repo / PARAMS_FILE)
    all_jobs, warnings = plan(tables, seeds, base)
    for warning in warnings:
        _log(f"warning: {warning}")
    if dry_run:
        for job in all_jobs:
            shared = f"  # also {', '.join(job.rows[1:])}" if len(job.rows) > 1 else ""
            print(shlex.join(["dvc", "exp", "run", "--queue", "--name", job.name, *set_args(job.overrides)]) + shared)
        return 0
    check_upstream(repo, stages or grid_stages(tables), runs=len(all_jobs))
    head = exp_show(repo)[0]
    finished = {(signature(e.params), e.seed) for e in head.experiments if e.state == "success" and e.metric() is not None}
    known = {e.name for e in head.experiments if e.name}
    states, _ = queue_status(repo, [j.name for j in all_jobs])
    todo = [j for j in all_jobs if (j.signature, j.seed) not in finished]
    waiting = [j.name for j in todo if any(s in _PENDING for s in states.get(j.name, []))]
    _log(f"{len(all_jobs)} runs ({len(tables)} tables x {seeds} seeds, shared configurations once): "
         f"{len(all_jobs) - len(todo)} finished, {len(waiting)} already queued, {len(todo) - len(waiting)} to queue")
    for job in todo:
        if job.name in waiting:
            continue
        # A same-named experiment that does not match (failed, or made by older grid rows) is replaced.
        force = ["--force"] if job.name in known or job.name in states else []
        _dvc(repo, "exp", "run", "--queue", "--name", job.name, *force, *set_args(job.overrides))
        _log(f"queued {job.name} ({', '.join(job.rows)})")
    if todo:
        _dvc(repo, "queue", "start", "-j", str(jobs))
        wait_for_queue(repo, [j.name for j in todo], jobs=jobs, poll_s=poll_s)
    head = exp_show(repo)[0]
    done = {(signature(e.params), e.seed) for e in head.experiments if e.state == "success" and e.metric() is not None}
    failures = [j for j in all_jobs if (j.signature, j.seed) not in done]
    for job in failures:
        _log(f"FAILED {job.name} ({', '.join(job.rows)}): see `dvc queue logs {job.name}`")
    for job in failures[:3]:
        tail = _dvc(repo, "queue", "logs", job.name, check=False).strip().splitlines()[-8:]
        print("\n".join(f"    {line}" for line in tail), flush=True)
    for path in write_pages(render_all(tables, head, seeds=seeds), out):
        _log(f"wrote {path}")
    return 1 if failures else 0


# ----------------------------------------------------------------------------------------- CLI
def _tables(arg: Optional[str]) -> list[Table]:
    if not arg:
        return list(TABLES)
    keys = [k.strip() for k in arg.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TABLES_BY_KEY]
    if unknown:
        raise GridError(f"unknown table(s) {unknown}; choose from {list(TABLES_BY_KEY)}")
    return [TABLES_BY_KEY[k] for k in keys]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.grid", description="The papers' ablation grids as DVC experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {"run": "queue every row x seed, run the queue, wait, render",
             "render": "write the tables from dvc exp show --json"}
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--tables", help=f"comma list of {','.join(TABLES_BY_KEY)} (default: all)")
        p.add_argument("--seeds", type=int, help="seeds 0..N-1 per row (default: grid.seeds of params.yaml)")
        p.add_argument("--out", type=Path, default=Path("grids"), help="folder of the markdown tables (default: grids)")
        p.add_argument("--repo", type=Path, default=Path("."), help="the git + DVC repository (default: .)")
    run_p, render_p = sub.choices["run"], sub.choices["render"]
    run_p.add_argument("--jobs", type=int, default=1, help="queue workers (dvc queue start -j)")
    run_p.add_argument("--poll", type=float, default=10.0, help="seconds between dvc queue status polls")
    run_p.add_argument("--dry-run", action="store_true", help="print the dvc exp run commands and stop")
    render_p.add_argument("--rev", help="baseline commit of the experiments (default HEAD)")
    render_p.add_argument("--exp-show-json", type=Path, help="render a saved `dvc exp show --json` instead")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    out = args.out if args.out.is_absolute() else repo / args.out
    try:
        tables = _tables(args.tables)
        seeds = args.seeds if args.seeds is not None else load_params(repo / PARAMS_FILE).grid.seeds
        if seeds < 1:
            raise GridError("--seeds must be at least 1")
        if args.command == "run":
            return run(repo=repo, tables=tables, seeds=seeds, jobs=max(1, args.jobs), out=out,
                       poll_s=args.poll, dry_run=args.dry_run)
        if args.exp_show_json:
            baselines = parse_exp_show(json.loads(args.exp_show_json.read_text(encoding="utf-8")))
        else:
            baselines = exp_show(repo, args.rev)
        if not baselines:
            raise GridError("dvc exp show lists no baseline commit")
        for path in write_pages(render_all(tables, baselines[0], seeds=seeds), out):
            _log(f"wrote {path}")
        return 0
    except (GridError, ParamsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: queued experiments keep running (dvc queue status); rerun `python -m "
              "pipeline.grid run` to wait for them, or `dvc queue kill` to stop them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

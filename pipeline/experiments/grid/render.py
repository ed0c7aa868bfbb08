"""The tables as markdown in their paper's layout, ours beside the paper's numbers."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.atomic import write_text
from pipeline.experiments.grid.experiments import METRIC, METRICS_FILE, Baseline, RowResult, collect
from pipeline.experiments.grid.overrides import format_value, set_args
from pipeline.experiments.grid.tables import Table


def _ours(result: RowResult) -> str:
    if result.mean is None:
        return "–"
    if result.std is None:
        return f"{result.mean:.4f} (1 seed)"
    return f"{result.mean:.4f} ± {result.std:.4f} ({result.n} seeds)"


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


def _mark(mark: bool | None) -> str:
    return "" if mark is None else ("✓" if mark else "×")


def _paper_delta(paper: float | None, reference: float | None) -> str:
    if paper is None or reference is None:
        return "–"
    digits = max(_decimals(paper), _decimals(reference))
    return f"{paper - reference:+.{digits}f}"


def render_table(table: Table, results: Mapping[tuple[str, str], RowResult], *, seeds: int | None = None) -> str:
    """Markdown of one table in the paper's layout, ours beside the paper's numbers, Δ vs reference.

    ``seeds``: the expected seeds ``0 .. seeds-1``; rows missing some are listed as incomplete.
    """
    ref = results[(table.key, table.reference)]
    ref_row = table.row(table.reference)
    header = [
        table.label_header,
        *table.mark_headers,
        f"{table.metric_label} (ours)",
        "Δ (ours)",
        f"{table.metric_label} (paper)",
        "Δ (paper)",
    ]
    align = ["---", *([":-:"] * len(table.mark_headers)), "--:", "--:", "--:", "--:"]
    lines = [
        f"## {table.title}",
        "",
        f"Source: {table.source}.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(align) + " |",
    ]
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
            delta_paper = _paper_delta(row.paper, ref_row.paper)
        paper = "–" if row.paper is None else repr(row.paper)
        cells = [label, *(_mark(m) for m in row.marks), _ours(result), delta_ours, paper, delta_paper]
        lines.append("| " + " | ".join(cells) + " |")
        got = {s for s, _, _ in result.runs}
        if not result.runs:
            missing.append(f"{row.label}: no finished experiment")
        elif seeds is not None and (lost := [s for s in range(seeds) if s not in got]):
            missing.append(f"{row.label}: no finished run for seed {', '.join(map(str, lost))}")
    notes = [f"[{i}] {note}" for i, note in enumerate(footnotes, 1)] + [f"Note: {note}" for note in table.notes]
    lines += [""] + ([*notes, ""] if notes else [])
    lines += _commands(table, results)
    if missing:
        queue = f"python -m pipeline.experiments.grid run --tables {table.key}"
        lines += ["", f"**Missing** (`{queue}` queues them):", "", *(f"- {m}" for m in missing)]
    return "\n".join(lines).rstrip() + "\n"


def _commands(table: Table, results: Mapping[tuple[str, str], RowResult]) -> list[str]:
    """How the table's runs are made: its upstream params, its overrides, each row's runs."""
    lines = []
    if table.requires:
        needs = shlex.join(f"{k}={format_value(v)}" for k, v in table.requires.items())
        lines += [
            f"Upstream, in the committed params.yaml (computed once, `run --tables {table.key} --prepare` "
            f"sets them): `{needs}`.",
            "",
        ]
    every = f"`{shlex.join(set_args(table.fixed))}` and " if table.fixed else ""
    lines += [f"Every row: {every}`-S train.seed=<seed>`; per row:", ""]
    for row in table.rows:
        result = results[(table.key, row.slug)]
        own = f"`{shlex.join(set_args(row.overrides))}`" if row.overrides else "(nothing more)"
        runs = ", ".join(f"{name or '?'} (seed {seed}: {value:.4f})" for seed, value, name in result.runs)
        lines.append(f"- {row.label}: {own}; runs: {runs or '–'}")
    return lines


def render_all(tables: Sequence[Table], baseline: Baseline, *, seeds: int | None = None) -> dict[str, str]:
    """``{file name: markdown}``: one file per table plus README.md combining them."""
    results = collect(tables, baseline)
    pages = {f"{t.key}.md": render_table(t, results, seeds=seeds) for t in tables}
    short = baseline.rev[:7] + (f" ({baseline.name})" if baseline.name else "")
    intro = [
        "# Ablation grids",
        "",
        f"Written by `python -m pipeline.experiments.grid render` from `dvc exp show --json`, baseline commit {short}.",
        f"Ours: each table's metric of `{METRICS_FILE}` on the valid split (EMI `{METRIC}`, the mean Pearson over "
        "the six emotions; VA `ccc.mean`; EXPR `f1.macro`; AU `f1.mean`), "
        "mean ± sample std (ddof=1) over seeds; Δ is against the table's reference row. "
        "Experiments are matched to rows by their params; – marks a row with no finished experiment.",
        "",
    ]
    pages["README.md"] = "\n".join(intro) + "\n" + "\n".join(pages[f"{t.key}.md"] for t in tables)
    return pages


def write_pages(pages: Mapping[str, str], out: Path) -> list[Path]:
    written = []
    for name, text in pages.items():
        write_text(text, out / name)
        written.append(out / name)
    return written

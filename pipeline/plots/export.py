"""Pictures of a finished run: every plot ``dvc plots show`` draws, as a PNG (or SVG) file.

The specs are DVC's own: ``dvc plots show --json`` (or ``dvc plots diff --json REV...``) returns,
per plot of dvc.yaml, the Vega-Lite spec its template fills, data inline. Each is drawn unchanged
by ``pipeline.plots.render`` (the same Vega-Lite version the offline HTML page runs), so a picture
shows what ``dvc_plots/index.html`` shows. One addition: on the per-emotion Pearson bars, the
demo's noise ceiling (``fused.per_emotion`` of ``<data.root>/ceiling.json``, the best Pearson any
model can reach on the demo's labels, written by make_demo) as a black tick per emotion, joined
only when ``data.source`` is ``demo`` and the file exists, so a Hume run never shows a demo ceiling.

A plot DVC could not load (its ``errors``) or that fails to draw is a line on stderr and no file;
the others are still written. File names are the plot ids' stems (``per_emotion.png``,
``training_curves.png``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cli import UsageError, describe
from pipeline.config import load_params
from pipeline.experiments.dvc_commands import run_dvc
from pipeline.plots.render import render_png, render_svg
from pipeline.plots.specs import with_reference_ticks

# Plot id -> the y field that names an emotion: where the noise ceiling is drawn.
CEILING_PLOTS = {"eval/plots/per_emotion.csv": "emotion"}
CEILING_LABEL = "noise ceiling (demo)"
FORMATS = ("png", "svg")


@dataclass(frozen=True)
class Exported:
    plot_id: str
    path: Path | None  # None: not written
    revisions: tuple[str, ...]
    note: str  # "with noise ceiling", or why it was not written


def dvc_plot_specs(repo: str | Path, targets: Sequence[str] = (), revs: Sequence[str] = ()) -> dict[str, Any]:
    """DVC's ``--json`` answer: ``{"data": {plot id: [{"type", "revisions", "content"}]}, "errors": [...]}``.
    ``revs`` given: ``dvc plots diff`` between them (one colour per revision); else ``dvc plots show``."""
    if revs:
        args = ["plots", "diff", "--json", *revs, *(["--targets", *targets] if targets else [])]
    else:
        args = ["plots", "show", "--json", *targets]
    return json.loads(run_dvc(repo, *args) or "{}")


def demo_ceiling(params_file: str | Path) -> dict[str, float] | None:
    """The demo's per-emotion noise ceiling, or None (another data source, no or unreadable file)."""
    params = load_params(params_file)
    path = Path(params.data.root) / "ceiling.json"
    if params.data.source != "demo" or not path.is_file():
        return None
    try:
        per_emotion = json.loads(path.read_text())["fused"]["per_emotion"]
        return {str(k): float(v) for k, v in per_emotion.items()}
    except (ValueError, KeyError, TypeError) as error:
        print(f"warning: {path}: no noise ceiling drawn ({describe(error)})", file=sys.stderr)
        return None


def file_stem(plot_id: str) -> str:
    """``eval/plots/per_emotion.csv`` -> ``per_emotion``; ``Training curves`` -> ``training_curves``."""
    name = Path(plot_id).stem if "/" in plot_id or Path(plot_id).suffix else plot_id
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "plot"


def export_plots(
    answer: dict[str, Any], out_dir: str | Path, *, ceiling: dict[str, float] | None = None, fmt: str = "png"
) -> list[Exported]:
    """Draw every vega plot of DVC's ``answer`` into ``out_dir``; one :class:`Exported` per plot,
    written or not, and one per error DVC reported."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    done: list[Exported] = []
    used: set[str] = set()
    for plot_id, entries in answer.get("data", {}).items():
        for entry in entries:
            revisions = tuple(entry.get("revisions") or ())
            if entry.get("type") != "vega":
                done.append(Exported(plot_id, None, revisions, f"{entry.get('type')} plot: open it where DVC keeps it"))
                continue
            stem, n = file_stem(plot_id), 1
            while stem in used:  # two ids with one stem (a/loss.tsv, b/loss.tsv): loss, loss_2
                n += 1
                stem = f"{file_stem(plot_id)}_{n}"
            used.add(stem)
            done.append(_draw(plot_id, entry["content"], out_dir / f"{stem}.{fmt}", revisions, ceiling))
    for error in answer.get("errors", []):
        revision = (str(error["rev"]),) if error.get("rev") else ()
        source = error.get("source") or error.get("name") or "the plot definitions"
        note = f"DVC could not load {source}: {error.get('msg')}"
        done.append(Exported(str(error.get("name", "dvc.yaml")), None, revision, note))
    return done


def _draw(
    plot_id: str, spec: dict[str, Any], path: Path, revisions: tuple[str, ...], ceiling: dict[str, float] | None
) -> Exported:
    note = ""
    try:
        # "dvc.yaml::eval/..." when the plot was asked for by file; a file drawn with DVC's default
        # line template (asked for by path, not by its definition) has no bars to mark.
        category = CEILING_PLOTS.get(plot_id.split("::")[-1])
        if ceiling and category and "mark" in spec and "layer" not in spec:
            spec = with_reference_ticks(spec, ceiling, category=category, label=CEILING_LABEL)
            note = "with noise ceiling"
        (render_svg if path.suffix == ".svg" else render_png)(spec, path)
    except Exception as error:  # noqa: BLE001 - one plot that cannot be drawn never stops the others
        return Exported(plot_id, None, revisions, f"not drawn: {describe(error)}")
    return Exported(plot_id, path, revisions, note)

"""``python -m pipeline.plots``: the offline HTML template, and pictures of a run.

    python -m pipeline.plots template [--out .dvc/offline-plots.html]
    python -m pipeline.plots export --out docs/figures [PLOT ...] [--revs REV ...] [--format png|svg]

``template`` writes the page ``dvc plots show`` / ``dvc plots diff`` fill (``pipeline.plots.template``;
``scripts/setup.sh`` runs it). ``export`` draws the plots of the run in the current folder (or
``PLOT ...``, plot ids or files as ``dvc plots show`` takes them; with ``--revs``, ``dvc plots diff``
between those revisions or experiments) into ``--out`` (``pipeline.plots.export``). Exit status: 0
when every plot was written, 1 when some could not be (each named on stderr), 2 for a user error
(no plots at all: run ``make demo`` first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli import UsageError, user_errors
from pipeline.experiments.dvc_commands import DvcError
from pipeline.plots.export import FORMATS, demo_ceiling, dvc_plot_specs, export_plots
from pipeline.plots.template import TEMPLATE_PATH, library_versions, write_template


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline.plots", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    template = commands.add_parser("template", help="write the offline HTML template for dvc plots show")
    template.add_argument("--out", default=str(TEMPLATE_PATH), help=f"file to write (default {TEMPLATE_PATH})")
    export = commands.add_parser("export", help="draw the run's plots as pictures")
    export.add_argument("plots", nargs="*", help="plot ids or files (default: every plot of dvc.yaml)")
    export.add_argument("--out", required=True, help="folder for the pictures")
    export.add_argument("--revs", nargs="+", default=[], help="compare these revisions/experiments (dvc plots diff)")
    export.add_argument("--format", default="png", choices=FORMATS)
    export.add_argument("--params", default="params.yaml", help="where data.source and data.root are read")
    export.add_argument("--no-ceiling", action="store_true", help="never draw the demo's noise ceiling")
    return parser


def _export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    if not Path("dvc.yaml").is_file():
        raise UsageError("no dvc.yaml in this folder: run from the project folder")
    try:
        answer = dvc_plot_specs(".", args.plots, args.revs)
    except DvcError as error:  # a revision or plot DVC does not know: its own message, on one line
        raise UsageError(" ".join(str(error).split())) from None
    if not any(answer.get("data", {}).values()):
        errors = answer.get("errors", [])
        why = f"{len(errors)} DVC errors, the first: {errors[0].get('msg')}" if errors else "DVC found no plot data"
        raise UsageError(f"no plots to export ({why}); run `make demo` (or dvc repro) first")
    ceiling = None if args.no_ceiling else demo_ceiling(args.params)
    results = export_plots(answer, out, ceiling=ceiling, fmt=args.format)
    for r in results:
        revs = f" [{', '.join(r.revisions)}]" if r.revisions else ""
        if r.path is None:
            print(f"export: {r.plot_id}{revs}: skipped: {r.note}", file=sys.stderr)
        else:
            size = r.path.stat().st_size / 1000
            print(f"export: {r.path} ({size:.0f} KB) <- {r.plot_id}{revs}{f' ({r.note})' if r.note else ''}")
    return 0 if all(r.path is not None for r in results) else 1


@user_errors()
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "template":
        path = write_template(args.out)
        print(f"template: {path} ({path.stat().st_size / 1e6:.1f} MB; {library_versions()})")
        return 0
    return _export(args)

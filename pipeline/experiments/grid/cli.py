"""The command line of the grids: ``python -m pipeline.experiments.grid run|render`` (see ``__init__.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.experiments.grid.experiments import GridError, parse_exp_show
from pipeline.experiments.grid.overrides import PARAMS_FILE
from pipeline.experiments.grid.prepare import prepare, upstream_stages
from pipeline.experiments.grid.render import render_all, write_pages
from pipeline.experiments.grid.run import exp_show, grid_stages, log, run, unmet_requirements
from pipeline.experiments.grid.tables import TABLES, TABLES_BY_KEY, Table


def _tables(arg: str | None, repo: Path) -> list[Table]:
    """The named tables; by default every table whose upstream params (``Table.requires``) the
    configured params.yaml holds (the papers' ablations always, ``hume_baselines`` on organiser features)."""
    if not arg:
        base = load_params(repo / PARAMS_FILE).model_dump(mode="json")
        return [t for t in TABLES if not unmet_requirements([t], base)]
    keys = [k.strip() for k in arg.split(",") if k.strip()]
    unknown = [k for k in keys if k not in TABLES_BY_KEY]
    if unknown:
        raise GridError(f"unknown table(s) {unknown}; choose from {list(TABLES_BY_KEY)}")
    return [TABLES_BY_KEY[k] for k in keys]


def _prepare(args: argparse.Namespace, repo: Path, tables: list[Table]) -> None:
    if not args.prepare:
        if args.set:
            raise GridError("--set goes with --prepare")
        return
    if not args.tables or args.dry_run:
        raise GridError("--prepare needs --tables (the tables whose upstream to compute) and no --dry-run")
    prepare(repo, tables, args.set, upstream=upstream_stages(grid_stages(tables)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.experiments.grid", description="The papers' ablation grids as DVC experiments."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {
        "run": "queue every row x seed, run the queue, wait, render",
        "render": "write the tables from dvc exp show --json",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--tables",
            help=f"comma list of {','.join(TABLES_BY_KEY)} (default: every table the params can run)",
        )
        p.add_argument("--seeds", type=int, help="seeds 0..N-1 per row (default: grid.seeds of params.yaml)")
        p.add_argument("--out", type=Path, default=Path("grids"), help="folder of the markdown tables (default: grids)")
        p.add_argument("--repo", type=Path, default=Path("."), help="the git + DVC repository (default: .)")
    run_p, render_p = sub.choices["run"], sub.choices["render"]
    run_p.add_argument("--jobs", type=int, default=1, help="queue workers (dvc queue start -j)")
    run_p.add_argument("--poll", type=float, default=10.0, help="seconds between dvc queue status polls")
    run_p.add_argument("--dry-run", action="store_true", help="print the dvc exp run commands and stop")
    run_p.add_argument(
        "--prepare",
        action="store_true",
        help="first set the tables' upstream params (and --set ones) in params.yaml, dvc repro the stages "
        "upstream of the grid once, commit params.yaml and dvc.lock",
    )
    run_p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="with --prepare: also set this in params.yaml"
    )
    render_p.add_argument("--rev", help="baseline commit of the experiments (default HEAD)")
    render_p.add_argument("--exp-show-json", type=Path, help="render a saved `dvc exp show --json` instead")
    return parser


@user_errors(GridError)
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    repo = args.repo.resolve()
    out = args.out if args.out.is_absolute() else repo / args.out
    try:
        tables = _tables(args.tables, repo)
        seeds = args.seeds if args.seeds is not None else load_params(repo / PARAMS_FILE).grid.seeds
        if seeds < 1:
            raise GridError("--seeds must be at least 1")
        if args.command == "run":
            _prepare(args, repo, tables)
            return run(
                repo=repo,
                tables=tables,
                seeds=seeds,
                jobs=max(1, args.jobs),
                out=out,
                poll_s=args.poll,
                dry_run=args.dry_run,
            )
        if args.exp_show_json:
            baselines = parse_exp_show(json.loads(args.exp_show_json.read_text(encoding="utf-8")))
        else:
            baselines = exp_show(repo, args.rev)
        if not baselines:
            raise GridError("dvc exp show lists no baseline commit")
        for path in write_pages(render_all(tables, baselines[0], seeds=seeds), out):
            log(f"wrote {path}")
        return 0
    except KeyboardInterrupt:
        print(
            "interrupted: queued experiments keep running (dvc queue status); rerun `python -m "
            "pipeline.experiments.grid run` to wait for them, or `dvc queue kill` to stop them",
            file=sys.stderr,
        )
        return 130

"""The papers' ablation grids by one command: queue every row x seed as a DVC experiment, wait
for the queue, and write each table in its paper's layout beside the paper's own numbers.

    python -m pipeline.experiments.grid run [--tables taemi_components,taemi_anchor,ustc_modules,ustc_modalities,
                                hume_baselines] [--seeds N] [--jobs 1] [--out grids/] [--poll 10] [--dry-run]
                                [--prepare [--set KEY=VALUE ...]]
    python -m pipeline.experiments.grid render [--tables ...] [--seeds N] [--out grids/] [--rev REV]
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

A table may also need upstream params (``Table.requires``: ``hume_baselines`` runs on the
organisers' features, ``features.visual.model: hume-vit``, ``features.audio.model: hume-wav2vec2``).
Those select what the upstream stages compute, so they must be in the committed params.yaml, never
``-S`` overrides of each experiment: ``run`` refuses otherwise, and ``run --tables ... --prepare
[--set data.root=...]`` sets them, runs ``dvc repro`` of the upstream stages once and commits
params.yaml and dvc.lock before queueing (``prepare``). Without ``--tables``, ``run`` takes every
table whose requirements the configured params meet.

Only experiments are counted, never the baseline commit itself: its committed eval/metrics.json is
the CI-size gate baseline, not a run of its own params.yaml.

Modules: ``tables`` (the papers' tables as data), ``overrides`` (``-S`` syntax, configuration
signatures), ``experiments`` (``dvc exp show --json`` and matching rows), ``render`` (markdown),
``run`` (queueing and waiting), ``prepare`` (upstream params computed once), ``cli``.
"""

from pipeline.experiments.dvc_commands import run_command
from pipeline.experiments.grid.cli import main
from pipeline.experiments.grid.experiments import Baseline, Experiment, GridError, RowResult, collect, parse_exp_show
from pipeline.experiments.grid.overrides import apply_overrides, format_value, set_args, signature
from pipeline.experiments.grid.prepare import prepare, upstream_stages
from pipeline.experiments.grid.render import render_all, render_table, write_pages
from pipeline.experiments.grid.run import check_requirements, check_upstream, exp_show, plan, run, unmet_requirements
from pipeline.experiments.grid.tables import TABLES, TABLES_BY_KEY, Row, Table

__all__ = [
    "TABLES",
    "TABLES_BY_KEY",
    "Baseline",
    "Experiment",
    "GridError",
    "Row",
    "RowResult",
    "Table",
    "apply_overrides",
    "check_requirements",
    "check_upstream",
    "collect",
    "exp_show",
    "format_value",
    "main",
    "parse_exp_show",
    "plan",
    "prepare",
    "render_all",
    "render_table",
    "run",
    "run_command",
    "set_args",
    "signature",
    "unmet_requirements",
    "upstream_stages",
    "write_pages",
]

"""CI metrics gate: fail when the task's headline metric drops below the recorded baseline.

The gated metric is the task's headline (``pipeline.tasks``: emi ``pearson.mean``, va ``ccc.mean``,
expr ``f1.macro``, au ``f1.mean``), the task the one params.yaml names (``--task`` overrides). The
baseline is committed in git: for emi ``eval/metrics.json`` itself (``cache: false`` in dvc.yaml),
for a frame-level task ``eval/baselines/<task>.json``; ``make ci-baseline`` writes them from the
CI-size demos. After CI reruns that pipeline, the committed baseline (``--rev``, default HEAD) is
compared with the workspace's ``eval/metrics.json``: this module prints the table (``dvc metrics
diff`` for emi) and exits non-zero when the headline fell by more than ``gate.tolerance`` from
params.yaml, or when it is missing.

    python -m pipeline.experiments.gate [--params params.yaml] [--task T] [--rev HEAD] [--target eval/metrics.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from pipeline.cli import user_errors
from pipeline.config import TASKS, load_params
from pipeline.experiments.dvc_commands import metric_value, run_command, run_dvc
from pipeline.tasks import get_task

GATED_METRIC = "pearson.mean"  # task emi's headline
ROUNDING_SLACK = 1e-9


def baseline_file(task: str) -> str:
    """Where the committed baseline of ``task`` lives (in git)."""
    return "eval/metrics.json" if task == "emi" else f"eval/baselines/{task}.json"


@dataclass(frozen=True)
class GateResult:
    old: float | None
    new: float | None
    tolerance: float
    metric: str = GATED_METRIC

    @property
    def passed(self) -> bool:
        """A drop of at most ``tolerance`` passes, with a 1e-9 slack: 0.44 - 0.03 is
        0.41000000000000003 in float64, so a drop of exactly the tolerance would fail on rounding."""
        if self.old is None or self.new is None:
            return False
        return self.new - self.old >= -self.tolerance - ROUNDING_SLACK

    def explain(self) -> str:
        if self.old is None:
            return f"gate: no baseline {self.metric} (commit the baseline `make ci-baseline` writes)"
        if self.new is None:
            return f"gate: the run produced no {self.metric}"
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"gate {verdict}: {self.metric} {self.new:.4f} vs baseline {self.old:.4f} "
            f"(change {self.new - self.old:+.4f}, tolerance -{self.tolerance:.4f})"
        )


def judge(diff_json: dict[str, Any], target: str, tolerance: float, metric: str = GATED_METRIC) -> GateResult:
    """Read ``dvc metrics diff --json`` output: ``{file: {metric: {old, new, diff}}}``."""
    entry = diff_json.get(target, {}).get(metric, {})
    old, new = entry.get("old"), entry.get("new")
    return GateResult(
        old=float(old) if isinstance(old, (int, float)) else None,
        new=float(new) if isinstance(new, (int, float)) else None,
        tolerance=tolerance,
        metric=metric,
    )


def judge_files(
    baseline: dict[str, Any], current: dict[str, Any], tolerance: float, metric: str = GATED_METRIC
) -> GateResult:
    """The same verdict from two parsed metrics files (used when DVC reports no difference)."""
    return GateResult(metric_value(baseline, metric), metric_value(current, metric), tolerance, metric)


def leaf_table(baseline: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Markdown rows ``| metric | baseline | workspace | change |`` of every numeric leaf of either."""
    rows = []
    for key in sorted(set(baseline) | set(current)):
        old, new = baseline.get(key), current.get(key)
        if isinstance(old, dict) or isinstance(new, dict):
            rows += leaf_table(
                old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}, f"{prefix}{key}."
            )
            continue
        nums = [v if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in (old, new)]
        change = f"{nums[1] - nums[0]:+.4f}" if None not in nums else "-"
        cells = ["-" if v is None else f"{v:.4f}" for v in nums]
        rows.append(f"| {prefix}{key} | {cells[0]} | {cells[1]} | {change} |")
    return rows


def _committed_metrics(rev: str, target: str) -> dict[str, Any]:
    code, out, _ = run_command(".", ["git", "show", f"{rev}:{target}"])
    return json.loads(out) if code == 0 else {}


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fail when the task's headline metric dropped below the baseline.")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--task", choices=TASKS, help="the task gated (default: params.yaml's task)")
    parser.add_argument("--rev", default="HEAD", help="git revision holding the baseline metrics")
    parser.add_argument("--target", default="eval/metrics.json")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    task = get_task(args.task or params.task)
    tolerance = params.gate.tolerance
    with open(args.target, encoding="utf-8") as handle:
        current = json.load(handle)
    if task.name != "emi":
        baseline = _committed_metrics(args.rev, baseline_file(task.name))
        print(f"{baseline_file(task.name)} at {args.rev} (baseline) -> {args.target}:")
        print(
            "\n".join(
                ["| metric | baseline | workspace | change |", "|---|---|---|---|", *leaf_table(baseline, current)]
            )
        )
        result = judge_files(baseline, current, tolerance, task.headline)
        print(result.explain())
        return 0 if result.passed else 1
    print(f"dvc metrics diff {args.rev} (baseline) -> workspace:")
    print(run_dvc(".", "metrics", "diff", args.rev, "--targets", args.target, "--all", "--md", "--precision", "4"))
    diff = json.loads(run_dvc(".", "metrics", "diff", args.rev, "--targets", args.target, "--all", "--json") or "{}")
    result = judge(diff, args.target, tolerance)
    if result.old is None or result.new is None:
        # `--all` lists unchanged metrics too, but keep a direct read as the fallback.
        result = judge_files(_committed_metrics(args.rev, args.target), current, tolerance)
    print(result.explain())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())

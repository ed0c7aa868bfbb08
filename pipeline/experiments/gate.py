"""CI metrics gate: fail when the pipeline's ``pearson.mean`` drops below the recorded baseline.

The baseline is ``eval/metrics.json`` as committed on main (``git`` tracks it: ``cache: false`` in
dvc.yaml), produced by ``make ci-baseline`` on the CI-size demo. After CI reruns that pipeline,
``dvc metrics diff`` compares the committed file (``--rev``, default HEAD) with the workspace one;
this module prints DVC's table and exits non-zero when the mean Pearson fell by more than
``gate.tolerance`` from params.yaml, or when a metric is missing.

    python -m pipeline.experiments.gate [--params params.yaml] [--rev HEAD] [--target eval/metrics.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.experiments.dvc_commands import metric_value, run_command, run_dvc

GATED_METRIC = "pearson.mean"
ROUNDING_SLACK = 1e-9


@dataclass(frozen=True)
class GateResult:
    old: float | None
    new: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        """A drop of at most ``tolerance`` passes, with a 1e-9 slack: 0.44 - 0.03 is
        0.41000000000000003 in float64, so a drop of exactly the tolerance would fail on rounding."""
        if self.old is None or self.new is None:
            return False
        return self.new - self.old >= -self.tolerance - ROUNDING_SLACK

    def explain(self) -> str:
        if self.old is None:
            return f"gate: no baseline {GATED_METRIC} (commit eval/metrics.json from `make ci-baseline`)"
        if self.new is None:
            return f"gate: the run produced no {GATED_METRIC}"
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"gate {verdict}: {GATED_METRIC} {self.new:.4f} vs baseline {self.old:.4f} "
            f"(change {self.new - self.old:+.4f}, tolerance -{self.tolerance:.4f})"
        )


def judge(diff_json: dict[str, Any], target: str, tolerance: float) -> GateResult:
    """Read ``dvc metrics diff --json`` output: ``{file: {metric: {old, new, diff}}}``."""
    entry = diff_json.get(target, {}).get(GATED_METRIC, {})
    old, new = entry.get("old"), entry.get("new")
    return GateResult(
        old=float(old) if isinstance(old, (int, float)) else None,
        new=float(new) if isinstance(new, (int, float)) else None,
        tolerance=tolerance,
    )


def judge_files(baseline: dict[str, Any], current: dict[str, Any], tolerance: float) -> GateResult:
    """The same verdict from two parsed metrics files (used when DVC reports no difference)."""
    return GateResult(metric_value(baseline, GATED_METRIC), metric_value(current, GATED_METRIC), tolerance)


def _committed_metrics(rev: str, target: str) -> dict[str, Any]:
    code, out, _ = run_command(".", ["git", "show", f"{rev}:{target}"])
    return json.loads(out) if code == 0 else {}


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fail when pearson.mean dropped below the committed baseline.")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rev", default="HEAD", help="git revision holding the baseline metrics")
    parser.add_argument("--target", default="eval/metrics.json")
    args = parser.parse_args(argv)
    tolerance = load_params(args.params).gate.tolerance

    print(f"dvc metrics diff {args.rev} (baseline) -> workspace:")
    print(run_dvc(".", "metrics", "diff", args.rev, "--targets", args.target, "--all", "--md", "--precision", "4"))
    diff = json.loads(run_dvc(".", "metrics", "diff", args.rev, "--targets", args.target, "--all", "--json") or "{}")
    result = judge(diff, args.target, tolerance)
    if result.old is None or result.new is None:
        # `--all` lists unchanged metrics too, but keep a direct read as the fallback.
        with open(args.target, encoding="utf-8") as handle:
            current = json.load(handle)
        result = judge_files(_committed_metrics(args.rev, args.target), current, tolerance)
    print(result.explain())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""The CI metrics gate on a real git + DVC repo: passes within tolerance, fails on a drop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.experiments.gate import GateResult, judge

from .conftest import REPO

ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)


def _metrics(mean: float) -> dict:
    return {"pearson": {"mean": mean, "Joy": mean + 0.1}}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "eval").mkdir(parents=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["gate"]["tolerance"] = 0.02
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "dvc.yaml").write_text("metrics:\n  - eval/metrics.json\n")
    (root / "eval" / "metrics.json").write_text(json.dumps(_metrics(0.60)))
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "baseline"],
    ):
        assert _run(cmd, root).returncode == 0
    return root


@pytest.mark.parametrize(
    ("new", "code", "verdict"), [(0.61, 0, "gate ok"), (0.585, 0, "gate ok"), (0.55, 1, "gate FAILED")]
)
def test_gate_against_committed_baseline(repo: Path, new: float, code: int, verdict: str) -> None:
    (repo / "eval" / "metrics.json").write_text(json.dumps(_metrics(new)))
    run = _run([sys.executable, "-m", "pipeline.experiments.gate"], repo)
    assert run.returncode == code, run.stdout + run.stderr
    assert verdict in run.stdout
    assert "pearson.mean" in run.stdout and "0.6" in run.stdout  # DVC's diff table is printed


def test_gate_unchanged_metrics_pass(repo: Path) -> None:
    run = _run([sys.executable, "-m", "pipeline.experiments.gate"], repo)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "gate ok: pearson.mean 0.6000 vs baseline 0.6000" in run.stdout


def test_gate_fails_without_metric() -> None:
    result = judge({"eval/metrics.json": {"pearson.Joy": {"old": 0.5, "new": 0.5}}}, "eval/metrics.json", 0.01)
    assert not result.passed and "no baseline" in result.explain()


def test_a_drop_of_exactly_the_tolerance_passes() -> None:
    """0.44 - 0.03 is 0.41000000000000003 in float64: the verdict must not hinge on that rounding."""
    assert GateResult(old=0.44, new=0.41, tolerance=0.03).passed
    assert GateResult(old=0.4, new=0.35, tolerance=0.05).passed
    assert not GateResult(old=0.44, new=0.4099, tolerance=0.03).passed


@pytest.mark.parametrize(("new", "code", "verdict"), [(0.49, 0, "gate ok"), (0.45, 1, "gate FAILED")])
def test_a_frame_task_is_gated_on_its_own_headline_and_baseline(
    repo: Path, new: float, code: int, verdict: str
) -> None:
    (repo / "eval" / "baselines").mkdir()
    (repo / "eval" / "baselines" / "va.json").write_text(json.dumps({"ccc": {"mean": 0.50, "valence": 0.6}}))
    assert _run(["git", "add", "-A"], repo).returncode == 0
    assert _run(["git", "commit", "-qm", "va baseline"], repo).returncode == 0
    (repo / "eval" / "metrics.json").write_text(json.dumps({"ccc": {"mean": new, "valence": 0.61}}))
    run = _run([sys.executable, "-m", "pipeline.experiments.gate", "--task", "va"], repo)
    assert run.returncode == code, run.stdout + run.stderr
    assert f"{verdict}: ccc.mean {new:.4f} vs baseline 0.5000" in run.stdout
    assert "| ccc.valence | 0.6000 | 0.6100 | +0.0100 |" in run.stdout

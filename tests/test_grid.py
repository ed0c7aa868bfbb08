"""Ablation grids: every row's overrides parse as DVC parses them and validate; rendering from
``dvc exp show --json`` (synthetic and real) gives the right numbers; the grid refuses to queue over
stale upstream stages; and a real queue of a tiny two-stage pipeline runs end to end."""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.utils.hydra import apply_overrides as dvc_apply_overrides

from pipeline.config import parse_params
from pipeline.experiments import grid

from .conftest import REPO

BASE = yaml.safe_load((REPO / "params.yaml").read_text())
ROWS = [(t, r) for t in grid.TABLES for r in t.rows]


@pytest.fixture(autouse=True)
def _quiet_dvc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


# ------------------------------------------------------------------------------ overrides, names
@pytest.mark.parametrize(("table", "row"), ROWS, ids=[f"{t.key}-{r.slug}" for t, r in ROWS])
def test_row_overrides_parse_like_dvc_and_validate(tmp_path: Path, table: grid.Table, row: grid.Row) -> None:
    overrides = {**table.overrides(row), "train.seed": 2}
    params_file = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params_file)
    base = BASE
    if table.requires:  # what `run --prepare` commits before the table's experiments run
        dvc_apply_overrides(params_file, grid.set_args(table.requires)[1::2])
        base = yaml.safe_load(params_file.read_text())
    # The exact strings `dvc exp run -S` receives, applied by DVC's own code to a params file.
    strings = grid.set_args(overrides)[1::2]
    dvc_apply_overrides(params_file, strings)
    applied = yaml.safe_load(params_file.read_text())
    assert applied == grid.apply_overrides(base, overrides)
    params = parse_params(applied)
    assert params.train.seed == 2
    for key, value in overrides.items():
        section, *rest = key.split(".")
        node: Any = getattr(params, section)
        for part in rest:
            node = getattr(node, part)
        expected = {"vision": "visual"}.get(value, value) if isinstance(value, str) else value
        assert (list(node) if isinstance(node, tuple) else node) == expected, key


def test_format_value_round_trips_through_hydra(tmp_path: Path) -> None:
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0}))
    values = {"a": ["visual", "text"], "b": "true", "c": None, "d": 0.999, "e": "two words", "f": False}
    dvc_apply_overrides(params_file, [f"{k}={grid.format_value(v)}" for k, v in values.items()])
    assert yaml.safe_load(params_file.read_text()) == values
    assert grid.format_value([]) == "[]" and grid.format_value(0.0) == "0.0"


def test_apply_overrides_rejects_unknown_keys_like_dvc() -> None:
    with pytest.raises(KeyError, match="fusion.anchr"):
        grid.apply_overrides(BASE, {"fusion.anchr": "audio"})
    with pytest.raises(KeyError, match="fusoin"):
        grid.apply_overrides(BASE, {"fusoin.anchor": "audio"})


def test_plan_names_are_unique_valid_refs_and_shared_rows_run_once() -> None:
    jobs, warnings = grid.plan(grid.TABLES, 3, BASE)
    assert warnings == []
    names = [j.name for j in jobs]
    # 21 EMI rows (two shared between tables) and 12 frame-level rows, each task its own configurations.
    assert len(names) == len(set(names)) == (19 + 12) * 3
    assert all(len(n) <= 20 for n in names)
    for name in names:
        ref = f"refs/exps/ab/cdef0123/{name}"
        assert subprocess.run(["git", "check-ref-format", ref]).returncode == 0, name
    shared = {j.rows for j in jobs if len(j.rows) > 1 and j.seed == 0}
    assert shared == {("taemi_components/full", "taemi_anchor/text"), ("ustc_modules/tfe-qam", "ustc_modalities/vat")}
    assert {j.seed for j in jobs} == {0, 1, 2}


def test_plan_warns_when_configured_params_make_rows_identical() -> None:
    base = grid.apply_overrides(BASE, {"fusion.modality_dropout": 0.0})
    _, warnings = grid.plan([grid.TABLES_BY_KEY["taemi_components"]], 1, base)
    assert warnings == ["taemi_components: rows 'w/o MD' and 'TAEMI (full)' have the same params"]


def test_plan_rejects_a_row_the_schema_refuses() -> None:
    bad = grid.Table(
        key="t",
        slug="t",
        title="t",
        source="s",
        label_header="x",
        mark_headers=(),
        fixed={},
        rows=(grid.Row("r", "R", {"fusion.modalities": ["audio"]}, 0.1),),
        reference="r",
    )
    with pytest.raises(grid.GridError, match="anchor 'text' is not among"):
        grid.plan([bad], 1, BASE)


# ---------------------------------------------------------------------------- render (synthetic)
def _entry(
    name: str,
    params: dict,
    metrics: dict | None,
    *,
    state: str | None = "success",
    error: bool = False,
    stamp: str = "2026-01-01T00:00:00",
) -> dict:
    """One experiment as DVC 3.67 `exp show --json` writes it (layout captured from a real run)."""
    rev = hashlib.sha1(f"{name} {stamp}".encode()).hexdigest()
    data = {
        "rev": rev,
        "timestamp": stamp,
        "params": {"params.yaml": {"data": params}},
        "metrics": {"eval/metrics.json": {"data": metrics}} if metrics is not None else {},
        "deps": {},
        "outs": {},
        "meta": {},
    }
    executor = (
        None
        if state is None
        else {"state": state, "name": None, "local": {"returncode": 0 if state == "success" else 255}}
    )
    return {
        "revs": [
            {
                "rev": rev,
                "name": name,
                "data": data,
                "error": {"msg": "Experiment run failed", "type": ""} if error else None,
                "experiments": None,
            }
        ],
        "executor": executor,
        "name": name,
    }


def _synthetic_exp_show() -> list:
    t3 = grid.TABLES_BY_KEY["taemi_components"]
    u3 = grid.TABLES_BY_KEY["ustc_modules"]

    def params(table: grid.Table, slug: str, seed: int, **extra: Any) -> dict:
        return grid.apply_overrides(BASE, {**table.overrides(table.row(slug)), "train.seed": seed, **extra})

    def m(value: float) -> dict:
        return {"pearson": {"mean": value, "Joy": 0.1}}

    exps = [
        _entry("taemi3-full-s0", params(t3, "full", 0), m(0.50)),
        _entry("taemi3-full-s1", params(t3, "full", 1), m(0.52)),
        _entry("taemi3-full-s2", params(t3, "full", 2), m(0.54), state=None),  # collected: no executor
        _entry("old-full-s2", params(t3, "full", 2), m(0.99), stamp="2025-01-01T00:00:00"),  # older rerun
        _entry("taemi3-concat-s0", params(t3, "concat", 0), m(0.40)),
        _entry("hand-made", params(t3, "concat", 1), m(0.42)),  # matched by params, not by name
        _entry("taemi3-no-taca-s0", params(t3, "no-taca", 0), m(0.47)),
        # A failed run carries its baseline's metrics: it must not count.
        _entry("taemi3-no-lmt-s0", params(t3, "no-lmt", 0), m(0.55), state="failed", error=True),
        _entry("taemi3-no-md-s0", params(t3, "no-md", 0), {}, state="queued"),
        # Same as Text-Anchored but spelled via the full row; and anchor 'visual' == 'vision'.
        _entry("taemi4-vision-s0", params(t3, "full", 0, **{"fusion.anchor": "visual"}), m(0.30)),
        _entry("ustc3-tfe-qam-s0", params(u3, "tfe-qam", 0), m(0.5126)),
        # A different lr is a different configuration: matches no row.
        _entry("lr-full-s0", params(t3, "full", 0, **{"train.lr": 0.5}), m(0.77)),
    ]
    baseline = {
        "rev": "f" * 40,
        "name": "main",
        "data": {
            "rev": "f" * 40,
            "timestamp": None,
            "params": {"params.yaml": {"data": BASE}},
            "metrics": {"eval/metrics.json": {"data": {"pearson": {"mean": 0.9}}}},
        },
        "error": None,
        "experiments": exps,
    }
    workspace = {"rev": "workspace", "name": None, "data": baseline["data"], "error": None, "experiments": None}
    return [workspace, baseline]


def test_render_synthetic_exp_show_gives_the_paper_layout() -> None:
    (baseline,) = grid.parse_exp_show(_synthetic_exp_show())
    pages = grid.render_all(grid.TABLES, baseline, seeds=3)
    assert set(pages) == {
        "taemi_components.md",
        "taemi_anchor.md",
        "ustc_modules.md",
        "ustc_modalities.md",
        "hume_baselines.md",
        "va_fusion.md",
        "expr_fusion.md",
        "au_fusion.md",
        "README.md",
    }
    t3 = pages["taemi_components.md"]
    full = statistics.stdev([0.50, 0.52, 0.54])  # 0.02 with ddof=1
    concat = statistics.stdev([0.40, 0.42])
    assert f"{full:.4f}" == "0.0200" and f"{concat:.4f}" == "0.0141"
    expected_rows = [
        "| Variant | TA-CA | LMT | MD | Mean ρ_val (ours) | Δ (ours) | Mean ρ_val (paper) | Δ (paper) |",
        "| --- | :-: | :-: | :-: | --: | --: | --: | --: |",
        "| Simple Feature Concat |  |  |  | 0.4100 ± 0.0141 (2 seeds) | -0.1100 | 0.45 | -0.10 |",
        "| w/o TA-CA | × | ✓ | ✓ | 0.4700 (1 seed) | -0.0500 | 0.48 | -0.07 |",
        "| w/o LMT | ✓ | × | ✓ | – | – | 0.52 | -0.03 |",
        "| w/o MD | ✓ | ✓ | × | – | – | 0.51 | -0.04 |",
        "| TAEMI (full) | ✓ | ✓ | ✓ | 0.5200 ± 0.0200 (3 seeds) | ref | 0.55 | ref |",
    ]
    assert "\n".join(expected_rows) in t3
    assert (
        "- Simple Feature Concat: `-S fusion.concat=true`; runs: taemi3-concat-s0 (seed 0: 0.4000), "
        "hand-made (seed 1: 0.4200)" in t3
    )
    assert (
        "- TAEMI (full): (nothing more); runs: taemi3-full-s0 (seed 0: 0.5000), taemi3-full-s1 (seed 1: 0.5200), "
        "taemi3-full-s2 (seed 2: 0.5400)" in t3
    )
    missing = t3.split("**Missing**")[1]
    assert "- Simple Feature Concat: no finished run for seed 2" in missing
    assert "- w/o TA-CA: no finished run for seed 1, 2" in missing
    assert "- w/o LMT: no finished experiment" in missing and "- w/o MD: no finished experiment" in missing
    assert "TAEMI (full)" not in missing

    t4 = pages["taemi_anchor.md"]
    assert "| Vision-Anchored [1] | 0.3000 (1 seed) | -0.2200 | 0.39 | -0.16 |" in t4
    assert "| Audio-Anchored | – | – | 0.51 | -0.04 |" in t4
    assert "| Text-Anchored | 0.5200 ± 0.0200 (3 seeds) | ref | 0.55 | ref |" in t4  # shares TAEMI full's runs
    assert "[1] The paper's Table 4 prints 0.39 for Vision-Anchored; its text" in t4 and "says 0.49" in t4

    assert "| +TFE + QAM | ✓ | ✓ | 0.5126 (1 seed) | ref | 0.5126 | ref |" in pages["ustc_modules.md"]
    assert "| +QAM | × | ✓ | – | – | 0.4881 | -0.0245 |" in pages["ustc_modules.md"]
    u4 = pages["ustc_modalities.md"]
    assert "| Modalities | Visual | Audio | Text | Mean ρ_val (ours) |" in u4
    assert "| V+A+T | ✓ | ✓ | ✓ | 0.5126 (1 seed) | ref | 0.5126 | ref |" in u4
    assert "| V+T | ✓ | × | ✓ | – | – | 0.2834 | -0.2292 |" in u4
    readme = pages["README.md"]
    assert readme.startswith("# Ablation grids\n") and "baseline commit fffffff (main)" in readme
    assert all(page in readme for name, page in pages.items() if name != "README.md")
    for excluded in ("0.7700", "lr-full-s0", "0.9900", "old-full-s2", "0.9000", "taemi3-no-lmt-s0", "taemi3-no-md-s0"):
        assert excluded not in readme


def test_render_cli_writes_one_file_per_table_and_readme(tmp_path: Path) -> None:
    saved = tmp_path / "show.json"
    saved.write_text(json.dumps(_synthetic_exp_show()))
    out = tmp_path / "grids"
    code = grid.main(
        [
            "render",
            "--repo",
            str(REPO),
            "--exp-show-json",
            str(saved),
            "--out",
            str(out),
            "--tables",
            "taemi_anchor,ustc_modules",
            "--seeds",
            "1",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "taemi_anchor.md", "ustc_modules.md"]
    assert "no finished run for seed" not in (out / "taemi_anchor.md").read_text()
    assert grid.main(["render", "--repo", str(REPO), "--tables", "nope", "--exp-show-json", str(saved)]) == 2


# --------------------------------------------------------------------------- temp git + dvc repos
TRAIN_PY = """
import json, pathlib, sys, yaml
p = yaml.safe_load(open("params.yaml"))
f, t = p["fusion"], p["train"]
if t["lr"] > 0.1 and t["seed"] == 1:
    sys.exit("diverged")
mean = 0.5 - 0.1 * (len(f["modalities"]) < 3) + 0.01 * t["seed"]
pathlib.Path("eval").mkdir(exist_ok=True)
json.dump({"pearson": {"mean": round(mean, 6), "Joy": 0.25}}, open("eval/metrics.json", "w"))
"""
DVC_YAML = {
    "stages": {
        "prep": {"cmd": "python prep.py", "deps": ["prep.py"], "outs": ["prep.txt"]},
        "train": {
            "cmd": "python train.py",
            "deps": ["prep.txt", "train.py"],
            "params": ["fusion", "train"],
            "metrics": [{"eval/metrics.json": {"cache": False}}],
        },
    }
}


def _sh(repo: Path, *argv: str) -> str:
    code, out, err = grid.run_command(repo, list(argv))
    assert code == 0, f"{argv}: {err}{out}"
    return out


def _make_repo(root: Path) -> Path:
    """A git + DVC repo: the project's params.yaml, an upstream stage and a trivial train stage."""
    root.mkdir()
    _sh(root, "git", "init", "-q")
    _sh(root, "git", "config", "user.email", "grid@test")
    _sh(root, "git", "config", "user.name", "grid test")
    _sh(root, sys.executable, "-m", "dvc", "init", "-q")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "prep.py").write_text("open('prep.txt', 'w').write('prepared')\n")
    (root / "train.py").write_text(TRAIN_PY)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    _sh(root, sys.executable, "-m", "dvc", "repro", "-q")
    _sh(root, "git", "add", "-A")
    _sh(root, "git", "commit", "-qm", "baseline")
    return root


def test_run_refuses_when_upstream_is_stale_or_uncommitted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    repo = _make_repo(tmp_path / "repo")
    grid.check_upstream(repo, ["train"], runs=4)  # up to date and committed: no error

    (repo / "prep.py").write_text("open('prep.txt', 'w').write('changed')\n")
    with pytest.raises(grid.GridError) as info:
        grid.check_upstream(repo, ["train"], runs=4)
    message = str(info.value)
    assert "stage 'prep' is not up to date" in message and "prep.py" in message
    assert "recomputed inside every one of the 4 experiments" in message
    assert "Fix: dvc repro prep; then git add dvc.lock" in message

    # The CLI says the same and exits 2 before queueing anything.
    assert grid.main(["run", "--repo", str(repo), "--tables", "taemi_anchor", "--seeds", "1"]) == 2
    assert "refusing to queue the grid" in capsys.readouterr().err
    assert "Queued" not in _sh(repo, sys.executable, "-m", "dvc", "queue", "status")

    _sh(repo, sys.executable, "-m", "dvc", "repro", "-q")  # up to date, but dvc.lock not committed
    with pytest.raises(grid.GridError, match=r"uncommitted change: M dvc.lock"):
        grid.check_upstream(repo, ["train"], runs=4)
    _sh(repo, "git", "rm", "-q", "--cached", "dvc.lock")
    with pytest.raises(grid.GridError, match="dvc.lock is not committed in git"):
        grid.check_upstream(repo, ["train"], runs=4)


TOY_A = grid.Table(
    key="toy_a",
    slug="a",
    title="Toy A",
    source="test",
    label_header="Variant",
    mark_headers=("VT",),
    fixed={"fusion.model": "taemi"},
    rows=(
        grid.Row("full", "Full", {}, 0.5, (False,)),
        grid.Row("vt", "V+T", {"fusion.modalities": ["visual", "text"]}, 0.4, (True,)),
    ),
    reference="full",
)
TOY_B = grid.Table(
    key="toy_b",
    slug="b",
    title="Toy B",
    source="test",
    label_header="Variant",
    mark_headers=(),
    fixed={},
    rows=(
        grid.Row("all", "All", {"fusion.modalities": ["visual", "audio", "text"]}, 0.5),
        grid.Row("hot", "Hot lr", {"train.lr": 0.5}, 0.1),
    ),
    reference="all",
)


@pytest.mark.slow  # ~25 s of CPU in ~30 dvc processes; 100-130 s wall here under a load of 7-9
def test_real_queue_end_to_end(tmp_path: Path) -> None:
    """Queue a grid on a real repo, run it with two workers, render from the real exp show JSON."""
    repo = _make_repo(tmp_path / "repo")
    out = repo / "grids"
    try:
        code = grid.run(repo=repo, tables=[TOY_A, TOY_B], seeds=2, jobs=2, out=out, poll_s=2.0, stages=["train"])
        assert code == 1  # the 'hot' row fails for seed 1 by design

        doc = json.loads(_sh(repo, sys.executable, "-m", "dvc", "exp", "show", "--json"))
        (baseline,) = grid.parse_exp_show(doc)
        assert baseline.params == BASE
        got = {e.name: (e.state, e.seed, e.metric()) for e in baseline.experiments}
        # Shared configuration (toy_a/full == toy_b/all) ran once, under the first table's name.
        assert {n: v for n, v in got.items() if v[0] == "success"} == {
            "a-full-s0": ("success", 0, 0.5),
            "a-full-s1": ("success", 1, 0.51),
            "a-vt-s0": ("success", 0, 0.4),
            "a-vt-s1": ("success", 1, 0.41),
            "b-hot-s0": ("success", 0, 0.5),
        }
        assert got["b-hot-s1"][0] == "failed"
        exp_params = next(e.params for e in baseline.experiments if e.name == "a-vt-s1")
        assert exp_params["fusion"]["modalities"] == ["visual", "text"] and exp_params["train"]["seed"] == 1

        a, b = (out / "toy_a.md").read_text(), (out / "toy_b.md").read_text()
        assert "| Full | × | 0.5050 ± 0.0071 (2 seeds) | ref | 0.5 | ref |" in a
        assert "| V+T | ✓ | 0.4050 ± 0.0071 (2 seeds) | -0.1000 | 0.4 | -0.1 |" in a
        assert "| All | 0.5050 ± 0.0071 (2 seeds) | ref | 0.5 | ref |" in b
        assert "| Hot lr | 0.5000 (1 seed) | -0.0050 | 0.1 | -0.4 |" in b
        assert "- Hot lr: no finished run for seed 1" in b
        assert (out / "README.md").read_text().count("## Toy") == 2

        # Rerun: everything of table A is finished, so nothing is queued and the exit is clean.
        assert grid.run(repo=repo, tables=[TOY_A], seeds=2, jobs=1, out=out, poll_s=2.0, stages=["train"]) == 0
        assert "Queued" not in _sh(repo, sys.executable, "-m", "dvc", "queue", "status")
    finally:
        grid.run_command(repo, [sys.executable, "-m", "dvc", "queue", "stop"])

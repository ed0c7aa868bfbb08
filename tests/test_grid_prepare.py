"""The organisers' baseline table: it needs the organiser features upstream, so the grid refuses
to queue it until the committed params.yaml selects them, and ``run --prepare`` puts them there,
computes the upstream stages once and commits exactly params.yaml and dvc.lock."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.experiments import grid

from .conftest import REPO

BASE = yaml.safe_load((REPO / "params.yaml").read_text())
HUME = grid.TABLES_BY_KEY["hume_baselines"]
ORGANISER = {"features.visual.model": "hume-vit", "features.audio.model": "hume-wav2vec2"}

# A toy pipeline whose upstream stage reads the feature params, like the real feature stages.
PREP_PY = """
import yaml
p = yaml.safe_load(open("params.yaml"))["features"]
open("prep.txt", "w").write(p["visual"]["model"] + " " + p["audio"]["model"])
"""
DVC_YAML = {
    "stages": {
        "prep": {
            "cmd": "python prep.py",
            "deps": ["prep.py"],
            "params": ["features.visual.model", "features.audio.model"],
            "outs": ["prep.txt"],
        },
        "train": {"cmd": "echo trained", "deps": ["prep.txt"], "params": ["fusion", "train"]},
    }
}


@pytest.fixture(autouse=True)
def _quiet_dvc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def _sh(repo: Path, *argv: str) -> str:
    code, out, err = grid.run_command(repo, list(argv))
    assert code == 0, f"{argv}: {err}{out}"
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _sh(root, "git", "init", "-q")
    _sh(root, "git", "config", "user.email", "grid@test")
    _sh(root, "git", "config", "user.name", "grid test")
    _sh(root, sys.executable, "-m", "dvc", "init", "-q")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "prep.py").write_text(PREP_PY)
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    _sh(root, sys.executable, "-m", "dvc", "repro", "-q")
    _sh(root, "git", "add", "-A")
    _sh(root, "git", "commit", "-qm", "baseline")
    return root


def test_the_table_holds_the_organisers_rows_and_needs_their_features() -> None:
    assert [(r.label, r.paper) for r in HUME.rows] == [
        ("ViT only", 0.09),
        ("wav2vec2 only", 0.24),
        ("ViT + wav2vec2 (concat)", 0.25),
    ]
    assert [HUME.overrides(r)["fusion.modalities"] for r in HUME.rows] == [["visual"], ["audio"], ["visual", "audio"]]
    assert all(HUME.overrides(r)["fusion.concat"] for r in HUME.rows)
    assert dict(HUME.requires) == ORGANISER
    # The shipped params do not select them; params that do meet the table's needs.
    assert grid.unmet_requirements([HUME], BASE) == [
        "hume_baselines needs features.visual.model=hume-vit (params.yaml has 'fer-mini-xception')",
        "hume_baselines needs features.audio.model=hume-wav2vec2 (params.yaml has 'whisper-encoder')",
    ]
    emi_tables = [t for t in grid.TABLES if not (t.requires or {}).get("task")]
    assert grid.unmet_requirements(emi_tables, grid.apply_overrides(BASE, ORGANISER)) == []
    # Upstream of the grid's own stage: everything before train, in pipeline order.
    assert grid.upstream_stages(["train"])[-3:] == ["features@visual", "features@audio", "features@text"]


def test_default_tables_leave_out_what_the_params_cannot_run(capsys: pytest.CaptureFixture) -> None:
    assert grid.main(["run", "--repo", str(REPO), "--seeds", "1", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "--name taemi3-full-s0" in printed and "hume-" not in printed
    assert grid.main(["run", "--repo", str(REPO), "--seeds", "1", "--dry-run", "--tables", "hume_baselines"]) == 0
    out = capsys.readouterr().out
    assert "--name hume-vit-w2v-s0" in out and "warning: hume_baselines needs features.visual.model=hume-vit" in out
    assert grid.main(["run", "--repo", str(REPO), "--set", "data.root=x"]) == 2
    assert "--set goes with --prepare" in capsys.readouterr().err


def test_run_refuses_until_the_committed_params_select_the_organiser_features(
    repo: Path, capsys: pytest.CaptureFixture
) -> None:
    assert grid.main(["run", "--repo", str(repo), "--tables", "hume_baselines", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert "hume_baselines needs features.visual.model=hume-vit" in err
    assert "Fix: python -m pipeline.experiments.grid run --tables hume_baselines --prepare" in err
    assert "Queued" not in _sh(repo, sys.executable, "-m", "dvc", "queue", "status")


def test_prepare_sets_computes_once_and_commits_only_params_and_lock(repo: Path) -> None:
    (repo / "notes.txt").write_text("unrelated work in progress\n")
    _sh(repo, "git", "add", "notes.txt")  # staged by the user: prepare must not commit it
    with pytest.raises(grid.GridError, match=r"cannot set .* data.rot=/x in params.yaml: .*override 'data.rot'"):
        grid.prepare(repo, [HUME], ["data.rot=/x"], upstream=["prep"])
    assert (repo / "params.yaml").read_text() == (REPO / "params.yaml").read_text()  # left as it was
    grid.prepare(repo, [], ["data.source=demo"], upstream=["prep"])  # a value it has: no rewrite in DVC's style
    assert (repo / "params.yaml").read_text() == (REPO / "params.yaml").read_text()
    assert _sh(repo, "git", "log", "-1", "--format=%s").strip() == "baseline"

    grid.prepare(repo, [HUME], ["data.source=hume", "data.root=/data/Hume-Vidmimic2"], upstream=["prep"])
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["features"]["visual"]["model"] == "hume-vit"
    assert params["features"]["audio"]["model"] == "hume-wav2vec2"
    assert (params["data"]["source"], params["data"]["root"]) == ("hume", "/data/Hume-Vidmimic2")
    assert (repo / "prep.txt").read_text() == "hume-vit hume-wav2vec2"  # the upstream stage ran
    assert _sh(repo, "git", "log", "-1", "--format=%s").strip() == "grid: upstream stages for hume_baselines"
    assert sorted(_sh(repo, "git", "show", "--name-only", "--format=", "HEAD").split()) == ["dvc.lock", "params.yaml"]
    assert _sh(repo, "git", "status", "--porcelain").splitlines() == ["A  notes.txt"]
    # Now the grid's checks pass: requirements met, upstream cached and committed.
    grid.check_requirements([HUME], params)
    grid.check_upstream(repo, ["train"], runs=3)

    # Prepared already: a second prepare leaves params.yaml byte for byte, computes nothing new and
    # commits nothing.
    head, before = _sh(repo, "git", "rev-parse", "HEAD"), (repo / "params.yaml").read_bytes()
    grid.prepare(repo, [HUME], ["data.root=/data/Hume-Vidmimic2"], upstream=["prep"])
    assert _sh(repo, "git", "rev-parse", "HEAD") == head and (repo / "params.yaml").read_bytes() == before


def test_render_names_the_upstream_params_and_the_papers_numbers() -> None:
    base = grid.apply_overrides(BASE, ORGANISER)
    baseline = grid.Baseline(rev="a" * 40, name="main", params=base, experiments=())
    text = grid.render_table(HUME, grid.collect([HUME], baseline), seeds=1)
    assert "`features.visual.model=hume-vit features.audio.model=hume-wav2vec2`" in text
    assert "| ViT only | ✓ | × | – | – | 0.09 | -0.16 |" in text
    assert "| wav2vec2 only | × | ✓ | – | – | 0.24 | -0.01 |" in text
    assert "| ViT + wav2vec2 (concat) | ✓ | ✓ | – | ref | 0.25 | ref |" in text

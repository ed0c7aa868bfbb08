"""``dvc plots show`` / ``dvc plots diff`` exactly as a user types them, and the PNG export, on a
run's outputs in a fresh git + DVC copy of the project.

Fast: the run is the CI-size demo's outputs committed under eval/ (a real run of this pipeline).
Slow: a small demo run end to end by ``dvc repro`` first. Both check that the page DVC writes
names no http(s) script or stylesheet and embeds every plot, and that each exported PNG is drawn
(pixel spread, non-background share), the per-emotion bars with the demo's noise ceiling.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from fixtures.images import image_stats
from pipeline.plots.template import external_resources

from .conftest import REPO

# What `dvc plots show` needs: the plot definitions, the config naming the template; the run's
# outputs (eval/) come from the last commit, whatever a later run left in the working tree.
RUN_FILES = ("dvc.yaml", "params.yaml", ".dvc/config", ".dvc/.gitignore", ".gitignore")
CEILING = {"Admiration": 0.91, "Amusement": 0.89, "Determination": 0.88, "Empathic Pain": 0.91,
           "Excitement": 0.88, "Joy": 0.89}  # fmt: skip


def _env() -> dict[str, str]:
    # This checkout's code first (the shared editable install may point at another checkout), and
    # this interpreter's bin on PATH for the `python -m stages...` commands DVC starts.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PYTHONPATH": str(REPO), "PATH": path, "DVC_NO_ANALYTICS": "1"}


def _run(repo: Path, *argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=repo, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stderr[-3000:]}{done.stdout[-2000:]}"
    return done


def _copy_tracked(dest: Path, names: tuple[str, ...] | None = None, *, template: bool = True) -> Path:
    # Tracked and new (not ignored) files: the working tree as it would be committed.
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", *(names or ())],
                            cwd=REPO, capture_output=True, text=True)  # fmt: skip
    for name in filter(None, listed.stdout.split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    _run(dest, "git", "init", "-q")
    _run(dest, "git", "config", "user.email", "test@example.invalid")
    _run(dest, "git", "config", "user.name", "test")
    if template:  # what scripts/setup.sh does on a fresh clone
        _run(dest, sys.executable, "-m", "pipeline.plots", "template")
    return dest


def check_show_and_export(repo: Path, n_plots: int) -> None:
    """`dvc plots show` as typed, then `python -m pipeline.plots export`, checked."""
    _run(repo, sys.executable, "-m", "dvc", "plots", "show")
    page = (repo / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert external_resources(page) == []
    assert page.count("vegaEmbed('#") == n_plots and "window.vegaEmbed=" in page
    done = _run(repo, sys.executable, "-m", "pipeline.plots", "export", "--out", "figures")
    pictures = sorted((repo / "figures").glob("*.png"))
    assert len(pictures) == n_plots, done.stdout
    for picture in pictures:
        stats = image_stats(picture)
        assert stats.std > 15 and stats.ink_fraction > 0.05, (picture.name, stats)
    assert "per_emotion.png" in done.stdout and "(with noise ceiling)" in done.stdout


@pytest.fixture(scope="module")
def committed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = _copy_tracked(tmp_path_factory.mktemp("plots") / "repo", RUN_FILES)
    # The committed eval/ (the CI-size demo's run): `make demo-va` or `make ci-gate` rewrite the
    # working tree's with other tasks' outputs.
    archive = subprocess.run(["git", "archive", "HEAD", "eval"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(repo, filter="data")
    (repo / "data" / "demo").mkdir(parents=True)
    (repo / "data" / "demo" / "ceiling.json").write_text(json.dumps({"fused": {"per_emotion": CEILING}}))
    return repo


def test_plots_show_and_export_offline_on_a_run(committed_run: Path) -> None:
    plots = json.loads(_run(committed_run, sys.executable, "-m", "dvc", "plots", "show", "--json").stdout)
    assert not plots.get("errors")
    check_show_and_export(committed_run, n_plots=len(plots["data"]))


def test_plots_diff_between_revisions_offline(committed_run: Path) -> None:
    _run(committed_run, "git", "add", "-A")
    _run(committed_run, "git", "commit", "-q", "-m", "baseline run")
    per_emotion = committed_run / "eval" / "plots" / "per_emotion.csv"
    lines = per_emotion.read_text().splitlines()
    per_emotion.write_text("\n".join([lines[0], *(f"{line.split(',')[0]},0.5" for line in lines[1:])]) + "\n")
    target = ("--targets", "dvc.yaml::eval/plots/per_emotion.csv")
    _run(committed_run, sys.executable, "-m", "dvc", "plots", "diff", "HEAD", *target, "-o", "diff")
    page = (committed_run / "diff" / "index.html").read_text(encoding="utf-8")
    assert external_resources(page) == [] and page.count("vegaEmbed('#") == 1
    assert '"rev": "HEAD"' in page and '"rev": "workspace"' in page
    done = _run(committed_run, sys.executable, "-m", "pipeline.plots", "export", "--revs", "HEAD",
                "--out", "diff-figures", "dvc.yaml::eval/plots/per_emotion.csv")  # fmt: skip
    assert "[workspace, HEAD]" in done.stdout
    assert image_stats(committed_run / "diff-figures" / "per_emotion.png").ink_fraction > 0.1


def test_export_user_errors_are_one_line(tmp_path: Path) -> None:
    repo = _copy_tracked(tmp_path / "repo", ("dvc.yaml", "params.yaml", ".dvc/config"), template=False)

    def export(where: Path, *extra: str) -> str:
        argv = [sys.executable, "-m", "pipeline.plots", "export", "--out", "figs", *extra]
        done = subprocess.run(argv, cwd=where, env=_env(), capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
        return done.stderr

    assert "no plots to export" in export(repo) and "make demo" in export(repo)  # no run yet
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", "project")
    assert "unknown Git revision 'no-such-rev'" in export(repo, "--revs", "no-such-rev")
    (tmp_path / "elsewhere").mkdir()
    assert "run from the project folder" in export(tmp_path / "elsewhere")
    assert not (repo / "figs").exists()


@pytest.mark.slow  # a whole (small) demo run through dvc repro: about 130 s on two cores
def test_plots_of_a_demo_run(tmp_path: Path) -> None:
    repo = _copy_tracked(tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["demo"].update(n_train=8, n_valid=6, n_test=2, faults=False)
    params["asr"]["model"] = "tiny.en"  # the plots, not transcription accuracy, are under test
    params["train"].update(max_epochs=4, batch_size=8)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stale in ("eval/metrics.json", "eval/train"):  # the committed baseline: the run must write its own
        shutil.rmtree(repo / stale) if (repo / stale).is_dir() else (repo / stale).unlink()
    _run(repo, "git", "add", "-A")
    _run(repo, "git", "commit", "-q", "-m", "project")  # DVCLive (train) needs a commit to start from
    _run(repo, sys.executable, "-m", "dvc", "repro")
    assert (repo / "data" / "demo" / "ceiling.json").is_file()
    curve = (repo / "eval" / "train" / "plots" / "metrics" / "val_pearson.tsv").read_text().splitlines()
    assert len(curve) == 1 + 4  # this run's four epochs, not the baseline's
    check_show_and_export(repo, n_plots=7)

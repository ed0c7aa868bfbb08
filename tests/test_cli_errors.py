"""Every command-line entry point answers a user error with one line, ``error: ...``, and exit
status 2: params missing (run outside the project), params that are not YAML, a missing input
table or model folder. Never a traceback."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

# Each entry point with the arguments it requires; "{t}" is a scratch folder with nothing in it.
ENTRY_POINTS = {
    "stages.check_params": ["--out", "{t}/ok"],
    "stages.make_demo": ["--out", "{t}/demo"],
    "stages.ingest": ["--out", "{t}/manifest.parquet", "--labels", "{t}/labels"],
    "stages.decode": [
        "--manifest", "{t}/m.parquet", "--out", "{t}/decoded", "--status", "{t}/s.parquet",
        "--timeline", "{t}/tl.parquet",
    ],
    "stages.asr": ["--decoded", "{t}/decoded", "--status", "{t}/s.parquet", "--out", "{t}/asr.parquet",
                   "--encoder-out", "{t}/encoder"],
    "stages.features": [
        "--modality", "text", "--manifest", "{t}/m.parquet", "--decoded", "{t}/d", "--status", "{t}/s.parquet",
        "--asr", "{t}/asr.parquet", "--out", "{t}/f",
    ],
    "stages.train": [
        "--manifest", "{t}/m.parquet", "--features", "{t}/f", "--labels", "{t}/labels", "--timeline", "{t}/tl.parquet",
        "--out", "{t}/model", "--live", "{t}/l",
    ],
    "stages.evaluate": [
        "--manifest", "{t}/m.parquet", "--features", "{t}/f", "--labels", "{t}/labels", "--timeline", "{t}/tl.parquet",
        "--model", "{t}/model", "--out", "{t}/e",
    ],
    "pipeline.experiments.gate": [],
    "pipeline.predict.cli": ["{t}/clip.mp4", "--out", "{t}/preds.csv"],
}  # fmt: skip


def _argv(module: str, scratch: Path) -> list[str]:
    return [a.replace("{t}", str(scratch)) for a in ENTRY_POINTS[module]]


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_missing_params_is_one_line_and_exit_2(module: str, tmp_path: Path, monkeypatch, capsys) -> None:
    """Run outside the project (no params.yaml in the working folder) without --params."""
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(module).main
    assert main(_argv(module, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: params.yaml: no such file (run from the project folder, or pass --params)"
    assert len(err) == 1 or (module == "stages.check_params" and err[1].startswith("note: "))


def test_grid_without_params(tmp_path: Path, capsys) -> None:
    from pipeline.experiments.grid.cli import main

    assert main(["render", "--repo", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'params.yaml'}: no such file (run from the " + (
        "project folder, or pass --params)"
    )


def test_params_that_are_not_yaml(tmp_path: Path, capsys) -> None:
    from stages.decode import main

    bad = tmp_path / "params.yaml"
    bad.write_text("decode:\n  fps: [5\n")
    assert main(["--params", str(bad), *_argv("stages.decode", tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: cannot read it: while parsing") and "\n" not in err


def test_missing_input_table_and_model_folder(tmp_path: Path, capsys) -> None:
    from stages.decode import main as decode
    from stages.evaluate import main as evaluate

    params = ["--params", str(REPO / "params.yaml")]
    assert decode([*params, *_argv("stages.decode", tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'm.parquet'}: no such file"
    assert evaluate([*params, *_argv("stages.evaluate", tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'model' / 'config.json'}: No such file or directory"


def test_predict_outside_the_repo_prints_no_traceback(tmp_path: Path) -> None:
    """The reported case: ``python -m pipeline.predict`` from another folder, no --params."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "pipeline.predict", "clip.mp4", "--out", "preds.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == "error: params.yaml: no such file (run from the project folder, or pass --params)"


def test_check_params_says_how_to_restore_an_override(tmp_path: Path, capsys) -> None:
    """`dvc exp run -S decode.fps=-1` writes the bad value into params.yaml before check_params runs."""
    from stages.check_params import main

    bad = tmp_path / "params.yaml"
    bad.write_text((REPO / "params.yaml").read_text().replace("fps: 5", "fps: -1", 1))
    assert main(["--params", str(bad), "--out", str(tmp_path / "ok")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: params.yaml does not match the schema:\n  bad value for 'decode.fps'")
    assert f"restore the committed file with `git checkout -- {bad}`" in err
    assert not (tmp_path / "ok").exists()

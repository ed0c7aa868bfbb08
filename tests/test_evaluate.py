"""The evaluate stage end to end (metrics layout, plots, predictions, submission) and its parts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from scipy.stats import pearsonr

from pipeline.emotions import EMOTIONS, LABEL_CSV_HEADER
from pipeline.evaluate.evaluation import predictions_table, random_absence, submission_csv
from pipeline.evaluate.submission import submission_stem
from pipeline.train.dataset import ModalityInfo, build_clip_table

from .test_training import DIMS, _run_train, synthetic_records, write_dataset, write_params

N = {"train": 64, "valid": 24, "test": 10}


def _evaluate(root: Path, manifest: Path, model: str, params: Path, out: str = "eval") -> int:
    from stages.evaluate import main

    return main(
        [
            "--params",
            str(params),
            "--manifest",
            str(manifest),
            "--features",
            str(root / "features"),
            "--labels",
            str(root / "labels"),
            "--timeline",
            str(root / "timeline.parquet"),
            "--model",
            str(root / model),
            "--out",
            str(root / out),
        ]
    )


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    manifest = write_dataset(root, n=N)
    params = write_params(root / "params.yaml", evaluate={"missing_fraction": 0.5, "robustness_seed": 3})
    _run_train(root, manifest, params, "model")
    assert _evaluate(root, manifest, "model", params) == 0
    return root


def test_metrics_layout(evaluated: Path) -> None:
    metrics = json.loads((evaluated / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"pearson", "test", "train", "robustness", "n_clips", "best_epoch"}
    assert set(metrics["pearson"]) == {"mean", *EMOTIONS}
    assert set(metrics["test"]["pearson"]) == {"mean", *EMOTIONS}
    assert set(metrics["robustness"]) == {"full", "no_visual", "no_audio", "no_text", "random_missing"}
    assert metrics["robustness"]["full"] == metrics["pearson"]["mean"]
    assert metrics["n_clips"] == N
    assert metrics["pearson"]["mean"] > 0.5  # the synthetic problem is learnable
    # Every modality carries the signal here, so losing inputs costs something.
    assert metrics["robustness"]["random_missing"] < metrics["pearson"]["mean"]
    assert min(metrics["robustness"][f"no_{m}"] for m in DIMS) < metrics["pearson"]["mean"]


def test_metrics_agree_with_the_predictions_file(evaluated: Path) -> None:
    metrics = json.loads((evaluated / "eval" / "metrics.json").read_text())
    table = pl.read_parquet(evaluated / "eval" / "predictions.parquet")
    assert table.height == sum(N.values())  # every clip of every split, none lost
    assert table.columns[:2] == ["clip_id", "split"]
    assert {f"present_{m}" for m in DIMS} <= set(table.columns)
    for split, node in (("valid", metrics["pearson"]), ("test", metrics["test"]["pearson"])):
        part = table.filter(pl.col("split") == split)
        for e in EMOTIONS:
            r = pearsonr(part[f"pred_{e}"].to_numpy().astype(np.float64), part[f"label_{e}"].to_numpy()).statistic
            assert node[e] == pytest.approx(r, abs=1e-6)


def test_plot_files(evaluated: Path) -> None:
    plots = evaluated / "eval" / "plots"
    heads = {p.name: p.read_text().splitlines()[0] for p in plots.glob("*.csv")}
    assert heads == {
        "per_emotion.csv": "emotion,pearson",
        "scatter.csv": "clip_id,emotion,label,prediction",
        "robustness.csv": "condition,pearson",
    }
    # The training curve is the train stage's DVCLive plot: one row per epoch run.
    config = json.loads((evaluated / "model" / "config.json").read_text())
    curve = evaluated / "model_live" / "plots" / "metrics" / "val_pearson.tsv"
    assert curve.read_text().splitlines()[0] == "step\tval_pearson"
    assert len(curve.read_text().splitlines()) == 1 + config["epochs_run"]
    assert len((plots / "scatter.csv").read_text().splitlines()) == 1 + 6 * N["valid"]


def test_submission_file(evaluated: Path) -> None:
    rows = list(csv.reader((evaluated / "eval" / "submission.csv").open()))
    assert tuple(rows[0]) == LABEL_CSV_HEADER
    assert len(rows) == 1 + N["test"]
    assert all(len(r[0]) == 5 and r[0].isdigit() for r in rows[1:])
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert values.min() >= 0.0 and values.max() <= 1.0


def test_rerun_gives_identical_outputs(evaluated: Path) -> None:
    params = evaluated / "params.yaml"
    assert _evaluate(evaluated, evaluated / "manifest.parquet", "model", params, out="eval2") == 0
    for name in ("metrics.json", "submission.csv", "plots/robustness.csv"):
        assert (evaluated / "eval" / name).read_bytes() == (evaluated / "eval2" / name).read_bytes()


def test_evaluate_refuses_features_the_model_was_not_trained_on(evaluated: Path, capsys) -> None:
    config = json.loads((evaluated / "model" / "config.json").read_text())
    config["features"]["audio"]["model"] = "another-extractor"
    bad = evaluated / "model_bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(config))
    for name in ("model.safetensors",):
        (bad / name).write_bytes((evaluated / "model" / name).read_bytes())
    assert _evaluate(evaluated, evaluated / "manifest.parquet", "model_bad", evaluated / "params.yaml", "eval_bad") == 2
    assert "differ from those the model was trained on" in capsys.readouterr().err


def test_no_test_labels_means_no_test_metrics(tmp_path: Path) -> None:
    manifest = write_dataset(tmp_path, n={"train": 32, "valid": 12, "test": 5}, test_labels=False)
    params = write_params(tmp_path / "params.yaml", train={"max_epochs": 1})
    _run_train(tmp_path, manifest, params, "model")
    assert _evaluate(tmp_path, manifest, "model", params) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "test" not in metrics
    table = pq.read_table(tmp_path / "eval" / "predictions.parquet")
    test_labels = [table.column(f"label_{e}").to_pylist() for e in EMOTIONS]
    assert all(v is None for col in test_labels for v in col[-5:])


def _table(ids: list[str], splits: list[str]):
    labels, records = synthetic_records(ids, seed=0)
    return build_clip_table(
        clip_ids=ids,
        splits=splits,
        labels=labels,
        records=records,
        info={m: ModalityInfo(dim=d, model="m") for m, d in DIMS.items()},
        max_frames={"visual": 400, "audio": 600},
    )


def test_submission_stems_and_clipping() -> None:
    assert submission_stem("12") == "00012"
    assert submission_stem("00012") == "00012"
    assert submission_stem("123456") == "123456"
    assert submission_stem("clip_7") == "clip_7"
    table = _table(["3", "train_a", "clip_b", "12660"], ["test", "train", "test", "test"])
    preds = np.array([[-0.5, 0.2, 1.7, 0.5, 0.0, 1.0]] * 4, np.float32)
    text = submission_csv(table, preds)
    assert text.splitlines() == [
        "Filename,Admiration,Amusement,Determination,Empathic Pain,Excitement,Joy",
        "00003,0.000000,0.200000,1.000000,0.500000,0.000000,1.000000",
        "clip_b,0.000000,0.200000,1.000000,0.500000,0.000000,1.000000",
        "12660,0.000000,0.200000,1.000000,0.500000,0.000000,1.000000",
    ]


def test_predictions_table_columns_and_nulls() -> None:
    table = _table(["a", "b"], ["valid", "test"])
    table.labels[1] = np.nan
    out = predictions_table(table, np.zeros((2, 6), np.float32))
    assert out.column_names == [
        "clip_id",
        "split",
        *(f"pred_{e}" for e in EMOTIONS),
        *(f"label_{e}" for e in EMOTIONS),
        "present_visual",
        "present_audio",
        "present_text",
    ]
    assert out.column("label_Joy").to_pylist()[1] is None
    assert out.column("label_Joy").null_count == 1


def test_random_absence_fraction_and_seed() -> None:
    a = random_absence(5000, ("visual", "audio", "text"), fraction=0.3, seed=7)
    b = random_absence(5000, ("visual", "audio", "text"), fraction=0.3, seed=7)
    assert all(np.array_equal(a[m], b[m]) for m in a)
    rate = np.mean([a[m].mean() for m in a])
    assert rate == pytest.approx(0.3, abs=0.02)
    assert not any(random_absence(100, ("text",), fraction=0.0, seed=1)["text"])

"""Evaluation of a trained fusion model: metrics, robustness, predictions, submission, plot data.

``metrics.json`` (nested, so ``dvc metrics show`` and ``dvc exp show`` have one column per leaf):

    pearson.mean, pearson.<Emotion>          valid split (the challenge's reported number)
    test.pearson.mean, test.pearson.<E>      only when the test split has labels
    train.pearson.mean                       the same model on its own training clips (overfit check)
    robustness.full                          = pearson.mean
    robustness.no_<modality>                 valid, that modality removed for every clip
    robustness.random_missing                valid, each (clip, modality) slot removed with
                                             probability evaluate.missing_fraction (seeded)
    n_clips.<split>, best_epoch

Removing a modality means the model sees it as missing (TAEMI: its missing token or zeros; USTC:
masked out), exactly as for a clip whose extraction failed. Pearson conventions (constant -> 0) are
those of ``pipeline.evaluate.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import torch
import torch.nn as nn

from pipeline.atomic import write_json, write_parquet, write_text
from pipeline.config import MODALITIES
from pipeline.emotions import EMOTIONS
from pipeline.evaluate import submission
from pipeline.evaluate.metrics import pearson_report
from pipeline.train.dataset import ClipTable
from pipeline.train.inference import predict


@dataclass
class Evaluation:
    metrics: dict
    predictions: np.ndarray  # (N, 6) for every clip of the table, full inputs
    robustness: dict[str, float]
    scatter: list[tuple[str, str, float, float]]  # valid: clip_id, emotion, label, prediction


def random_absence(n: int, modalities: tuple[str, ...], *, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """{m: (n,) bool} with each (clip, modality) slot absent independently with probability ``fraction``."""
    draws = np.random.default_rng(seed).random((n, len(modalities))) < fraction
    return {m: draws[:, k] for k, m in enumerate(modalities)}


def evaluate_model(
    *,
    model: nn.Module,
    table: ClipTable,
    batch_size: int,
    device: torch.device,
    missing_fraction: float,
    seed: int,
) -> Evaluation:
    """Predict every clip of ``table``; score valid (and labelled test, and train); run robustness."""
    preds = predict(model, table, batch_size=batch_size, device=device)
    metrics: dict = {"n_clips": {s: int((table.splits == s).sum()) for s in ("train", "valid", "test")}}
    valid = np.flatnonzero(table.splits == "valid")
    if valid.size == 0:
        raise ValueError("the manifest has no valid split to evaluate on")
    metrics["pearson"] = pearson_report(preds[valid], table.labels[valid])
    test = np.flatnonzero(table.splits == "test")
    if test.size and np.isfinite(table.labels[test]).any():
        metrics["test"] = {"pearson": pearson_report(preds[test], table.labels[test])}
    train = np.flatnonzero(table.splits == "train")
    if train.size:
        metrics["train"] = {"pearson": {"mean": pearson_report(preds[train], table.labels[train])["mean"]}}

    valid_table = table.select(valid)
    robust = {"full": metrics["pearson"]["mean"]}
    for m in valid_table.modalities:
        gone = {m: np.ones(len(valid_table), bool)}
        p = predict(model, valid_table, batch_size=batch_size, device=device, absent=gone)
        robust[f"no_{m}"] = pearson_report(p, valid_table.labels)["mean"]
    gone = random_absence(len(valid_table), valid_table.modalities, fraction=missing_fraction, seed=seed)
    p = predict(model, valid_table, batch_size=batch_size, device=device, absent=gone)
    robust["random_missing"] = pearson_report(p, valid_table.labels)["mean"]
    metrics["robustness"] = robust

    scatter = [
        (table.clip_ids[i], e, float(table.labels[i, k]), float(preds[i, k]))
        for i in valid
        for k, e in enumerate(EMOTIONS)
        if np.isfinite(table.labels[i, k])
    ]
    return Evaluation(metrics=metrics, predictions=preds, robustness=robust, scatter=scatter)


def predictions_table(table: ClipTable, preds: np.ndarray) -> pa.Table:
    """clip_id, split, pred_<E> x6, label_<E> x6 (null where unknown), present_<modality> x3."""
    columns: dict[str, pa.Array] = {
        "clip_id": pa.array(table.clip_ids, pa.string()),
        "split": pa.array([str(s) for s in table.splits], pa.string()),
    }
    for k, e in enumerate(EMOTIONS):
        columns[f"pred_{e}"] = pa.array(preds[:, k].astype(np.float32), pa.float32())
    for k, e in enumerate(EMOTIONS):
        col = table.labels[:, k].astype(np.float64)
        columns[f"label_{e}"] = pa.array(col, pa.float64(), mask=~np.isfinite(col))
    for m in MODALITIES:
        present = table.present(m) if m in table.values else np.zeros(len(table), bool)
        columns[f"present_{m}"] = pa.array(present, pa.bool_())
    return pa.table(columns)


def submission_csv(table: ClipTable, preds: np.ndarray) -> str:
    """The ABAW EMI submission of the table's test clips (``pipeline.evaluate.submission``)."""
    test = np.flatnonzero(table.splits == "test")
    return submission.submission_csv([table.clip_ids[i] for i in test], preds[test])


def _csv(columns: dict[str, list]) -> str:
    return pl.DataFrame(columns).write_csv()


def write_outputs(
    out_dir: str | Path,
    *,
    evaluation: Evaluation,
    table: ClipTable,
    best_epoch: int,
) -> None:
    """metrics.json, predictions.parquet, submission.csv and plots/*.csv under ``out_dir`` (the
    training curves are the train stage's DVCLive plots)."""
    out = Path(out_dir)
    metrics = {**evaluation.metrics, "best_epoch": int(best_epoch)}
    write_json(metrics, out / "metrics.json")
    write_parquet(predictions_table(table, evaluation.predictions), out / "predictions.parquet")
    write_text(submission_csv(table, evaluation.predictions), out / "submission.csv")
    plots = out / "plots"
    per = evaluation.metrics["pearson"]
    write_text(_csv({"emotion": list(EMOTIONS), "pearson": [per[e] for e in EMOTIONS]}), plots / "per_emotion.csv")
    names = ("clip_id", "emotion", "label", "prediction")
    scatter = {name: [row[k] for row in evaluation.scatter] for k, name in enumerate(names)}
    write_text(_csv(scatter), plots / "scatter.csv")
    robustness = evaluation.robustness
    write_text(_csv({"condition": list(robustness), "pearson": list(robustness.values())}), plots / "robustness.csv")

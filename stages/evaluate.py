"""Stage evaluate: score the trained model, test its robustness, write predictions and submission.

Writes ``<out>/metrics.json``, ``<out>/predictions.parquet`` (every clip of every split, or for a
frame-level task every annotated frame of every track), ``<out>/submission.csv`` (ABAW format: the
test clips, or the rows of the release's sample file) and ``<out>/plots/`` (layouts in
``pipeline/evaluate/evaluation.py`` and ``frame_evaluation.py``). The model is rebuilt from
``<model>/config.json``, which also says the task and how it predicts (windows, smoothing, AU
thresholds), so only evaluate.* is read from params.
"""

from __future__ import annotations

import argparse
import sys

import torch

from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.evaluate.evaluation import evaluate_model, write_outputs
from pipeline.evaluate.frame_evaluation import FrameSettings, evaluate_frames
from pipeline.evaluate.frame_outputs import write_frame_outputs
from pipeline.ingest.frame_labels import read_sample
from pipeline.runtime.devices import torch_device
from pipeline.tasks import get_task
from pipeline.train.dataset import load_clips
from pipeline.train.frame_data import load_tracks
from pipeline.train.loop import set_determinism
from pipeline.train.models import load_model


def _load(args: argparse.Namespace, meta: dict):
    fusion, task = meta["fusion"], get_task(meta.get("task", "emi"))
    if task.is_frame:
        return load_tracks(
            task=task, labels=args.labels, timeline=args.timeline, features=args.features,
            splits=("train", "valid", "test"), modalities=fusion["modalities"],
        )  # fmt: skip
    return load_clips(
        manifest=args.manifest,
        features=args.features,
        splits=("train", "valid", "test"),
        modalities=fusion["modalities"],
        max_frames={"visual": fusion["max_visual_frames"], "audio": fusion["max_audio_frames"]},
    )


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--features", required=True, help="folder holding <modality>/ shard folders")
    parser.add_argument("--labels", required=True, help="frame labels folder (stage ingest)")
    parser.add_argument("--timeline", required=True, help="decoded frames' timeline (stage decode)")
    parser.add_argument("--model", required=True, help="folder written by the train stage")
    parser.add_argument("--out", required=True, help="folder for metrics.json, plots/, predictions, submission")
    args = parser.parse_args(argv)
    params = load_params(args.params).evaluate
    device = torch.device(torch_device())
    set_determinism(params.robustness_seed, device)
    model, meta = load_model(args.model, device=device)
    try:
        data = _load(args, meta)
    except (FileNotFoundError, ValueError) as error:  # missing or inconsistent shards
        print(f"error: {error}", file=sys.stderr)
        return 2
    trained_on = meta["features"]
    found = {m: {"dim": i.dim, "model": i.model} for m, i in data.info.items()}
    if found != trained_on:
        print(
            f"error: the features differ from those the model was trained on: {found} vs {trained_on}", file=sys.stderr
        )
        return 2
    if get_task(meta.get("task", "emi")).is_frame:
        return _frames(args, params, model, meta, data, device)
    result = evaluate_model(
        model=model,
        table=data,
        batch_size=meta["train"]["batch_size"],
        device=device,
        missing_fraction=params.missing_fraction,
        seed=params.robustness_seed,
    )
    write_outputs(args.out, evaluation=result, table=data, best_epoch=meta["best_epoch"])
    pearson = result.metrics["pearson"]
    print(
        f"evaluate: valid mean Pearson {pearson['mean']:.4f}; robustness "
        + ", ".join(f"{k} {v:.4f}" for k, v in result.robustness.items())
    )
    if "test" in result.metrics:
        print(f"evaluate: test mean Pearson {result.metrics['test']['pearson']['mean']:.4f}")
    return 0


def _frames(args: argparse.Namespace, params, model, meta: dict, table, device: torch.device) -> int:
    task = get_task(meta["task"])
    settings = FrameSettings(
        window=meta["frames"]["window"], stride=meta["frames"]["stride"], smoothing=meta[task.name]["smoothing"],
        thresholds=meta.get("thresholds"), batch_size=meta["train"]["batch_size"],
    )  # fmt: skip
    result = evaluate_frames(
        model=model, table=table, task=task, settings=settings, device=device,
        missing_fraction=params.missing_fraction, seed=params.robustness_seed,
    )  # fmt: skip
    sample = read_sample(args.labels, task)
    try:
        rows = write_frame_outputs(
            args.out, task=task, table=table, evaluation=result, sample=sample, best_epoch=meta["best_epoch"]
        )
    except ValueError as error:  # the predictions do not cover the sample file's rows
        print(f"error: {error}", file=sys.stderr)
        return 2
    valid = result.metrics[task.metric]
    print(f"evaluate: {task.name} valid {task.headline} {next(iter(valid.values())):.4f} ({valid}); robustness "
          + ", ".join(f"{k} {v:.4f}" for k, v in result.robustness.items()))  # fmt: skip
    if "test" in result.metrics:
        print(f"evaluate: test {task.headline} {next(iter(result.metrics['test'][task.metric].values())):.4f}")
    print(f"evaluate: submission {rows} rows" + ("" if sample else " (the release has no sample file: header only)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stage evaluate: score the trained model, test its robustness, write predictions and submission.

Writes ``<out>/metrics.json`` (layout in ``pipeline/evaluate/evaluation.py``), ``<out>/predictions.parquet``
(every clip of every split), ``<out>/submission.csv`` (ABAW format, test split) and
``<out>/plots/*.csv`` (per-emotion Pearson, predicted vs true, training curve, robustness).
The model is rebuilt from ``<model>/config.json``, so only evaluate.* is read from params.
"""

from __future__ import annotations

import argparse
import sys

import torch

from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.evaluate.evaluation import evaluate_model, write_outputs
from pipeline.runtime.devices import torch_device
from pipeline.train.dataset import load_clips
from pipeline.train.loop import set_determinism
from pipeline.train.models import load_model


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--features", required=True, help="folder holding <modality>/ shard folders")
    parser.add_argument("--model", required=True, help="folder written by the train stage")
    parser.add_argument("--out", required=True, help="folder for metrics.json, plots/, predictions, submission")
    args = parser.parse_args(argv)
    params = load_params(args.params).evaluate
    device = torch.device(torch_device())
    set_determinism(params.robustness_seed, device)
    model, meta = load_model(args.model, device=device)
    fusion = meta["fusion"]

    try:
        clips = load_clips(
            manifest=args.manifest,
            features=args.features,
            splits=("train", "valid", "test"),
            modalities=fusion["modalities"],
            max_frames={"visual": fusion["max_visual_frames"], "audio": fusion["max_audio_frames"]},
        )
    except (FileNotFoundError, ValueError) as error:  # missing or inconsistent shards
        print(f"error: {error}", file=sys.stderr)
        return 2
    trained_on = meta["features"]
    found = {m: {"dim": i.dim, "model": i.model} for m, i in clips.info.items()}
    if found != trained_on:
        print(
            f"error: the features differ from those the model was trained on: {found} vs {trained_on}", file=sys.stderr
        )
        return 2

    result = evaluate_model(
        model=model,
        table=clips,
        batch_size=meta["train"]["batch_size"],
        device=device,
        missing_fraction=params.missing_fraction,
        seed=params.robustness_seed,
    )
    write_outputs(args.out, evaluation=result, table=clips, best_epoch=meta["best_epoch"])
    pearson = result.metrics["pearson"]
    print(
        f"evaluate: valid mean Pearson {pearson['mean']:.4f}; robustness "
        + ", ".join(f"{k} {v:.4f}" for k, v in result.robustness.items())
    )
    if "test" in result.metrics:
        print(f"evaluate: test mean Pearson {result.metrics['test']['pearson']['mean']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

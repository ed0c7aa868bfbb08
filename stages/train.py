"""Stage train: fit the fusion model (fusion.*, train.*) on the train split, select on valid.

Writes ``<out>/model.safetensors`` (best epoch; EMA weights when train.ema is set),
``<out>/config.json`` (model kind and config, feature dims and extractor names, params used) and
``<out>/history.json`` (per-epoch train loss, validation Pearson, lr; stage-1 pretraining if any).
The test split is never loaded.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from pipeline.config import ParamsError, load_params
from pipeline.dataset import load_clips
from pipeline.training import (
    build_model,
    contrastive_pretrain,
    default_device,
    model_config,
    save_model,
    set_determinism,
    train_model,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--features", required=True, help="folder holding <modality>/ shard folders")
    parser.add_argument("--out", required=True, help="model folder to write")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    fusion, train = params.fusion, params.train
    device = default_device()
    set_determinism(train.seed, device)

    try:
        clips = load_clips(
            manifest=args.manifest,
            features=args.features,
            splits=("train", "valid"),
            modalities=fusion.modalities,
            max_frames={"visual": fusion.max_visual_frames, "audio": fusion.max_audio_frames},
        )
    except (FileNotFoundError, ValueError) as error:  # missing or inconsistent shards
        print(f"error: {error}", file=sys.stderr)
        return 2
    train_set, valid_set = clips.split("train").labelled(), clips.split("valid").labelled()
    if not len(train_set) or not len(valid_set):
        print(f"error: training needs labelled train and valid clips; found {len(train_set)} and "
              f"{len(valid_set)}", file=sys.stderr)
        return 2
    for m, reasons in clips.missing_counts.items():
        if reasons:
            print(f"train: {m} missing for {sum(reasons.values())} of {len(clips)} clips: {reasons}")
    print(f"train: {len(train_set)} train / {len(valid_set)} valid labelled clips on {device}; "
          f"features {', '.join(f'{m} {i.model} ({i.dim}-d)' for m, i in clips.info.items())}")

    config = model_config(fusion, {m: i.dim for m, i in clips.info.items()})
    model = build_model(fusion.model, config)
    started = time.perf_counter()
    pretrain = []
    if fusion.model == "ustc" and fusion.ustc.contrastive_pretrain:
        pretrain = contrastive_pretrain(
            model=model, train=clips.split("train"), params=train, ustc=fusion.ustc, device=device
        )
    result = train_model(model=model, train=train_set, valid=valid_set, params=train, device=device)
    seconds = time.perf_counter() - started

    meta = {
        "fusion": fusion.model_dump(mode="json"),
        "train": train.model_dump(mode="json"),
        "best_epoch": result.best_epoch,
        "best_val_pearson": result.best_val,
        "epochs_run": len(result.history),
        "n_clips": {"train": len(train_set), "valid": len(valid_set)},
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "torch": torch.__version__,
    }
    history = {"epochs": result.history, "pretrain": pretrain, "best_epoch": result.best_epoch}
    save_model(args.out, kind=fusion.model, config=config, state=result.state, info=clips.info,
               meta=meta, history=history)
    print(f"train: best epoch {result.best_epoch} of {len(result.history)}, valid mean Pearson "
          f"{result.best_val:.4f}, {seconds:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

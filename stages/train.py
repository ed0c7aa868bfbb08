"""Stage train: fit the fusion model (fusion.*, train.*) on the train split, select on valid.

Writes ``<out>/model.safetensors`` (best epoch; EMA weights when train.ema is set) and
``<out>/config.json`` (model kind and config, feature dims and extractor names, params used), and
logs the training curves with DVCLive into ``<live>`` (``metrics.json``: the last epoch and the
selected one; ``plots/metrics/*.tsv``: train loss, validation Pearson, lr per epoch; stage-1
pretraining loss if any), updated every epoch so ``dvc exp show`` follows a run.
The test split is never loaded.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from dvclive import Live

from pipeline.cli import user_errors
from pipeline.config import load_params
from pipeline.runtime.devices import torch_device
from pipeline.train.contrastive import contrastive_pretrain
from pipeline.train.dataset import ClipTable, load_clips
from pipeline.train.loop import set_determinism, train_model
from pipeline.train.models import build_model, model_config, save_model


def _epoch_logger(live: Live):
    def log(entry: dict) -> None:
        live.step = entry["epoch"]
        for key in ("train_loss", "val_pearson", "lr"):
            live.log_metric(key, entry[key])
        live.make_summary()

    return log


def _load(args: argparse.Namespace, fusion) -> ClipTable:
    clips = load_clips(
        manifest=args.manifest,
        features=args.features,
        splits=("train", "valid"),
        modalities=fusion.modalities,
        max_frames={"visual": fusion.max_visual_frames, "audio": fusion.max_audio_frames},
    )
    for m, reasons in clips.missing_counts.items():
        if reasons:
            print(f"train: {m} missing for {sum(reasons.values())} of {len(clips)} clips: {reasons}")
    return clips


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--features", required=True, help="folder holding <modality>/ shard folders")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--live", required=True, help="DVCLive folder for the training curves")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        fusion, train = params.fusion, params.train
        clips = _load(args, fusion)
    except ValueError as error:  # inconsistent shards (bad params and missing files: user_errors)
        print(f"error: {error}", file=sys.stderr)
        return 2
    train_set, valid_set = clips.split("train").labelled(), clips.split("valid").labelled()
    if not len(train_set) or not len(valid_set):
        print(f"error: training needs labelled train and valid clips; found {len(train_set)} and "
              f"{len(valid_set)}", file=sys.stderr)  # fmt: skip
        return 2
    device = torch.device(torch_device())
    set_determinism(train.seed, device)
    print(f"train: {len(train_set)} train / {len(valid_set)} valid labelled clips on {device}; "
          f"features {', '.join(f'{m} {i.model} ({i.dim}-d)' for m, i in clips.info.items())}")  # fmt: skip

    config = model_config(fusion, {m: i.dim for m, i in clips.info.items()})
    model = build_model(fusion.model, config)
    started = time.perf_counter()
    with Live(dir=args.live, dvcyaml=False, save_dvc_exp=False, report=None) as live:
        if fusion.model == "ustc" and fusion.ustc.contrastive_pretrain:
            pretrain = contrastive_pretrain(
                model=model, train=clips.split("train"), params=train, ustc=fusion.ustc, device=device
            )
            live.summary["pretrain"] = {"contrastive_loss": [p["contrastive_loss"] for p in pretrain]}
        result = train_model(
            model=model, train=train_set, valid=valid_set, params=train, device=device, on_epoch=_epoch_logger(live)
        )
        live.summary.update(best_epoch=result.best_epoch, best_val_pearson=result.best_val)
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
    save_model(args.out, kind=fusion.model, config=config, state=result.state, info=clips.info, meta=meta)
    print(f"train: best epoch {result.best_epoch} of {len(result.history)}, valid mean Pearson "
          f"{result.best_val:.4f}, {seconds:.1f} s -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

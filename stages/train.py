"""Stage train: fit the fusion model (fusion.*, train.*) on the train split, select on valid.

Task emi trains on clips (manifest + feature shards); the frame-level tasks (va, expr, au) on
windows of tracks (their labels from ingest, the decoded frames' timeline, the feature shards:
``pipeline/train/frame_loop.py``). Writes ``<out>/model.safetensors`` (best epoch; EMA weights when
train.ema is set) and ``<out>/config.json`` (model kind and config, feature dims and extractor
names, params used; for a frame task also its windows, smoothing and, for au, the per-AU
thresholds chosen on valid), and logs the training curves with DVCLive into ``<live>``
(``metrics.json``: the last epoch and the selected one; ``plots/metrics/*.tsv``: train loss, the
validation metric, lr per epoch; stage-1 pretraining loss if any), updated every epoch so
``dvc exp show`` follows a run. The test split is never loaded.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from dvclive import Live

from pipeline.cli import user_errors
from pipeline.config import Params, load_params
from pipeline.runtime.devices import torch_device
from pipeline.tasks import get_task
from pipeline.tasks.outputs import n_outputs
from pipeline.train.contrastive import contrastive_pretrain
from pipeline.train.dataset import load_clips
from pipeline.train.frame_data import load_tracks
from pipeline.train.frame_loop import train_frames
from pipeline.train.loop import set_determinism, train_model
from pipeline.train.models import build_model, model_config, save_model


def _epoch_logger(live: Live, metric: str):
    def log(entry: dict) -> None:
        live.step = entry["epoch"]
        for key in ("train_loss", f"val_{metric}", "lr"):
            live.log_metric(key, entry[key])
        live.make_summary()

    return log


def _load(args: argparse.Namespace, params: Params):
    fusion, task = params.fusion, get_task(params.task)
    if task.is_frame:
        data = load_tracks(
            task=task, labels=args.labels, timeline=args.timeline, features=args.features,
            splits=("train", "valid"), modalities=fusion.modalities,
        )  # fmt: skip
    else:
        data = load_clips(
            manifest=args.manifest,
            features=args.features,
            splits=("train", "valid"),
            modalities=fusion.modalities,
            max_frames={"visual": fusion.max_visual_frames, "audio": fusion.max_audio_frames},
        )
    for m, reasons in data.missing_counts.items():
        if reasons:
            unit = "tracks" if task.is_frame else "clips"
            print(f"train: {m} missing for {sum(reasons.values())} of {len(data)} {unit}: {reasons}")
    return data


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--features", required=True, help="folder holding <modality>/ shard folders")
    parser.add_argument("--labels", required=True, help="frame labels folder (stage ingest)")
    parser.add_argument("--timeline", required=True, help="decoded frames' timeline (stage decode)")
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument("--live", required=True, help="DVCLive folder for the training curves")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        data = _load(args, params)
    except ValueError as error:  # inconsistent shards (bad params and missing files: user_errors)
        print(f"error: {error}", file=sys.stderr)
        return 2
    train_set, valid_set = data.split("train"), data.split("valid")
    if not get_task(params.task).is_frame:
        train_set, valid_set = train_set.labelled(), valid_set.labelled()
    if not len(train_set) or not len(valid_set):
        unit = "tracks" if get_task(params.task).is_frame else "clips"
        print(f"error: training needs labelled train and valid {unit}; found {len(train_set)} and "
              f"{len(valid_set)}", file=sys.stderr)  # fmt: skip
        return 2
    device = torch.device(torch_device())
    set_determinism(params.train.seed, device)
    print(f"train: {params.task}: {len(train_set)} train / {len(valid_set)} valid on {device}; "
          f"features {', '.join(f'{m} {i.model} ({i.dim}-d)' for m, i in data.info.items())}")  # fmt: skip
    return _fit(args, params, data, train_set, valid_set, device)


def _fit(args: argparse.Namespace, params: Params, data, train_set, valid_set, device: torch.device) -> int:
    """Train (frame windows, or clips with USTC's optional stage 1 on every train clip) and save."""
    info = data.info
    fusion, task = params.fusion, get_task(params.task)
    config = model_config(fusion, {m: i.dim for m, i in info.items()}, n_outputs=n_outputs(task))
    model = build_model(fusion.model, config)
    started, extra = time.perf_counter(), {}
    with Live(dir=args.live, dvcyaml=False, save_dvc_exp=False, report=None) as live:
        on_epoch = _epoch_logger(live, task.metric)
        if task.is_frame:
            result, thresholds = train_frames(
                model=model, task=task, params=params, train=train_set, valid=valid_set, device=device,
                on_epoch=on_epoch,
            )  # fmt: skip
            section = getattr(params, task.name).model_dump(mode="json")
            extra = {"task": task.name, "frames": params.frames.model_dump(mode="json"), task.name: section}
            extra["thresholds"] = thresholds
        else:
            if fusion.model == "ustc" and fusion.ustc.contrastive_pretrain:
                pretrain = contrastive_pretrain(
                    model=model, train=data.split("train"), params=params.train, ustc=fusion.ustc, device=device
                )
                live.summary["pretrain"] = {"contrastive_loss": [p["contrastive_loss"] for p in pretrain]}
            result = train_model(
                model=model, train=train_set, valid=valid_set, params=params.train, device=device, on_epoch=on_epoch
            )
        live.summary.update({"best_epoch": result.best_epoch, f"best_val_{task.metric}": result.best_val})
    meta = {
        "fusion": fusion.model_dump(mode="json"),
        "train": params.train.model_dump(mode="json"),
        **extra,
        "best_epoch": result.best_epoch,
        f"best_val_{task.metric}": result.best_val,
        "epochs_run": len(result.history),
        "n_clips": {"train": len(train_set), "valid": len(valid_set)},
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "torch": torch.__version__,
    }
    save_model(args.out, kind=fusion.model, config=config, state=result.state, info=info, meta=meta)
    print(f"train: best epoch {result.best_epoch} of {len(result.history)}, valid {task.headline} "
          f"{result.best_val:.4f}, {time.perf_counter() - started:.1f} s -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train and evaluate variants on the demo features already computed by `make demo`, in-process
(no DVC experiment, nothing in the workspace changes): single modalities for the README's
"fusion vs each modality" table (Results on the demo; docs/results.md) and the robustness table
with and without missing tokens + modality dropout. Writes benchmarks/results/demo_ablations.json.

    python -m benchmarks.demo_ablations [--features data/features] [--manifest data/manifest.parquet]
"""

from __future__ import annotations

import argparse

from pipeline.atomic import write_json
from pipeline.config import load_params
from pipeline.evaluate.evaluation import evaluate_model
from pipeline.runtime.devices import torch_device
from pipeline.train.dataset import load_clips
from pipeline.train.loop import set_determinism, train_model
from pipeline.train.models import build_model, model_config

VARIANTS = {
    "fusion (default)": {},
    "visual only": {"modalities": ("visual",), "anchor": "visual"},
    "audio only": {"modalities": ("audio",), "anchor": "audio"},
    "text only": {"modalities": ("text",), "anchor": "text"},
    "no missing tokens, no modality dropout": {"missing_tokens": False, "modality_dropout": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--manifest", default="data/manifest.parquet")
    parser.add_argument("--out", default="benchmarks/results/demo_ablations.json")
    args = parser.parse_args()
    params = load_params(args.params)
    device = torch_device()
    results = {}
    for name, override in VARIANTS.items():
        fusion = params.fusion.model_copy(update=override)
        set_determinism(params.train.seed, device)
        clips = load_clips(
            manifest=args.manifest,
            features=args.features,
            splits=("train", "valid"),
            modalities=fusion.modalities,
            max_frames={"visual": fusion.max_visual_frames, "audio": fusion.max_audio_frames},
        )
        model = build_model(fusion.model, model_config(fusion, {m: i.dim for m, i in clips.info.items()}))
        result = train_model(
            model=model,
            train=clips.split("train").labelled(),
            valid=clips.split("valid").labelled(),
            params=params.train,
            device=device,
            log=lambda _: None,
        )
        model.load_state_dict(result.state)
        evaluation = evaluate_model(
            model=model,
            table=clips,
            batch_size=params.train.batch_size,
            device=device,
            missing_fraction=params.evaluate.missing_fraction,
            seed=params.evaluate.robustness_seed,
        )
        results[name] = {"best_epoch": result.best_epoch, **evaluation.metrics}
        print(
            f"{name:45s} valid mean Pearson {evaluation.metrics['pearson']['mean']:.4f}  "
            f"robustness {evaluation.metrics['robustness']}"
        )
    write_json(results, args.out)


if __name__ == "__main__":
    main()

"""Fusion-model speed on CPU: training steps/s and inference clips/s of TAEMI and USTC variants.

Synthetic clips with the default extractors' widths (visual 146 = FER 135 + 11 geometry, audio 512 =
Whisper base encoder, text 384 = MiniLM) and typical Hume-Vidmimic2 lengths (7 s at 5 fps: 35 visual
and 35 audio frames), plus the truncation limits (400 visual, 600 audio frames) as the worst case.
Default fusion params (d_model 256, out_dim 512, 4 heads), batch 32, one thread (as the trainer
sets it) and, for comparison, two threads. Wall times on a shared machine vary with its load; the
load average is recorded. Prints a table and writes benchmarks/results/fusion.json.

    .venv/bin/python -m benchmarks.bench_fusion [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from pipeline.atomic import write_json
from pipeline.config import FusionParams
from pipeline.features import ClipFeatures
from pipeline.train.dataset import ClipTable, ModalityInfo, build_clip_table
from pipeline.train.inference import predict
from pipeline.train.models import build_model, model_config

DIMS = {"visual": 146, "audio": 512, "text": 384}
VARIANTS = {
    "taemi": {},
    "taemi-concat": {"concat": True},
    "taemi-self-only": {"cross_attention": False},
    "ustc": {"model": "ustc"},
    "ustc-no-tfe": {"model": "ustc", "ustc": {"tfe": False}},
}


def clips(n: int, frames: dict[str, int], seed: int = 0) -> ClipTable:
    rng = np.random.default_rng(seed)
    ids = [f"c{i:05d}" for i in range(n)]
    records = {
        m: [
            ClipFeatures(
                c,
                rng.normal(size=(frames[m], d)).astype(np.float32),
                np.zeros(frames[m], np.float32),
                np.ones(frames[m], bool),
                True,
            )
            for c in ids
        ]
        for m, d in DIMS.items()
    }
    return build_clip_table(
        clip_ids=ids,
        splits=["train"] * n,
        labels=rng.random((n, 6)),
        records=records,
        info={m: ModalityInfo(dim=d, model="synthetic") for m, d in DIMS.items()},
        max_frames={"visual": 400, "audio": 600},
    )


def measure(variant: dict, table: ClipTable, *, steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(variant.get("model", "taemi"), model_config(FusionParams(**variant), DIMS))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    batches = [table.batch(np.arange(k * 32, (k + 1) * 32) % len(table)) for k in range(steps + 2)]
    for k, batch in enumerate(batches):
        if k == 2:  # two warm-up steps
            start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(batch.inputs), batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = (time.perf_counter() - start) / steps
    start = time.perf_counter()
    predict(model, table, batch_size=32, device=torch.device("cpu"))
    infer = len(table) / (time.perf_counter() - start)
    return {
        "train_step_s": train_s,
        "train_clips_per_s": 32 / train_s,
        "infer_clips_per_s": infer,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    results = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "batch_size": 32,
        "runs": [],
    }
    shapes = {
        "typical (35 visual, 35 audio frames)": {"visual": 35, "audio": 35, "text": 1},
        "longest (400 visual, 600 audio frames)": {"visual": 400, "audio": 600, "text": 1},
    }
    print(
        f"{'clips':40s} {'variant':16s} {'thr':>3s} {'params':>9s} {'train s/step':>12s} {'infer clips/s':>13s}  load"
    )
    for shape, frames in shapes.items():
        table = clips(128, frames)
        for name, variant in VARIANTS.items():
            for threads in (1, 2):
                load = os.getloadavg()[0]
                r = measure(variant, table, steps=args.steps, threads=threads)
                r.update(clips=shape, variant=name, threads=threads, load_before=load)
                results["runs"].append(r)
                print(
                    f"{shape:40s} {name:16s} {threads:3d} {r['parameters']:9d} {r['train_step_s']:12.3f} "
                    f"{r['infer_clips_per_s']:13.1f}  {load:.1f}"
                )
    write_json(results, "benchmarks/results/fusion.json")


if __name__ == "__main__":
    main()

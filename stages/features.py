"""Stage features@<modality>: one modality's per-clip features into resumable Parquet shards.

Reads the manifest (splits, clip order), the decode status (a clip whose decode leaves the modality
missing gets a missing record naming the reason, ``pipeline.features.unavailable_reason``) and the
modality's input (visual: decoded frames, audio: decoded audio, text: transcripts; with
``hume-vit`` / ``hume-wav2vec2`` the organisers' pickles beside the videos, through the restricted
loader of ``pipeline.features.hume``, and of the decode only the clip's duration). A shard is
recomputed only when its fingerprint changes: params of the modality, dtype, model, device, project
code, package versions, and per clip its id, decode status and input (hash of its decoded shard
file, or of its transcript row). Killed runs resume: finished shards are kept (``pipeline.features.shards``).
Shards are computed in this process (``runtime.executor: local``) or by Ray actors that each load
the extractor once (``ray``, ``pipeline.features.pooled``), with the same thread count and bytes.
"""

from __future__ import annotations

import argparse
import sys

import pyarrow.parquet as pq

from pipeline.cli import user_errors
from pipeline.config import FeatureParams, load_params
from pipeline.features import MODALITY_CODE, SHARED_CODE, build_extractor
from pipeline.features.inputs import provider
from pipeline.features.pooled import ExtractorSpec, PooledShards, init_worker
from pipeline.features.runner import build_shards, code_and_versions, fingerprint_tasks, plan_shards
from pipeline.runtime.devices import deterministic_torch, torch_device, usable_cpus
from pipeline.runtime.executors import Executor, open_executor

SPLITS = ("train", "valid", "test")
PACKAGES = (
    "torch", "transformers", "tokenizers", "numpy", "pyarrow", "mediapipe", "opencv-python-headless",
    "ctranslate2", "faster-whisper",
)  # fmt: skip


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--modality", required=True, choices=sorted(MODALITY_CODE))
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--decoded", required=True, help="decode output folder (frames-*/audio-*.parquet)")
    parser.add_argument("--status", required=True, help="decode status table")
    parser.add_argument("--asr", required=True, help="transcripts table")
    parser.add_argument("--encoder", default=None, help="encoder states kept by asr (audio only)")
    parser.add_argument("--out", required=True, help="folder of this modality's shards")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    with open_executor(params.runtime, "features") as executor:
        return _run(args, params.features, executor)


def _run(args: argparse.Namespace, features: FeatureParams, executor: Executor) -> int:
    # A fixed thread count and deterministic kernels: the same inputs give byte-identical shards.
    deterministic_torch(usable_cpus())
    modality, section = args.modality, getattr(features, args.modality)
    device = executor.device(torch_device)

    manifest = pq.read_table(args.manifest, columns=["clip_id", "split"]).to_pylist()
    # With remote workers this copy only names the model (on CPU); the workers load their own.
    extractor = build_extractor(modality, section, device="cpu" if executor.remote else device)
    clip_digest, inputs = provider(
        modality,
        manifest=args.manifest,
        decoded=args.decoded,
        status=args.status,
        asr=args.asr,
        encoder=args.encoder,
        model=extractor.model_name,
    )
    modules = ("stages.features", *SHARED_CODE, *MODALITY_CODE[modality])
    config = {
        "modality": modality, "params": section.model_dump(), "dtype": features.dtype,
        "model": extractor.model_name, "device": device, "code": code_and_versions(modules, PACKAGES),
    }  # fmt: skip
    ids_by_split = {s: [r["clip_id"] for r in manifest if r["split"] == s] for s in SPLITS}
    tasks = fingerprint_tasks(
        plan_shards(ids_by_split, features.clips_per_shard), config=config, clip_digest=clip_digest
    )
    runner = None
    if executor.remote:
        spec = ExtractorSpec(
            modality, section, device, args.decoded, args.status, args.asr, args.encoder, args.manifest
        )
        runner = PooledShards(executor, modality, init_worker, (spec,))
    report = build_shards(
        args.out,
        tasks,
        extractor=extractor,
        inputs=inputs,
        dtype=features.dtype,
        chunk_clips=section.batch_size,
        runner=runner,
    )
    print(
        f"features@{modality}: {extractor.model_name} ({extractor.dim}-d, {features.dtype}) on {device} "
        f"({executor.name} executor): {len(tasks)} shards for {len(manifest)} clips; computed "
        f"{len(report.computed)}, up to date {len(report.skipped)}, removed {len(report.removed)} stale; "
        f"of computed clips {report.available} available, missing {report.reasons}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

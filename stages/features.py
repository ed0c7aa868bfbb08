"""Stage features@<modality>: one modality's per-clip features into resumable Parquet shards.

Reads the manifest (splits, clip order), the decode status (a clip whose faults include one of
``UNAVAILABLE[modality]``, or with no decoded frames / audio, gets a missing record naming the
fault) and the modality's input
(visual: decoded frames, audio: decoded audio, text: transcripts). A shard is recomputed only when
its fingerprint changes: params of the modality, dtype, model, device, project code, package
versions, and per clip its id, decode status and input (hash of its decoded shard file, or of its
transcript row). Killed runs resume: finished shards are kept (see ``pipeline.shards``).
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (set before torch loads its OpenMP runtime). With
# other processes on the 2 cores (a dvc queue with -j 2, another stage), spinning made the 2-thread
# FER forward pass take 19 ms per face against 2.9 ms when passive (1 thread: 3.0 ms).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from pipeline.config import ParamsError, load_params  # noqa: E402
from pipeline.features import UNAVAILABLE, TextInput, build_extractor  # noqa: E402
from pipeline.shards import Unavailable, build_shards, code_and_versions, file_digest, fingerprint_tasks, plan_shards  # noqa: E402

SPLITS = ("train", "valid", "test")
# Project modules whose code shapes each modality's values (dvc.yaml lists them and their imports).
CODE = {
    "visual": ("pipeline.features.visual", "pipeline.features.fer", "pipeline.decoding"),
    "audio": ("pipeline.features.audio", "pipeline.whisper_models", "pipeline.decoding"),
    "text": ("pipeline.features.text",),
}
PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "pyarrow", "mediapipe", "opencv-python-headless", "ctranslate2", "faster-whisper")


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def text_inputs(asr: str):
    """(clip_digest, inputs) over the transcripts table; no speech -> text None with its status."""
    rows = {r["clip_id"]: r for r in pq.read_table(asr, columns=["clip_id", "text", "has_speech", "status"]).to_pylist()}

    def inputs(clip_ids: list[str]):
        for c in clip_ids:
            r = rows.get(c)
            speech = r is not None and r["has_speech"]
            yield Unavailable(c, "no transcript") if r is None else TextInput(c, r["text"] if speech else None, "" if speech else r["status"])

    return (lambda c: _digest(rows.get(c))), inputs


def decoded_inputs(modality: str, decoded: str, status: dict[str, dict]):
    """(clip_digest, inputs) over the decoded frames (visual) or audio shards."""
    from pipeline.decoding import iter_clip_audio, iter_clip_frames

    kind, reader = ("frames", iter_clip_frames) if modality == "visual" else ("audio", iter_clip_audio)
    source = {}
    for path in sorted(Path(decoded).glob("audio-*.parquet")):  # audio shards hold one row per clip
        for c in pq.read_table(path, columns=["clip_id"]).column(0).to_pylist():
            source[c] = path.with_name(path.name.replace("audio-", f"{kind}-"))
    file_hash = lru_cache(maxsize=None)(file_digest)

    def clip_digest(c: str) -> str:
        return _digest([status.get(c), file_hash(source[c]) if c in source and source[c].is_file() else None])

    def blocked(c: str) -> str:
        row = status.get(c) or {}
        faults = row.get("faults") or []
        empty = row.get("n_frames") == 0 if modality == "visual" else row.get("has_audio") is False
        fault = next((f for f in faults if f in UNAVAILABLE[modality]), "")
        # With nothing decoded, the clip's first fault (corrupt, too_short...) is the best reason.
        return fault or ((faults[0] if faults else f"no decoded {kind}") if empty else "")

    def inputs(clip_ids: list[str]):
        usable = [c for c in clip_ids if not blocked(c)]
        yield from (Unavailable(c, blocked(c)) for c in clip_ids if blocked(c))
        if usable:
            yield from reader(decoded, clip_ids=usable)

    return clip_digest, inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--modality", required=True, choices=sorted(CODE))
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--decoded", required=True, help="decode output folder (frames-*/audio-*.parquet)")
    parser.add_argument("--status", required=True, help="decode status table")
    parser.add_argument("--asr", required=True, help="transcripts table")
    parser.add_argument("--out", required=True, help="folder of this modality's shards")
    args = parser.parse_args(argv)
    try:
        features = load_params(args.params).features
    except ParamsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    modality, section = args.modality, getattr(features, args.modality)
    # A fixed thread count and deterministic kernels: the same inputs give byte-identical shards.
    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    device = "cuda" if torch.cuda.is_available() else "cpu"

    manifest = pq.read_table(args.manifest, columns=["clip_id", "split"]).to_pylist()
    columns = ["clip_id", "status", "faults", "n_frames", "has_audio"]
    status = {r["clip_id"]: r for r in pq.read_table(args.status, columns=columns).to_pylist()}
    if modality == "text":
        clip_digest, inputs = text_inputs(args.asr)
    else:
        clip_digest, inputs = decoded_inputs(modality, args.decoded, status)
    extractor = build_extractor(modality, section, device=device)
    config = {
        "modality": modality, "params": section.model_dump(), "dtype": features.dtype, "model": extractor.model_name,
        "device": device, "code": code_and_versions(("stages.features", "pipeline.shards", "pipeline.features", *CODE[modality]), PACKAGES),
    }
    plan = plan_shards({s: [r["clip_id"] for r in manifest if r["split"] == s] for s in SPLITS}, features.clips_per_shard)
    tasks = fingerprint_tasks(plan, config=config, clip_digest=clip_digest)
    report = build_shards(args.out, tasks, extractor=extractor, inputs=inputs, dtype=features.dtype, chunk_clips=section.batch_size)
    print(
        f"features@{modality}: {extractor.model_name} ({extractor.dim}-d, {features.dtype}) on {device}: "
        f"{len(tasks)} shards for {len(manifest)} clips; computed {len(report.computed)}, up to date {len(report.skipped)}, "
        f"removed {len(report.removed)} stale; of computed clips {report.available} available, missing {report.reasons}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

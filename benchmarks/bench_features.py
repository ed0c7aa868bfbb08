"""Feature-extraction speed: clips/s and times real time, per modality.

1. Real videos (../shared/realdata/video): each is decoded once with ``decode_clip`` (not timed),
   then every extractor runs over all clips after one warm-up clip: visual with and without the
   face-mesh geometry, audio (Whisper encoder), text (MiniLM on one 16-word sentence per clip).
   Model loading is timed separately.
2. The demo data, when ``<data>/manifest.parquet`` and ``<data>/decoded`` exist: the whole stage
   (``python -m stages.features``, process start and model loading included) per modality into a
   temporary folder.

"x real time" is seconds of media per second of compute. Prints a table and writes
benchmarks/results/features.json.

    .venv/bin/python -m benchmarks.bench_features [--skip-demo] [--data data --params params.yaml]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as stages/features.py does, before torch loads

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from pipeline.atomic import write_json  # noqa: E402
from pipeline.config import (  # noqa: E402
    AudioFeatureParams,
    DecodeParams,
    TextFeatureParams,
    VisualFeatureParams,
    load_params,
)
from pipeline.features import TextInput  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "realdata" / "video"
SENTENCE = "Kids are talking by the door, and I think that is wonderful news for all of us."


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_real(device: str) -> list[dict]:
    from pipeline.decode import decode_clip
    from pipeline.features.audio import build_audio_extractor
    from pipeline.features.text import build_text_extractor
    from pipeline.features.visual import build_visual_extractor

    clips = [decode_clip(path, DecodeParams()) for path in sorted(VIDEOS.iterdir())]
    seconds = sum(c.report.duration_s or 0.0 for c in clips)
    frames = sum(int(sum(x is not None for x in c.visual.crops)) for c in clips)
    setups = [
        ("visual fer", lambda: build_visual_extractor(VisualFeatureParams(landmarks=False), device=device), "visual"),
        (
            "visual fer+mesh",
            lambda: build_visual_extractor(VisualFeatureParams(landmarks=True), device=device),
            "visual",
        ),
        ("audio whisper-encoder", lambda: build_audio_extractor(AudioFeatureParams(), device=device), "audio"),
        ("text minilm", lambda: build_text_extractor(TextFeatureParams(), device=device), "text"),
    ]
    rows = []
    for name, build, kind in setups:
        extractor, load_s = _timed(build)
        if kind == "visual":
            inputs = [c.visual for c in clips]
        elif kind == "audio":
            inputs = [c.audio for c in clips]
        else:
            inputs = [TextInput(c.visual.clip_id, SENTENCE) for c in clips]
        extractor.extract_batch(inputs[:1])  # warm-up (lazy initialisation, allocator)
        records, run_s = _timed(lambda extractor=extractor, inputs=inputs: extractor.extract_batch(inputs))
        rows.append(
            {
                "set": "realdata",
                "features": name,
                "model": extractor.model_name,
                "dim": extractor.dim,
                "clips": len(inputs),
                "media_s": round(seconds, 2),
                "face_frames": frames if kind == "visual" else None,
                "available": sum(r.available for r in records),
                "load_s": round(load_s, 2),
                "run_s": round(run_s, 3),
                "clips_per_s": round(len(inputs) / run_s, 2),
                "x_real_time": round(seconds / run_s, 1),
                "ms_per_face_frame": round(1000 * run_s / frames, 2) if kind == "visual" else None,
            }
        )
    return rows


def bench_demo(data: Path, params: Path) -> list[dict]:
    status = pq.read_table(data / "decode_status.parquet", columns=["duration_s"]).column(0).to_pylist()
    seconds = sum(d or 0.0 for d in status)
    rows = []
    for modality in ("visual", "audio", "text"):
        asr = data / "asr" / "transcripts.parquet"
        if modality == "text" and not asr.is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            command = [
                sys.executable,
                "-m",
                "stages.features",
                "--params",
                str(params),
                "--modality",
                modality,
                "--manifest",
                str(data / "manifest.parquet"),
                "--decoded",
                str(data / "decoded"),
                "--status",
                str(data / "decode_status.parquet"),
                "--asr",
                str(asr),
                "--out",
                tmp,
            ]
            done, wall = _timed(
                lambda command=command: subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            )
            if done.returncode:
                raise RuntimeError(f"features@{modality} failed:\n{done.stderr[-2000:]}")
        rows.append(
            {
                "set": "demo",
                "features": f"stage features@{modality}",
                "model": getattr(load_params(params).features, modality).model,
                "clips": len(status),
                "media_s": round(seconds, 1),
                "run_s": round(wall, 2),
                "clips_per_s": round(len(status) / wall, 2),
                "x_real_time": round(seconds / wall, 1),
                "summary": done.stdout.strip().splitlines()[-1],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--data", default=str(REPO / "data"), help="folder with manifest.parquet, decoded/, asr/")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "features.json"))
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = bench_real(device) if VIDEOS.is_dir() else []
    if not args.skip_demo and (Path(args.data) / "decoded").is_dir():
        rows += bench_demo(Path(args.data), Path(args.params))
    print(f"{'set':9} {'features':26} {'clips':>5} {'media s':>8} {'run s':>7} {'clips/s':>8} {'x RT':>7}")
    for r in rows:
        print(
            f"{r['set']:9} {r['features']:26} {r['clips']:5d} {r['media_s']:8.1f} {r['run_s']:7.2f} "
            f"{r['clips_per_s']:8.2f} {r['x_real_time']:7.1f}"
        )
    machine = {
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "device": device,
        "platform": platform.platform(),
        "load_avg_at_start": load_at_start,
        "load_avg_at_end": os.getloadavg(),
    }
    write_json({"machine": machine, "rows": rows}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

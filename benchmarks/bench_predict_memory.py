"""Peak memory (RSS) of ``python -m pipeline.predict`` on a short clip and on 20-minute clips.

Generates, under ``--work`` (kept, so a second run reuses the clips): a 2 s clip, and a 20-minute
clip of the demo's face (25 fps, 256 px, a face in every frame, so every sampled frame has a
crop) with a -30 dBFS tone-and-noise track (not silent, so audio features run over the whole
track; no speech, so ASR stays short), whose second half shows another expression. An untrained
TAEMI with the default extractors' feature widths stands in for a trained model (memory does not
depend on the weights). Each case runs ``pipeline.predict`` in a fresh process under
``/usr/bin/time``, default params, and records its peak RSS (``ru_maxrss``), wall and CPU time:

- ``2s``: the 2 s clip;
- ``20min``: one 20-minute clip;
- ``3x20min``: three 20-minute clips in one call.

Prints a table and writes ``benchmarks/results/predict_memory[-<label>].json``.

    .venv/bin/python -m benchmarks.bench_predict_memory [--work /tmp/emi-predict-memory] [--label after]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from fixtures.clips import face_segment, long_clip
from fixtures.models import untrained_model
from fixtures.processes import run_measured
from pipeline.atomic import write_json

REPO = Path(__file__).resolve().parents[1]


def measure(files: list[Path], model: Path, out: Path) -> dict:
    argv = [sys.executable, "-m", "pipeline.predict", *map(str, files), "--model", str(model), "--out", str(out)]
    start = time.perf_counter()
    done, peak, cpu = run_measured(argv)
    if done.returncode != 0:
        raise RuntimeError(f"predict failed:\n{done.stderr[-3000:]}")
    wall = time.perf_counter() - start
    return {"peak_rss_mb": round(peak, 1), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "files": len(files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "emi-predict-memory"))
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--label", default="", help="suffix of the results file (e.g. before / after)")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    if not (model / "model.safetensors").is_file():
        untrained_model(model)
    short = face_segment(work / "short-2s.mp4", seconds=2, fps=25, size=256, smile=0.5, audio_dbfs=-30)
    long = long_clip(work, minutes=args.minutes, fps=25, size=256, audio_dbfs=-30)
    copies = [long] + [work / f"long-copy{k}.mp4" for k in (1, 2)]
    for copy in copies[1:]:
        if not copy.is_file():
            shutil.copy(long, copy)
    cases = {"2s": [short], f"{args.minutes}min": [long], f"3x{args.minutes}min": copies}
    results = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "clip": f"{args.minutes} min, 25 fps, 256 px, a face in every frame, -30 dBFS tone and noise",
        "cases": {},
    }
    print(f"{'case':10s} {'peak RSS MB':>12s} {'wall s':>8s} {'CPU s':>8s}")
    for name, files in cases.items():
        r = measure(files, model, work / f"preds-{name}.csv")
        results["cases"][name] = r
        print(f"{name:10s} {r['peak_rss_mb']:12.1f} {r['wall_s']:8.1f} {r['cpu_s']:8.1f}", flush=True)
    suffix = f"-{args.label}" if args.label else ""
    write_json(results, REPO / "benchmarks" / "results" / f"predict_memory{suffix}.json")


if __name__ == "__main__":
    main()

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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline.atomic import write_json
from pipeline.config import MODALITIES, Params

REPO = Path(__file__).resolve().parents[1]


def untrained_model(out_dir: str | Path, params: Params | None = None, *, seed: int = 0) -> Path:
    """A randomly initialised model of ``params.fusion``, saved as the train stage saves one, with
    the feature widths and names of ``params``' extractors (so ``pipeline.predict`` accepts it)."""
    import torch

    from pipeline.features import build_extractor
    from pipeline.shards import ModalityInfo
    from pipeline.training import build_model, model_config, save_model

    params = params or Params()
    info = {}
    for m in MODALITIES:
        extractor = build_extractor(m, getattr(params.features, m), device="cpu")
        info[m] = ModalityInfo(dim=extractor.dim, model=extractor.model_name)
    torch.manual_seed(seed)
    config = model_config(params.fusion, {m: i.dim for m, i in info.items()})
    model = build_model(params.fusion.model, config)
    save_model(out_dir, kind=params.fusion.model, config=config, state=model.state_dict(), info=info, meta={})
    return Path(out_dir)


def face_segment(
    path: str | Path, *, seconds: float, fps: float, size: int, smile: float, audio_dbfs: float | None = None
) -> Path:
    """A clip of the demo face with a slowly moving expression around ``smile`` (H.264; AAC tone
    and noise at about ``audio_dbfs`` when given, else no audio stream)."""
    from pipeline.demo.face import render_face
    from pipeline.demo.media import mux_clip

    n = round(seconds * fps)
    t = np.arange(n) / fps
    frames = (
        render_face(size=size, smile=float(np.clip(smile + 0.2 * np.sin(k), -1, 1)), jaw=0.3 * (1 + np.sin(3 * k)) / 2)
        for k in t
    )
    samples = None
    if audio_dbfs is not None:
        rng = np.random.default_rng(0)
        st = np.arange(round(seconds * 16000)) / 16000
        raw = np.sin(2 * np.pi * 220 * st) + 0.5 * np.sin(2 * np.pi * 330 * st) + 0.3 * rng.standard_normal(st.size)
        samples = (raw / np.sqrt(np.mean(raw**2)) * 10 ** (audio_dbfs / 20)).astype(np.float32)
    mux_clip(path, frames, list(t), audio=samples, declared_fps=fps)
    return Path(path)


def concat_clips(path: str | Path, parts: list[Path]) -> Path:
    """``parts`` (same codecs and settings) joined end to end without re-encoding."""
    path = Path(path)
    listing = path.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in parts))
    ffmpeg.input(str(listing), format="concat", safe=0).output(str(path), c="copy").overwrite_output().run(quiet=True)
    listing.unlink()
    return path


def long_clip(work: Path, *, minutes: int, fps: float, size: int, audio_dbfs: float | None) -> Path:
    """A ``minutes``-long clip: the first half one minute-long segment repeated, the second half
    another with a different expression (frowning, mouth open)."""
    name = f"long-{minutes}min-{fps:g}fps-{size}px{'' if audio_dbfs is None else '-audio'}.mp4"
    out = work / name
    if out.is_file():
        return out
    first = face_segment(work / "seg-a.mp4", seconds=60, fps=fps, size=size, smile=0.6, audio_dbfs=audio_dbfs)
    second = face_segment(work / "seg-b.mp4", seconds=60, fps=fps, size=size, smile=-0.8, audio_dbfs=audio_dbfs)
    half = minutes // 2
    return concat_clips(out, [first] * half + [second] * (minutes - half))


def run_measured(argv: list[str], *, cwd: Path = REPO) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run ``argv`` under ``/usr/bin/time -v``; -> (the run, its peak RSS in MB, its CPU seconds)."""
    done = subprocess.run(["/usr/bin/time", "-v", *argv], cwd=cwd, capture_output=True, text=True)

    def figure(label: str) -> float:
        found = re.search(rf"{label}: ([\d.]+)", done.stderr)
        return float(found.group(1)) if found else float("nan")

    cpu = figure(r"User time \(seconds\)") + figure(r"System time \(seconds\)")
    return done, figure(r"Maximum resident set size \(kbytes\)") / 1024, cpu


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

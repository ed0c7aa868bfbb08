"""Scale benchmark: every heavy stage on a Hume-like corpus, beside its floor, extrapolated to Hume;
the same on a corpus of long videos, extrapolated to Aff-Wild2.

    python -m benchmarks.bench_scale [--clips 200] [--long-s 240] [--work /tmp/emi-scale]
                                     [--out benchmarks/results/scale.json]   (or: make bench-scale)
    python -m benchmarks.bench_scale --corpus long [--videos 12] [--work /tmp/emi-scale-long]
    python -m benchmarks.bench_scale --table benchmarks/results/scale.json [--corpus long]
                                     (the tables of docs/scale.md)

``--corpus long`` writes ``--videos`` long Aff-Wild2-like videos (``scale_corpus.py``: 1-2
minutes each of speech, music, noise and room tone, a face that moves and leaves the frame), runs
the same stages and floors, extrapolates per media hour to Aff-Wild2 (594 tracks, 28 media
hours), and stores its results under the key ``long`` of the same results file (each corpus
keeps the other's results).

1. Writes (once; kept in ``--work``) a corpus of ``--clips`` webcam-like clips
   (``benchmarks/scale_corpus.py``: 640x480 H.264 + AAC, VFR, Hume-like durations, one clip of
   ``--long-s`` seconds, real face and speech) and a manifest CSV for ``data.source: manifest``.
2. Runs ingest, decode, asr and the three feature stages exactly as ``dvc repro`` does
   (``python -m stages.<stage>`` with the repository's params.yaml, pointed at the corpus).
3. Runs each stage's floor (``benchmarks/scale_floors.py``) on the same inputs in the same run:
   the bare library work alone (models loaded and inputs read before its clock starts), so the
   ratio stage / floor counts everything the stage adds, process start and model loading included.

Every run is its own process, measured alike: wall seconds, CPU seconds (user + system, its
worker processes included) and peak RSS (the largest process) from ``os.wait4``; bytes written.
Per stage: CPU and wall seconds per clip and per media hour, the floor's CPU seconds and the
ratio stage / floor, and the extrapolation to Hume-Vidmimic2 (17,246 clips, 33 media hours) by
media hours. Prints a table and writes ``--out``. On a GPU machine the model stages use CUDA on
their own; ``gpu`` then records nvidia-smi's utilisation samples during each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from benchmarks.scale_corpus import plan_corpus, plan_long_corpus, write_corpus
from pipeline.atomic import write_json, write_text
from pipeline.emotions import EMOTIONS

REPO = Path(__file__).resolve().parents[1]
HUME_CLIPS, HUME_HOURS = 17_246, 33.0
# Aff-Wild2 (ABAW): 594 tracks, about 3 M frames at about 30 fps: 28 media hours.
AFFWILD2_TRACKS, AFFWILD2_HOURS = 594, 28.0
# (stage, command after `python -m`, the floor it is compared with, its output paths)
STAGES = (
    ("ingest", ["stages.ingest", "--out", "manifest.parquet", "--labels", "frame_labels"], None, ["manifest.parquet"]),
    (
        "decode",
        ["stages.decode", "--manifest", "manifest.parquet", "--out", "decoded", "--status", "status.parquet",
         "--timeline", "timeline.parquet"],
        "decode",
        ["decoded", "status.parquet"],
    ),
    (
        "asr",
        ["stages.asr", "--decoded", "decoded", "--status", "status.parquet", "--out", "asr/transcripts.parquet",
         "--encoder-out", "asr/encoder"],
        "asr",
        ["asr"],
    ),
    *(
        (
            f"features@{m}",
            ["stages.features", "--modality", m, "--manifest", "manifest.parquet", "--decoded", "decoded",
             "--status", "status.parquet", "--asr", "asr/transcripts.parquet", "--encoder", "asr/encoder",
             "--out", f"features/{m}"],
            m,
            [f"features/{m}"],
        )
        for m in ("visual", "audio", "text")
    ),
)  # fmt: skip


class _GpuMonitor:
    """nvidia-smi utilisation samples (percent) while a run lasts; nothing without a GPU."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                self.samples.extend(int(v) for v in out.split() if v.isdigit())
            except (OSError, subprocess.TimeoutExpired):
                return

    def __enter__(self) -> _GpuMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measured(argv: list[str], cwd: Path) -> dict:
    """Run ``argv`` as a child process -> wall s, CPU s (with its children), peak RSS, stdout."""
    started = time.perf_counter()
    with _GpuMonitor() as gpu, open(cwd / "run.log", "a") as log:
        # Paths are relative to the work folder; the code is this repository's, whatever is installed.
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {os.waitstatus_to_exitcode(status)}); see {cwd}/run.log")
    result = {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}
    if gpu.samples:
        result["gpu_util_mean_pct"] = sum(gpu.samples) / len(gpu.samples)
    return {**result, "stdout": out}


def _bytes(work: Path, paths: list[str]) -> int:
    total = 0
    for name in paths:
        path = work / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total


def prepare(work: Path, n_clips: int, long_s: float, corpus: str = "hume") -> dict[str, float]:
    """The corpus, its manifest CSV and a params.yaml pointing ingest at it; {clip_id: seconds}."""
    if corpus == "long":
        durations = write_corpus(work / "corpus", plan_long_corpus(n_clips))
    else:
        durations = write_corpus(work / "corpus", plan_corpus(n_clips, long_s=long_s, seed=0))
    lines = [",".join(("Filename", "path", "split", *EMOTIONS))]
    lines += [",".join((c, f"corpus/{c}.mp4", "test", *[""] * len(EMOTIONS))) for c in sorted(durations)]
    write_text("\n".join(lines) + "\n", work / "manifest.csv")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["data"] = {"source": "manifest", "root": str(work / "manifest.csv"), "limit_per_split": None}
    write_text(yaml.safe_dump(params, sort_keys=False), work / "params.yaml")
    return durations


def stage_row(name: str, run: dict, floor: dict | None, n_clips: int, media_h: float, written: int) -> dict:
    row = {
        "stage": name,
        "cpu_s_per_clip": run["cpu_s"] / n_clips,
        "wall_s_per_clip": run["wall_s"] / n_clips,
        "cpu_s_per_media_h": run["cpu_s"] / media_h,
        "wall_s_per_media_h": run["wall_s"] / media_h,
        "peak_rss_mb": run["peak_rss_mb"],
        "bytes_per_clip": written / n_clips,
        "bytes_per_media_h": written / media_h,
        "hume_cpu_h": run["cpu_s"] / media_h * HUME_HOURS / 3600,
        "hume_wall_h": run["wall_s"] / media_h * HUME_HOURS / 3600,
    }
    if floor is not None:
        row |= {
            "floor_cpu_s_per_clip": floor["work_cpu_s"] / n_clips,
            "floor_wall_s_per_clip": floor["work_wall_s"] / n_clips,
            "ratio": run["cpu_s"] / floor["work_cpu_s"],
            "wall_ratio": run["wall_s"] / floor["work_wall_s"],
        }
    return row | {k: v for k, v in run.items() if k.startswith("gpu")}


def run_all(work: Path, durations: dict[str, float]) -> list[dict]:
    python = sys.executable
    media_h = sum(durations.values()) / 3600
    rows = []
    for name, command, floor_name, outputs in STAGES:
        argv = [python, "-m", command[0], "--params", "params.yaml", *command[1:]]
        run = measured(argv, work)
        floor = None
        if floor_name is not None:
            floor = measured([python, "-m", "benchmarks.scale_floors", floor_name, "--work", str(work)], work)
            floor |= json.loads(floor["stdout"].strip().splitlines()[-1])
        row = stage_row(name, run, floor, len(durations), media_h, _bytes(work, outputs))
        rows.append(row)
        ratio = f"{row['ratio']:.2f}x floor" if "ratio" in row else ""
        print(f"[scale] {name}: {run['cpu_s']:.1f} CPU s, {run['wall_s']:.1f} s wall {ratio}", flush=True)
    return rows


def crop_kb(work: Path) -> float:
    import pyarrow.parquet as pq

    sizes = [len(c) for p in sorted((work / "decoded").glob("frames-*.parquet"))
             for c in pq.read_table(p, columns=["crop"]).column(0).to_pylist() if c]  # fmt: skip
    return sum(sizes) / len(sizes) / 1024 if sizes else 0.0


def affwild2(rows: list[dict]) -> list[dict]:
    """Per media hour, each stage beside its floor, and Aff-Wild2's 28 media hours."""
    out = []
    for r in rows:
        if r["stage"] == "ingest":
            continue
        row = {
            "stage": r["stage"],
            "cpu_s_per_media_h": r["cpu_s_per_media_h"],
            "wall_s_per_media_h": r["wall_s_per_media_h"],
            "affwild2_cpu_h": r["cpu_s_per_media_h"] * AFFWILD2_HOURS / 3600,
            "affwild2_wall_h": r["wall_s_per_media_h"] * AFFWILD2_HOURS / 3600,
            "bytes_per_media_h": r["bytes_per_media_h"],
        }
        if "ratio" in r:
            row |= {"floor_cpu_s_per_media_h": r["cpu_s_per_media_h"] / r["ratio"], "ratio": r["ratio"]}
        out.append(row)
    return out


def affwild2_markdown(rows: list[dict]) -> str:
    lines = [
        "| stage | CPU s / media h | floor CPU s / media h | stage / floor | wall s / media h | GB / media h "
        "| Aff-Wild2 CPU h | Aff-Wild2 wall h |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        floor = f"{r['floor_cpu_s_per_media_h']:.0f} | **{r['ratio']:.2f}x**" if "ratio" in r else "– | –"
        lines.append(
            f"| {r['stage']} | {r['cpu_s_per_media_h']:.0f} | {floor} | {r['wall_s_per_media_h']:.0f} | "
            f"{r['bytes_per_media_h'] / 1e9:.2f} | {r['affwild2_cpu_h']:.2f} | {r['affwild2_wall_h']:.2f} |"
        )
    return "\n".join(lines)


def print_table(rows: list[dict]) -> None:
    print(f"{'stage':18s} {'CPU s/clip':>10s} {'wall s/clip':>11s} {'floor CPU':>9s} {'ratio':>6s} "
          f"{'RSS MB':>7s} {'KB/clip':>8s} {'Hume CPU h':>10s} {'Hume wall h':>11s}")  # fmt: skip
    for r in rows:
        floor = f"{r['floor_cpu_s_per_clip']:9.3f} {r['ratio']:6.2f}" if "ratio" in r else f"{'':9s} {'':6s}"
        print(f"{r['stage']:18s} {r['cpu_s_per_clip']:10.3f} {r['wall_s_per_clip']:11.3f} {floor} "
              f"{r['peak_rss_mb']:7.0f} {r['bytes_per_clip'] / 1024:8.1f} {r['hume_cpu_h']:10.2f} "
              f"{r['hume_wall_h']:11.2f}")  # fmt: skip


def markdown(result: dict) -> str:
    """The scale table of docs/scale.md from a results file."""
    lines = [
        "| stage | CPU s / clip | wall s / clip | floor CPU s / clip | stage / floor | peak RSS MB | KB / clip "
        "| Hume CPU h | Hume wall h |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result["stages"]:
        floor = f"{r['floor_cpu_s_per_clip']:.3f} | **{r['ratio']:.2f}x**" if "ratio" in r else "– | –"
        lines.append(
            f"| {r['stage']} | {r['cpu_s_per_clip']:.3f} | {r['wall_s_per_clip']:.3f} | {floor} | "
            f"{r['peak_rss_mb']:.0f} | {r['bytes_per_clip'] / 1024:.1f} | "
            f"{r['hume_cpu_h']:.2f} | {r['hume_wall_h']:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="print the docs/scale.md table of an existing results file and stop")
    parser.add_argument("--corpus", choices=("hume", "long"), default="hume")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--videos", type=int, default=12, help="long videos (--corpus long)")
    parser.add_argument("--long-s", type=float, default=240.0, help="length of the one long clip")
    parser.add_argument("--work", type=Path, default=None, help="default /tmp/emi-scale, /tmp/emi-scale-long")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "scale.json")
    args = parser.parse_args()
    long = args.corpus == "long"
    if args.table is not None:
        result = json.loads(args.table.read_text())
        if long:
            print(markdown(result["long"]))
            print()
            print(affwild2_markdown(result["long"]["affwild2"]))
        else:
            print(markdown(result))
        return 0
    work = (args.work or Path("/tmp/emi-scale-long" if long else "/tmp/emi-scale")).resolve()
    for stale in ("decoded", "asr", "features"):
        subprocess.run(["rm", "-rf", str(work / stale)], check=True)
    durations = prepare(work, args.videos if long else args.clips, args.long_s, args.corpus)
    rows = run_all(work, durations)
    media_h = sum(durations.values()) / 3600
    light = [r for r in rows if r["stage"] in ("decode", "features@visual", "features@audio")]
    summary = {
        "clips": len(durations),
        "media_hours": media_h,
        "mean_clip_s": media_h * 3600 / len(durations),
        "longest_clip_s": max(durations.values()),
        "stored_crop_kb": crop_kb(work),
        # The budget: decode + visual + audio features per 10 media hours (ASR apart).
        "decode_visual_audio_cpu_h_per_10_media_h": sum(r["cpu_s_per_media_h"] for r in light) * 10 / 3600,
        "hume_cpu_h_total": sum(r["hume_cpu_h"] for r in rows),
        "hume_wall_h_total": sum(r["hume_wall_h"] for r in rows),
    }
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()}
    result = {"machine": machine, "summary": summary, "stages": rows}
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if long:
        result["affwild2"] = affwild2(rows)
        summary |= {
            "affwild2_cpu_h_total": sum(r["affwild2_cpu_h"] for r in result["affwild2"]),
            "affwild2_wall_h_total": sum(r["affwild2_wall_h"] for r in result["affwild2"]),
        }
        result = {**previous, "long": result}  # the Hume-like corpus' results stay
    elif "long" in previous:
        result["long"] = previous["long"]
    write_json(result, args.out)
    print_table(rows)
    if long:
        print(affwild2_markdown(result["long"]["affwild2"]))
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The organisers' feature pickles as feature sources: what the restricted loader and the stage cost.

On a generated release (``fixtures.hume``: ``--clips`` clips, durations 3 to 11 s, mean 7 s as
the release's audio; ViT (T, 384) at 6 fps, wav2vec2 (T, 768) at 50 Hz, float32), all in the same
run on the same files, page cache warm (every file read once before timing):

1. floor: bare ``pickle.load`` of every file (what the public baselines do, and what runs any
   code a pickle names);
2. ``load_array``: the restricted unpickler plus the shape / finite checks, ratio to the floor;
3. the stage (``stages.features.main`` in this process, imports done) with ``hume-vit`` /
   ``hume-wav2vec2``: fingerprints hashing every pickle, loading, placing, pooling, float16
   Parquet shards; then its rerun with nothing changed (fingerprints only). Ratio to the floor.

"x real time" is seconds of clip per second of compute. Prints a table and writes
benchmarks/results/hume_features.json.

    .venv/bin/python -m benchmarks.bench_hume_features [--clips 500]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fixtures.hume import make_clips, write_release, write_stage_inputs
from pipeline.atomic import write_json
from pipeline.config import Params
from pipeline.features.hume.pickles import load_array

REPO = Path(__file__).resolve().parents[1]
DURATIONS = (3.0, 5.0, 7.0, 9.0, 11.0)
SOURCES = {"visual": ("hume-vit", "vit", 384), "audio": ("hume-wav2vec2", "wav2vec2", 768)}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _files(release: Path, folder: str) -> list[Path]:
    return sorted(release.glob(f"{folder}/*.pkl")) + sorted(release.glob(f"test_data/{folder}/*.pkl"))


def bench_loader(release: Path, folder: str, width: int) -> dict:
    files = _files(release, folder)
    for path in files:  # warm the page cache: both loaders then read from memory
        path.read_bytes()

    def bare() -> None:
        for path in files:
            with open(path, "rb") as handle:
                pickle.load(handle)  # noqa: S301 - the floor, on files this benchmark wrote

    def restricted() -> None:
        for path in files:
            load_array(path, width=width)

    floor, ours = min(_timed(bare) for _ in range(3)), min(_timed(restricted) for _ in range(3))
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    return {
        "files": len(files), "mb": round(megabytes, 1), "floor_pickle_load_s": round(floor, 4),
        "load_array_s": round(ours, 4), "ratio_to_floor": round(ours / floor, 3),
        "ms_per_file": round(1000 * ours / len(files), 3),
    }  # fmt: skip


def bench_stage(work: Path, modality: str, media_s: float, floor_s: float) -> dict:
    """The stage in this process (imports done: the work, not Python's start), twice."""
    import pipeline.features.audio  # noqa: F401 - imported before timing: torch and the extractors' modules
    import pipeline.features.visual  # noqa: F401
    from stages.features import main as stage

    model = SOURCES[modality][0]
    raw = Params().model_dump(mode="json")
    raw["features"][modality]["model"] = model
    params = work / f"{modality}.yaml"
    params.write_text(yaml.safe_dump(raw))
    argv = [
        "--params", str(params), "--modality", modality, "--manifest", str(work / "manifest.parquet"),
        "--decoded", str(work / "decoded"), "--status", str(work / "decode_status.parquet"),
        "--asr", str(work / "none.parquet"), "--out", str(work / f"out-{modality}"),
    ]  # fmt: skip
    runs = []
    for _ in range(2):  # first: every shard computed; second: nothing changed (fingerprints only)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
            seconds = _timed(lambda: stage(argv))
        runs.append((seconds, printed.getvalue().strip().splitlines()[-1]))
    (first, summary), (again, _) = runs
    return {
        "stage": f"features@{modality}", "model": model, "run_s": round(first, 3), "rerun_s": round(again, 3),
        "x_real_time": round(media_s / first, 1), "ratio_to_floor": round(first / floor_s, 1), "summary": summary,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "hume_features.json")
    args = parser.parse_args(argv)
    n_test = args.clips // 5
    n_valid = args.clips // 4
    counts = {"train": args.clips - n_valid - n_test, "valid": n_valid, "test": n_test}
    clips = make_clips(counts, durations=DURATIONS)
    media_s = sum(c.duration_s for c in clips)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        release = write_release(work / "release", clips)
        write_stage_inputs(release, work, {c.stem: c.duration_s for c in clips})
        rows = []
        for modality, (model, folder, width) in SOURCES.items():
            loader = {"source": model, **bench_loader(release, folder, width)}
            stage = bench_stage(work, modality, media_s, loader["floor_pickle_load_s"])
            rows.append({"loader": loader, "stage": stage})
    result = {
        "machine": {
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "load_avg_at_start": load_start,
            "load_avg_at_end": os.getloadavg(),
        },
        "clips": len(clips), "media_s": media_s, "rows": rows,
    }  # fmt: skip
    print(f"{len(clips)} clips, {media_s:.0f} s of media")
    print(f"{'source':<15}{'files':>6}{'MB':>8}{'pickle.load s':>15}{'load_array s':>14}{'ratio':>7}")
    for row in rows:
        r = row["loader"]
        print(
            f"{r['source']:<15}{r['files']:>6}{r['mb']:>8}{r['floor_pickle_load_s']:>15}"
            f"{r['load_array_s']:>14}{r['ratio_to_floor']:>7}"
        )
    for row in rows:
        s = row["stage"]
        print(
            f"{s['stage']}: {s['run_s']} s ({s['x_real_time']} x real time, {s['ratio_to_floor']} x the bare "
            f"pickle.load floor), rerun with nothing changed {s['rerun_s']} s\n    {s['summary']}"
        )
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

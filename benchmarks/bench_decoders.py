"""PyAV (the decode stage's decoder) against ffmpeg-python (the ffmpeg CLI through a pipe).

For each real video of ../shared/realdata/video, the frames the decode stage samples (5 fps by
timestamp, resized in the decoder to ``max_side``) are produced two ways:

- PyAV in process: ``pipeline.decode.sample_frames`` (the floor of the decode stage's video path);
- ffmpeg-python: ``fps=5:round=up`` then ``scale`` with the area filter, raw RGB read from the
  CLI's stdout (the closest the CLI gets to the same rule; plain ``fps=5`` picks the frame 67 ms
  late, see ../shared/docs/toolchain.md).

CPU seconds (this process's for PyAV, the child's for the CLI) and wall seconds are measured on
the same files in the same run, with the number of frames each returns and their mean absolute
pixel difference. Prints a table and writes benchmarks/results/decoders.json.

    .venv/bin/python -m benchmarks.bench_decoders [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time
from pathlib import Path

import av
import ffmpeg
import numpy as np

from pipeline.atomic import write_json
from pipeline.decode import sample_frames

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "realdata" / "video"
FPS = 5.0
MAX_SIDE = 640


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def pyav_frames(path: Path) -> np.ndarray:
    return np.stack([rgb for _, _, rgb in sample_frames(path, fps=FPS, max_side=MAX_SIDE, threads=1)])


def cli_frames(path: Path, width: int, height: int) -> np.ndarray:
    stream = ffmpeg.input(str(path)).video.filter("fps", fps=FPS, round="up")
    stream = stream.filter("scale", width, height, flags="area")
    raw, _ = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", threads=1).run(quiet=True)
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def measure(fn, repeats: int, who: int) -> tuple[np.ndarray, float, float]:
    """(result, median wall s, median CPU s of ``who``) over ``repeats`` runs."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        cpu0, wall0 = _cpu(who), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - wall0)
        cpus.append(_cpu(who) - cpu0)
    return out, statistics.median(walls), statistics.median(cpus)


def clip_row(path: Path, repeats: int) -> dict:
    ours, wall_av, cpu_av = measure(lambda: pyav_frames(path), repeats, resource.RUSAGE_SELF)
    height, width = ours.shape[1:3]
    theirs, wall_cli, cpu_cli = measure(lambda: cli_frames(path, width, height), repeats, resource.RUSAGE_CHILDREN)
    n = min(len(ours), len(theirs))
    diff = float(np.abs(ours[:n].astype(np.int16) - theirs[:n].astype(np.int16)).mean()) if n else None
    return {
        "clip": path.name,
        "frames_pyav": len(ours),
        "frames_ffmpeg_cli": len(theirs),
        "mean_abs_pixel_diff": None if diff is None else round(diff, 2),
        "wall_s_pyav": round(wall_av, 4),
        "wall_s_ffmpeg_cli": round(wall_cli, 4),
        "cpu_s_pyav": round(cpu_av, 4),
        "cpu_s_ffmpeg_cli": round(cpu_cli, 4),
        "cpu_ratio_cli_over_pyav": round(cpu_cli / cpu_av, 2) if cpu_av else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "decoders.json"))
    args = parser.parse_args()
    rows = [clip_row(p, args.repeats) for p in sorted(VIDEOS.glob("*.*"))]
    print(f"{'clip':34s} {'T av':>5s} {'T cli':>5s} {'|diff|':>6s} {'cpu av':>7s} {'cpu cli':>7s} {'ratio':>6s}")
    for r in rows:
        print(
            f"{r['clip']:34s} {r['frames_pyav']:5d} {r['frames_ffmpeg_cli']:5d} {r['mean_abs_pixel_diff'] or 0:6.2f} "
            f"{r['cpu_s_pyav']:7.3f} {r['cpu_s_ffmpeg_cli']:7.3f} {r['cpu_ratio_cli_over_pyav'] or 0:6.2f}"
        )
    total = {k: round(sum(r[k] for r in rows), 3) for k in ("cpu_s_pyav", "cpu_s_ffmpeg_cli")}
    total["cpu_ratio_cli_over_pyav"] = round(total["cpu_s_ffmpeg_cli"] / total["cpu_s_pyav"], 2)
    print(f"total: {total}")
    machine = {"python": platform.python_version(), "av": av.__version__}
    write_json({"machine": machine, "fps": FPS, "max_side": MAX_SIDE, "clips": rows, "total": total}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Decode-stage speed on the real videos of ../shared/realdata/video.

Measures, per clip: wall time of the whole clip decode (frames at 5 fps, face detection and crops,
audio) with 1 and 2 decoder threads, and the share of its parts (video sampling with the resize,
face detection, audio). Then the stage's throughput on a manifest of the clips repeated ``--copies``
times with workers=1 (one process, decoder threads = CPUs) and workers=2 (two processes, one decoder
thread each), process start-up included. Prints a table and writes benchmarks/results/decode.json.

Wall times need an otherwise idle machine: with other jobs running, Linux shares the CPU between
sessions (autogroup), so two workers get no more CPU than one and the comparison says nothing.
CPU seconds (``cpu_s_*``, ``worker_cpu_s``) hold up under load; the JSON records the load average.

    .venv/bin/python -m benchmarks.bench_decode [--repeats 3] [--copies 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from pipeline.atomic import write_json
from pipeline.config import DecodeParams
from pipeline.decode import ClipDecoder, decode_manifest, sample_frames
from pipeline.decode.audio import decode_audio
from pipeline.decode.faces import FaceDetector
from pipeline.decode.probe import StreamLog, probe
from pipeline.runtime.devices import usable_cpus

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "realdata" / "video"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_timed(fn) -> float:
    """CPU seconds of this process (all its threads) spent in ``fn``: robust to a busy machine."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def clip_figures(path: Path, params: DecodeParams, repeats: int) -> dict:
    decoders = {threads: ClipDecoder(params, threads=threads) for threads in (1, 2)}
    report = None

    def whole(threads: int) -> None:
        nonlocal report
        report, _ = decoders[threads].decode(path, path.stem, lambda rows: None)

    walls = {t: statistics.median(timed(lambda t=t: whole(t)) for _ in range(repeats)) for t in (1, 2)}
    cpus = {t: statistics.median(cpu_timed(lambda t=t: whole(t)) for _ in range(repeats)) for t in (1, 2)}
    for decoder in decoders.values():
        decoder.close()

    frames = []
    sampling = statistics.median(
        timed(lambda: frames.__setitem__(slice(None), [rgb for _, _, rgb in sample_frames(path, threads=1)]))
        for _ in range(repeats)
    )
    with FaceDetector(min_score=params.min_face_score) as detector:
        faces = statistics.median(timed(lambda: [detector.detect(rgb) for rgb in frames]) for _ in range(repeats))
    found = probe(str(path))
    audio = 0.0
    if found.audio_index is not None:
        audio = statistics.median(
            timed(
                lambda: decode_audio(
                    str(path),
                    found.audio_index,
                    sample_rate=params.sample_rate,
                    origin=Fraction(0),
                    log=StreamLog("audio"),
                )
            )
            for _ in range(repeats)
        )
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        source = f"{stream.codec_context.name} {stream.codec_context.width}x{stream.codec_context.height}"
    duration = report.duration_s
    return {
        "clip": path.name,
        "source": source,
        "duration_s": round(duration, 3),
        "status": report.status,
        "wall_s_threads1": round(walls[1], 4),
        "wall_s_threads2": round(walls[2], 4),
        "x_realtime_threads1": round(duration / walls[1], 1),
        "x_realtime_threads2": round(duration / walls[2], 1),
        "cpu_s_threads1": round(cpus[1], 4),
        "cpu_s_threads2": round(cpus[2], 4),
        "video_sampling_s": round(sampling, 4),
        "face_detection_s": round(faces, 4),
        "audio_s": round(audio, 4),
    }


def stage_figures(paths: list[Path], params: DecodeParams, copies: int, workers: int) -> dict:
    clips = [(f"{p.stem}-{k}", str(p)) for k in range(copies) for p in paths]
    shard = -(-len(clips) // 2)  # two shards: both workers busy
    config = params.model_copy(update={"workers": workers, "clips_per_shard": shard})
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        reports = decode_manifest(clips, out, config, log=lambda _: None)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's workers, reaped at shutdown
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    media = sum(r.duration_s for r in reports)
    return {
        "workers": workers,
        "clips": len(clips),
        "media_s": round(media, 2),
        "wall_s": round(wall, 2),
        "wall_s_per_clip": round(wall / len(clips), 4),
        "x_realtime": round(media / wall, 1),
        "worker_cpu_s": round(cpu, 2),
        "worker_cpu_s_per_media_s": round(cpu / media, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=4, help="manifest = the real clips repeated this many times")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "decode.json"))
    args = parser.parse_args()
    params = DecodeParams()
    paths = sorted(VIDEOS.glob("*.*"))
    if not paths:
        raise SystemExit(f"no videos under {VIDEOS}")

    per_clip = [clip_figures(p, params, args.repeats) for p in paths]
    print(f"load average at start: {os.getloadavg()}")
    print(
        f"{'clip':34s} {'source':18s} {'dur s':>6s} {'1 thr s':>8s} {'x rt':>6s} {'2 thr s':>8s} {'x rt':>6s}"
        f" {'cpu1 s':>7s} {'cpu2 s':>7s} {'video':>6s} {'faces':>6s} {'audio':>6s}"
    )
    for row in per_clip:
        print(
            f"{row['clip']:34s} {row['source']:18s} {row['duration_s']:6.2f} {row['wall_s_threads1']:8.3f} "
            f"{row['x_realtime_threads1']:6.1f} {row['wall_s_threads2']:8.3f} {row['x_realtime_threads2']:6.1f} "
            f"{row['cpu_s_threads1']:7.3f} {row['cpu_s_threads2']:7.3f} "
            f"{row['video_sampling_s']:6.3f} {row['face_detection_s']:6.3f} {row['audio_s']:6.3f}"
        )
    stage = [stage_figures(paths, params, args.copies, workers) for workers in (1, 2)]
    for row in stage:
        print(
            f"stage workers={row['workers']}: {row['clips']} clips, {row['media_s']:.0f} s of media in "
            f"{row['wall_s']:.1f} s = {row['wall_s_per_clip']:.3f} s/clip, {row['x_realtime']:.1f}x real time; "
            f"worker CPU {row['worker_cpu_s']:.1f} s"
        )
    media = sum(r["duration_s"] for r in per_clip)
    summary = {
        "median_wall_s_per_clip_threads1": statistics.median(r["wall_s_threads1"] for r in per_clip),
        "median_wall_s_per_clip_threads2": statistics.median(r["wall_s_threads2"] for r in per_clip),
        "median_x_realtime_threads1": statistics.median(r["x_realtime_threads1"] for r in per_clip),
        "median_x_realtime_threads2": statistics.median(r["x_realtime_threads2"] for r in per_clip),
        "cpu_s_per_media_s_threads1": round(sum(r["cpu_s_threads1"] for r in per_clip) / media, 4),
        "cpu_s_per_media_s_threads2": round(sum(r["cpu_s_threads2"] for r in per_clip) / media, 4),
    }
    print(summary)
    write_json(
        {
            "machine": {
                "cpus": usable_cpus(),
                "python": platform.python_version(),
                "av": av.__version__,
                # Other jobs on the machine inflate wall times; CPU seconds are the steadier figure.
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            },
            "params": params.model_dump(),
            "per_clip": per_clip,
            "summary": summary,
            "stage": stage,
        },
        args.out,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

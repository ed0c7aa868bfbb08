"""Frame-level demo (pipeline/demo/tracks): generation time against a bare-encode floor, and how well the
release shows what the latents say.

Generates the release of ``--params`` (default params.yaml: 28 tracks, about 19 minutes of video)
into a temporary folder with ``--workers`` processes and reports wall and CPU time, then the floor:
the same number of frames, of the same sizes and rates, encoded by the same encoders from one fixed
image with silent audio (no face warping, no speech, no labels, no ceilings), in the same number of
processes; the ratio is what rendering the content costs on top of writing the files. With
``--check`` it then reads the release back:

- faces: MediaPipe (pipeline/decode/faces.py) on every 10th frame of every person (each half of the
  two-person videos): the share of frames with the face in view where it finds one, and of frames
  with the face out of the frame where it finds none;
- speech: faster-whisper (``--asr-model``, beam 5, English) on each sentence cut from the video's
  audio, word error rate against the sentence, per espeak-ng voice (the second person's is en-us+f2).

Prints a summary and writes benchmarks/results/demo_tracks.json.

    .venv/bin/python -m benchmarks.bench_demo_tracks [--params params.yaml] [--workers 2] [--check]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from benchmarks.bench_demo import _cpu_seconds, _words
from pipeline.asr import word_errors
from pipeline.atomic import write_json
from pipeline.config import load_params
from pipeline.demo.media import mux_clip
from pipeline.demo.tracks import generate_tracks
from pipeline.runtime.pools import spawn_pool

REPO = Path(__file__).resolve().parents[1]


def _encode_floor(job: tuple[Path, int, int, float, int]) -> None:
    path, width, height, fps, n = job
    image = np.full((height, width, 3), 128, np.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (200, 150, 120)
    silence = np.zeros(int(round(n / fps * 16000)), np.float32)
    mux_clip(path, (image for _ in range(n)), [k / fps for k in range(n)], declared_fps=fps, audio=silence)


def _videos(root: Path) -> list[tuple[Path, int, int, float, int]]:
    out = []
    for path in sorted((root / "batch1").iterdir()):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            n = sum(1 for _ in container.demux(stream) if _.size)
            out.append((path, stream.width, stream.height, float(stream.average_rate), n))
    return out


def _floor(videos: list[tuple[Path, int, int, float, int]], workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="emi-bench-floor-") as folder:
        jobs = [(Path(folder) / p.name, w, h, fps, n) for p, w, h, fps, n in videos]
        cpu, start = _cpu_seconds(), time.perf_counter()
        with spawn_pool(workers) as pool:
            list(pool.map(_encode_floor, jobs))
        return {"wall_s": round(time.perf_counter() - start, 2), "cpu_s": round(_cpu_seconds() - cpu, 2)}


def _latents(root: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(root / "latents.parquet")
    return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def _check_faces(root: Path, latents: dict[str, np.ndarray]) -> dict:
    from pipeline.decode.faces import FaceDetector

    hits = {True: [], False: []}
    with FaceDetector(min_score=0.5) as detector:
        for video in np.unique(latents["video"]):
            with av.open(str(root / "batch1" / video)) as container:
                frames = [f.to_ndarray(format="rgb24") for k, f in enumerate(container.decode(video=0)) if k % 10 == 0]
            for track in np.unique(latents["track"][latents["video"] == video]):
                side = track.rsplit("_", 1)[-1] if track.endswith(("_left", "_right")) else None
                view = latents["face_in_frame"][latents["track"] == track][::10]
                for frame, seen in zip(frames, view, strict=False):
                    half = frame.shape[1] // 2
                    part = {"left": frame[:, :half], "right": frame[:, half:]}.get(side, frame)
                    hits[bool(seen)].append(detector.detect(np.ascontiguousarray(part)) is not None)
    return {
        "frames_in_view": len(hits[True]),
        "found_in_view": round(float(np.mean(hits[True])), 4),
        "frames_out_of_view": len(hits[False]),
        "found_out_of_view": round(float(np.mean(hits[False])), 4),
    }


def _check_speech(root: Path, latents: dict[str, np.ndarray], model_name: str, per_voice: int) -> dict:
    from pipeline.whisper.models import load_whisper_model

    model = load_whisper_model(model_name, cpu_threads=os.cpu_count() or 1)
    audio_of: dict[str, np.ndarray] = {}
    errors: dict[str, list[float]] = {"en-us": [], "en-us+f2": []}
    for track in np.unique(latents["track"]):
        voice = "en-us+f2" if track.endswith("_right") else "en-us"
        mine = latents["track"] == track
        video = latents["video"][mine][0]
        if video not in audio_of:
            with av.open(str(root / "batch1" / video)) as container:
                chunks = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
            samples = np.concatenate(chunks)
            audio_of[video] = samples / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32)
        talking, times, sentences = latents["speaking"][mine], latents["time_s"][mine], latents["sentence"][mine]
        starts = np.flatnonzero(talking & ~np.concatenate([[False], talking[:-1]]))
        for start in starts:
            if len(errors[voice]) >= per_voice:
                break
            end = start + int(np.argmin(talking[start:])) if not talking[start:].all() else len(talking)
            # From 0.3 s before the first speaking frame (which starts up to a frame after the onset) to
            # 0.5 s after the last.
            first = int(max(times[start] - 0.3, 0.0) * 16000)
            piece = audio_of[video][first : int(times[end - 1] * 16000) + 8000].astype(np.float32)
            segments, _ = model.transcribe(piece, language="en", beam_size=5)
            heard, reference = _words(" ".join(s.text for s in segments)), _words(sentences[start])
            errors[voice].append(word_errors(reference, heard) / max(len(reference), 1))
    return {
        "asr_model": model_name,
        **{f"{v}_sentences": len(e) for v, e in errors.items()},
        **{f"{v}_mean_wer": round(float(np.mean(e)), 4) if e else None for v, e in errors.items()},
        **{f"{v}_exact_fraction": round(float(np.mean(np.array(e) == 0)), 4) if e else None for v, e in errors.items()},
    }


def _ceiling_summary(ceiling: dict) -> dict:
    """The headline of each task's ceilings: noise-free latents, each modality subset, and per split."""
    keys = {"va": "mean", "expr": "macro", "au": "mean"}
    return {
        task: {
            "latents": ceiling[task]["latents"][key],
            **{name: score[key] for name, score in ceiling[task]["modalities"].items()},
            "generated": {split: {k: v[key] for k, v in s.items()} for split, s in ceiling[task]["generated"].items()},
        }
        for task, key in keys.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="also read faces and speech back from the videos")
    parser.add_argument("--sentences", type=int, default=20, help="sentences per voice transcribed by --check")
    parser.add_argument("--asr-model", default="base")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "demo_tracks.json"))
    args = parser.parse_args(argv)
    params = load_params(args.params).demo
    result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "params": params.model_dump()}
    with tempfile.TemporaryDirectory(prefix="emi-bench-tracks-") as folder:
        root = Path(folder) / "demo"
        load = os.getloadavg()[0]
        cpu, start = _cpu_seconds(), time.perf_counter()
        ceiling = generate_tracks(root, params, workers=args.workers)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        latents = _latents(root)
        videos = _videos(root)
        floor = _floor(videos, args.workers)
        result["generation"] = {
            "workers": args.workers,
            "tracks": len(np.unique(latents["track"])),
            "videos": len(videos),
            "video_frames": sum(v[4] for v in videos),
            "video_seconds": round(sum(v[4] / v[3] for v in videos), 1),
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "floor_bare_encode": floor,
            "wall_ratio_to_floor": round(wall / floor["wall_s"], 2),
            "cpu_ratio_to_floor": round(cpu / floor["cpu_s"], 2),
            "load_average_1min_before": load,
            "load_average_1min_after": os.getloadavg()[0],
        }
        print(f"generation: {result['generation']}")
        result["ceiling"] = _ceiling_summary(ceiling)
        print(f"ceiling: {result['ceiling']}")
        if args.check:
            result["faces"] = _check_faces(root, latents)
            print(f"faces: {result['faces']}")
            result["speech"] = _check_speech(root, latents, args.asr_model, args.sentences)
            print(f"speech: {result['speech']}")
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

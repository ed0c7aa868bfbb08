"""ASR and audio-feature speed and accuracy on real speech (../shared/realdata).

1. Parallelism, Whisper base: one process with 2 CTranslate2 threads (workers=1) against two
   processes with 1 thread each (workers=2), on 20 and on all 120 RAVDESS files, interleaved
   ``--repeats`` times; model loading and process start-up included in both.
2. Word error rate, clips/s and real-time factor (wall seconds per audio second) of base (from
   the runs above) and tiny.en (workers=2) on all 120 RAVDESS files (two known sentences).
3. The same figures for base on the speech of the four talking-head videos (texts printed).
4. Audio features (Whisper encoder): clips/s and real-time factor of base and tiny.en (int8) on
   the 120 RAVDESS files; base int8 against float32 on the 20-file subset, speed and how far the
   int8 states are from the float32 ones.

Wall times on a shared machine vary with its load: the load average before and after each
measurement and the CPU seconds (this process and its finished children) are recorded too.
Prints a table and writes benchmarks/results/asr.json.

    .venv/bin/python -m benchmarks.bench_asr [--repeats 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from fixtures.speech import load_audio
from pipeline.asr import AsrClip, transcribe_clips, word_errors, words
from pipeline.atomic import write_json
from pipeline.config import AsrParams, AudioFeatureParams
from pipeline.decoded import AudioInput
from pipeline.features.audio import build_audio_extractor
from pipeline.whisper import models as whisper_models

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
VIDEOS = ("video-retalking_1.mp4", "video-retalking_2.mp4", "video-retalking_3.mp4", "sadtalker_WDA_KatieHill_000.mp4")


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(fn) -> tuple[object, dict]:
    """Run ``fn`` from a cold model cache; its result and wall/CPU seconds with the load around it."""
    whisper_models._loaded.clear()
    load_before, cpu_before, start = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    result = fn()
    wall = time.perf_counter() - start
    return result, {
        "wall_s": wall,
        "cpu_s": cpu_seconds() - cpu_before,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def asr_run(clips: list[AsrClip], params: AsrParams, references: list[str] | None) -> dict:
    out, figures = measure(lambda: list(transcribe_clips(clips, params, device="cpu", workers=params.workers)))
    audio_s = sum(len(c.samples) / c.sample_rate for c in clips)
    figures.update(
        clips=len(clips), audio_s=audio_s, clips_per_s=len(clips) / figures["wall_s"], rtf=figures["wall_s"] / audio_s
    )
    if references is not None:
        errors = sum(word_errors(words(ref), words(t.text or "")) for ref, t in zip(references, out, strict=True))
        figures["wer"] = errors / sum(len(words(ref)) for ref in references)
    figures["texts"] = [t.text for t in out]
    return figures


def feature_run(clips: list[AsrClip], params: AudioFeatureParams) -> tuple[list, dict]:
    inputs = [AudioInput(c.clip_id, c.samples, c.sample_rate, len(c.samples) / c.sample_rate) for c in clips]

    def run():
        extractor = build_audio_extractor(params, device="cpu")
        return [r for start in range(0, len(inputs), 64) for r in extractor.extract_batch(inputs[start : start + 64])]

    records, figures = measure(run)
    audio_s = sum(len(c.samples) / c.sample_rate for c in clips)
    figures.update(
        clips=len(clips), audio_s=audio_s, clips_per_s=len(clips) / figures["wall_s"], rtf=figures["wall_s"] / audio_s
    )
    return records, figures


def asr_figures(clips: list[AsrClip], references: list[str], repeats: int) -> dict:
    """Workers 1 vs 2 on a 20-clip subset and on all clips; base and tiny.en WER; the real videos."""
    results: dict = {"parallelism_base": {}}
    picked = list(range(0, len(clips), 6))[:20]
    subset, subset_refs = [clips[i] for i in picked], [references[i] for i in picked]
    last_full_run: dict = {}
    for files, refs in ((subset, subset_refs), (clips, references)):
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for _ in range(repeats):
            for workers in (1, 2):
                run = asr_run(files, AsrParams(workers=workers), refs)
                runs[workers].append({k: v for k, v in run.items() if k != "texts"})
                last_full_run = run
        results["parallelism_base"][f"{len(files)} clips"] = {
            f"workers={w}": {"runs": r, "median_wall_s": statistics.median(x["wall_s"] for x in r)}
            for w, r in runs.items()
        }
    results["ravdess_120"] = {}
    for model in ("base", "tiny.en"):
        run = last_full_run if model == "base" else asr_run(clips, AsrParams(model=model), references)
        results["ravdess_120"][model] = {k: v for k, v in run.items() if k != "texts"}
        results["ravdess_120"][model]["wrong"] = [
            {"file": c.clip_id, "reference": ref, "text": text}
            for c, ref, text in zip(clips, references, run["texts"], strict=True)
            if words(ref) != words(text or "")
        ]
    videos = [AsrClip(name, load_audio(REALDATA / "video" / name)[0], 16000) for name in VIDEOS]
    run = asr_run(videos, AsrParams(), None)
    results["videos_base"] = {
        **{k: v for k, v in run.items() if k != "texts"},
        "texts": dict(zip(VIDEOS, run["texts"], strict=True)),
    }
    return results


def encoder_figures(clips: list[AsrClip]) -> dict:
    """Whisper-encoder features: base and tiny.en on all clips, int8 vs float32 on a subset."""
    subset = [clips[i] for i in list(range(0, len(clips), 6))[:20]]
    figures: dict = {}
    states = {}
    # float32 is about 3x slower: it runs on the 20-file subset only, beside int8 on the same files.
    for model, compute, files in (
        ("base", "int8", clips),
        ("tiny.en", "int8", clips),
        ("base", "int8", subset),
        ("base", "float32", subset),
    ):
        params = AudioFeatureParams(whisper_model=model, compute_type=compute, pool_fps=None)
        records, timing = feature_run(files, params)
        figures[f"{model}:{compute}, {len(files)} files"] = {**timing, "dim": int(records[0].values.shape[1])}
        states[(model, compute, len(files))] = records
    a, b = (np.concatenate([r.values for r in states[("base", c, len(subset))]]) for c in ("int8", "float32"))
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    figures["base_int8_vs_float32"] = {
        "relative_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
        "frame_cosine_median": float(np.median(cosine)),
        "frame_cosine_p05": float(np.percentile(cosine, 5)),
    }
    return figures


def _row(name: str, f: dict) -> None:
    wer = f"{f['wer']:.3f}" if "wer" in f else ""
    print(
        f"{name:52s} {f['clips']:5d} {f['wall_s']:7.1f} {f['cpu_s']:7.1f} {f['clips_per_s']:7.2f} "
        f"{f['rtf']:6.3f} {wer:>6s} {f['load_before']:4.1f}-{f['load_after']:<4.1f}"
    )


def print_table(results: dict) -> None:
    print(
        f"{'measurement':52s} {'clips':>5s} {'wall s':>7s} {'cpu s':>7s} {'clips/s':>7s} "
        f"{'RTF':>6s} {'WER':>6s} {'load':>9s}"
    )
    for files, entry in results["parallelism_base"].items():
        for workers, runs in entry.items():
            for i, f in enumerate(runs["runs"]):
                _row(f"asr base, {files}, {workers}, run {i + 1}", f)
    for model, f in results["ravdess_120"].items():
        _row(f"asr {model}, RAVDESS 120, workers=2", f)
    _row("asr base, 4 real videos, workers=2", results["videos_base"])
    for name, f in results["features"].items():
        if "wall_s" in f:
            _row(f"features whisper-encoder {name}", f)
    print("int8 vs float32 encoder states:", results["features"]["base_int8_vs_float32"])
    for name, text in results["videos_base"]["texts"].items():
        print(f"{name}: {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "asr.json"))
    args = parser.parse_args()

    root = REALDATA / "audio" / "ravdess"
    with open(root / "labels.csv", newline="") as handle:
        labels = sorted(csv.DictReader(handle), key=lambda r: r["path"])
    clips = [AsrClip(r["path"], load_audio(root / r["path"])[0], 16000) for r in labels]
    references = [r["transcript"] for r in labels]
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor()}
    results = {"machine": machine, **asr_figures(clips, references, args.repeats), "features": encoder_figures(clips)}
    write_json(results, args.out)
    print_table(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

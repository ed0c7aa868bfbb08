"""Demo dataset: generation time, and how well each latent can be read back from the clips.

Generates the dataset of ``--params`` (default: params.yaml, 160 clips + faults) into a temporary
folder with ``--workers`` processes and reports wall time, CPU time and the clip count. With
``--check`` it then reads the latents back from the normal clips with the pipeline's own models:

- text: faster-whisper (``--asr-model``, beam 5, English, VAD) on the clip audio, word error rate
  against the spoken sentence, and the fraction of clips transcribed exactly (case, punctuation
  and contractions ignored); then the all-MiniLM-L6-v2 embeddings of the transcripts, and the
  Pearson correlation of a leave-one-out ridge regression from them to the wording latent;
- visual: MediaPipe face detection, a square crop with 25% margin, then the FER2013
  mini-Xception "happy" probability and the face-mesh mouth-corner lift, averaged over the last
  second; their Pearson correlation with the smile latent; and the brow-to-eye distance against
  the brow latent.

Prints a summary and writes benchmarks/results/demo.json.

    .venv/bin/python -m benchmarks.bench_demo [--params params.yaml] [--workers 2] [--check]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from pipeline.asr import word_errors, words
from pipeline.atomic import write_json
from pipeline.config import load_params
from pipeline.demo import generate_demo

REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_CONTRACTIONS = {"i'm": "i am", "can't": "cannot", "it's": "it is", "that's": "that is", "you're": "you are"}


def _words(text: str) -> list[str]:
    """pipeline.asr.words with hyphens split and contractions expanded, as the demo's sentences differ."""
    return [part for word in words(text.replace("-", " ")) for part in _CONTRACTIONS.get(word, word).split()]


def _loo_ridge_pearson(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> float:
    """Pearson of leave-one-out ridge predictions of y (N,) from x (N, D) (closed form via the hat matrix)."""
    x = np.hstack([x - x.mean(axis=0), np.ones((len(x), 1))])
    hat = x @ np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T)
    loo = y - (y - hat @ y) / (1.0 - np.diag(hat))
    return float(np.corrcoef(loo, y)[0, 1])


def _check_text(root: Path, rows: list[dict], model_name: str) -> dict:
    from pipeline.features.text import TextExtractor
    from pipeline.whisper.models import load_whisper_model

    model = load_whisper_model(model_name, cpu_threads=os.cpu_count() or 1)
    errors, exact, transcripts = [], 0, []
    for row in rows:
        with av.open(str(root / row["path"])) as container:
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]).astype(np.float32)
        segments, _ = model.transcribe(audio, language="en", beam_size=5, vad_filter=True)
        transcripts.append(" ".join(s.text for s in segments).strip())
        heard = _words(transcripts[-1])
        reference = _words(row["sentence"])
        errors.append(word_errors(reference, heard) / max(len(reference), 1))
        exact += heard == reference
    embedder = TextExtractor(model="all-MiniLM-L6-v2", max_tokens=128, pooling="mean", batch_size=32)
    wording = np.array([r["wording"] for r in rows])
    return {
        "asr_model": model_name,
        "clips": len(rows),
        "mean_wer": float(np.mean(errors)),
        "exact_fraction": exact / len(rows),
        "pearson_wording_loo_ridge_minilm": _loo_ridge_pearson(embedder.embed(transcripts), wording),
    }


def _check_visual(root: Path, rows: list[dict]) -> dict:
    import torch
    from mediapipe.python.solutions import face_detection, face_mesh

    from pipeline.features.fer import FER_CLASSES, load_mini_xception, preprocess_faces

    fer = load_mini_xception()
    happy_index = FER_CLASSES.index("happy")
    happy, lift, brow_gap = [], [], []
    with (
        face_detection.FaceDetection(model_selection=0) as detector,
        face_mesh.FaceMesh(static_image_mode=True) as mesh,
    ):
        for row in rows:
            with av.open(str(root / row["path"])) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            tail = frames[-25:]
            crops, lifts, gaps = [], [], []
            for frame in tail:
                height, width = frame.shape[:2]
                box = detector.process(frame).detections[0].location_data.relative_bounding_box
                side = 1.25 * max(box.width * width, box.height * height)
                cx, cy = (box.xmin + box.width / 2) * width, (box.ymin + box.height / 2) * height
                x0, y0 = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
                crops.append(frame[y0 : int(cy + side / 2), x0 : int(cx + side / 2)])
                points = mesh.process(frame).multi_face_landmarks[0].landmark
                xy = np.array([(p.x * width, p.y * height) for p in points])
                iod = np.linalg.norm(xy[33] - xy[263])
                lifts.append(((xy[13, 1] + xy[14, 1]) / 2 - (xy[61, 1] + xy[291, 1]) / 2) / iod)
                gaps.append(((xy[159, 1] + xy[386, 1]) / 2 - (xy[105, 1] + xy[334, 1]) / 2) / iod)
            with torch.no_grad():
                probs, _ = fer(preprocess_faces(crops))
            happy.append(float(probs[:, happy_index].mean()))
            lift.append(float(np.mean(lifts)))
            brow_gap.append(float(np.mean(gaps)))
    smile = np.array([r["smile"] for r in rows])
    brow = np.array([r["brow"] for r in rows])
    return {
        "clips": len(rows),
        "pearson_smile_fer_happy": float(np.corrcoef(smile, happy)[0, 1]),
        "pearson_smile_mouth_lift": float(np.corrcoef(smile, lift)[0, 1]),
        "pearson_brow_brow_eye_gap": float(np.corrcoef(brow, brow_gap)[0, 1]),
        "fer_happy_range": [float(min(happy)), float(max(happy))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="also read the latents back from the clips")
    parser.add_argument("--check-clips", type=int, default=40, help="normal clips used by --check")
    parser.add_argument("--asr-model", default="base")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "demo.json"))
    args = parser.parse_args(argv)
    params = load_params(args.params).demo
    result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "params": params.model_dump()}
    with tempfile.TemporaryDirectory(prefix="emi-bench-demo-") as folder:
        root = Path(folder) / "demo"
        cpu, start = _cpu_seconds(), time.perf_counter()
        generate_demo(root, params, workers=args.workers)
        wall = time.perf_counter() - start
        n_clips = len(list((root / "clips").iterdir()))
        result["generation"] = {
            "workers": args.workers,
            "clips": n_clips,
            "wall_s": round(wall, 2),
            "cpu_s": round(_cpu_seconds() - cpu, 2),
            "video_seconds": round(float(pq.read_table(root / "latents.parquet")["duration_s"].to_numpy().sum()), 1),
            "load_average_1min": os.getloadavg()[0],
        }
        print(f"generation: {result['generation']}")
        if args.check:
            rows = [r for r in pq.read_table(root / "latents.parquet").to_pylist() if r["fault"] is None][
                : args.check_clips
            ]
            result["text"] = _check_text(root, rows, args.asr_model)
            print(f"text: {result['text']}")
            result["visual"] = _check_visual(root, rows)
            print(f"visual: {result['visual']}")
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

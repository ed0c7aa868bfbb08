"""Face detection on every k-th frame, followed in between (``decode.detect_every``), against every frame.

On the real videos of ../shared/realdata/video, for each k: the decode stage's clip decoder
(``ClipDecoder``, one decoder thread) with ``detect_every = k``, against k = 1 (the detector on every
sampled frame) for

- the face boxes: IoU with the k = 1 box on every frame where k = 1 finds a face (a frame where k
  finds none counts 0), mean and 5th percentile; frames where k has a box and k = 1 none;
- the visual features (``pipeline.features.visual``, the default extractor: FER + face mesh) of
  the stored crops: cosine with the k = 1 crop's on frames where both have one, mean, 5th
  percentile and minimum;
- CPU: decode seconds against the floor, a bare PyAV decode of the same files at the same resize
  with the audio resampled (``benchmarks.scale_floors.bare_decode``), measured in the same run;
  the fastest of ``--repeats`` interleaved passes over all clips (the one least disturbed by
  other jobs on a shared machine; the medians are in the JSON too); and the detector calls. Beside them the
  stage's own video sampling and audio decode without faces (``VideoSampler``, ``decode_audio``),
  to show what of the gap is the faces (detection, following, crops and their JPEG).

Prints a table and writes benchmarks/results/face_tracking.json.

    .venv/bin/python -m benchmarks.bench_face_tracking [--ks 1 2 3 5 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.scale_floors import bare_decode
from pipeline.atomic import write_json
from pipeline.config import DecodeParams, VisualFeatureParams
from pipeline.decode import ClipDecoder
from pipeline.decode.audio import decode_audio
from pipeline.decode.probe import StreamLog, probe
from pipeline.decode.video import VideoSampler
from pipeline.decoded import VisualInput, decode_crop
from pipeline.features.visual import build_visual_extractor

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "realdata" / "video"


def cpu_s(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def decode_all(decoder: ClipDecoder, paths: list[Path], params: DecodeParams) -> tuple[dict, int]:
    """{clip: (boxes (T, 4), crops)} of every clip, and the detector calls."""
    out, calls = {}, 0
    for path in paths:
        rows = []
        decoder.decode(path, path.stem, rows.append)
        calls += decoder._tracker.detections
        boxes = np.concatenate([r.face_box for r in rows]) if rows else np.zeros((0, 4), np.float32)
        crops = [
            None if c is None else decode_crop(c, params.crop_format, params.crop_size) for r in rows for c in r.crops
        ]
        out[path.stem] = (boxes, crops)
    return out, calls


def sample_only(paths: list[Path], params: DecodeParams) -> None:
    """The stage's frame sampling (with the resize) and audio decode, no faces, nothing kept."""
    for path in paths:
        found = probe(str(path))
        fps = Fraction(params.fps).limit_denominator(1_000_000)
        for _ in VideoSampler(str(path), found.video_index, fps=fps, max_side=params.max_side, threads=1):
            pass
        if found.audio_index is not None:
            decode_audio(
                str(path), found.audio_index, sample_rate=params.sample_rate, origin=Fraction(0), log=StreamLog("audio")
            )


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) x0 y0 x1 y1 boxes; 0 where either is NaN."""
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    value = inter / (area(a) + area(b) - inter)
    return np.nan_to_num(value, nan=0.0)


def features(extractor, decoded: dict) -> dict:
    """{clip: ((T, D) features, (T,) valid)}; a clip without a face comes out all invalid."""
    inputs = [VisualInput(clip, np.arange(len(crops), dtype=np.float64), crops) for clip, (_, crops) in decoded.items()]
    out = {}
    for x, f in zip(inputs, extractor.extract_batch(inputs), strict=True):
        valid = f.valid if len(f.valid) == len(x.crops) else np.zeros(len(x.crops), bool)
        out[f.clip_id] = (f.values, valid)
    return out


def compare(ref: dict, result: tuple[dict, int], ref_feats: dict, feats: dict, k: int) -> dict:
    """Boxes and features of one k against k = 1 (``ref``), and its detector calls."""
    ious, cosines, extra = [], [], 0
    for clip, (boxes, _) in result[0].items():
        ref_boxes = ref[clip][0]
        has_ref, has = ~np.isnan(ref_boxes[:, 0]), ~np.isnan(boxes[:, 0])
        ious.extend(iou(ref_boxes[has_ref], boxes[has_ref]).tolist())
        extra += int(np.count_nonzero(has & ~has_ref))
        (a, va), (b, vb) = ref_feats[clip], feats[clip]
        both = va & vb
        if both.any():
            x, y = a[both], b[both]
            cosines.extend((np.sum(x * y, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)).tolist())
    return {
        "detect_every": k,
        "frames_with_face_k1": len(ious),
        "iou_mean": round(float(np.mean(ious)), 4),
        "iou_p5": round(float(np.percentile(ious, 5)), 4),
        "boxes_where_k1_has_none": extra,
        "feature_cosine_mean": round(float(np.mean(cosines)), 5),
        "feature_cosine_p5": round(float(np.percentile(cosines, 5)), 5),
        "feature_cosine_min": round(float(np.min(cosines)), 5),
        "detector_calls": result[1],
    }


def adjacent_cosine(feats: dict) -> float:
    """Mean cosine of consecutive frames' features under k = 1: how much the features move from one
    sample to the next anyway, the scale for the cosines above."""
    cosines = []
    for values, valid in feats.values():
        both = valid[1:] & valid[:-1]
        x, y = values[1:][both], values[:-1][both]
        cosines.extend((np.sum(x * y, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)).tolist())
    return round(float(np.mean(cosines)), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 5, 10])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "face_tracking.json"))
    args = parser.parse_args()
    paths = sorted(p for p in VIDEOS.glob("*.*") if p.suffix in {".mp4", ".mov"})
    if not paths:
        raise SystemExit(f"no videos under {VIDEOS}")
    base = DecodeParams()
    ks = sorted(set([1, *args.ks]))
    decoders = {k: ClipDecoder(base.model_copy(update={"detect_every": k}), threads=1) for k in ks}
    results = {k: decode_all(decoders[k], paths, base) for k in ks}  # also warms every model up
    floor, sampling, stage = [], [], {k: [] for k in ks}
    for _ in range(args.repeats):  # interleaved, so a busy spell of the machine hits every row alike
        floor.append(cpu_s(lambda: bare_decode(paths, base)))
        sampling.append(cpu_s(lambda: sample_only(paths, base)))
        for k in ks:
            stage[k].append(cpu_s(lambda k=k: decode_all(decoders[k], paths, base)))
    for decoder in decoders.values():
        decoder.close()
    floor_s, sampling_s = min(floor), min(sampling)
    extractor = build_visual_extractor(VisualFeatureParams(), device="cpu")
    feats = {k: features(extractor, results[k][0]) for k in ks}
    rows = [compare(results[1][0], results[k], feats[1], feats[k], k) for k in ks]
    for row in rows:
        runs = stage[row["detect_every"]]
        row.update(decode_cpu_s=round(min(runs), 3), floor_cpu_s=round(floor_s, 3))
        row["decode_over_floor"] = round(min(runs) / floor_s, 3)
        row["decode_over_floor_medians"] = round(statistics.median(runs) / statistics.median(floor), 3)
    print(f"{len(paths)} clips; floor (bare PyAV decode) {floor_s:.2f} CPU-s; load average {os.getloadavg()}")
    print(f"the stage's sampling and audio decode without faces: {sampling_s:.2f} CPU-s ({sampling_s / floor_s:.2f}x)")
    print(f"k = 1, consecutive frames' features: cosine {adjacent_cosine(feats[1]):.5f} on average")
    print(f"{'k':>3s} {'IoU mean':>9s} {'IoU p5':>7s} {'extra':>6s} {'cos mean':>9s} {'cos p5':>7s} {'cos min':>8s} "
          f"{'detects':>8s} {'CPU s':>7s} {'/floor':>7s}")  # fmt: skip
    for r in rows:
        print(
            f"{r['detect_every']:3d} {r['iou_mean']:9.4f} {r['iou_p5']:7.4f} {r['boxes_where_k1_has_none']:6d} "
            f"{r['feature_cosine_mean']:9.5f} {r['feature_cosine_p5']:7.5f} {r['feature_cosine_min']:8.5f} "
            f"{r['detector_calls']:8d} {r['decode_cpu_s']:7.2f} {r['decode_over_floor']:6.2f}x"
        )
    write_json(
        {
            "clips": [p.name for p in paths],
            "repeats": args.repeats,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "floor_cpu_s_runs": [round(x, 3) for x in floor],
            "sampling_without_faces_cpu_s": round(sampling_s, 3),
            "sampling_without_faces_over_floor": round(sampling_s / floor_s, 3),
            "k1_consecutive_frames_feature_cosine_mean": adjacent_cosine(feats[1]),
            "decode_cpu_s_runs": {str(k): [round(x, 3) for x in v] for k, v in stage.items()},
            "rows": rows,
        },
        args.out,
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

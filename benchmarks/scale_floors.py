"""The floors of the scale benchmark: each heavy stage's bare library work on the same inputs.

    python -m benchmarks.scale_floors <floor> --work DIR

Run as its own process by ``benchmarks/bench_scale.py``; prints one JSON line with ``work_cpu_s``
and ``work_wall_s``: the CPU and wall seconds of the floor's work alone (models loaded, inputs
read before the clock starts; OpenMP threads passive, as in the stages).

- ``decode``: PyAV alone: every video frame decoded, the frames at 5 fps converted to RGB at the
  stage's size (longer side <= ``decode.max_side``) in the decoder, the audio resampled to 16 kHz
  mono float32. No face detection, no crops, no writing.
- ``asr``: a bare faster-whisper call per clip: the same model, beam and language, nothing else
  set (faster-whisper's own defaults), on the decoded 16 kHz audio.
- ``audio``: the bare Whisper encoder on densely packed audio: all clips' audio back to back in
  30 s windows, log-mel then encode; the encoder's cost per second of real audio.
- ``visual``: the FER mini-Xception and the face-mesh geometry forward on the stored crops.
- ``text``: the MiniLM forward on the transcripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.config import load_params
from pipeline.runtime.devices import passive_openmp


def _videos(work: Path) -> list[Path]:
    return sorted((work / "corpus").glob("*.mp4"))


def floor_decode(work: Path) -> tuple[dict, Callable[[], object]]:

    params = load_params(work / "params.yaml").decode
    paths = _videos(work)
    return {"units": len(paths)}, lambda: bare_decode(paths, params)


def bare_decode(paths: list[Path], params) -> int:
    """The decode floor on ``paths`` (one decoder thread); -> frames converted. Also the floor of
    ``benchmarks/bench_face_tracking.py``."""
    import av

    frames = 0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_count = 1
            scale = min(1.0, params.max_side / max(stream.width, stream.height))
            size = (round(stream.width * scale), round(stream.height * scale))
            due = 0.0
            for frame in container.decode(stream):
                if frame.time is not None and frame.time >= due:
                    frame.to_ndarray(format="rgb24", width=size[0], height=size[1], interpolation="AREA")
                    frames += 1
                    due += 1.0 / params.fps
        with av.open(str(path)) as container:
            if not container.streams.audio:  # a video without sound (real clips have them)
                continue
            resampler = av.AudioResampler(format="flt", layout="mono", rate=params.sample_rate)
            for frame in container.decode(audio=0):
                resampler.resample(frame)
    return frames


def _audio(work: Path) -> list[np.ndarray]:
    from pipeline.decoded import iter_clip_audio

    return [a.samples for a in iter_clip_audio(work / "decoded") if a.samples is not None]


def floor_asr(work: Path) -> tuple[dict, Callable[[], object]]:
    from faster_whisper import WhisperModel

    from pipeline.whisper.models import resolve_model

    asr = load_params(work / "params.yaml").asr
    model = WhisperModel(resolve_model(asr.model), device="cpu", compute_type=asr.compute_type, cpu_threads=1)
    clips = _audio(work)

    def run() -> None:
        for samples in clips:
            segments, _ = model.transcribe(samples, language=asr.language, beam_size=asr.beam_size)
            list(segments)

    return {"units": len(clips)}, run


def floor_audio(work: Path) -> tuple[dict, Callable[[], object]]:
    import ctranslate2

    from pipeline.runtime.devices import usable_cpus
    from pipeline.whisper.models import load_whisper_model

    section = load_params(work / "params.yaml").features.audio
    model = load_whisper_model(section.whisper_model, compute_type=section.compute_type, cpu_threads=usable_cpus())
    audio = np.concatenate(_audio(work))
    window = 30 * 16000

    def run() -> None:
        for start in range(0, len(audio), window):
            mel = model.feature_extractor(audio[start : start + window])[:, :3000]
            padded = np.zeros((1, mel.shape[0], 3000), np.float32)
            padded[0, :, : mel.shape[1]] = mel
            model.model.encode(ctranslate2.StorageView.from_array(padded), to_cpu=True)

    return {"units": len(audio) / 16000, "unit": "audio second"}, run


def floor_visual(work: Path) -> tuple[dict, Callable[[], object]]:
    import torch

    from pipeline.decoded import iter_clip_frames
    from pipeline.features.visual import FaceGeometry, FerEmbedder
    from pipeline.runtime.devices import usable_cpus

    torch.set_num_threads(usable_cpus())
    fer, mesh = FerEmbedder(), FaceGeometry()
    crops = [c for clip in iter_clip_frames(work / "decoded") for c in clip.crops if c is not None]

    def run() -> None:
        for i in range(0, len(crops), 64):
            fer(crops[i : i + 64])
        for crop in crops:
            mesh(crop)

    return {"units": len(crops), "unit": "crop"}, run


def floor_text(work: Path) -> tuple[dict, Callable[[], object]]:
    import pyarrow.parquet as pq
    import torch
    import transformers

    from pipeline.features.text import resolve_text_model

    texts = [t for t in pq.read_table(work / "asr" / "transcripts.parquet").column("text").to_pylist() if t]
    folder = resolve_text_model(load_params(work / "params.yaml").features.text.model)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()

    def run() -> None:
        with torch.inference_mode():
            for i in range(0, len(texts), 32):
                batch = tokenizer(texts[i : i + 32], padding=True, truncation=True, max_length=128, return_tensors="pt")
                model(**batch)

    return {"units": len(texts)}, run


FLOORS = {"decode": floor_decode, "asr": floor_asr, "audio": floor_audio, "visual": floor_visual, "text": floor_text}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("floor", choices=sorted(FLOORS))
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    passive_openmp()
    info, work = FLOORS[args.floor](args.work)
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"floor": args.floor, **info, "work_cpu_s": cpu, "work_wall_s": wall}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A Hume-Vidmimic2-like corpus for the scale benchmark: webcam-like clips with real faces and speech.

Hume-Vidmimic2 (../shared/docs/hume-vidmimic2.md): 17,246 clips, about 33 h, mean 6.9 s, p95
11.5 s, a few up to 20 minutes; variable-frame-rate webcam video. Here each clip is 640x480 H.264
(yuv420p) + AAC mono 16 kHz, at about 30 fps with jittered whole-millisecond timestamps (VFR), the
demo's real face (the astronaut photo, warped by expression fields and head motion) smaller in the
frame, as a webcam shows it, and the demo's espeak-ng sentences repeated with pauses to fill the
clip. Durations are lognormal with the Hume mean and p95 (sigma 0.347, mu 1.871, cut to
[1, 30] s), plus one clip of ``long_s`` seconds. Everything is a pure function of the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.demo.face import render_face
from pipeline.demo.media import mux_clip
from pipeline.demo.sentences import SENTENCES
from pipeline.demo.speech import SPEECH_RATE, espeak_settings, synthesize_speech
from pipeline.runtime.pools import spawn_pool

WIDTH, HEIGHT = 640, 480
FPS = 30.0
# The source region shown in the square part of the frame: wider than the demo's, so the face
# covers about a quarter of the frame height (a webcam at arm's length).
VIEW = (64.0, 0.0, 384.0, 320.0)
LOG_MU, LOG_SIGMA = 1.871, 0.347  # lognormal with mean 6.9 s and p95 11.5 s


@dataclass(frozen=True)
class WebcamClip:
    clip_id: str
    seed: int
    duration_s: float


def plan_corpus(n_clips: int, *, long_s: float, seed: int) -> list[WebcamClip]:
    """``n_clips`` clips: one of ``long_s`` seconds, the rest with Hume-like durations."""
    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(LOG_MU, LOG_SIGMA, n_clips), 1.0, 30.0)
    if long_s > 0 and n_clips:
        durations[0] = long_s
    seeds = rng.integers(0, 1 << 31, n_clips)
    return [WebcamClip(f"cam_{i:05d}", int(s), float(d)) for i, (s, d) in enumerate(zip(seeds, durations, strict=True))]


def _speech_track(rng: np.random.Generator, duration: float) -> np.ndarray:
    """Sentences with 0.3-1.2 s pauses until the clip is full, at 16 kHz, faint noise under it."""
    n = int(round(duration * SPEECH_RATE))
    audio = np.zeros(n, np.float32)
    at = int(rng.uniform(0.2, 0.8) * SPEECH_RATE)
    while at < n:
        pool = SENTENCES[int(rng.integers(-3, 4))]
        prosody = espeak_settings(arousal=float(rng.uniform(-1, 1)), pitch=float(rng.uniform(-1, 1)))
        speech = synthesize_speech(pool[int(rng.integers(len(pool)))], **prosody)[: n - at]
        audio[at : at + len(speech)] = speech
        at += len(speech) + int(rng.uniform(0.3, 1.2) * SPEECH_RATE)
    return np.clip(audio + 10 ** (-55 / 20) * rng.standard_normal(n).astype(np.float32), -1.0, 1.0)


def _frame(rng_values: tuple[float, ...], jaw: float, t: float) -> np.ndarray:
    smile, brow, fx, fy = rng_values
    shift = (6.0 * math.sin(2 * math.pi * fx * t), 4.0 * math.sin(2 * math.pi * fy * t))
    square = render_face(size=HEIGHT, smile=smile, brow=brow, jaw=jaw, shift=shift, crop=VIEW)
    pad = (WIDTH - HEIGHT) // 2
    return cv2.copyMakeBorder(square, 0, 0, pad, WIDTH - HEIGHT - pad, cv2.BORDER_REFLECT)


def write_webcam_clip(path: Path, clip: WebcamClip) -> float:
    """Render and encode one clip; returns its duration in seconds (the video's end)."""
    rng = np.random.default_rng(clip.seed)
    gaps = np.round(rng.uniform(0.75, 1.25, max(1, int(clip.duration_s * FPS)) - 1) * 1000 / FPS)
    times = np.concatenate([[0.0], np.cumsum(gaps)]) / 1000
    duration = times[-1] + 1 / FPS
    audio = _speech_track(rng, duration)
    hop = SPEECH_RATE // 50
    level = np.sqrt(np.convolve(audio**2, np.ones(hop) / hop, mode="same"))
    jaw = np.clip(level[np.minimum((times * SPEECH_RATE).astype(int), len(level) - 1)] / 0.1, 0, 1)
    look = (
        float(rng.uniform(-1, 1)),
        float(rng.uniform(-1, 1)),
        float(rng.uniform(0.1, 0.4)),
        float(rng.uniform(0.1, 0.4)),
    )
    frames = (_frame(look, float(jaw[k]), float(t)) for k, t in enumerate(times))
    mux_clip(path, frames, times, audio=audio, sample_rate=SPEECH_RATE, crf=23, preset="veryfast")
    return float(duration)


def _write(job: tuple[Path, WebcamClip]) -> float:
    cv2.setNumThreads(1)
    return write_webcam_clip(*job)


def write_corpus(folder: Path, clips: list[WebcamClip], *, workers: int = 2) -> dict[str, float]:
    """Write every clip (skipping those already there); {clip_id: duration_s}."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"{c.clip_id}.mp4", c) for c in clips]
    todo = [job for job in jobs if not job[0].exists()]
    with spawn_pool(max(1, workers)) as pool:
        list(pool.map(_write, todo))
    import av

    durations = {}
    for path, clip in jobs:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            durations[clip.clip_id] = float(stream.duration * stream.time_base)
    return durations

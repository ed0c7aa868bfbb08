"""The scale benchmark's corpora: Hume-Vidmimic2-like webcam clips, and long Aff-Wild2-like videos.

Hume-Vidmimic2 (../shared/docs/hume-vidmimic2.md): 17,246 clips, about 33 h, mean 6.9 s, p95
11.5 s, a few up to 20 minutes; variable-frame-rate webcam video. Here each clip is 640x480 H.264
(yuv420p) + AAC mono 16 kHz, at about 30 fps with jittered whole-millisecond timestamps (VFR), the
demo's real face (the astronaut photo, warped by expression fields and head motion) smaller in the
frame, as a webcam shows it, under a camera's sensor noise (below), and the demo's espeak-ng
sentences repeated with pauses to fill the clip. Durations are lognormal with the Hume mean and
p95 (sigma 0.347, mu 1.871, cut to [1, 30] s), plus one clip of ``long_s`` seconds. Everything is a
pure function of the seed.

The long corpus (``plan_long_corpus``, ``write_corpus``): Aff-Wild2 (594 tracks, about 28
media hours at about 30 fps) has videos of minutes in which people speak only now and then, over
music, noise or nothing. Each long video here is 60-120 s of stretches of 10-35 s: speech (the
same espeak sentences), music (chords of harmonic tones with a beat), pink noise, or room tone;
the face moves more (drift and sway) and leaves the frame for a stretch in most videos (the
background part of the demo's photo). Video at 1280x720 (Aff-Wild2's YouTube videos are named by
their size, ``130-25-1280x720.mp4``) and a constant 30 fps, whose picture is rendered 6 times a
second (the face renderer costs 44 ms a frame) and whose sensor noise changes every frame, H.264 +
AAC like the webcam clips.

Sensor noise (``CameraNoise``): a camera's temporal noise, spatially correlated by demosaicing and
the camera's own processing: Gaussian, blurred over ``NOISE_BLUR_PX``, ``NOISE_SIGMA`` grey levels,
a new field every frame. Without it the encoder codes each rendered picture once and the rest
almost free: 0.016 bits per pixel (146 kbit/s at 640x480), below every real video in
../shared/realdata (0.018-0.53, 0.115 for the one camera recording), and a decode three times
cheaper per pixel than a real one's, so every stage/floor ratio of decode was measured against an
unrealistically low floor. With it: 0.11 bits per pixel (2.9-3.1 Mbit/s at 1280x720 30 fps, a
YouTube 720p rate) for the long videos, 0.10 (0.9 Mbit/s) for the 640x480 webcam clips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.demo.face import BACKGROUND_CROP, render_face
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
NOISE_SIGMA, NOISE_BLUR_PX, NOISE_FIELDS = 3.0, 1.5, 16


class CameraNoise:
    """Sensor noise for (height, width) RGB frames: ``NOISE_FIELDS`` fields drawn once, one picked
    at random for each frame (a new Gaussian field per frame would cost more than the encoder)."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self._rng = rng
        self._fields = []
        for _ in range(NOISE_FIELDS):
            grey = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), NOISE_BLUR_PX)
            grey *= NOISE_SIGMA / max(float(grey.std()), 1e-6)
            self._fields.append(cv2.merge([np.rint(grey).astype(np.int16)] * 3))

    def __call__(self, picture: np.ndarray) -> np.ndarray:
        field = self._fields[int(self._rng.integers(NOISE_FIELDS))]
        return cv2.add(picture, field, dtype=cv2.CV_8U)  # saturating: stays in [0, 255]


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
    noise = CameraNoise(rng, HEIGHT, WIDTH)
    frames = (noise(_frame(look, float(jaw[k]), float(t))) for k, t in enumerate(times))
    mux_clip(path, frames, times, audio=audio, sample_rate=SPEECH_RATE, crf=23, preset="veryfast")
    return float(duration)


def _write(job: tuple[Path, WebcamClip | LongVideo]) -> float:
    cv2.setNumThreads(1)
    path, item = job
    return write_webcam_clip(path, item) if isinstance(item, WebcamClip) else write_long_video(path, item)


def write_corpus(folder: Path, items: list[WebcamClip] | list[LongVideo], *, workers: int = 2) -> dict[str, float]:
    """Write every clip or long video (skipping those already there); {clip_id: duration_s}."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"{c.clip_id}.mp4", c) for c in items]
    todo = [job for job in jobs if not job[0].exists()]
    with spawn_pool(max(1, workers)) as pool:
        list(pool.map(_write, todo))
    return _durations(jobs)


LONG_FPS = 30.0
LONG_WIDTH, LONG_HEIGHT = 1280, 720
LONG_RENDER_FPS = 6.0  # distinct pictures per second; each is held for the frames between
KINDS = ("speech", "music", "noise", "room")


@dataclass(frozen=True)
class LongVideo:
    clip_id: str
    seed: int
    duration_s: float


def plan_long_corpus(n_videos: int, *, min_s: float = 60.0, max_s: float = 120.0, seed: int = 1) -> list[LongVideo]:
    """``n_videos`` videos with durations uniform in [min_s, max_s]."""
    rng = np.random.default_rng(seed)
    durations = rng.uniform(min_s, max_s, n_videos)
    seeds = rng.integers(0, 1 << 31, n_videos)
    return [LongVideo(f"long_{i:03d}", int(s), float(d)) for i, (s, d) in enumerate(zip(seeds, durations, strict=True))]


def music(rng: np.random.Generator, n: int, rate: int = SPEECH_RATE) -> np.ndarray:
    """Chords of harmonic tones (random roots every 0.25-1 s, decaying) and a noise beat, peak 0.1."""
    out = np.zeros(n, np.float64)
    at = 0
    while at < n:
        length = min(n - at, int(rng.uniform(0.25, 1.0) * rate))
        t = np.arange(length) / rate
        root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        note = sum(sum(np.sin(2 * np.pi * root * r * h * t) / h**1.5 for h in range(1, 6)) for r in (1.0, 1.26, 1.5))
        out[at : at + length] = note * np.minimum(1.0, t / 0.02) * np.exp(-t * rng.uniform(0.5, 3.0))
        at += length
    beat = (np.arange(n) % (rate // 2) < rate // 20) * rng.standard_normal(n) * 0.5
    out += beat
    return (0.1 * out / max(np.abs(out).max(), 1e-9)).astype(np.float32)


def pink_noise(rng: np.random.Generator, n: int, rms: float = 0.05) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(1, n // 2 + 2))
    noise = np.fft.irfft(spectrum, n)
    return (rms * noise / max(np.sqrt(np.mean(noise**2)), 1e-12)).astype(np.float32)


def long_stretches(rng: np.random.Generator, duration: float) -> list[tuple[str, float, float]]:
    """(kind, start, end) stretches of 10-35 s covering the video; speech first and in about a
    third of the rest, so every video has some."""
    stretches, at = [], 0.0
    while at < duration:
        end = min(duration, at + float(rng.uniform(10, 35)))
        kind = "speech" if not stretches else KINDS[int(rng.choice(4, p=(0.35, 0.25, 0.2, 0.2)))]
        stretches.append((kind, at, end))
        at = end
    return stretches


def long_audio(rng: np.random.Generator, stretches: list[tuple[str, float, float]], duration: float) -> np.ndarray:
    n = int(round(duration * SPEECH_RATE))
    audio = 10 ** (-55 / 20) * rng.standard_normal(n).astype(np.float32)  # room tone under everything
    for kind, start, end in stretches:
        a, b = int(start * SPEECH_RATE), min(n, int(end * SPEECH_RATE))
        if kind == "speech":
            audio[a:b] += _speech_track(rng, (b - a) / SPEECH_RATE)[: b - a]
        elif kind == "music":
            audio[a:b] += music(rng, b - a)
        elif kind == "noise":
            audio[a:b] += pink_noise(rng, b - a)
    return np.clip(audio, -1.0, 1.0)


def write_long_video(path: Path, video: LongVideo) -> float:
    """Render and encode one long video; returns its duration in seconds."""
    rng = np.random.default_rng(video.seed)
    n_frames = int(video.duration_s * LONG_FPS)
    times = np.arange(n_frames) / LONG_FPS
    duration = n_frames / LONG_FPS
    stretches = long_stretches(rng, duration)
    audio = long_audio(rng, stretches, duration)
    hop = SPEECH_RATE // 50
    level = np.sqrt(np.convolve(audio**2, np.ones(hop) / hop, mode="same"))
    speaking = np.zeros(len(audio), bool)
    for kind, start, end in stretches:
        speaking[int(start * SPEECH_RATE) : int(end * SPEECH_RATE)] = kind == "speech"
    jaw = np.where(speaking, np.clip(level / 0.1, 0, 1), 0.0)
    # The face is away (the background shows) for 5-15 s in three videos of four.
    away = (-1.0, -1.0)
    if rng.uniform() < 0.75:
        start = float(rng.uniform(0, duration - 15))
        away = (start, start + float(rng.uniform(5, 15)))
    smile, brow = float(rng.uniform(-1, 1)), float(rng.uniform(-1, 1))
    fx, fy, drift = float(rng.uniform(0.05, 0.2)), float(rng.uniform(0.05, 0.2)), float(rng.uniform(10, 30))

    noise = CameraNoise(rng, LONG_HEIGHT, LONG_WIDTH)

    def frames():
        picture = None
        step = round(LONG_FPS / LONG_RENDER_FPS)
        for k, t in enumerate(times):
            if k % step == 0:
                if away[0] <= t < away[1]:
                    square = render_face(size=HEIGHT, crop=BACKGROUND_CROP)
                else:
                    shift = (drift * math.sin(2 * math.pi * fx * t), 0.5 * drift * math.sin(2 * math.pi * fy * t))
                    j = float(jaw[min(int(t * SPEECH_RATE), len(jaw) - 1)])
                    square = render_face(
                        size=HEIGHT,
                        smile=smile * math.sin(0.1 * t),
                        brow=brow * math.cos(0.07 * t),
                        jaw=j,
                        shift=shift,
                        angle_deg=8 * math.sin(2 * math.pi * fx * 0.7 * t),
                        crop=VIEW,
                    )
                # Rendered at 480 px and enlarged: the renderer's cost grows with the square of the size.
                square = cv2.resize(square, (LONG_HEIGHT, LONG_HEIGHT), interpolation=cv2.INTER_LINEAR)
                pad = (LONG_WIDTH - LONG_HEIGHT) // 2
                picture = cv2.copyMakeBorder(square, 0, 0, pad, LONG_WIDTH - LONG_HEIGHT - pad, cv2.BORDER_REFLECT)
            yield noise(picture)

    mux_clip(path, frames(), times, audio=audio, sample_rate=SPEECH_RATE, crf=23, preset="veryfast")
    return float(duration)


def _durations(jobs: list[tuple[Path, object]]) -> dict[str, float]:
    import av

    durations = {}
    for path, clip in jobs:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            durations[clip.clip_id] = float(stream.duration * stream.time_base)
    return durations

"""One video of the frame-level demo: one or two people (side by side, the right one mirrored), each a
warped face whose expression, mouth and camera pan follow that person's track, talking in espeak-ng.

Runs in the worker processes; a pure function of its ``VideoJob`` (everything random in it comes
from ``seed``), so the file does not depend on which worker renders it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.demo.clips import NOISE_DBFS, head_motion, rms_at
from pipeline.demo.face import BACKGROUND_CROP, FACE_CROP, render_face
from pipeline.demo.media import mux_clip
from pipeline.demo.speech import SPEECH_RATE, synthesize_speech

JAW_WINDOW_S = 0.06  # the mouth follows the speech's RMS over 60 ms


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sentence:
    text: str
    onset: float  # s
    pitch: int
    speed: int
    amplitude: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Person:
    """One person of a video: the face per frame ((n, 3) smile, brow, expression jaw; (n,) pan, 0 in
    view .. 1 out of the frame) and what they say."""

    face: np.ndarray
    pan: np.ndarray
    sentences: tuple[Sentence, ...]
    voice: str
    mirror: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class VideoJob:
    path: Path
    fps: float
    size: int  # each person's square side
    persons: tuple[Person, ...]
    seed: int  # head motion, brightness, background noise


def render_video(job: VideoJob) -> dict[str, Any]:
    """Render and encode ``job.path``. Returns {"spans": [(M, 2) start, end of each sentence, s], "jaw":
    [(n,) mouth opening]} per person: the labels' speaking frames come from the real speech."""
    cv2.setNumThreads(1)  # one OpenCV thread per process: the pool already keeps every core busy
    rng = np.random.default_rng(job.seed)
    n = len(job.persons[0].pan)
    times = np.arange(n) / job.fps
    audio = np.zeros(int(round(n / job.fps * SPEECH_RATE)), np.float32)
    spans, jaws = [], []
    for person in job.persons:
        voice, person_spans = _speech(person, len(audio))
        audio += voice
        spans.append(person_spans)
        jaws.append(np.maximum(person.face[:, 2], _speech_jaw(voice, person_spans, times)))
    audio += (10 ** (NOISE_DBFS / 20) * rng.standard_normal(len(audio))).astype(np.float32)
    frames = _frames(job, times, jaws, rng)
    mux_clip(job.path, frames, times, declared_fps=job.fps, audio=np.clip(audio, -1.0, 1.0), sample_rate=SPEECH_RATE)
    return {"spans": spans, "jaw": jaws}


def _speech(person: Person, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The person's voice over the whole video ((n_samples,) float32) and each sentence's (start, end)."""
    voice = np.zeros(n_samples, np.float32)
    spans = []
    for sentence in person.sentences:
        samples = synthesize_speech(
            sentence.text, pitch=sentence.pitch, speed=sentence.speed, amplitude=sentence.amplitude, voice=person.voice
        )
        start = int(round(sentence.onset * SPEECH_RATE))
        piece = samples[: max(0, n_samples - start)]
        voice[start : start + len(piece)] += piece
        spans.append((start / SPEECH_RATE, (start + len(piece)) / SPEECH_RATE))
    return voice, np.array(spans, np.float64).reshape(-1, 2)


def _speech_jaw(voice: np.ndarray, spans: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Mouth opening from the speech envelope, normalised per sentence: a loud sentence opens the
    mouth no wider than a quiet one, so the face does not show the voice's loudness (arousal)."""
    jaw = np.zeros(len(times))
    for start, end in spans:
        inside = np.flatnonzero((times >= start) & (times < end))
        envelope = np.array([rms_at(voice, float(times[k]), JAW_WINDOW_S) for k in inside])
        if envelope.size:
            jaw[inside] = envelope / max(float(envelope.max()), 1e-9)
    return jaw


def _frames(job: VideoJob, times: np.ndarray, jaws: list[np.ndarray], rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The frames, rendered lazily; the nuisance draws happen now, in a fixed order."""
    nuisance = [(head_motion(times, rng), float(rng.uniform(0.85, 1.15))) for _ in job.persons]
    face_crop, away_crop = np.array(FACE_CROP), np.array(BACKGROUND_CROP)

    def person_frame(k: int, person: Person, jaw: np.ndarray, motion: np.ndarray, gain: float) -> np.ndarray:
        crop = tuple(float(v) for v in (1.0 - person.pan[k]) * face_crop + person.pan[k] * away_crop)
        smile, brow, _ = person.face[k]
        image = render_face(
            size=job.size,
            smile=float(smile),
            brow=float(brow),
            jaw=float(jaw[k]),
            shift=(motion[k, 0], motion[k, 1]),
            angle_deg=motion[k, 2],
            scale=motion[k, 3],
            gain=gain,
            crop=crop,
        )
        return image[:, ::-1] if person.mirror else image

    for k in range(len(times)):
        parts = [person_frame(k, p, j, m, g) for p, j, (m, g) in zip(job.persons, jaws, nuisance, strict=True)]
        yield np.ascontiguousarray(np.concatenate(parts, axis=1))

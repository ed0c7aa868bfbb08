"""One demo clip from its spec: the face video, the speech, and the planted faults."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_path
from pipeline.demo.face import BACKGROUND_CROP, FACE_CROP, render_face, smoothstep
from pipeline.demo.media import frame_durations_ms, mux_clip
from pipeline.demo.speech import SPEECH_RATE, espeak_settings, synthesize_speech


@dataclasses.dataclass(frozen=True, kw_only=True)
class Fault:
    status: str  # the decode status the clip should get
    visual: bool  # which modalities the file really carries
    audio: bool
    text: bool


FAULTS: dict[str, Fault] = {
    "no_audio_stream": Fault(status="no_audio_stream", visual=True, audio=False, text=False),
    "silent_audio": Fault(status="silent_audio", visual=True, audio=False, text=False),
    "no_face": Fault(status="no_face", visual=False, audio=True, text=True),
    "too_short": Fault(status="too_short", visual=True, audio=True, text=False),
    "corrupt": Fault(status="corrupt", visual=False, audio=False, text=False),
    "variable_frame_rate": Fault(status="ok", visual=True, audio=True, text=True),
}
SHORT_SECONDS = 0.24
BOGUS_FPS = 1000.0  # what the variable-frame-rate clip's container declares
NOISE_DBFS = -55.0  # background noise under the speech


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClipSpec:
    """Everything that determines one clip; ``seed`` drives the nuisance (timing, motion, gain)."""

    clip_id: str
    split: str
    seed: int
    smile: float
    brow: float
    arousal: float
    pitch: float
    wording: float
    sentence: str
    duration_s: float  # drawn length; stretched if the sentence would not fit
    fps: float = 25.0
    size: int = 256
    fault: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.clip_id}{'.mkv' if self.fault == 'variable_frame_rate' else '.mp4'}"


def _frame_times(spec: ClipSpec, duration: float, rng: np.random.Generator) -> np.ndarray:
    n = max(1, int(round(duration * spec.fps)))
    if spec.fault != "variable_frame_rate":
        return np.arange(n) / spec.fps
    # Irregular gaps between 0.5 and 1.5 frame periods, whole milliseconds.
    gaps = np.round(rng.uniform(0.5, 1.5, n - 1) * 1000 / spec.fps)
    return np.concatenate([[0.0], np.cumsum(gaps)]) / 1000


def write_clip(path: str | Path, spec: ClipSpec) -> dict[str, Any]:
    """Render and encode one clip to ``path`` (name it ``spec.filename``: the variable-frame-rate
    fault needs .mkv to declare its bogus rate). A deterministic function of ``spec``.

    Returns {clip_id, duration_s, n_frames, speech_start_s, speech_end_s, espeak_pitch,
    espeak_speed, espeak_amplitude}. The clip lasts ``spec.duration_s``, stretched to end at least
    0.3 s after the sentence (``SHORT_SECONDS`` for the too-short fault).
    """
    rng = np.random.default_rng(spec.seed)
    prosody = espeak_settings(arousal=spec.arousal, pitch=spec.pitch)
    speech = synthesize_speech(spec.sentence, **prosody)
    onset = 0.0 if spec.fault == "too_short" else float(rng.uniform(0.3, 0.9))
    duration = (
        SHORT_SECONDS if spec.fault == "too_short" else max(spec.duration_s, onset + len(speech) / SPEECH_RATE + 0.3)
    )
    times = _frame_times(spec, duration, rng)
    # The video ends when its last frame does (mux_clip gives it the median frame gap).
    duration = (round(times[-1] * 1000) + frame_durations_ms([round(t * 1000) for t in times])[-1]) / 1000

    n_samples = int(round(duration * SPEECH_RATE))
    audio = np.zeros(n_samples, np.float32)
    start = int(round(onset * SPEECH_RATE))
    piece = speech[: max(0, n_samples - start)]
    audio[start : start + len(piece)] = piece
    # Mouth opening follows the speech envelope (RMS over 60 ms, normalised to the loudest frame).
    envelope = np.array([rms_at(audio, t, 0.06) for t in times])
    jaw = envelope / max(envelope.max(), 1e-9)
    audio = np.clip(audio + (10 ** (NOISE_DBFS / 20) * rng.standard_normal(n_samples)).astype(np.float32), -1.0, 1.0)
    if spec.fault == "silent_audio":
        audio = np.zeros_like(audio)  # a muted track: the face on screen still talks

    frames = _face_frames(spec, times, jaw, rng)
    path = Path(path)
    declared = BOGUS_FPS if spec.fault == "variable_frame_rate" else spec.fps
    mux_clip(
        path,
        frames,
        times,
        declared_fps=declared,
        audio=None if spec.fault == "no_audio_stream" else audio,
        sample_rate=SPEECH_RATE,
    )
    if spec.fault == "corrupt":
        # The first third of a valid MP4: the index (moov) is written last, so nothing is decodable.
        data = path.read_bytes()
        with atomic_path(path, path.suffix) as tmp:
            tmp.write_bytes(data[: len(data) // 3])
    speech_end = min(onset + len(speech) / SPEECH_RATE, duration)
    return {
        "clip_id": spec.clip_id,
        "duration_s": round(duration, 6),
        "n_frames": len(times),
        "speech_start_s": round(onset, 6),
        "speech_end_s": round(speech_end, 6),
        **{f"espeak_{k}": v for k, v in prosody.items()},
    }


def _face_frames(spec: ClipSpec, times: np.ndarray, jaw: np.ndarray, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """The clip's frames, rendered lazily; the nuisance draws (expression timing, head motion,
    gain) happen now, in a fixed order, so the clip stays a deterministic function of its spec."""
    smile_env = _expression_envelope(times, rng)
    brow_env = _expression_envelope(times, rng)
    motion = head_motion(times, rng)
    gain = float(rng.uniform(0.85, 1.15))
    crop = BACKGROUND_CROP if spec.fault == "no_face" else FACE_CROP
    return (
        render_face(
            size=spec.size,
            smile=spec.smile * smile_env[k],
            brow=spec.brow * brow_env[k],
            jaw=float(jaw[k]),
            shift=(motion[k, 0], motion[k, 1]),
            angle_deg=motion[k, 2],
            scale=motion[k, 3],
            gain=gain,
            crop=crop,
        )
        for k in range(len(times))
    )


def rms_at(audio: np.ndarray, t: float, window: float) -> float:
    lo = max(0, int((t - window / 2) * SPEECH_RATE))
    hi = max(lo + 1, int((t + window / 2) * SPEECH_RATE))
    chunk = audio[lo:hi]
    return float(np.sqrt(np.mean(chunk * chunk))) if chunk.size else 0.0


def _expression_envelope(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T,) in [0, 1]: neutral, a smooth rise at a random onset, then a held peak with slight sway."""
    onset, rise = rng.uniform(0.2, 1.2), rng.uniform(0.3, 0.9)
    sway_freq, sway_phase = rng.uniform(0.2, 0.6), rng.uniform(0, 2 * math.pi)
    hold = 0.9 + 0.1 * np.sin(2 * math.pi * sway_freq * times + sway_phase)
    return smoothstep((times - onset) / rise) * hold


def head_motion(times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T, 4): shift x, shift y (source px), angle (deg), scale; two slow sinusoids each."""
    out = np.empty((len(times), 4))
    for column, amplitude in enumerate((3.0, 2.0, 2.0, 0.02)):
        freqs, phases = rng.uniform(0.1, 0.5, 2), rng.uniform(0, 2 * math.pi, 2)
        wave = sum(np.sin(2 * math.pi * f * times + p) for f, p in zip(freqs, phases, strict=True)) / 2
        out[:, column] = amplitude * wave
    out[:, 3] += 1.0
    return out

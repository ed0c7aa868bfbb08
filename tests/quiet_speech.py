"""Hard audio made from real speech: RAVDESS attenuated and padded with silence or room tone, and a
corpus of silence and near-silence. Used by tests/test_real_speech.py and benchmarks/bench_real_speech.py.

Every file is 48 kHz 16-bit PCM WAV like the RAVDESS originals, so a bare ``faster_whisper``
call and the pipeline read the same file.
"""

from __future__ import annotations

import csv
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 48_000
PADS = ("zeros", "room")


@dataclass(frozen=True)
class SpeechFile:
    path: Path
    transcript: str
    variant: str  # "orig" or "att{dB}_{pad}"


def ravdess(root: Path) -> list[SpeechFile]:
    """The RAVDESS originals under ``root`` (realdata/audio/ravdess) with their sentences."""
    with open(root / "labels.csv", newline="") as handle:
        return [SpeechFile(root / row["path"], row["transcript"], "orig") for row in csv.DictReader(handle)]


def read_wav(path: Path) -> np.ndarray:
    """(N, channels) float64 in [-1, 1) from a 16-bit PCM WAV at ``RATE``."""
    with wave.open(str(path)) as handle:
        assert handle.getsampwidth() == 2 and handle.getframerate() == RATE, path
        data = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
        return data.reshape(-1, handle.getnchannels()).astype(np.float64) / 32768.0


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """(N,) or (N, channels) float in [-1, 1] -> 16-bit PCM WAV at ``RATE`` (rounded, clipped)."""
    frames = samples if samples.ndim == 2 else samples[:, None]
    data = np.clip(np.rint(frames * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(frames.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(data.tobytes())
    return path


def room_tone(samples: np.ndarray, seconds: float) -> np.ndarray:
    """``seconds`` of the clip's own quietest 0.25 s (its room noise), looped."""
    window, hop = RATE // 4, RATE // 8
    mono = samples.mean(axis=1)
    energy = [np.mean(mono[i : i + window] ** 2) for i in range(0, len(mono) - window, hop)]
    start = int(np.argmin(energy)) * hop
    piece = samples[start : start + window]
    return np.concatenate([piece] * int(np.ceil(seconds * RATE / window)))[: int(seconds * RATE)]


def quiet_copy(source: SpeechFile, out_dir: Path, *, attenuation_db: float, pad: str) -> SpeechFile:
    """``source`` attenuated by ``attenuation_db`` with one second of ``pad`` (digital silence, or
    the clip's own room tone attenuated alike) at both ends: quiet speech as a distant microphone
    or a low input gain records it."""
    samples = read_wav(source.path)
    ends = np.zeros((RATE, samples.shape[1])) if pad == "zeros" else room_tone(samples, 1.0)
    gain = 10.0 ** (-attenuation_db / 20.0)
    variant = f"att{attenuation_db:g}_{pad}"
    path = out_dir / variant / source.path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, np.concatenate([ends, samples, ends]) * gain)
    return SpeechFile(path, source.transcript, variant)


def _at_level(noise: np.ndarray, dbfs: float) -> np.ndarray:
    noise = noise - noise.mean()
    return noise * 10.0 ** (dbfs / 20.0) / np.sqrt(np.mean(noise**2))


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    return np.fft.irfft(spectrum / np.sqrt(np.maximum(np.arange(len(spectrum)), 1)), n)


def silence_corpus(out_dir: Path, *, seconds: float = 3.5, seed: int = 10) -> dict[str, Path]:
    """Tracks that hold no speech: digital silence, dither, muted converters, mains hum and noise
    at -70 dBFS RMS (16-bit WAVs, so dither and hum are quantised as a recorder stores them)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    lsb = 1.0 / 32768.0

    def hum(f0: float) -> np.ndarray:  # mains hum with its third harmonic
        return _at_level(np.sin(2 * np.pi * f0 * t) + 0.3 * np.sin(6 * np.pi * f0 * t), -70.0)

    tpdf = (rng.uniform(-0.5, 0.5, n) + rng.uniform(-0.5, 0.5, n)) * lsb
    click = np.zeros(n)
    click[n // 2] = 0.05
    tracks = {
        "zeros": np.zeros(n),
        "dither_tpdf": tpdf,
        "muted_dc": np.full(n, -lsb),  # a muted converter holding -1 LSB
        "muted_lsb_toggle": (rng.integers(0, 2, n) - 1) * lsb,
        "hum50_m70": hum(50.0),
        "hum60_m70": hum(60.0),
        "hum50_m70_dither": hum(50.0) + tpdf,
        "white_m70": _at_level(rng.standard_normal(n), -70.0),
        "pink_m70": _at_level(_pink(n, rng), -70.0),
        "click_in_dither": click + tpdf,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    return {name: write_wav(out_dir / f"{name}.wav", track) for name, track in tracks.items()}


def bare_transcripts(
    paths: list[Path], *, model: str, compute_type: str, language: str | None, beam_size: int
) -> list[str]:
    """What a bare faster-whisper call writes for each file: ``WhisperModel(...).transcribe(path,
    language, beam_size)``, nothing else set (the reference the pipeline's ASR is held to)."""
    from faster_whisper import WhisperModel

    from pipeline.whisper_models import resolve_model

    bare = WhisperModel(resolve_model(model), device="cpu", compute_type=compute_type, cpu_threads=2)
    texts = []
    for path in paths:
        segments, _ = bare.transcribe(str(path), language=language, beam_size=beam_size)
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts

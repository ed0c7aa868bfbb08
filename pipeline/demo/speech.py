"""The demo's audio: espeak-ng speech whose prosody carries the audio latents."""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

SPEECH_RATE = 16000
VOICE = "en-us"


def espeak_settings(*, arousal: float, pitch: float) -> dict[str, int]:
    """espeak-ng prosody for the audio latents: pitch -p, speed -s (wpm), amplitude -a."""
    return {
        "pitch": int(round(50 + 30 * pitch)),
        "speed": int(round(165 + 45 * arousal)),
        "amplitude": int(round(110 + 60 * arousal)),
    }


def synthesize_speech(text: str, *, pitch: int, speed: int, amplitude: int, voice: str = VOICE) -> np.ndarray:
    """espeak-ng saying ``text`` in ``voice`` (e.g. ``en-us+f2``, a female variant): (N,) float32 mono at
    SPEECH_RATE (16 kHz)."""
    with tempfile.TemporaryDirectory(prefix="emi-espeak-") as folder:
        wav = Path(folder) / "speech.wav"
        command = [
            "espeak-ng",
            "-v",
            voice,
            "-p",
            str(pitch),
            "-s",
            str(speed),
            "-a",
            str(amplitude),
            "-w",
            str(wav),
            text,
        ]
        subprocess.run(command, check=True, capture_output=True)
        rate, samples = wavfile.read(wav)
    samples = samples.astype(np.float32) / 32768.0
    if rate != SPEECH_RATE:
        divisor = math.gcd(rate, SPEECH_RATE)
        samples = resample_poly(samples, SPEECH_RATE // divisor, rate // divisor).astype(np.float32)
    return samples

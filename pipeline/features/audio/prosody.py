"""Prosody features (``features.audio.model: prosody``): loudness, voicing and pitch of the voice,
speaker-normalised, no model.

Why a hand-made extractor beside the speech encoders: frame-level arousal follows how loud and how
high a voice is relative to the person's own voice, and both encoders lose that (Whisper's log-mel
is scaled to its own maximum per clip, wav2vec2's input to zero mean and unit variance) while
keeping who is speaking. On the frame-level demo (15 VA training tracks) the 512-d Whisper states
let the fusion models learn the training speakers apart: valid mean CCC of the reliability fusion
0.47 with them, 0.65 with these 4 numbers per 200 ms, against 0.60 for the face alone
(docs/frame-tasks.md). On Aff-Wild2's hundreds of speakers a speech encoder is worth trying; these
are the cheap floor (an hour of audio in about 5 CPU seconds).

Per 20 ms frame k (centre ``(k + 0.5) * 0.02`` s, a 40 ms Hann window, hop 320 samples at 16 kHz),
the audio as decoded (not level-normalised: the level is the point), :func:`prosody_frames`:

    level_db   = 10 log10(mean(x^2) + 1e-10)                    dBFS, -100 for digital silence
    voicing    = max_{lag in [40, 320]} r(lag) / r(0)            normalised autocorrelation (taper
                                                                 corrected), 50-400 Hz pitch range
    log2_f0    = log2(16000 / lag of the first near-best peak)   where voicing >= 0.5, else 0
    voiced     = 1 where voicing >= 0.5, else 0

and per ``pool_fps`` bin, :func:`prosody_bins` (``FEATURES``): the level floored at -60 dBFS, the
voiced fraction, and the voiced frames' mean level and pitch relative to the clip's median voiced
frame (dB, octaves; 0 in a bin without voice).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.decoded import AudioInput
from pipeline.features import ClipFeatures
from pipeline.features.audio.frames import pool_frames, samples_problem
from pipeline.whisper.geometry import FRAME_SAMPLES, SAMPLE_RATE, frame_times
from pipeline.whisper.models import to_whisper_rate

NAMES = ("level_db", "voicing", "log2_f0", "voiced")
WINDOW = 2 * FRAME_SAMPLES  # 40 ms: two periods of the lowest pitch (50 Hz) fit
MIN_LAG, MAX_LAG = SAMPLE_RATE // 400, SAMPLE_RATE // 50  # 400 Hz .. 50 Hz
VOICED = 0.5
_PEAK_SPAN = 16  # lags searched past the first near-peak lag for its top (1 ms)
_FFT = 1024  # >= 2 * WINDOW: the circular autocorrelation equals the linear one up to MAX_LAG


def prosody_frames(samples: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """(N,) float32 at 16 kHz -> (ceil(N / 320), 4) float32, columns ``NAMES``.

    Vectorised over frames (an rfft per frame), ``chunk`` frames at a time so an hour of audio
    never holds more than a few MB of spectra.
    """
    n_frames = -(-len(samples) // FRAME_SAMPLES)
    padded = np.zeros(n_frames * FRAME_SAMPLES + WINDOW, np.float32)
    # Frame k's window is centred on its 20 ms frame: samples [320k - 160, 320k + 480).
    offset = (WINDOW - FRAME_SAMPLES) // 2
    padded[offset : offset + len(samples)] = samples
    window = np.hanning(WINDOW).astype(np.float32)
    # The Hann window's own autocorrelation: dividing by it undoes the taper's fall with lag.
    taper = np.fft.irfft(np.abs(np.fft.rfft(window, _FFT)) ** 2)[: MAX_LAG + 1]
    taper = taper / taper[0]
    out = np.zeros((n_frames, len(NAMES)), np.float32)
    for start in range(0, n_frames, chunk):
        k = np.arange(start, min(start + chunk, n_frames))
        frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[k * FRAME_SAMPLES]
        power = np.mean(frames.astype(np.float64) ** 2, axis=1)
        spectrum = np.abs(np.fft.rfft(frames * window, _FFT)) ** 2
        ac = np.fft.irfft(spectrum, _FFT)[:, : MAX_LAG + 1]
        energy = ac[:, 0]
        lags = ac[:, MIN_LAG:] / np.maximum(energy[:, None], 1e-20) / taper[MIN_LAG:]
        rows = np.arange(len(k))
        peak = lags.max(axis=1)
        # The first lag reaching 0.9 of the best peak, then that peak's top: a periodic voice peaks
        # again at 2 and 3 periods, and the taper correction lifts those, so argmax alone halves
        # the pitch (an octave error) on a steady vowel.
        first = np.argmax(lags >= 0.9 * peak[:, None], axis=1)
        near = np.minimum(first[:, None] + np.arange(_PEAK_SPAN), lags.shape[1] - 1)
        best = near[rows, lags[rows[:, None], near].argmax(axis=1)]
        voicing = np.where(energy > 1e-12, lags[rows, best], 0.0).clip(0.0, 1.0)
        voiced = voicing >= VOICED
        out[k, 0] = 10.0 * np.log10(power + 1e-10)
        out[k, 1] = voicing
        out[k, 2] = np.where(voiced, np.log2(SAMPLE_RATE / (best + MIN_LAG)), 0.0)
        out[k, 3] = voiced
    return out


LEVEL_FLOOR_DB = -60.0
FEATURES = ("level_db", "voiced", "voice_level_rel_db", "voice_pitch_rel_oct")


def prosody_bins(frames: np.ndarray, pool_fps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(T, 4) ``prosody_frames`` -> ((B, 4) ``FEATURES``, (B,) bin centres) at ``pool_fps``.

    The level is floored at -60 dBFS: below that is room noise, and left alone the 60-100 dB gap
    between speech and digital silence swamps the few dB that tell a loud voice from a quiet one
    once standardised. The voice's level and pitch are averaged over the bin's voiced frames only
    (a bin half voiced has the pitch of its voiced half) and taken relative to the clip's median
    voiced frame: speaker normalisation, as in paralinguistics, because a person's own pitch and
    their distance to the microphone say who and where they are, not how aroused (the track's
    models would otherwise learn the training speakers apart). A bin without a voiced frame has 0.
    """
    level = np.maximum(frames[:, 0], LEVEL_FLOOR_DB)
    voiced = frames[:, NAMES.index("voiced")]
    pitch = frames[:, NAMES.index("log2_f0")]
    if np.any(voiced > 0):
        level_rel = level - np.median(level[voiced > 0])
        pitch_rel = pitch - np.median(pitch[voiced > 0])
    else:
        level_rel = pitch_rel = np.zeros_like(level)
    stacked = np.stack([level, voiced, level_rel * voiced, pitch_rel * voiced], axis=1)
    pooled, times = pool_frames(stacked, frame_times(len(frames)), pool_fps)
    share = pooled[:, 1:2]
    some = share > 0
    pooled[:, 2:] = np.where(some, pooled[:, 2:] / np.where(some, share, 1.0), 0.0)
    return pooled.astype(np.float32), times.astype(np.float32)


class ProsodyExtractor:
    """``prosody_bins`` of each clip's ``prosody_frames``; no model, no batching needed."""

    modality = "audio"
    model_name = "prosody"
    dim = len(FEATURES)

    def __init__(self, *, pool_fps: float | None) -> None:
        self.pool_fps = pool_fps

    def extract_batch(self, inputs: Sequence[AudioInput]) -> list[ClipFeatures]:
        records = []
        for item in inputs:
            reason = samples_problem(item)
            if reason:
                records.append(ClipFeatures.missing(item.clip_id, self.dim, reason))
                continue
            samples = to_whisper_rate(np.asarray(item.samples, np.float32), item.sample_rate)
            values, times = prosody_bins(prosody_frames(samples), self.pool_fps)
            records.append(ClipFeatures(item.clip_id, values, times, np.ones(len(times), bool), available=True))
        return records

"""The annotators: noise on the frame-level truth, and stretches they left unlabelled.

- Valence/arousal: ``y = mu + clip(va_noise * g(t), -(1 - |mu|), 1 - |mu|)`` with g a smooth
  stationary Gaussian process (AR(1), unit variance, correlation time ``NOISE_TAU_S``): a joystick's
  slow wobble. The clip is symmetric about 0, so ``E[y | latents] = mu`` exactly and labels stay in
  [-1, 1] (|mu| <= 0.85 by construction).
- Expression and action units: runs of frames (mean ``FLIP_RUN_S``) where the annotator disagrees
  with the truth, a fraction ``label_flip`` of frames in the long run: the class becomes one of the
  7 others (the same over the run), an AU flips (each AU on its own).
- Invalid stretches (``-5`` / ``-1`` in the files): with probability ``INVALID_PROBABILITY`` per
  track and task, one stretch of ``INVALID_SECONDS`` at a random place; AU labels are also invalid
  wherever the face is out of the frame (no face, no FACS coding), while valence/arousal and the
  expression stay labelled there (the annotators hear the voice).

Invalid and flipped frames are drawn independently of the latents, so they change which frames are
scored, not what the best prediction is.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from pipeline.demo.tracks.model import Truth
from pipeline.tasks import EXPRESSIONS

NOISE_TAU_S = 0.5
FLIP_RUN_S = 0.4
INVALID_PROBABILITY = 0.4
INVALID_SECONDS = (1.0, 4.0)
FACE_OUT = 0.5  # camera pan from which the face counts as out of the frame (BlazeFace loses it there)


def smooth_noise(rng: np.random.Generator, n: int, columns: int, fps: float) -> np.ndarray:
    """(n, columns) stationary AR(1) Gaussian noise, unit variance, correlation exp(-dt / NOISE_TAU_S)."""
    rho = math.exp(-1.0 / (fps * NOISE_TAU_S))
    gain = math.sqrt(1.0 - rho * rho)
    drive = rng.standard_normal((n, columns))
    drive[0] /= gain  # the first value has unit variance: the process starts stationary
    return lfilter([gain], [1.0, -rho], drive, axis=0)


def noisy_va(mu: np.ndarray, noise: float, rng: np.random.Generator, fps: float) -> np.ndarray:
    """(n, 2) annotated valence/arousal around the noise-free ``mu`` (see the module docstring)."""
    room = 1.0 - np.abs(mu)
    return mu + np.clip(noise * smooth_noise(rng, len(mu), mu.shape[1], fps), -room, room)


def flip_runs(rng: np.random.Generator, n: int, rate: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """A two-state Markov chain over n frames: (flipped (n,) bool, run id (n,) int).

    Runs of flipped frames last FLIP_RUN_S on average; the chain starts stationary, so each frame
    is flipped with probability ``rate``.
    """
    flipped = np.zeros(n, bool)
    run = np.zeros(n, int)
    if rate <= 0.0 or n == 0:
        return flipped, run
    leave = min(1.0, 1.0 / max(FLIP_RUN_S * fps, 1.0))
    enter = min(1.0, rate * leave / (1.0 - rate))
    state = bool(rng.random() < rate)
    start, index = 0, 0
    while start < n:
        length = int(rng.geometric(leave if state else enter))
        flipped[start : start + length] = state
        run[start : start + length] = index
        start, state, index = start + length, not state, index + 1
    return flipped, run


def noisy_expression(truth: np.ndarray, rate: float, rng: np.random.Generator, fps: float) -> np.ndarray:
    """(n,) annotated class: the truth, or over a flipped run one of the other 7 classes."""
    flipped, run = flip_runs(rng, len(truth), rate, fps)
    shift = rng.integers(1, len(EXPRESSIONS), run.max() + 1 if len(run) else 0)
    return np.where(flipped, (truth + shift[run]) % len(EXPRESSIONS), truth)


def noisy_au(truth: np.ndarray, rate: float, rng: np.random.Generator, fps: float) -> np.ndarray:
    """(n, 12) annotated AUs (bool): each AU flipped over its own runs."""
    flips = np.stack([flip_runs(rng, len(truth), rate, fps)[0] for _ in range(truth.shape[1])], axis=1)
    return truth ^ flips


def invalid_stretch(rng: np.random.Generator, n: int, fps: float, *, force: bool = False) -> np.ndarray:
    """(n,) bool: one stretch of INVALID_SECONDS with probability INVALID_PROBABILITY (always if
    ``force``), placed uniformly; the draws happen either way, so forcing changes nothing else."""
    happens = rng.random() < INVALID_PROBABILITY
    length = int(round(rng.uniform(*INVALID_SECONDS) * fps))
    length = min(length, max(n - 1, 0))
    start = int(rng.integers(0, max(n - length, 1)))
    mask = np.zeros(n, bool)
    if happens or force:
        mask[start : start + length] = True
    return mask


def annotate(
    true: Truth, pan: np.ndarray, rng: np.random.Generator, *, va_noise: float, label_flip: float, fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The annotators' labels of one track: VA (n, 2), class (n,), AUs (n, 12), float, NaN where
    invalid (here only the AUs where the face is out of the frame; see ``invalid_stretch``)."""
    va = noisy_va(true.va, va_noise, rng, fps)
    expr = noisy_expression(true.expression, label_flip, rng, fps).astype(np.float64)
    au = noisy_au(true.au, label_flip, rng, fps).astype(np.float64)
    au[pan >= FACE_OUT] = np.nan
    return va, expr, au

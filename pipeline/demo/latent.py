"""The demo's generative model: five latents, the labels they drive, and the noise ceiling."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy.special import expit, ndtr

from pipeline.config import MODALITIES
from pipeline.emotions import EMOTIONS
from pipeline.evaluate.metrics import pearson


@dataclasses.dataclass(frozen=True)
class Latent:
    modality: str
    levels: tuple[float, ...] | None = None  # None: continuous uniform on [-1, 1]


WORDING_LEVELS: tuple[float, ...] = tuple(k / 3 for k in range(-3, 4))
LATENTS: dict[str, Latent] = {
    "smile": Latent("visual"),
    "brow": Latent("visual"),
    "arousal": Latent("audio"),
    "pitch": Latent("audio"),
    "wording": Latent("text", WORDING_LEVELS),
}

# Logit weights: each emotion reads latents of one or two modalities, so no single modality (nor,
# for most emotions, any pair) reaches the fused ceiling.
EMOTION_WEIGHTS: dict[str, dict[str, float]] = {
    "Admiration": {"wording": 2.4, "brow": 1.0},
    "Amusement": {"smile": 2.2, "pitch": 1.2},
    "Determination": {"arousal": 2.0, "pitch": -1.2, "brow": -1.0},
    "Empathic Pain": {"wording": -2.4, "smile": -1.0},
    "Excitement": {"arousal": 2.0, "pitch": 1.4},
    "Joy": {"smile": 2.2, "wording": 1.2},
}

_QUADRATURE = np.polynomial.legendre.leggauss(16)  # nodes on [-1, 1], weights summing to 2


def draw_latents(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """n independent draws of every latent: {name: (n,) float64}."""
    out = {}
    for name, latent in LATENTS.items():
        if latent.levels is None:
            out[name] = rng.uniform(-1.0, 1.0, n)
        else:
            out[name] = np.asarray(latent.levels)[rng.integers(0, len(latent.levels), n)]
    return out


def label_logits(latents: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 6) logits of the label means, columns in EMOTIONS order."""
    return np.stack([sum(w * latents[k] for k, w in EMOTION_WEIGHTS[e].items()) for e in EMOTIONS], axis=1)


def expected_clipped(mu: np.ndarray, noise: float) -> np.ndarray:
    """E[clip(mu + N(0, noise^2), 0, 1)], elementwise (closed form for a clipped Gaussian)."""
    if noise == 0:
        return np.clip(mu, 0.0, 1.0)
    a, b = -mu / noise, (1.0 - mu) / noise
    return mu * (ndtr(b) - ndtr(a)) + noise * (_normal_pdf(a) - _normal_pdf(b)) + (1.0 - ndtr(b))


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def draw_labels(latents: dict[str, np.ndarray], noise: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 6) labels in [0, 1]: sigmoid of the logits plus Gaussian noise, clipped."""
    mu = expit(label_logits(latents))
    return np.clip(mu + noise * rng.standard_normal(mu.shape), 0.0, 1.0)


def conditional_expected_labels(latents: dict[str, np.ndarray], modalities: Iterable[str], noise: float) -> np.ndarray:
    """(n, 6) E[y | the latents of ``modalities``]: the best prediction from those modalities.

    For each emotion, E[y | seen] depends only on the seen part of the logit, a scalar: it is
    averaged over the unseen parent latents by quadrature (16 Gauss-Legendre nodes per continuous
    latent, exact sum over text levels) on a grid of 4097 values of that scalar, then linearly
    interpolated (step < 0.003 in logit; interpolation error below 1e-5). An emotion with no seen
    parent gets its constant mean (Pearson 0 against anything).
    """
    seen = {k for k, latent in LATENTS.items() if latent.modality in set(modalities)}
    n = len(next(iter(latents.values())))
    out = np.empty((n, len(EMOTIONS)))
    for column, emotion in enumerate(EMOTIONS):
        weights = EMOTION_WEIGHTS[emotion]
        # Quadrature over the unseen latents: each node's logit shift and weight, (M,) each.
        shifts, node_weights = np.zeros(1), np.ones(1)
        for k in (k for k in weights if k not in seen):
            levels = LATENTS[k].levels
            if levels is None:
                values, w = _QUADRATURE[0], _QUADRATURE[1] / 2
            else:
                values, w = np.asarray(levels), np.full(len(levels), 1 / len(levels))
            shifts = (shifts[:, None] + weights[k] * values[None, :]).ravel()
            node_weights = (node_weights[:, None] * w[None, :]).ravel()
        known = sum((w * latents[k] for k, w in weights.items() if k in seen), np.zeros(n))
        reach = sum(abs(w) for k, w in weights.items() if k in seen)  # |known| <= reach
        grid = np.linspace(-reach, reach, 4097 if reach > 0 else 1)
        table = expected_clipped(expit(grid[:, None] + shifts[None, :]), noise) @ node_weights
        out[:, column] = np.interp(known, grid, table)
    return out


def score(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Mean and per-emotion Pearson of (n, 6) predictions, rounded to 4 decimals."""
    per = [pearson(p, t) for p, t in zip(pred.T, truth.T, strict=True)]
    return {
        "mean": round(float(np.mean(per)), 4),
        "per_emotion": {e: round(v, 4) for e, v in zip(EMOTIONS, per, strict=True)},
    }


def modality_subsets() -> list[tuple[str, ...]]:
    """Every non-empty subset of the three modalities, singles first, in MODALITIES order."""
    return [s for r in (1, 2, 3) for s in itertools.combinations(MODALITIES, r)]


def noise_ceiling(*, label_noise: float, seed: int, n_draws: int = 200_000) -> dict[str, Any]:
    """Best achievable Pearson (per emotion and mean) of the fused model and of each modality subset.

    Estimated on ``n_draws`` Monte Carlo draws of (latents, labels) from the generative model:
    the prediction for subset S is E[y | latents of S], the best any model seeing only S can do.
    Returns {"fused": score, "modalities": {"visual": score, ..., "visual+audio": score, ...},
    "n_draws", "label_noise"} where score = {"mean", "per_emotion"}.
    """
    rng = np.random.default_rng([seed, 0xCE1])
    latents = draw_latents(rng, n_draws)
    labels = draw_labels(latents, label_noise, rng)
    subsets = {
        "+".join(s): score(conditional_expected_labels(latents, s, label_noise), labels) for s in modality_subsets()
    }
    return {
        "fused": subsets["+".join(MODALITIES)],
        "modalities": subsets,
        "n_draws": n_draws,
        "label_noise": label_noise,
    }

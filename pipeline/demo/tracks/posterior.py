"""What each set of modalities shows of a segment, and the posterior over its latents given that.

A segment's latents are one of the C = 1440 ``configurations``. What a modality shows of segment j
(its *packet*) is a function of the configuration:

- visual: the face (smile, brow, expression jaw at the held expression: the face key), unless the
  face is out of the frame for the segment (``absent``); and how long the lips move when the
  person speaks, at the decoder's resolution (``SPAN_BIN_S``);
- audio: the espeak-ng speed and amplitude of the sentence (integers) and how long it lasts (same
  bins), when the person speaks;
- text: which sentence (so its wording level), when the person speaks; transcripts carry no timing.

The length matters: at a known speed it tells which sentence (so the wording level) was said, and
for a known sentence the speed (so the arousal). Its likelihood given a configuration is the share
of that level's sentences whose planned length at that speed falls in the observed bin (1 or 0 when
the sentence is known). Public to every set, and to the noise-free "latents" oracle: the timeline
(segment starts, fades, sway, camera pan) and whether the person speaks.

Segments are independent a priori and each packet depends on one segment only, so the posterior
factorises over segments: ``p(config_j | packets) ~ prior(config) * P(packets_j | config)``,
computed exactly by enumeration, once per distinct packet (the *signature*).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from pipeline.demo.tracks.model import POOLS, SENTENCE_LEVELS, TrackPlan, configurations, speech_seconds

SPAN_BIN_S = 0.2  # decode.fps 5: the visual stream sees the sentence's length to about a frame
LATENTS = "latents"  # the oracle that knows every latent


@dataclasses.dataclass(frozen=True)
class Segments:
    """The segments of a set of tracks, concatenated, (S,) each."""

    config: np.ndarray
    seen: np.ndarray  # bool: the face is in the frame for the segment
    speaks: np.ndarray
    sentence: np.ndarray  # -1 when silent
    span_bin: np.ndarray  # planned sentence length in SPAN_BIN_S bins, -1 when silent

    @staticmethod
    def of(plans: list[TrackPlan]) -> Segments:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in plans])

        length = np.concatenate([p.speech_lengths() for p in plans])
        span_bin = np.where(np.isfinite(length), _bin(np.nan_to_num(length)), -1)
        return Segments(cat("config"), ~cat("absent"), cat("speaks"), cat("sentence"), span_bin)


def signatures(segments: Segments, subset: str) -> np.ndarray:
    """(S, 4) int: what ``subset`` ("visual+audio", ..., or LATENTS) shows of each segment: face key,
    speed * 1000 + amplitude, sentence, sentence length bin; -1 where not shown. LATENTS: the
    configuration."""
    configs = configurations()
    config = segments.config
    if subset == LATENTS:
        return np.stack([config, -np.ones_like(config), -np.ones_like(config), -np.ones_like(config)], axis=1)
    shown = set(subset.split("+"))
    none = -np.ones_like(config)
    visual = np.where(segments.seen, configs.face_key[config], -1) if "visual" in shown else none
    voice = configs.speed[config] * 1000 + configs.amplitude[config]
    audio = np.where(segments.speaks, voice, -1) if "audio" in shown else none
    text = np.where(segments.speaks, segments.sentence, -1) if "text" in shown else none
    span = segments.span_bin if shown & {"visual", "audio"} else none
    return np.stack([visual, audio, text, span], axis=1)


@dataclasses.dataclass(frozen=True)
class Posterior:
    """Per distinct signature u: E[expressed VA] (U, 2), E[mood VA] (U, 2), P(class) (U, 8),
    P(AU on) (U, 12); ``index`` maps each segment to its u."""

    expressed: np.ndarray
    mood: np.ndarray
    expression: np.ndarray
    au: np.ndarray
    index: np.ndarray


def posterior(segments: Segments, subset: str, chunk: int = 1024) -> Posterior:
    configs = configurations()
    rows, index = np.unique(signatures(segments, subset), axis=0, return_inverse=True)
    onehot = np.eye(configs.expression.max() + 1)[configs.expression]
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for start in range(0, len(rows), chunk):
        if subset == LATENTS:
            weights = np.eye(len(configs.prior))[rows[start : start + chunk, 0]]
        else:
            weights = _likelihood(rows[start : start + chunk]) * configs.prior[None, :]
            weights /= weights.sum(axis=1, keepdims=True)
        for part, table in zip(parts, (configs.expressed, configs.mood, onehot, configs.au), strict=True):
            part.append(weights @ table.astype(np.float64))
    expressed, mood, expression, au = (np.concatenate(p) for p in parts)
    return Posterior(expressed=expressed, mood=mood, expression=expression, au=au, index=index.ravel())


def _likelihood(rows: np.ndarray) -> np.ndarray:
    """(U, C): P(signature row | configuration), up to a factor that does not depend on it."""
    configs = configurations()
    visual, audio, text, span = (rows[:, k : k + 1] for k in range(4))
    voice = configs.speed * 1000 + configs.amplitude
    ok = ((visual < 0) | (configs.face_key[None, :] == visual)) & ((audio < 0) | (voice[None, :] == audio))
    ok &= (text < 0) | (configs.level[None, :] == SENTENCE_LEVELS[np.maximum(text, 0)])
    like = ok.astype(np.float64)
    # The sentence's length: with the sentence known (text), its length at the configuration's speed
    # must fall in the bin; without, the share of the level's sentences whose length does.
    known = _bin(speech_seconds(np.maximum(text, 0), configs.speed[None, :])) == span
    pooled = _pooled_bins()
    share = (pooled[None, :, :] == span[:, :, None]).mean(axis=2)
    span_like = np.where(text >= 0, known, share)
    return like * np.where(span < 0, 1.0, span_like)


def _bin(seconds: np.ndarray) -> np.ndarray:
    return np.floor(seconds / SPAN_BIN_S).astype(int)


@lru_cache(maxsize=1)
def _pooled_bins() -> np.ndarray:
    """(C, 5): span bin of each sentence of the configuration's level, said at its speed."""
    configs = configurations()
    pools = np.stack([POOLS[int(level)] for level in configs.level])
    return _bin(speech_seconds(pools, configs.speed[:, None]))

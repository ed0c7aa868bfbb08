"""The frame-level demo's generative model: what one expression segment can be (``configurations``),
how a track's segments are drawn (``draw_plan``), and the per-frame truth they imply (``timeline``,
``crossfade``, ``truth``). The package docstring explains the model; the numbers live here."""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import numpy as np

from pipeline.demo.face import smoothstep
from pipeline.demo.sentences import SENTENCES
from pipeline.demo.speech import synthesize_speech
from pipeline.tasks import ACTION_UNITS, EXPRESSIONS

# ------------------------------------------------------------------------------ segment latents
# Class frequencies loosely follow Aff-Wild2's EXPR train counts (Neutral, Happiness, Sadness and
# Other common, Fear and Disgust rare), flattened so that a 28-track demo still holds every class.
EXPRESSION_PRIOR = np.array([0.22, 0.08, 0.07, 0.07, 0.18, 0.14, 0.09, 0.15])
INTENSITIES = np.array([0.4, 0.6, 0.8, 1.0])
MOOD_VALENCE = np.linspace(-0.15, 0.15, 5)
MOOD_AROUSAL = np.linspace(-0.4, 0.4, 9)
# Weight of the expression in arousal; the mood, heard in the voice but not seen, carries the rest,
# so arousal is mostly audible and only weakly visible.
AROUSAL_SHARE = 0.7

# Valence and arousal of each expression at full intensity (roughly Russell's circumplex), in
# EXPRESSIONS order. Anger and Disgust differ in arousal only, Fear and Surprise in valence only.
VA_PROTOTYPES = np.array(
    [[0.0, 0.0], [-0.6, 0.6], [-0.6, -0.3], [-0.5, 0.6], [0.7, 0.3], [-0.6, -0.5], [0.4, 0.6], [0.2, -0.2]]
)
# render_face's smile, brow and jaw at full intensity. Anger and Disgust show the same face, and so
# do Fear and Surprise: the voice (arousal) and the words (valence) tell them apart.
FACE_PROTOTYPES = np.array(
    [
        [0.0, 0.0, 0.0],  # Neutral
        [-0.35, -1.0, 0.0],  # Anger: brows knit, corners down
        [-0.35, -1.0, 0.0],  # Disgust
        [0.0, 1.0, 0.8],  # Fear: brows up, jaw open
        [1.0, 0.2, 0.3],  # Happiness: smile, lips apart
        [-1.0, 0.4, 0.0],  # Sadness: corners down, inner brows up
        [0.0, 1.0, 0.8],  # Surprise
        [0.5, -0.5, 0.0],  # Other: half smile under knit brows
    ]
)
# AU k is on in a segment of expression c and intensity s when s * AU_WEIGHTS[c][k] >= AU_THRESHOLD
# (FACS-style prototypes; AU7, AU10, AU23 and AU24 have no rendered movement: the face shows them only
# through the expression). AU25 (lips part) is also on while the person speaks.
AU_THRESHOLD = 0.5
AU_WEIGHTS: dict[str, dict[str, float]] = {
    "Neutral": {},
    "Anger": {"AU4": 1.0, "AU7": 0.9, "AU23": 0.8, "AU24": 0.6},
    "Disgust": {"AU4": 0.8, "AU7": 0.7, "AU10": 1.0, "AU15": 0.6},
    "Fear": {"AU1": 1.0, "AU2": 0.8, "AU4": 0.6, "AU25": 1.0, "AU26": 0.7},
    "Happiness": {"AU6": 0.9, "AU12": 1.0, "AU25": 0.7},
    "Sadness": {"AU1": 0.9, "AU4": 0.7, "AU15": 1.0},
    "Surprise": {"AU1": 1.0, "AU2": 1.0, "AU25": 1.0, "AU26": 0.9},
    "Other": {"AU4": 0.7, "AU12": 0.9},
}
SPEECH_AU = ACTION_UNITS.index("AU25")

# The voice: espeak-ng speed and amplitude follow arousal, pitch follows it around a per-track base.
SPEED = (165.0, 20.0)  # words per minute: 165 + 20 * arousal
AMPLITUDE = (110.0, 80.0)
PITCH_SLOPE = 30.0
PITCH_BASE = (42, 58)
LEVEL_STEP = 0.25  # wording level = round(valence / 0.25), clipped to -3..3


@dataclasses.dataclass(frozen=True)
class Configurations:
    """Every value a segment's latents can take, (C,) or (C, K) arrays, C = 8 * 4 * 5 * 9 = 1440."""

    expression: np.ndarray  # class index
    intensity: np.ndarray
    expressed: np.ndarray  # (C, 2) valence, arousal of the expression (scaled by the sway over time)
    mood: np.ndarray  # (C, 2) valence, arousal mood (constant over the segment)
    face: np.ndarray  # (C, 3) smile, brow, jaw at the held expression
    face_key: np.ndarray  # index of the distinct face: equal keys look the same
    au: np.ndarray  # (C, 12) bool, the expression's action units
    speed: np.ndarray  # espeak-ng settings of the segment's sentence (ints)
    amplitude: np.ndarray
    level: np.ndarray  # wording level -3..3
    prior: np.ndarray

    @property
    def target(self) -> np.ndarray:
        """(C, 2) valence, arousal at the held expression without sway."""
        return self.expressed + self.mood


@lru_cache(maxsize=1)
def configurations() -> Configurations:
    grids = np.meshgrid(
        np.arange(len(EXPRESSIONS)), np.arange(len(INTENSITIES)), MOOD_VALENCE, MOOD_AROUSAL, indexing="ij"
    )
    expression, level_index, mood_v, mood_a = (g.ravel() for g in grids)
    intensity = INTENSITIES[level_index]
    expressed = intensity[:, None] * VA_PROTOTYPES[expression] * np.array([1.0, AROUSAL_SHARE])
    mood = np.stack([mood_v, mood_a], axis=1)
    valence, arousal = (expressed + mood).T
    face = np.round(intensity[:, None] * FACE_PROTOTYPES[expression], 9)
    face_key = np.unique(face, axis=0, return_inverse=True)[1].ravel()
    weights = np.array([[AU_WEIGHTS[e].get(au, 0.0) for au in ACTION_UNITS] for e in EXPRESSIONS])
    au = intensity[:, None] * weights[expression] >= AU_THRESHOLD - 1e-9
    speed, amplitude = prosody(arousal)
    prior = EXPRESSION_PRIOR[expression] / (len(INTENSITIES) * len(MOOD_VALENCE) * len(MOOD_AROUSAL))
    return Configurations(
        expression=expression,
        intensity=intensity,
        expressed=expressed,
        mood=mood,
        face=face,
        face_key=face_key,
        au=au,
        speed=speed,
        amplitude=amplitude,
        level=np.clip(np.round(valence / LEVEL_STEP), -3, 3).astype(int),
        prior=prior,
    )


def prosody(arousal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """espeak-ng speed (wpm) and amplitude for arousal values: integer arrays."""
    arousal = np.asarray(arousal, np.float64)
    speed = np.round(SPEED[0] + SPEED[1] * arousal).astype(int)
    return speed, np.round(AMPLITUDE[0] + AMPLITUDE[1] * arousal).astype(int)


# ------------------------------------------------------------------------------------ sentences
SENTENCE_TEXTS: tuple[str, ...] = tuple(text for level in sorted(SENTENCES) for text in SENTENCES[level])
SENTENCE_LEVELS = np.array([level for level in sorted(SENTENCES) for _ in SENTENCES[level]])
POOLS: dict[int, np.ndarray] = {level: np.flatnonzero(SENTENCE_LEVELS == level) for level in SENTENCES}
# espeak-ng's duration scales as speed ** -1.07 (measured over the 35 sentences at 137..194 wpm: the
# estimate below is within 3% of the real duration).
SPEED_EXPONENT = 1.07


@lru_cache(maxsize=1)
def reference_seconds() -> np.ndarray:
    """(35,) duration of each sentence said by espeak-ng at 165 wpm (SENTENCE_TEXTS order)."""
    reference = [synthesize_speech(text, pitch=50, speed=165, amplitude=110) for text in SENTENCE_TEXTS]
    return np.array([len(samples) / 16000 for samples in reference])


def speech_seconds(sentence: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """Planned duration of sentence indices said at ``speed`` wpm."""
    return reference_seconds()[sentence] * (165.0 / np.asarray(speed, np.float64)) ** SPEED_EXPONENT


# ------------------------------------------------------------------------------------- timeline
LENGTH_SPREAD = (0.8, 1.2)  # a track covers demo.tracks.seconds times a factor drawn in this range
TRANSITION_S = 0.6  # a new segment fades in over this long (the labels' class switches halfway)
SILENT_SECONDS = (3.0, 6.0)
# A speaking segment always has room for the longest sentence at the slowest speed (test_demo_tracks
# checks it), so a segment's length tells nothing about its latents.
SPEAKING_SECONDS = (5.2, 7.2)
SPEAK_PROBABILITY = 0.7
SPEECH_DELAY = (0.1, 0.4)  # sentence onset after the transition
ABSENT_PROBABILITY = 0.12  # the face leaves the frame for the whole segment
PAN_S = 0.4  # the camera pans away (and back) over this long
SWAY = 0.15  # the held expression sways between 85% and 100% of its intensity
SWAY_HZ = (0.15, 0.5)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrackPlan:
    """One person's track: segments j = 0..J-1, segment j from ``starts[j]`` to ``starts[j + 1]`` (the
    last one to ``duration``), each (J,)."""

    starts: np.ndarray
    duration: float
    config: np.ndarray  # index into configurations()
    speaks: np.ndarray  # bool: one sentence, said from ``onset``
    absent: np.ndarray  # bool: the face is out of the frame
    sentence: np.ndarray  # index into SENTENCE_TEXTS, -1 when silent
    onset: np.ndarray  # s, NaN when silent
    sway_hz: np.ndarray
    sway_phase: np.ndarray
    pitch_base: int

    @property
    def ends(self) -> np.ndarray:
        return np.append(self.starts[1:], self.duration)

    def speech_lengths(self) -> np.ndarray:
        """(J,) planned length of each segment's sentence, s (NaN when silent)."""
        speed = configurations().speed[self.config]
        return np.where(self.speaks, speech_seconds(np.maximum(self.sentence, 0), speed), np.nan)

    def planned_spans(self) -> np.ndarray:
        """(J, 2) planned start and end of each segment's sentence (NaN when silent)."""
        return np.stack([self.onset, self.onset + self.speech_lengths()], axis=1)


def draw_plan(rng: np.random.Generator, seconds: float) -> TrackPlan:
    """Segments drawn one after another until they cover ``seconds``; the track ends with the last one,
    so every segment is whole (a segment seen only in its fade-in would be half a segment)."""
    configs = configurations()
    rows: list[tuple] = []
    t = 0.0
    while t < seconds:
        config = int(rng.choice(len(configs.prior), p=configs.prior))
        speaks = bool(rng.random() < SPEAK_PROBABILITY)
        absent = bool(rows) and bool(rng.random() < ABSENT_PROBABILITY)
        length = float(rng.uniform(*(SPEAKING_SECONDS if speaks else SILENT_SECONDS)))
        pool = POOLS[int(configs.level[config])]
        sentence = int(pool[rng.integers(len(pool))])
        onset = t + TRANSITION_S + float(rng.uniform(*SPEECH_DELAY))
        sway = (float(rng.uniform(*SWAY_HZ)), float(rng.uniform(0.0, 2 * math.pi)))
        rows.append((t, config, speaks, absent, sentence if speaks else -1, onset if speaks else math.nan, *sway))
        t += length
    columns = (np.array(column) for column in zip(*rows, strict=True))
    starts, config, speaks, absent, sentence, onset, hz, phase = columns
    return TrackPlan(
        starts=starts,
        duration=t,
        config=config.astype(int),
        speaks=speaks.astype(bool),
        absent=absent.astype(bool),
        sentence=sentence.astype(int),
        onset=onset.astype(np.float64),
        sway_hz=hz,
        sway_phase=phase,
        pitch_base=int(rng.integers(PITCH_BASE[0], PITCH_BASE[1] + 1)),
    )


def silence_overlaps(plan: TrackPlan, other: TrackPlan, margin: float = 0.5) -> TrackPlan:
    """``plan`` with its sentences that would overlap (within ``margin`` s) one of ``other``'s dropped:
    two people in one video take turns."""
    theirs = other.planned_spans()[other.speaks]
    mine = plan.planned_spans()
    overlap = (mine[:, None, 0] < theirs[None, :, 1] + margin) & (theirs[None, :, 0] < mine[:, None, 1] + margin)
    clash = plan.speaks & overlap.any(axis=1)
    return dataclasses.replace(
        plan,
        speaks=plan.speaks & ~clash,
        sentence=np.where(clash, -1, plan.sentence),
        onset=np.where(clash, np.nan, plan.onset),
    )


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Where each frame of a track sits: current segment, its fade-in weight, the segment whose labels
    the frame carries, the sway of the previous and current segment, and the camera pan (n,) each."""

    segment: np.ndarray
    weight: np.ndarray  # 1 once the current segment has faded in
    dominant: np.ndarray  # current segment once weight >= 0.5, else the previous one
    sway: np.ndarray  # (n, 2): previous, current
    pan: np.ndarray  # 0 face in view .. 1 face out of the frame


def timeline(plan: TrackPlan, times: np.ndarray) -> Timeline:
    times = np.asarray(times, np.float64)
    segment = np.clip(np.searchsorted(plan.starts, times, side="right") - 1, 0, len(plan.starts) - 1)
    weight = np.where(segment == 0, 1.0, smoothstep((times - plan.starts[segment]) / TRANSITION_S))
    previous = np.maximum(segment - 1, 0)
    sway = np.stack([_sway(plan, previous, times), _sway(plan, segment, times)], axis=1)
    dominant = np.where(weight >= 0.5, segment, previous)
    return Timeline(segment=segment, weight=weight, dominant=dominant, sway=sway, pan=_pan(plan, times))


def _sway(plan: TrackPlan, segment: np.ndarray, times: np.ndarray) -> np.ndarray:
    wave = np.sin(2 * math.pi * plan.sway_hz[segment] * times + plan.sway_phase[segment])
    return 1.0 - SWAY * (0.5 + 0.5 * wave)


def _pan(plan: TrackPlan, times: np.ndarray) -> np.ndarray:
    """The face is out from an absent segment's start until the next segment has faded in, the camera
    panning away over PAN_S before and back over PAN_S after (max over the absent segments)."""
    pan = np.zeros_like(times)
    ends = plan.ends
    for j in np.flatnonzero(plan.absent):
        away, back = plan.starts[j], ends[j] + TRANSITION_S
        rise = smoothstep((times - (away - PAN_S)) / PAN_S)
        fall = 1.0 - smoothstep((times - back) / PAN_S)
        pan = np.maximum(pan, np.minimum(rise, fall))
    return pan


def crossfade(line: Timeline, expressed: np.ndarray, mood: np.ndarray) -> np.ndarray:
    """(n, K) per-frame values from per-segment ones ((J, K) each): the expressed part scaled by the
    sway plus the mood, faded from the previous segment into the current one."""
    previous = np.maximum(line.segment - 1, 0)
    w = line.weight[:, None]
    old = line.sway[:, :1] * expressed[previous] + mood[previous]
    new = line.sway[:, 1:] * expressed[line.segment] + mood[line.segment]
    return (1.0 - w) * old + w * new


def speaking(times: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """(n,) bool: the frame time lies in one of ``spans`` ((M, 2) start, end; NaN rows ignored)."""
    spans = spans[np.isfinite(spans[:, 0])]
    inside = (times[:, None] >= spans[None, :, 0]) & (times[:, None] < spans[None, :, 1])
    return inside.any(axis=1)


@dataclasses.dataclass(frozen=True)
class Truth:
    """A track's noise-free labels per frame: valence/arousal (n, 2), class (n,), AUs (n, 12) bool,
    and what the face shows (n, 3) smile, brow, expression jaw."""

    va: np.ndarray
    expression: np.ndarray
    au: np.ndarray
    face: np.ndarray


def truth(plan: TrackPlan, line: Timeline, talking: np.ndarray) -> Truth:
    configs = configurations()
    config = plan.config
    va = crossfade(line, configs.expressed[config], configs.mood[config])
    face = crossfade(line, configs.face[config], np.zeros((len(config), 3)))
    au = configs.au[config[line.dominant]].copy()
    au[:, SPEECH_AU] |= talking
    return Truth(va=va, expression=configs.expression[config[line.dominant]], au=au, face=face)

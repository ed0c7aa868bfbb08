"""Per-modality feature extraction: the common types every extractor shares.

An extractor turns one clip's decoded input into a :class:`ClipFeatures`: a (T, D) sequence with
frame times and a per-frame validity mask, or an unavailable record (T = 0) when the modality is
missing for that clip (no face, no or silent audio, no speech). ``pipeline.features.shards`` writes and reads
these records; ``pipeline.features.inputs`` feeds the extractors; ``stages/features.py`` runs one
modality over all clips.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.config import MODALITIES

# Decode faults (pipeline.decode statuses) that make a modality missing for a clip.
UNAVAILABLE: dict[str, tuple[str, ...]] = {
    "visual": ("no_video_stream", "no_face"),
    "audio": ("no_audio_stream", "silent_audio"),
    "text": (),
}


def unavailable_reason(modality: str, *, faults: Sequence[str], n_frames: int, has_audio: bool) -> str:
    """Why a clip's decode result leaves ``modality`` missing, "" when it does not.

    The feature stage and ``pipeline.predict`` both ask this, so training and prediction treat a
    clip alike. A fault of ``UNAVAILABLE[modality]`` is the reason; with nothing decoded for the
    modality, the clip's first fault (corrupt, too_short...). Text depends on the transcript instead.
    """
    if modality == "text":
        return ""
    fault = next((f for f in faults if f in UNAVAILABLE[modality]), "")
    empty = n_frames == 0 if modality == "visual" else not has_audio
    if fault or not empty:
        return fault
    return faults[0] if faults else ("no decoded frames" if modality == "visual" else "no decoded audio")


@dataclass
class ClipFeatures:
    """Features of one clip for one modality.

    values: (T, D) float32; times: (T,) float32 seconds from clip start; valid: (T,) bool.
    ``available`` is False when the modality is missing for the clip; then T == 0.
    """

    clip_id: str
    values: np.ndarray
    times: np.ndarray
    valid: np.ndarray
    available: bool
    reason: str = ""

    @classmethod
    def missing(cls, clip_id: str, dim: int, reason: str) -> ClipFeatures:
        return cls(
            clip_id=clip_id,
            values=np.zeros((0, dim), np.float32),
            times=np.zeros((0,), np.float32),
            valid=np.zeros((0,), bool),
            available=False,
            reason=reason,
        )


@dataclass
class TextInput:
    """The transcript of one clip; text is None when the clip has no speech."""

    clip_id: str
    text: str | None
    reason: str = ""


class FeatureExtractor(Protocol):
    modality: str
    model_name: str
    dim: int

    def extract_batch(self, inputs: Sequence) -> list[ClipFeatures]:
        """One ClipFeatures per input, in order; never raises for one bad clip."""
        ...


# Each modality's extractor module first (``build_<modality>_extractor``, imported on demand so a stage
# loads only its own models), then the other project modules whose code shapes its values: a shard's
# fingerprint hashes them (stages/features.py), and dvc.yaml lists them with what they import
# (tests/test_dvc_yaml.py checks it).
MODALITY_CODE: dict[str, tuple[str, ...]] = {
    "visual": (
        "pipeline.features.visual",
        "pipeline.features.fer",
        "pipeline.decoded",
        "pipeline.features.hume",
        "pipeline.features.hume.pickles",
    ),
    "audio": (
        "pipeline.features.audio",
        "pipeline.features.audio.frames",
        "pipeline.features.audio.whisper_encoder",
        "pipeline.features.audio.hf",
        "pipeline.whisper.geometry",
        "pipeline.whisper.models",
        "pipeline.whisper.encoder_states",
        "pipeline.decoded",
        "pipeline.features.hume",
        "pipeline.features.hume.pickles",
    ),
    "text": ("pipeline.features.text",),
}
# The modules every modality's values go through: records, inputs, the runner, the shard format.
SHARED_CODE: tuple[str, ...] = (
    "pipeline.features",
    "pipeline.features.inputs",
    "pipeline.features.runner",
    "pipeline.features.shards",
)


def build_extractor(modality: str, section, *, device: str) -> FeatureExtractor:
    """The extractor of ``modality`` from its params section (``features.<modality>``)."""
    if modality not in MODALITY_CODE:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    module = importlib.import_module(MODALITY_CODE[modality][0])
    return getattr(module, f"build_{modality}_extractor")(section, device=device)

"""Per-modality feature extraction: the common types every extractor shares.

An extractor turns one clip's decoded input into a :class:`ClipFeatures`: a (T, D) sequence with
frame times and a per-frame validity mask, or an unavailable record (T = 0) when the modality is
missing for that clip (no face, no or silent audio, no speech). ``pipeline.shards`` writes and reads
these records; ``stages/features.py`` runs one modality over all clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

import numpy as np

MODALITIES: tuple[str, ...] = ("visual", "audio", "text")

# Decode faults (pipeline.decoding statuses) that make a modality missing for a clip; the feature
# stage and pipeline.predict both use this table so training and prediction treat a clip alike.
UNAVAILABLE: dict[str, tuple[str, ...]] = {
    "visual": ("no_video_stream", "no_face"),
    "audio": ("no_audio_stream", "silent_audio"),
    "text": (),
}


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
    def missing(cls, clip_id: str, dim: int, reason: str) -> "ClipFeatures":
        return cls(
            clip_id=clip_id,
            values=np.zeros((0, dim), np.float32),
            times=np.zeros((0,), np.float32),
            valid=np.zeros((0,), bool),
            available=False,
            reason=reason,
        )


@dataclass
class VisualInput:
    """Decoded frames of one clip: T face crops (None where no face) at their sample times."""

    clip_id: str
    times: np.ndarray  # (T,) float
    crops: list[Optional[np.ndarray]]  # each (S, S, 3) uint8 RGB or None
    face_scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))  # (T,)


@dataclass
class AudioInput:
    """16 kHz mono float32 audio of one clip; samples is None when there is no usable audio."""

    clip_id: str
    samples: Optional[np.ndarray]  # (N,) float32
    sample_rate: int
    duration_s: float
    reason: str = ""


@dataclass
class TextInput:
    """The transcript of one clip; text is None when the clip has no speech."""

    clip_id: str
    text: Optional[str]
    reason: str = ""


class FeatureExtractor(Protocol):
    modality: str
    model_name: str
    dim: int

    def extract_batch(self, inputs: Sequence) -> list[ClipFeatures]:
        """One ClipFeatures per input, in order; never raises for one bad clip."""
        ...


def build_extractor(modality: str, section, *, device: str) -> FeatureExtractor:
    """The extractor of ``modality`` from its params section (``features.<modality>``).

    The modality's module is imported here, on demand, so a stage loads only its own models.
    """
    if modality == "visual":
        from pipeline.features.visual import build_visual_extractor as build
    elif modality == "audio":
        from pipeline.features.audio import build_audio_extractor as build
    elif modality == "text":
        from pipeline.features.text import build_text_extractor as build
    else:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return build(section, device=device)

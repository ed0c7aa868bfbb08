"""The Hume-Vidmimic2 organisers' pre-extracted features as feature sources (opt-in).

The release ships, beside its videos, one pickled 2-D numpy array per clip and feature
(``../shared/docs/hume-vidmimic2.md``, ``docs/hume-features.md``):

- ``features.visual.model: hume-vit``: ``vit/<stem>.pkl``, (T, 384) ViT features of the face
  frames, frame rate undocumented (about 6 fps);
- ``features.audio.model: hume-wav2vec2``: ``wav2vec2/<stem>.pkl``, (T, 768) wav2vec2-base last
  hidden states at 50 Hz.

They are read through :mod:`pipeline.features.hume.pickles`, which refuses any pickle naming a
global a numpy array does not need, before anything of it runs. No model is loaded, and neither
the face crops nor the audio of ``data/decoded`` are read: the visual source reads the decode
status for the clip's duration only.

Where: ``<folder>/<stem>.pkl`` beside the folder holding the clip's video (``raw/00012.mp4`` ->
``vit/00012.pkl``), else one folder further up (``test_data/raw/12660.mp4`` ->
``test_data/vit/12660.pkl``, else ``vit/12660.pkl``), ``<stem>`` being the video file's stem.

Timeline (so the frames go through the same shards, masks, models and long-clip pooling as the
pipeline's own):

- ViT: T frames spread evenly over the clip. The rate is inferred per clip as ``fps = T /
  duration_s`` (``duration_s`` from the decode status: the video stream's duration), and frame k
  sits at the centre of its interval, ``t_k = (k + 0.5) / fps``. The frames keep their own rate
  (no resampling to ``decode.fps``: averaging 6 fps frames into 5 fps bins would blend
  neighbours unevenly). Where the decode found no duration (an unreadable video), the release's
  nominal :data:`NOMINAL_VIT_FPS` stands in; the models read the frame order, not the times.
- wav2vec2: frame k at ``(k + 0.5) * 0.02`` s (the convolution's 320-sample stride at 16 kHz, as
  the pipeline's own wav2vec2 extractor counts), then averaged into ``features.audio.pool_fps``
  bins by ``pipeline.features.audio.frames.pool_frames``, exactly as the pipeline's audio frames.

A clip whose pickle is missing, refused or malformed gets the modality missing, with the reason
(naming the file and, for a refused one, the global); the other clips go on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.features import ClipFeatures
from pipeline.features.hume.pickles import BadPickle, UnsafePickle, load_array

# The release's ViT features come at "about 6 fps"; used only where a clip's duration is unknown.
NOMINAL_VIT_FPS = 6.0
# wav2vec2-base: one frame per 320 samples of 16 kHz audio.
WAV2VEC2_FRAME_S = 320 / 16000


@dataclass(frozen=True)
class Source:
    """One of the organisers' features: the params value naming it, its modality, folder and width."""

    name: str
    modality: str
    folder: str
    dim: int
    uses_duration: bool  # its frame times depend on the clip's duration (decode status)


SOURCES: dict[str, Source] = {
    "hume-vit": Source("hume-vit", "visual", "vit", 384, uses_duration=True),
    "hume-wav2vec2": Source("hume-wav2vec2", "audio", "wav2vec2", 768, uses_duration=False),
}

# (T, D) values and the clip's duration (None if unknown) -> (values, times) on the clip's timeline.
Placement = Callable[[np.ndarray, float | None], tuple[np.ndarray, np.ndarray]]


def pickle_path(video: str | Path, folder: str) -> Path | None:
    """The clip's ``<folder>/<stem>.pkl``: beside the video's folder, else one folder further up
    (the release keeps the test videos in ``test_data/raw/``); None when there is none."""
    video = Path(video)
    for base in (video.parent.parent, video.parent.parent.parent):
        candidate = base / folder / f"{video.stem}.pkl"
        if candidate.is_file():
            return candidate
    return None


def vit_rate(n_frames: int, duration_s: float | None) -> float:
    """Frames per second of a clip's ViT features: ``T / duration_s``, or :data:`NOMINAL_VIT_FPS`
    when the duration is unknown (None or not positive)."""
    if duration_s is None or not duration_s > 0:
        return NOMINAL_VIT_FPS
    return n_frames / duration_s


def place_vit(values: np.ndarray, duration_s: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(T, 384) -> the same frames at ``t_k = (k + 0.5) / fps``, ``fps`` from :func:`vit_rate`."""
    rate = vit_rate(len(values), duration_s)
    return values, ((np.arange(len(values)) + 0.5) / rate).astype(np.float32)


def wav2vec2_times(n_frames: int) -> np.ndarray:
    """(n_frames,) float32 centres of 50 Hz wav2vec2 frames: ``(k + 0.5) * 0.02`` s."""
    return ((np.arange(n_frames) + 0.5) * WAV2VEC2_FRAME_S).astype(np.float32)


@dataclass(frozen=True)
class PickleInput:
    """One clip's pickle and its duration from the decode status (None when unknown)."""

    clip_id: str
    path: Path
    duration_s: float | None = None


class HumeExtractor:
    """FeatureExtractor over the organisers' pickles: PickleInput -> (T, dim) placed by ``place``."""

    def __init__(self, source: Source, place: Placement) -> None:
        self.source, self.place = source, place
        self.modality, self.model_name, self.dim = source.modality, source.name, source.dim

    def extract_batch(self, inputs: Sequence[PickleInput]) -> list[ClipFeatures]:
        """One record per input; a refused or malformed pickle is that clip's missing record."""
        return [self._clip(item) for item in inputs]

    def _clip(self, item: PickleInput) -> ClipFeatures:
        name = f"{self.source.folder}/{item.path.name}"
        try:
            values = load_array(item.path, width=self.dim, source=str(item.path))
        except UnsafePickle as error:
            print(f"warning: {item.clip_id}: {error}", file=sys.stderr, flush=True)
            reason = f"unsafe pickle: {error.source}: refused {error.refused} (nothing of it ran)"
            return ClipFeatures.missing(item.clip_id, self.dim, reason)
        except BadPickle as error:
            reason = str(error).replace(str(item.path), name)
            return ClipFeatures.missing(item.clip_id, self.dim, f"malformed pickle: {reason}")
        values, times = self.place(values, item.duration_s)
        return ClipFeatures(item.clip_id, values, times, np.ones(len(times), bool), available=True)

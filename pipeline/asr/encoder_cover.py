"""The encoder states of a clip's regular 30 s windows (pipeline/whisper/windows.py), collected
while faster-whisper transcribes it, for features@audio: at any clip length, one encoder pass
serves both stages.

While inside :func:`recording`, the log-mel faster-whisper computes and every window it encodes
are seen: a window that is exactly cover window k is kept; one at another offset (its decoder
seeks to the end of the last full segment, which is rarely a multiple of 30 s) is used by the
decoder only. :meth:`Cover.complete` then encodes the cover windows the decoder never encoded
(windows it skipped, or seeks that fell between grid points), so features@audio encodes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import ctranslate2
import numpy as np

from pipeline.whisper import windows
from pipeline.whisper.encoder_states import STORED


class _CapturingExtractor:
    """faster-whisper's feature extractor, keeping the last log-mel it returned."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.mel: np.ndarray | None = None

    def __call__(self, *args, **kwargs) -> np.ndarray:
        self.mel = self.inner(*args, **kwargs)
        return self.mel

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


class Cover:
    """The cover windows' (1500, D) states of one clip, as float16 (as they are stored)."""

    def __init__(self, model, n_samples: int) -> None:
        self.model = model
        self.n_samples = n_samples
        self.mel: np.ndarray | None = None
        self.states: dict[int, np.ndarray] = {}
        self.decoder_passes = 0  # windows faster-whisper encoded (any offset)
        self.cover_passes = 0  # cover windows encoded here because the decoder did not

    def seen(self, segment: np.ndarray, output) -> None:
        self.decoder_passes += 1
        k = None if self.mel is None else windows.which(segment, self.mel, self.n_samples)
        if k is not None and k not in self.states:
            on_cpu = output if output.device == "cpu" else output.to_device(ctranslate2.Device.cpu)
            self.states[k] = np.array(on_cpu)[0].astype(STORED)

    def complete(self, samples: np.ndarray) -> np.ndarray:
        """(T, D) float16 states of the clip's real frames, window after window, encoding the
        cover windows not seen (with the log-mel computed once, by faster-whisper or here)."""
        if self.mel is None:
            self.mel = self.model.feature_extractor(samples)
        storage = ctranslate2.StorageView.from_array
        parts = []
        for k in range(windows.count(self.n_samples)):
            if k not in self.states:
                batch = np.ascontiguousarray(windows.window(self.mel, k)[None])
                self.states[k] = np.array(self.model.model.encode(storage(batch), to_cpu=True))[0].astype(STORED)
                self.cover_passes += 1
            parts.append(self.states[k][: windows.real_window_frames(self.n_samples, k)])
        return np.concatenate(parts)


@contextlib.contextmanager
def recording(model, n_samples: int) -> Iterator[Cover]:
    """Inside, ``model`` (a ``faster_whisper.WhisperModel``) reports its log-mel and encoded
    windows to the yielded :class:`Cover`; its own extractor and encoder again after."""
    cover = Cover(model, n_samples)
    extractor = model.feature_extractor
    capturing = _CapturingExtractor(extractor)
    encode = model.encode

    def recorded(features: np.ndarray):
        cover.mel = capturing.mel
        output = encode(features)
        cover.seen(features[0] if features.ndim == 3 else features, output)
        return output

    model.feature_extractor = capturing
    model.encode = recorded
    try:
        yield cover
    finally:
        model.feature_extractor = extractor
        del model.encode  # the class's method again
        cover.mel = capturing.mel if cover.mel is None else cover.mel

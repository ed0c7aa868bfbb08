"""Audio features from the Whisper encoder of the same CTranslate2 model as ASR (``audio.py`` has the overview)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from pipeline.decoded import AudioInput
from pipeline.features import ClipFeatures
from pipeline.features.audio.frames import Window, finish_clip, pool_frames, samples_problem
from pipeline.runtime.devices import usable_cpus
from pipeline.whisper import encoder_states, windows
from pipeline.whisper.geometry import (
    FRAME_SAMPLES,
    HOP_SAMPLES,
    SAMPLE_RATE,
    WINDOW_MEL,
    WINDOW_SAMPLES,
    frame_times,
    real_frames,
)
from pipeline.whisper.models import as_16bit, load_whisper_model, to_whisper_rate

# The CTranslate2 model does not expose its width; it is read off one encoded window per process.
_whisper_dims: dict[tuple[str, str, str], int] = {}


class WhisperEncoderExtractor:
    """Whisper encoder states of a CTranslate2 model (``pipeline.whisper.models`` names)."""

    modality = "audio"

    def __init__(
        self,
        *,
        whisper_model: str,
        compute_type: str,
        pool_fps: float | None,
        window_s: float,
        batch_size: int,
        device: str,
    ) -> None:
        import ctranslate2

        # Whole encoder frames per window, so every window starts on a frame boundary.
        if not 0 < window_s <= 30 or abs(window_s * 50 - round(window_s * 50)) > 1e-9:
            raise ValueError(f"window_s must be a multiple of 0.02 s in (0, 30] for Whisper, got {window_s}")
        self._storage = ctranslate2.StorageView.from_array
        self.model = load_whisper_model(
            whisper_model, device=device, compute_type=compute_type, cpu_threads=usable_cpus()
        )
        self.model_name = encoder_states.model_name(whisper_model, compute_type)
        self.pool_fps = pool_fps
        self.window_mel = 2 * round(window_s * 50)
        # Windows holding whole pooling bins (30 s at 5 Hz: 150 bins) are pooled as soon as they are
        # encoded, the same bins and sums as pooling the clip at the end, so a long clip never holds
        # its 50 Hz states (120 MB for 20 minutes).
        self._pool_windows = pool_fps is not None and abs(window_s * pool_fps - round(window_s * pool_fps)) < 1e-9
        self.batch_size = batch_size
        self.n_mels = self.model.feature_extractor.mel_filters.shape[0]
        key = (whisper_model, compute_type, device)
        if key not in _whisper_dims:
            _whisper_dims[key] = int(self._encode(np.zeros((1, self.n_mels, WINDOW_MEL), np.float32)).shape[-1])
        self.dim = _whisper_dims[key]

    def _encode(self, batch: np.ndarray) -> np.ndarray:
        """(B, n_mels, 3000) float32 -> (B, 1500, D) float32."""
        return np.array(self.model.model.encode(self._storage(np.ascontiguousarray(batch)), to_cpu=True))

    def _windows(self, index: int, samples: np.ndarray) -> Iterator[Window]:
        """The clip's windows, cut one at a time; the log-mel is computed now (its errors are the clip's)."""
        mel = self.model.feature_extractor(samples)  # (n_mels, N // 160 + 1), whole-clip normalisation
        return self._cut(index, mel, len(samples))

    def _cut(self, index: int, mel: np.ndarray, n_samples: int) -> Iterator[Window]:
        # The regular cover of pipeline/whisper/windows.py: the windows faster-whisper cuts when it
        # seeks to a multiple of window_s, so that ASR's kept states are these windows' states.
        window_s = self.window_mel * HOP_SAMPLES / SAMPLE_RATE
        for k, array in windows.cover(mel, n_samples, self.window_mel):
            yield Window(index, array, k * window_s, windows.real_window_frames(n_samples, k, self.window_mel))

    def _shared(self, item: AudioInput, n_samples: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """The clip's windows as (states, times) from the states ASR kept, pooled as encoded windows
        are; None when there are none from this encoder for exactly this audio's cover."""
        states = item.encoder_states
        if states is None or item.encoder_model != self.model_name or self.window_mel != WINDOW_MEL:
            return None
        if states.shape != (real_frames(n_samples), self.dim):
            return None
        parts, first = [], 0
        for k in range(windows.count(n_samples)):
            n = windows.real_window_frames(n_samples, k)
            part = (states[first : first + n], frame_times(n, k * WINDOW_SAMPLES / SAMPLE_RATE).astype(np.float32))
            parts.append(pool_frames(*part, self.pool_fps) if self._pool_windows else part)
            first += n
        return parts

    def extract_batch(self, inputs: Sequence[AudioInput]) -> list[ClipFeatures]:
        """One record per input, in order; windows of different clips share encoder batches. A clip
        with the encoder states ASR kept (:mod:`pipeline.whisper.encoder_states`) is not encoded again."""
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in inputs]
        errors: dict[int, str] = {}
        pending: list[Window] = []
        frame_s = FRAME_SAMPLES / SAMPLE_RATE

        def flush() -> None:
            try:
                if pending:
                    out = self._encode(np.stack([w.array for w in pending]))
                    for window, states in zip(pending, out, strict=True):
                        part = (states[: window.n_frames], window.times(window.n_frames, frame_s).astype(np.float32))
                        parts[window.clip].append(pool_frames(*part, self.pool_fps) if self._pool_windows else part)
            except Exception as error:  # noqa: BLE001 - a failed batch marks only its clips
                for window in pending:
                    errors.setdefault(window.clip, f"error: {type(error).__name__}: {error}")
            pending.clear()

        for index, item in enumerate(inputs):
            if samples_problem(item):
                continue
            samples = as_16bit(to_whisper_rate(np.asarray(item.samples, np.float32), item.sample_rate))
            shared = self._shared(item, len(samples))
            if shared is not None:
                parts[index].extend(shared)
                continue
            try:
                windows = self._windows(index, samples)
            except Exception as error:  # noqa: BLE001 - one bad clip must not stop the batch
                errors[index] = f"error: {type(error).__name__}: {error}"
                continue
            for window in windows:
                pending.append(window)
                if len(pending) == self.batch_size:
                    flush()
        flush()
        records = []
        for index, item in enumerate(inputs):
            reason = samples_problem(item) or errors.get(index)
            if reason:
                records.append(ClipFeatures.missing(item.clip_id, self.dim, reason))
            else:
                records.append(finish_clip(item.clip_id, parts[index], None if self._pool_windows else self.pool_fps))
        return records

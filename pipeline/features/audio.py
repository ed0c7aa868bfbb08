"""Audio features per clip: Whisper encoder states (offline default) or a Hugging Face speech model.

Both produce a (T, D) sequence of frame states at the model's own rate (50 Hz: one frame per
320 samples of 16 kHz audio), cut to the frames that cover real audio (``ceil(N / 320)``), then
optionally average-pooled to ``pool_fps``.

- ``"whisper-encoder"``: the encoder of the same CTranslate2 Whisper model as ASR, on the same
  input (the audio on the 16-bit grid, ``whisper_models.as_16bit``). The log-mel of the whole
  clip is computed once (normalised over the whole clip, exactly as both Whisper implementations
  do before transcribing), cut into ``window_s`` windows of its content frames (as faster-whisper
  cuts them), each zero-padded to the encoder's fixed 3000 mel frames (30 s), encoded in batches
  of ``batch_size`` windows across clips: (B, n_mels, 3000) -> (B, 1500, D), D = 512 for base,
  384 for tiny.en. A clip of at most 30 s whose states ASR kept (``pipeline.encoder_states``,
  same model and compute type, ``window_s`` 30) is not encoded again: its kept states are pooled.
- Any Hugging Face model with a convolutional waveform encoder (wav2vec2, HuBERT, WavLM, ...):
  last hidden state per frame. For checkpoints of audeering's dimensional emotion model (config
  ``architectures`` = ``Wav2Vec2ForSpeechClassification`` / ``EmotionModel``) the regression
  head's logits (arousal, dominance, valence), computed on the clip's mean-pooled states, are
  appended to every frame: 1024 + 3 = 1027-d for the large model, TAEMI's audio input.

Frame k of a clip sits at ``(k + 0.5) * 0.02`` s; a pooled bin b at its centre ``(b + 0.5) / pool_fps``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline import encoder_states
from pipeline.config import AudioFeatureParams
from pipeline.decoded import AudioInput
from pipeline.features import ClipFeatures
from pipeline.runtime import usable_cpus
from pipeline.whisper_models import WHISPER_SAMPLE_RATE, as_16bit, load_whisper_model, to_whisper_rate

WHISPER_HOP = 160  # samples per mel frame
WHISPER_FRAME = encoder_states.FRAME_SAMPLES  # samples per encoder frame
WHISPER_WINDOW_MEL = 3000  # the encoder's fixed input length: 30 s of mel frames
# Fewer samples than one encoder frame carry nothing a 20 ms frame can describe.
MIN_SAMPLES = WHISPER_FRAME
_EMOTION_ARCHITECTURES = {"Wav2Vec2ForSpeechClassification", "EmotionModel"}


def unavailable_reason(item: AudioInput) -> str | None:
    """Why a clip has no audio features (None when it has some)."""
    if item.samples is None:
        return item.reason or "no_audio"
    if len(item.samples) * WHISPER_SAMPLE_RATE < MIN_SAMPLES * item.sample_rate:
        return f"too_short: {len(item.samples)} samples at {item.sample_rate} Hz"
    if not np.any(item.samples):
        return "silent: all samples are zero"
    if not np.isfinite(item.samples).all():
        return "invalid: non-finite samples"
    return None


def pool_frames(values: np.ndarray, times: np.ndarray, pool_fps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Average (T, D) frames at ``times`` (T,) into bins of ``1 / pool_fps`` s -> ((B, D), (B,) bin centres).

    Bin b holds the frames with ``floor(time * pool_fps) == b``; frames are contiguous, so no
    bin between the first and the last is empty.
    """
    if pool_fps is None or len(times) == 0:
        return values, times
    bins = np.floor(times.astype(np.float64) * pool_fps).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    sums = np.add.reduceat(values.astype(np.float64), starts, axis=0)
    counts = np.diff(np.r_[starts, len(bins)])[:, None]
    return (sums / counts).astype(np.float32), ((bins[starts] + 0.5) / pool_fps).astype(np.float32)


def _finish(clip_id: str, parts: list[tuple[np.ndarray, np.ndarray]], pool_fps: float | None) -> ClipFeatures:
    """Concatenate a clip's windows, each ((T_w, D) states, (T_w,) times), then pool (``pool_fps``
    None: the windows were pooled already, or are kept at 50 Hz)."""
    frames = np.concatenate([states for states, _ in parts]).astype(np.float32)
    times = np.concatenate([times for _, times in parts]).astype(np.float32)
    values, times = pool_frames(frames, times, pool_fps)
    return ClipFeatures(clip_id, values, times, np.ones(len(times), bool), available=True)


@dataclass
class _Window:
    clip: int  # index into the batch's inputs
    array: np.ndarray  # the model input of this window
    offset_s: float  # where the window starts in its clip
    n_frames: int = 0  # output frames that cover real audio (Whisper; HF models cut their own)

    def times(self, n_frames: int, frame_s: float) -> np.ndarray:
        """(n_frames,) frame centres in clip time; each window restarts the count at its own start."""
        return self.offset_s + (np.arange(n_frames) + 0.5) * frame_s


# The CTranslate2 model does not expose its width; it is read off one encoded window per process.
_whisper_dims: dict[tuple[str, str, str], int] = {}


class WhisperEncoderExtractor:
    """Whisper encoder states of a CTranslate2 model (``pipeline.whisper_models`` names)."""

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
            _whisper_dims[key] = int(self._encode(np.zeros((1, self.n_mels, WHISPER_WINDOW_MEL), np.float32)).shape[-1])
        self.dim = _whisper_dims[key]

    def _encode(self, batch: np.ndarray) -> np.ndarray:
        """(B, n_mels, 3000) float32 -> (B, 1500, D) float32."""
        return np.array(self.model.model.encode(self._storage(np.ascontiguousarray(batch)), to_cpu=True))

    def _windows(self, index: int, samples: np.ndarray) -> Iterator[_Window]:
        """The clip's windows, cut one at a time; the log-mel is computed now (its errors are the clip's)."""
        mel = self.model.feature_extractor(samples)  # (n_mels, N // 160 + 1), whole-clip normalisation
        return self._cut(index, mel, len(samples))

    def _cut(self, index: int, mel: np.ndarray, n_samples: int) -> Iterator[_Window]:
        # The last mel frame covers only the extractor's padding: faster-whisper leaves it out of
        # its windows, and so do these, so that a clip's first window is the one ASR encodes.
        content = mel.shape[1] - 1
        window_samples = self.window_mel * WHISPER_HOP
        for start in range(0, n_samples, window_samples):
            real = min(window_samples, n_samples - start)
            first = start // WHISPER_HOP
            piece = mel[:, first : min(first + self.window_mel, content)]
            padded = np.zeros((self.n_mels, WHISPER_WINDOW_MEL), np.float32)
            padded[:, : piece.shape[1]] = piece
            yield _Window(index, padded, start / WHISPER_SAMPLE_RATE, encoder_states.real_frames(real))

    def _shared(self, item: AudioInput, n_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The clip's (states, times) from the states ASR kept, pooled as an encoded window would
        be; None when there are none from this encoder for exactly this audio in one window."""
        states = item.encoder_states
        if states is None or item.encoder_model != self.model_name or self.window_mel != WHISPER_WINDOW_MEL:
            return None
        if not encoder_states.shareable(n_samples) or states.shape != (encoder_states.real_frames(n_samples), self.dim):
            return None
        times = ((np.arange(len(states)) + 0.5) * (WHISPER_FRAME / WHISPER_SAMPLE_RATE)).astype(np.float32)
        return pool_frames(states, times, self.pool_fps) if self._pool_windows else (states, times)

    def extract_batch(self, inputs: Sequence[AudioInput]) -> list[ClipFeatures]:
        """One record per input, in order; windows of different clips share encoder batches. A clip
        with the encoder states ASR kept (:mod:`pipeline.encoder_states`) is not encoded again."""
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in inputs]
        errors: dict[int, str] = {}
        pending: list[_Window] = []
        frame_s = WHISPER_FRAME / WHISPER_SAMPLE_RATE

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
            if unavailable_reason(item) is not None:
                continue
            samples = as_16bit(to_whisper_rate(np.asarray(item.samples, np.float32), item.sample_rate))
            shared = self._shared(item, len(samples))
            if shared is not None:
                parts[index].append(shared)
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
            reason = unavailable_reason(item) or errors.get(index)
            if reason is not None:
                records.append(ClipFeatures.missing(item.clip_id, self.dim, reason))
            else:
                records.append(_finish(item.clip_id, parts[index], None if self._pool_windows else self.pool_fps))
        return records


_emotion_model_class = None


def emotion_model_class():
    """audeering's ``EmotionModel``: Wav2Vec2 + regression head on mean-pooled last states.

    Built on first use so importing this module does not import transformers. The head is
    dense -> tanh -> dropout -> out_proj, with the checkpoint's own key names
    (``wav2vec2.*``, ``classifier.dense.*``, ``classifier.out_proj.*``).
    """
    global _emotion_model_class
    if _emotion_model_class is None:
        import torch
        from transformers import Wav2Vec2Model, Wav2Vec2PreTrainedModel

        class RegressionHead(torch.nn.Module):
            def __init__(self, config) -> None:
                super().__init__()
                self.dense = torch.nn.Linear(config.hidden_size, config.hidden_size)
                self.dropout = torch.nn.Dropout(config.final_dropout)
                self.out_proj = torch.nn.Linear(config.hidden_size, config.num_labels)

            def forward(self, pooled: torch.Tensor) -> torch.Tensor:
                """(B, H) -> (B, num_labels)."""
                return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(pooled)))))

        class EmotionModel(Wav2Vec2PreTrainedModel):
            def __init__(self, config) -> None:
                super().__init__(config)
                self.wav2vec2 = Wav2Vec2Model(config)
                self.classifier = RegressionHead(config)
                self.post_init()

            def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None):
                """(B, N) -> last hidden states (B, T, H); the head is applied by the caller."""
                return self.wav2vec2(input_values, attention_mask=attention_mask)

        _emotion_model_class = EmotionModel
    return _emotion_model_class


class HFAudioExtractor:
    """Last hidden states of a Hugging Face speech encoder (+ emotion logits for audeering-style heads)."""

    modality = "audio"

    def __init__(
        self,
        *,
        model_id: str,
        pool_fps: float | None,
        window_s: float,
        batch_size: int,
        device: str,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        config = AutoConfig.from_pretrained(model_id)
        self.processor = AutoFeatureExtractor.from_pretrained(model_id)
        self.has_head = bool(set(config.architectures or ()) & _EMOTION_ARCHITECTURES)
        if self.has_head:
            model, info = emotion_model_class().from_pretrained(model_id, output_loading_info=True)
            missing = [k for k in info["missing_keys"] if k.startswith("classifier.")]
            if missing:
                raise ValueError(f"{model_id}: config names an emotion head but the checkpoint lacks {missing}")
        else:
            model = AutoModel.from_pretrained(model_id)
        if not hasattr(model, "_get_feat_extract_output_lengths"):
            raise ValueError(f"{model_id}: not a waveform encoder (wav2vec2/HuBERT/WavLM family)")
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.sample_rate = int(self.processor.sampling_rate)
        self.stride = int(np.prod(config.conv_stride))
        self.window = round(window_s * self.sample_rate)
        self.use_mask = bool(getattr(self.processor, "return_attention_mask", False))
        self.model_name = model_id
        self.pool_fps = pool_fps
        self.batch_size = batch_size
        self.dim = int(config.hidden_size) + (int(config.num_labels) if self.has_head else 0)

    def _n_frames(self, n_samples: int) -> int:
        import torch

        return int(self.model._get_feat_extract_output_lengths(torch.tensor(n_samples)))

    def _split(self, index: int, samples: np.ndarray) -> list[_Window]:
        """(N,) -> windows of ``window_s``; a last piece too short for one frame joins the one before."""
        starts = list(range(0, len(samples), self.window))
        if len(starts) > 1 and self._n_frames(len(samples) - starts[-1]) < 1:
            starts.pop()
        ends = [*starts[1:], len(samples)]
        return [_Window(index, samples[a:b], a / self.sample_rate) for a, b in zip(starts, ends, strict=True)]

    def _forward(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Windows of (N_i,) float32 -> their last hidden states (T_i, H) float32."""
        import torch

        batch = self.processor(
            arrays,
            sampling_rate=self.sample_rate,
            padding=True,
            return_tensors="pt",
            return_attention_mask=self.use_mask,
        )
        values = batch["input_values"].to(self.device)
        mask = batch["attention_mask"].to(self.device) if self.use_mask else None
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
            out = self.model(values, attention_mask=mask) if mask is not None else self.model(values)
        states = out.last_hidden_state.float().cpu().numpy()
        return [states[i, : self._n_frames(len(a))] for i, a in enumerate(arrays)]

    def _head(self, frames: np.ndarray) -> np.ndarray:
        """(T, H) -> (num_labels,) logits of the clip's mean-pooled states."""
        import torch

        with torch.inference_mode():
            pooled = torch.from_numpy(frames.mean(axis=0, keepdims=True)).to(self.device)
            return self.model.classifier(pooled).float().cpu().numpy()[0]

    def extract_batch(self, inputs: Sequence[AudioInput]) -> list[ClipFeatures]:
        """One record per input, in order. Windows are batched by length: unequal lengths share a
        batch only when the model takes an attention mask (zero padding would change the others)."""
        windows: list[_Window] = []
        errors: dict[int, str] = {}
        for index, item in enumerate(inputs):
            if unavailable_reason(item) is None:
                samples = np.asarray(item.samples, np.float32)
                if item.sample_rate != self.sample_rate:
                    samples = (
                        to_whisper_rate(samples, item.sample_rate) if self.sample_rate == WHISPER_SAMPLE_RATE else None
                    )
                if samples is None:
                    errors[index] = f"error: audio at {item.sample_rate} Hz, model wants {self.sample_rate} Hz"
                elif self._n_frames(len(samples)) < 1:
                    errors[index] = f"too_short: {len(samples)} samples, shorter than one frame of the model"
                else:
                    windows += self._split(index, samples)
        # Longest first, stable: equal-length windows (all full ones) end up side by side.
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i].array))
        states: dict[int, np.ndarray] = {}
        start = 0
        while start < len(order):
            group = [order[start]]
            while len(group) < self.batch_size and start + len(group) < len(order):
                nxt = order[start + len(group)]
                if not self.use_mask and len(windows[nxt].array) != len(windows[group[0]].array):
                    break
                group.append(nxt)
            try:
                for i, out in zip(group, self._forward([windows[i].array for i in group]), strict=True):
                    states[i] = out
            except Exception as error:  # noqa: BLE001 - a failed batch marks only its clips
                for i in group:
                    errors.setdefault(windows[i].clip, f"error: {type(error).__name__}: {error}")
            start += len(group)
        records = []
        for index, item in enumerate(inputs):
            reason = unavailable_reason(item) or errors.get(index)
            if reason is not None:
                records.append(ClipFeatures.missing(item.clip_id, self.dim, reason))
                continue
            frame_s = self.stride / self.sample_rate
            parts = [(states[i], w.times(len(states[i]), frame_s)) for i, w in enumerate(windows) if w.clip == index]
            if self.has_head:
                logits = self._head(np.concatenate([frames for frames, _ in parts]))
                parts = [
                    (np.concatenate([f, np.broadcast_to(logits, (len(f), len(logits)))], axis=1), t) for f, t in parts
                ]
            records.append(_finish(item.clip_id, parts, self.pool_fps))
        return records


def build_audio_extractor(params: AudioFeatureParams, *, device: str):
    """The extractor ``features.audio.model`` names; ``device`` is "cpu" or "cuda"."""
    if params.model == "whisper-encoder":
        return WhisperEncoderExtractor(
            whisper_model=params.whisper_model,
            compute_type=params.compute_type,
            pool_fps=params.pool_fps,
            window_s=params.window_s,
            batch_size=params.batch_size,
            device=device,
        )
    return HFAudioExtractor(
        model_id=params.model,
        pool_fps=params.pool_fps,
        window_s=params.window_s,
        batch_size=params.batch_size,
        device=device,
    )

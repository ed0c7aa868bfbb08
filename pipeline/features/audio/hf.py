"""Audio features from a Hugging Face speech encoder (wav2vec2, HuBERT, WavLM; ``audio.py`` has the overview)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.decoded import AudioInput
from pipeline.features import ClipFeatures
from pipeline.features.audio.frames import Window, finish_clip, samples_problem
from pipeline.whisper.geometry import SAMPLE_RATE
from pipeline.whisper.models import to_whisper_rate

_EMOTION_ARCHITECTURES = {"Wav2Vec2ForSpeechClassification", "EmotionModel"}


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

    def _split(self, index: int, samples: np.ndarray) -> list[Window]:
        """(N,) -> windows of ``window_s``; a last piece too short for one frame joins the one before."""
        starts = list(range(0, len(samples), self.window))
        if len(starts) > 1 and self._n_frames(len(samples) - starts[-1]) < 1:
            starts.pop()
        ends = [*starts[1:], len(samples)]
        return [Window(index, samples[a:b], a / self.sample_rate) for a, b in zip(starts, ends, strict=True)]

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
        windows: list[Window] = []
        errors: dict[int, str] = {}
        for index, item in enumerate(inputs):
            if not samples_problem(item):
                samples = np.asarray(item.samples, np.float32)
                if item.sample_rate != self.sample_rate:
                    samples = to_whisper_rate(samples, item.sample_rate) if self.sample_rate == SAMPLE_RATE else None
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
            reason = samples_problem(item) or errors.get(index)
            if reason:
                records.append(ClipFeatures.missing(item.clip_id, self.dim, reason))
                continue
            frame_s = self.stride / self.sample_rate
            parts = [(states[i], w.times(len(states[i]), frame_s)) for i, w in enumerate(windows) if w.clip == index]
            if self.has_head:
                logits = self._head(np.concatenate([frames for frames, _ in parts]))
                parts = [
                    (np.concatenate([f, np.broadcast_to(logits, (len(f), len(logits)))], axis=1), t) for f, t in parts
                ]
            records.append(finish_clip(item.clip_id, parts, self.pool_fps))
        return records

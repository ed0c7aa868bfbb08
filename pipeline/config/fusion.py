"""Params of the fusion model and its training and evaluation (fusion, train, evaluate)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Modality, Section


class UstcParams(Section):
    """Switches of the USTC model (seed 001, Table 3) and its stage-1 pretraining."""

    # Temporal Feature Enhancer: TCN + segment pooling (visual), BiLSTM + gated attention (audio);
    # false: masked mean of the linearly projected features (Table 3 baseline).
    tfe: bool = True
    # Quality-Aware Module: learned softmax weights over modalities; false: equal weights.
    qam: bool = True
    # Sizes: levels and kernel of the TCN (dilation doubles per level), segments of the segment pooling,
    # layers of the Transformer encoder over the modalities.
    tcn_levels: int = Field(default=3, ge=1)
    tcn_kernel: int = Field(default=3, ge=2)
    segments: int = Field(default=8, ge=1)
    encoder_layers: int = Field(default=2, ge=1)
    # Vision-text and audio-text InfoNCE on the train split before the regression (needs text), for
    # contrastive_epochs epochs at temperature `temperature`.
    contrastive_pretrain: bool = False
    contrastive_epochs: int = Field(default=5, ge=1)
    temperature: float = Field(default=0.07, gt=0.0)


class TemporalParams(Section):
    """The frame-level fusion models (tasks va, expr, au; ``models/frame_*.py``)."""

    # Transformer encoder layers over a window's frames.
    layers: int = Field(default=2, ge=1)
    # Reliability-aware fusion: learned latents that summarise the audio/context stream of a window.
    audio_latents: int = Field(default=4, ge=1)
    # Directed cross-modal mixture of experts: hidden width of the gating network.
    gate_hidden: int = Field(default=64, ge=4)


# The fusion models: clip-level (task emi) and frame-level (tasks va, expr, au).
CLIP_MODELS: tuple[str, ...] = ("taemi", "ustc")
FRAME_MODELS: tuple[str, ...] = ("visual_temporal", "reliability", "moe", "dual_branch")


def _vision_is_visual(value: Any) -> Any:
    # The TAEMI paper says "vision"; the pipeline's modality name is "visual". Accept both.
    return "visual" if value == "vision" else value


class FusionParams(Section):
    """The fusion model (stage ``train``; ``evaluate`` reads it back from ``data/model/config.json``)."""

    # Clip level (task emi): taemi (seed 002) or ustc (seed 001). Frame level (va, expr, au):
    # visual_temporal (the visual-only baseline), reliability (seed 003's reliability-aware
    # audio-visual fusion), moe (its directed cross-modal mixture of experts) or dual_branch (seed
    # 003 abstract 4: dual-branch Transformer with safe cross-attention).
    model: Literal["taemi", "ustc", "visual_temporal", "reliability", "moe", "dual_branch"] = "taemi"
    # The modalities the model uses ("vision" is accepted for visual), e.g. [audio, text].
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
    # Width of the projected features and of attention (a multiple of n_heads), TAEMI's cross-attention
    # output and head width, attention heads, dropout.
    d_model: int = Field(default=256, ge=8)
    out_dim: int = Field(default=512, ge=8)
    n_heads: int = Field(default=4, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    # Sequence budget per clip: a longer sequence is pooled into this many segments spanning the whole
    # clip (400 visual frames: 80 s at 5 fps; 600 audio frames: 120 s at 5 Hz), docs/models.md.
    max_visual_frames: int = Field(default=400, ge=1)
    max_audio_frames: int = Field(default=600, ge=1)
    ustc: UstcParams = UstcParams()
    temporal: TemporalParams = TemporalParams()

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
class TrainParams(Section):
    """Training of the fusion model (stage ``train``): TAEMI's recipe by default (seed 002, 3.5 and 4.1)."""

    # Seed of initialisation, batch order and dropout; training is deterministic on CPU.
    seed: int = 0
    # AdamW learning rate and weight decay, clips per batch, the most epochs.
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
    # Gradients are clipped to this total norm.
    grad_clip: float = Field(default=100.0, gt=0.0)
    # Task emi: mse, or pearson = 1 - mean over the six emotions of the batch Pearson correlation.
    # The frame-level tasks take their losses from their own sections (va, expr, au).
    loss: Literal["mse", "pearson"] = "mse"
    # Decay of the weight EMA used for validation and saved (seed 001: 0.999); null = off.
    ema: float | None = Field(default=None, gt=0.0, lt=1.0)


# ----------------------------------------------------------------------------------- evaluate
class EvaluateParams(Section):
    """Scores of the trained model and its robustness to missing modalities (stage ``evaluate``)."""

    # Fraction of modality slots dropped at random in the robustness evaluation.
    missing_fraction: float = Field(default=0.3, ge=0.0, le=1.0)
    # Seed of that random drop.
    robustness_seed: int = 0


# ------------------------------------------------------------------------- frame-level tasks
class FramesParams(Section):
    """Windows of decoded frames (at ``decode.fps``) that the frame-level models see (tasks va, expr, au)."""

    # Frames per window (64 at 5 fps: 12.8 s) and the step between window starts; predictions of
    # overlapping windows are averaged, and the last window is aligned to the track's end.
    window: int = Field(default=64, ge=2)
    stride: int = Field(default=32, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FramesParams:
        if self.stride > self.window:
            raise ValueError(
                f"frames.stride ({self.stride}) exceeds frames.window ({self.window}): frames would be skipped"
            )
        return self


class VaParams(Section):
    """Task va: valence and arousal in [-1, 1] per frame, scored by CCC."""

    # ccc: 1 - mean CCC of valence and arousal over the batch's valid frames; mse_weight adds an MSE term.
    loss: Literal["ccc", "mse"] = "ccc"
    mse_weight: float = Field(default=0.0, ge=0.0)
    # Half-width, in annotated frames, of the box filter over each track's predictions (0: off;
    # the anchors gained up to +0.06 CCC from about 50 frames).
    smoothing: int = Field(default=0, ge=0)


class ExprParams(Section):
    """Task expr: one of 8 expression classes per frame, scored by macro F1."""

    # focal (seed 003 abstract 4) or ce (cross-entropy); class_weights: inverse class frequency of the
    # training frames, normalised to mean 1 (the classes are very unbalanced).
    loss: Literal["focal", "ce"] = "focal"
    focal_gamma: float = Field(default=2.0, ge=0.0)
    class_weights: bool = True
    # Half-width, in annotated frames, of the soft-voting window over the class probabilities.
    smoothing: int = Field(default=0, ge=0)


class AuParams(Section):
    """Task au: 12 action units per frame (multi-label), scored by mean F1."""

    # Binary cross-entropy with each AU's positives weighted by negatives / positives of the training frames.
    pos_weight: bool = True
    # Per-AU decision thresholds chosen on the validation split (recorded with the model), or 0.5.
    thresholds: Literal["valid", "fixed"] = "valid"
    # Half-width, in annotated frames, of the box filter over the AU probabilities.
    smoothing: int = Field(default=0, ge=0)

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
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from pipeline.config.base import MODALITIES, Modality, Section
from pipeline.config.features import AudioFeatureParams, FeatureParams, TextFeatureParams, VisualFeatureParams
from pipeline.config.fusion import (
    CLIP_MODELS,
    FRAME_MODELS,
    AuParams,
    EvaluateParams,
    ExprParams,
    FramesParams,
    FusionParams,
    TemporalParams,
    TrainParams,
    UstcParams,
    VaParams,
)
from pipeline.config.media import AsrParams, DataParams, DecodeParams, DemoParams, DemoTracksParams
from pipeline.config.run import GateParams, GridParams, RuntimeParams

__all__ = [
    "ALL_KEYS", "CLIP_MODELS", "FRAME_MODELS", "FRAME_TASKS", "MODALITIES", "STAGE_SECTIONS", "TASKS",
    "UNTRACKED_SECTIONS", "AsrParams", "AuParams", "AudioFeatureParams", "DataParams", "DecodeParams", "DemoParams",
    "DemoTracksParams", "EvaluateParams", "ExprParams", "FeatureParams", "FramesParams", "FusionParams", "GateParams",
    "GridParams", "Modality", "Params", "ParamsError", "RuntimeParams", "TemporalParams", "TextFeatureParams",
    "TrainParams", "UstcParams", "VaParams", "VisualFeatureParams", "load_params", "parse_params", "stage_keys",
]  # fmt: skip

# The ABAW tasks: emi (clip level, Hume-Vidmimic2) and the Aff-Wild2 frame-level tracks. Their
# definitions are pipeline/tasks (tests/test_config.py checks these names against it); the schema
# does not import it, so that an edit there reruns only the stages that read the task.
TaskName = Literal["emi", "va", "expr", "au"]
TASKS: tuple[str, ...] = ("emi", "va", "expr", "au")
FRAME_TASKS: tuple[str, ...] = ("va", "expr", "au")
# The data sources each level of task reads (demo: the built-in demo of that level).
_SOURCES = {"clip": ("demo", "hume", "manifest"), "frame": ("demo", "affwild2")}


class Params(Section):
    """The whole params.yaml: the task, then one section per stage or group of stages."""

    # emi: six intensities per clip (Hume-Vidmimic2); va, expr, au: valence-arousal, expression,
    # action units per frame (Aff-Wild2). The stages downstream of features read it.
    task: TaskName = "emi"
    data: DataParams = DataParams()
    demo: DemoParams = DemoParams()
    decode: DecodeParams = DecodeParams()
    asr: AsrParams = AsrParams()
    features: FeatureParams = FeatureParams()
    fusion: FusionParams = FusionParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    frames: FramesParams = FramesParams()
    va: VaParams = VaParams()
    expr: ExprParams = ExprParams()
    au: AuParams = AuParams()
    gate: GateParams = GateParams()
    grid: GridParams = GridParams()
    runtime: RuntimeParams = RuntimeParams()

    @model_validator(mode="after")
    def _task_fits(self) -> Params:
        level = "frame" if self.task in FRAME_TASKS else "clip"
        if self.data.source not in _SOURCES[level]:
            raise ValueError(
                f"task {self.task} is {level}-level: data.source must be one of {list(_SOURCES[level])}, "
                f"not {self.data.source!r}"
            )
        models = FRAME_MODELS if level == "frame" else CLIP_MODELS
        if self.fusion.model not in models:
            raise ValueError(
                f"fusion.model {self.fusion.model!r} is not a {level}-level model; for task {self.task} choose one "
                f"of {list(models)} (e.g. -S fusion.model={models[1]})"
            )
        if level == "frame" and "visual" not in self.fusion.modalities:
            raise ValueError(
                f"the frame-level models need visual among fusion.modalities, got {list(self.fusion.modalities)}"
            )
        if self.fusion.model == "dual_branch" and "audio" not in self.fusion.modalities:
            raise ValueError("fusion.model dual_branch needs audio among fusion.modalities (its second branch)")
        return self


# Which params sections each stage reads (dotted prefixes). dvc.yaml must track exactly the
# leaf keys under these prefixes: tests/test_config.py checks it.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    # make_demo reads data.source only to skip generating when the demo is not the data source, and
    # task for which demo to write (clips for emi, tracks for the frame-level tasks).
    "make_demo": ("demo", "data.source", "task"),
    "ingest": ("data",),
    "decode": ("decode",),
    "asr": ("asr",),
    "features@visual": ("features.visual", "features.dtype", "features.clips_per_shard"),
    "features@audio": ("features.audio", "features.dtype", "features.clips_per_shard"),
    "features@text": ("features.text", "features.dtype", "features.clips_per_shard"),
    "train": ("task", "fusion", "train", "frames", "va", "expr", "au"),
    # evaluate rebuilds the model from data/model/config.json, so the task and fusion.* (and the task's
    # windows, smoothing and thresholds) reach it through train.
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
        elif not key:  # a rule across sections (Params._task_fits): its message says it all
            lines.append(item["msg"].removeprefix("Value error, "))
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

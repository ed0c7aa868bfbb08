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
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipeline.config.base import MODALITIES, Modality, Section
from pipeline.config.features import AudioFeatureParams, FeatureParams, TextFeatureParams, VisualFeatureParams
from pipeline.config.fusion import EvaluateParams, FusionParams, TrainParams, UstcParams
from pipeline.config.media import AsrParams, DataParams, DecodeParams, DemoParams
from pipeline.config.run import GateParams, GridParams, RuntimeParams

__all__ = [
    "ALL_KEYS", "MODALITIES", "STAGE_SECTIONS", "UNTRACKED_SECTIONS", "AsrParams", "AudioFeatureParams", "DataParams",
    "DecodeParams", "DemoParams", "EvaluateParams", "FeatureParams", "FusionParams", "GateParams", "GridParams",
    "Modality", "Params", "ParamsError", "RuntimeParams", "TextFeatureParams", "TrainParams", "UstcParams",
    "VisualFeatureParams", "load_params", "parse_params", "stage_keys",
]  # fmt: skip


class Params(Section):
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

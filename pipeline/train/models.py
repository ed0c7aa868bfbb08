"""The fusion model of a run: built from its params, saved and loaded (safetensors + config.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from models.frame_common import FrameModelConfig
from models.frame_dual import DualBranch
from models.frame_moe import CrossModalMoE
from models.frame_reliability import ReliabilityFusion
from models.frame_visual import VisualTemporal
from models.taemi import Taemi, TaemiConfig
from models.ustc import Ustc, UstcConfig
from pipeline.atomic import atomic_path, write_json
from pipeline.config import FRAME_MODELS, FusionParams
from pipeline.features.shards import ModalityInfo

# Every fusion model by its ``fusion.model`` name, with its config class.
MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "taemi": (Taemi, TaemiConfig),
    "ustc": (Ustc, UstcConfig),
    "visual_temporal": (VisualTemporal, FrameModelConfig),
    "reliability": (ReliabilityFusion, FrameModelConfig),
    "moe": (CrossModalMoE, FrameModelConfig),
    "dual_branch": (DualBranch, FrameModelConfig),
}


def model_config(fusion: FusionParams, input_dims: Mapping[str, int], *, n_outputs: int = 6):
    """The model config for ``fusion`` and the feature widths of its modalities (``n_outputs``: the
    task's output width; 6 for emi)."""
    dims = {m: int(input_dims[m]) for m in fusion.modalities}
    common = dict(
        input_dims=dims,
        modality_dropout=fusion.modality_dropout,
        d_model=fusion.d_model,
        n_heads=fusion.n_heads,
        dropout=fusion.dropout,
    )
    if fusion.model in FRAME_MODELS:
        t = fusion.temporal
        return FrameModelConfig(
            layers=t.layers, audio_latents=t.audio_latents, gate_hidden=t.gate_hidden, n_outputs=n_outputs, **common
        )
    if fusion.model == "taemi":
        return TaemiConfig(
            anchor=fusion.anchor,
            cross_attention=fusion.cross_attention,
            concat=fusion.concat,
            missing_tokens=fusion.missing_tokens,
            out_dim=fusion.out_dim,
            **common,
        )
    u = fusion.ustc
    return UstcConfig(
        tfe=u.tfe,
        qam=u.qam,
        tcn_levels=u.tcn_levels,
        tcn_kernel=u.tcn_kernel,
        segments=u.segments,
        encoder_layers=u.encoder_layers,
        **common,
    )


def build_model(kind: str, config) -> nn.Module:
    """A fresh model of ``kind`` (a ``fusion.model`` name) from a config object or its dict."""
    cls, cfg_cls = MODELS[kind]
    if isinstance(config, Mapping):
        config = cfg_cls(**config)
    return cls(config=config)


def save_model(
    out_dir: str | Path,
    *,
    kind: str,
    config: TaemiConfig | UstcConfig,
    state: Mapping[str, torch.Tensor],
    info: Mapping[str, ModalityInfo],
    meta: Mapping,
) -> None:
    """``model.safetensors`` + ``config.json`` (model kind and config, feature dims and model names,
    ``meta``: params and selection facts), each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    with atomic_path(out / "model.safetensors", ".safetensors") as tmp:
        save_file(tensors, str(tmp))
    features = {m: {"dim": i.dim, "model": i.model} for m, i in info.items()}
    write_json({"model": kind, "model_config": config.to_dict(), "features": features, **meta}, out / "config.json")


def load_model(model_dir: str | Path, *, device: torch.device) -> tuple[nn.Module, dict]:
    """The trained model (eval mode, on ``device``) and its config.json; weights via safetensors only."""
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    model = build_model(meta["model"], meta["model_config"])
    model.load_state_dict(load_file(str(model_dir / "model.safetensors")), strict=True)
    return model.to(device).eval(), meta

"""Training of the fusion models: TAEMI's recipe by default (seed 002, 3.5 and 4.1), USTC's options.

- AdamW (lr 1e-4, weight decay 0.01), batch 32, gradient clipping at norm 100, MSE loss (or
  ``loss: pearson`` = 1 - batch Pearson), bf16 autocast on CUDA only (bf16 needs no gradient scaler).
- Per-step schedule: linear warmup over ``warmup_epochs``, then cosine decay to 0 at ``max_epochs``
  (``cosine``), or SGDR cycles of ``sgdr_cycle_epochs`` from lr down to lr/100 with warm restarts
  (``sgdr``; seed 001 uses 1e-5 -> 1e-7).
- Validation mean Pearson after every epoch; early stopping with ``patience``; the best epoch's
  weights are kept. With ``ema`` the validated and saved weights are the weight EMA (seed 001,
  gamma 0.999); the decay is ramped as min(gamma, (1 + n) / (10 + n)) after n updates, as in
  TensorFlow's ExponentialMovingAverage, because a plain 0.999 average over the few hundred steps of
  a small dataset would still be mostly the random initialisation.
- USTC stage 1 (``fusion.ustc.contrastive_pretrain``): symmetric InfoNCE (CLIP) between the
  visual/audio clip embeddings and the text embedding, temperature ``ustc.temperature``, on the
  train split only, with SGDR as in the paper; each pair's loss is weighted by the fraction of valid
  frames of its visual/audio sequence (w_i: a clip whose face was found in a third of the frames
  gives a weaker visual embedding). The paper's stage 1 fine-tunes the feature extractors, which are
  frozen here, so it pretrains the branch encoders and mapping MLPs instead; stage 2 then trains
  the whole fusion model.
- Reproducible: python, numpy and torch seeded, deterministic algorithms and one thread on CPU,
  so two CPU runs with the same inputs and params give bit-identical weights. Only the clips passed
  in (train, valid) are ever seen: the train stage does not even load the test split.
"""

from __future__ import annotations

import copy
import json
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from models.taemi import Taemi, TaemiConfig
from models.ustc import Ustc, UstcConfig
from pipeline.atomic import atomic_path, write_json
from pipeline.config import FusionParams, TrainParams, UstcParams
from pipeline.dataset import ClipTable
from pipeline.metrics import pearson_loss, pearson_per_emotion
from pipeline.shards import ModalityInfo

# One thread makes CPU results independent of the core count and degrades gracefully: in
# benchmarks/bench_fusion.py two threads were 1.4-2x faster on an idle 2-core machine but 5-10x
# slower on a loaded one (threads spin waiting for each other). Real-size runs belong on a GPU.
CPU_THREADS = 1
SGDR_MIN_RATIO = 0.01  # seed 001: eta_min / eta_max = 1e-7 / 1e-5
EMA_RAMP = 10.0

Log = Callable[[str], None]


def set_determinism(seed: int, device: torch.device) -> None:
    """Seed python, numpy and torch; on CPU also fix the thread count and forbid nondeterministic ops."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.set_num_threads(CPU_THREADS)
        torch.use_deterministic_algorithms(True)


# ------------------------------------------------------------------------------------ models
def model_config(fusion: FusionParams, input_dims: Mapping[str, int]) -> TaemiConfig | UstcConfig:
    """The model config for ``fusion`` and the feature widths of its modalities."""
    dims = {m: int(input_dims[m]) for m in fusion.modalities}
    common = dict(
        input_dims=dims,
        modality_dropout=fusion.modality_dropout,
        d_model=fusion.d_model,
        n_heads=fusion.n_heads,
        dropout=fusion.dropout,
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


def build_model(kind: str, config: TaemiConfig | UstcConfig | Mapping) -> nn.Module:
    """A fresh model of ``kind`` ("taemi" | "ustc") from a config object or its dict."""
    cls, cfg_cls = {"taemi": (Taemi, TaemiConfig), "ustc": (Ustc, UstcConfig)}[kind]
    if isinstance(config, Mapping):
        config = cfg_cls(**config)
    return cls(config=config)


# --------------------------------------------------------------------------------- schedules
def lr_factor(step: int, *, schedule: str, warmup_steps: int, total_steps: int, cycle_steps: int) -> float:
    """Multiplier of the base lr for optimizer step ``step`` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    t = step - warmup_steps
    if schedule == "cosine":
        progress = min(t / max(total_steps - warmup_steps, 1), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "sgdr":
        phase = (t % cycle_steps) / cycle_steps
        return SGDR_MIN_RATIO + 0.5 * (1.0 - SGDR_MIN_RATIO) * (1.0 + math.cos(math.pi * phase))
    raise ValueError(f"unknown schedule {schedule!r}")


class WeightEma:
    """Exponential moving average of a model's parameters and buffers, in a separate copy."""

    def __init__(self, model: nn.Module, *, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.updates) / (EMA_RAMP + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for ema_t, t in zip(self.model.state_dict().values(), model.state_dict().values(), strict=True):
            if ema_t.dtype.is_floating_point:
                ema_t.mul_(d).add_(t.detach(), alpha=1.0 - d)
            else:
                ema_t.copy_(t)
        self.updates += 1


# -------------------------------------------------------------------------------- inference
@torch.no_grad()
def predict(
    model: nn.Module,
    table: ClipTable,
    *,
    batch_size: int,
    device: torch.device,
    absent: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """(N, 6) float32 predictions in table order; ``absent[m]`` (N,) bool removes modality m there."""
    model.eval()
    out = []
    for start in range(0, len(table), batch_size):
        idx = np.arange(start, min(start + batch_size, len(table)))
        batch = table.batch(idx)
        if absent:
            batch = batch.without({m: torch.from_numpy(np.asarray(a, bool)[idx]) for m, a in absent.items()})
        batch = batch.to(device)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model(batch.inputs).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 6), np.float32)


def _validate(model: nn.Module, valid: ClipTable, batch_size: int, device: torch.device) -> np.ndarray:
    return pearson_per_emotion(predict(model, valid, batch_size=batch_size, device=device), valid.labels)


# --------------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    state: dict[str, torch.Tensor]  # the best epoch's weights (EMA weights when EMA is on), on CPU
    history: list[dict]  # one entry per epoch: epoch, train_loss, val_pearson, val_per_emotion, lr
    best_epoch: int
    best_val: float


def _optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)


def _loss(kind: str, pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, true) if kind == "mse" else pearson_loss(pred, true)


def fit_feature_norm(model: nn.Module, table: ClipTable) -> None:
    """Set the model's input standardisation (``model.norm[m]``) from ``table``'s valid frames:
    per-dimension mean and std in float64, std floored at 1e-3 so near-constant dimensions stay
    bounded. Only the training split is ever passed here."""
    for m, norm in model.norm.items():
        frames = [
            v[ok].astype(np.float64) for v, ok in zip(table.values[m], table.valid[m], strict=True) if v is not None
        ]
        if not frames:
            continue
        stacked = np.concatenate(frames)
        norm.mean.copy_(torch.from_numpy(stacked.mean(axis=0)).to(norm.mean))
        norm.inv_std.copy_(torch.from_numpy(1.0 / np.maximum(stacked.std(axis=0), 1e-3)).to(norm.inv_std))


@dataclass
class _Loop:
    """The optimisation state of one training run."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: WeightEma | None
    order_rng: torch.Generator

    @classmethod
    def start(cls, model: nn.Module, n_train: int, params: TrainParams) -> _Loop:
        steps_per_epoch = math.ceil(n_train / params.batch_size)
        schedule = dict(
            schedule=params.schedule,
            warmup_steps=round(params.warmup_epochs * steps_per_epoch),
            total_steps=params.max_epochs * steps_per_epoch,
            cycle_steps=params.sgdr_cycle_epochs * steps_per_epoch,
        )
        optimizer = _optimizer(model, params)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, **schedule))
        ema = WeightEma(model, decay=params.ema) if params.ema else None
        return cls(model, optimizer, scheduler, ema, torch.Generator().manual_seed(params.seed))

    @property
    def judged(self) -> nn.Module:
        """The weights validated and kept: the EMA copy when EMA is on."""
        return self.ema.model if self.ema is not None else self.model

    def epoch(self, train: ClipTable, params: TrainParams, device: torch.device) -> tuple[float, float]:
        """One pass over ``train`` in a seeded random order -> (mean training loss, last lr)."""
        self.model.train()
        total, seen, lr = 0.0, 0, 0.0
        order = torch.randperm(len(train), generator=self.order_rng).numpy()
        for batch in train.batches(params.batch_size, order=order):
            batch = batch.to(device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                pred = self.model(batch.inputs)
            loss = _loss(params.loss, pred.float(), batch.labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), params.grad_clip)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            total += loss.item() * len(batch.clip_ids)
            seen += len(batch.clip_ids)
        return total / seen, lr


def train_model(
    *,
    model: nn.Module,
    train: ClipTable,
    valid: ClipTable,
    params: TrainParams,
    device: torch.device,
    log: Log = print,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Fit ``model`` on ``train`` (fully labelled clips) and select the epoch on ``valid``.

    ``on_epoch`` receives each epoch's history entry as it is made (the train stage logs it with
    DVCLive, so ``dvc exp show`` follows a run live).
    """
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"training needs labelled train and valid clips, got {len(train)} and {len(valid)}")
    fit_feature_norm(model, train)
    model.to(device)
    loop = _Loop.start(model, len(train), params)
    history: list[dict] = []
    best_val, best_epoch, best_state, stale = -math.inf, 0, None, 0
    for epoch in range(1, params.max_epochs + 1):
        train_loss, lr = loop.epoch(train, params, device)
        per = _validate(loop.judged, valid, params.batch_size, device)
        val = float(per.mean())
        entry = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_pearson": val,
            "val_per_emotion": per.tolist(),
            "lr": lr,
        }
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
        log(f"epoch {epoch:3d}  train {params.loss} {train_loss:.5f}  val pearson {val:.4f}  lr {lr:.3g}")
        if val > best_val:
            best_val, best_epoch, stale = val, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in loop.judged.state_dict().items()}
        else:
            stale += 1
            if stale >= params.patience:
                log(f"early stop: no improvement for {params.patience} epochs; best epoch {best_epoch}")
                break
    assert best_state is not None
    return TrainResult(state=best_state, history=history, best_epoch=best_epoch, best_val=best_val)


def contrastive_pretrain(
    *,
    model: Ustc,
    train: ClipTable,
    params: TrainParams,
    ustc: UstcParams,
    device: torch.device,
    log: Log = print,
) -> list[dict]:
    """USTC stage 1 on ``train`` (labels unused): weighted symmetric InfoNCE of visual-text and
    audio-text clip embeddings. Returns one history entry per epoch (epoch, loss, lr)."""
    fit_feature_norm(model, train)
    model.to(device)
    steps_per_epoch = math.ceil(len(train) / params.batch_size)
    cycle = params.sgdr_cycle_epochs * steps_per_epoch
    optimizer = _optimizer(model, params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, schedule="sgdr", warmup_steps=0, total_steps=0, cycle_steps=cycle)
    )
    order_rng = torch.Generator().manual_seed(params.seed + 1)
    history = []
    for epoch in range(1, ustc.contrastive_epochs + 1):
        model.train()
        total, counted = 0.0, 0
        order = torch.randperm(len(train), generator=order_rng).numpy()
        for batch in train.batches(params.batch_size, order=order):
            batch = batch.to(device)
            loss = contrastive_loss(model, batch.inputs, temperature=ustc.temperature)
            if loss is None:  # fewer than two aligned pairs in this batch
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
            optimizer.step()
            scheduler.step()
            total += loss.item()
            counted += 1
        mean = total / counted if counted else float("nan")
        history.append({"epoch": epoch, "contrastive_loss": mean, "lr": optimizer.param_groups[0]["lr"]})
        log(f"pretrain epoch {epoch:3d}  InfoNCE {mean:.5f}")
    return history


def contrastive_loss(model: Ustc, inputs: Mapping, *, temperature: float) -> torch.Tensor | None:
    """Sum over m in (visual, audio) of the weighted symmetric InfoNCE between m and text.

    Only clips with both modalities present take part; w_i = valid-frame fraction of clip i's m
    sequence; loss_m = (1/N_m) sum_i w_i * (CE(z_m z_t^T / tau)_i + CE(z_t z_m^T / tau)_i) / 2.
    None when no modality has two aligned pairs.
    """
    emb = model.embeddings(inputs)
    text, text_ok = emb["text"]
    terms = []
    for m in ("visual", "audio"):
        if m not in emb:
            continue
        z, ok = emb[m]
        pair = ok & text_ok
        if int(pair.sum()) < 2:
            continue
        zm = F.normalize(z[pair].float(), dim=-1)
        zt = F.normalize(text[pair].float(), dim=-1)
        logits = zm @ zt.T / temperature
        target = torch.arange(len(zm), device=logits.device)
        per = 0.5 * (
            F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.T, target, reduction="none")
        )
        inp = inputs[m]
        w = inp.mask.sum(dim=1).float() / inp.length.clamp(min=1).float()
        terms.append((w[pair] * per).mean())
    return torch.stack(terms).sum() if terms else None


# ------------------------------------------------------------------------------- persistence
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

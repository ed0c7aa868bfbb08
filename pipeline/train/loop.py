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
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.config import TrainParams
from pipeline.evaluate.metrics import pearson_loss, pearson_per_emotion
from pipeline.train.dataset import ClipTable
from pipeline.train.inference import predict

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


@dataclass(frozen=True)
class Objective:
    """What a task trains for: the loss of a batch, the validation score of the current weights
    (its headline and per-output values), how the model's input standardisation is fitted, and the
    names the history and DVCLive use (``val_<metric>``, the per-output list's key, the loss's)."""

    metric: str
    per_key: str
    loss_name: str
    loss: Callable[[torch.Tensor, Any], torch.Tensor]
    validate: Callable[[nn.Module], tuple[float, list[float]]]
    fit_norm: Callable[[nn.Module], None]


def emi_objective(train: ClipTable, valid: ClipTable, params: TrainParams, device: torch.device) -> Objective:
    """Task emi: MSE or 1 - batch Pearson on the six intensities, validated by mean Pearson."""

    def validate(model: nn.Module) -> tuple[float, list[float]]:
        per = pearson_per_emotion(predict(model, valid, batch_size=params.batch_size, device=device), valid.labels)
        return float(per.mean()), per.tolist()

    return Objective(
        metric="pearson",
        per_key="val_per_emotion",
        loss_name=params.loss,
        loss=lambda pred, batch: _loss(params.loss, pred.float(), batch.labels),
        validate=validate,
        fit_norm=lambda model: fit_feature_norm(model, train),
    )


@dataclass
class TrainResult:
    state: dict[str, torch.Tensor]  # the best epoch's weights (EMA weights when EMA is on), on CPU
    history: list[dict]  # one entry per epoch: epoch, train_loss, val_<metric>, the per-output list, lr
    best_epoch: int
    best_val: float


def optimizer_for(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """AdamW with the run's lr and weight decay (both papers)."""
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
        optimizer = optimizer_for(model, params)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, **schedule))
        ema = WeightEma(model, decay=params.ema) if params.ema else None
        return cls(model, optimizer, scheduler, ema, torch.Generator().manual_seed(params.seed))

    @property
    def judged(self) -> nn.Module:
        """The weights validated and kept: the EMA copy when EMA is on."""
        return self.ema.model if self.ema is not None else self.model

    def epoch(self, train: Any, params: TrainParams, device: torch.device, objective: Objective) -> tuple[float, float]:
        """One pass over ``train`` (clips, or windows of tracks) in a seeded random order -> (mean
        training loss, last lr)."""
        self.model.train()
        total, seen, lr = 0.0, 0, 0.0
        order = torch.randperm(len(train), generator=self.order_rng).numpy()
        for batch in train.batches(params.batch_size, order=order):
            batch = batch.to(device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                pred = self.model(batch.inputs)
            loss = objective.loss(pred, batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), params.grad_clip)
            lr = self.optimizer.param_groups[0]["lr"]
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.model)
            total += loss.item() * len(batch)
            seen += len(batch)
        return total / seen, lr


def train_model(
    *,
    model: nn.Module,
    train: Any,
    valid: Any,
    params: TrainParams,
    device: torch.device,
    log: Log = print,
    on_epoch: Callable[[dict], None] | None = None,
    objective: Objective | None = None,
) -> TrainResult:
    """Fit ``model`` on ``train`` and select the epoch on ``valid``: clip tables with the six labels
    (task emi, the default objective) or, with a frame-level ``objective``, windows of tracks.

    ``on_epoch`` receives each epoch's history entry as it is made (the train stage logs it with
    DVCLive, so ``dvc exp show`` follows a run live).
    """
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"training needs labelled train and valid clips, got {len(train)} and {len(valid)}")
    objective = objective or emi_objective(train, valid, params, device)
    objective.fit_norm(model)
    model.to(device)
    loop = _Loop.start(model, len(train), params)
    history: list[dict] = []
    best_val, best_epoch, best_state, stale = -math.inf, 0, None, 0
    for epoch in range(1, params.max_epochs + 1):
        train_loss, lr = loop.epoch(train, params, device, objective)
        val, per = objective.validate(loop.judged)
        entry = {
            "epoch": epoch,
            "train_loss": train_loss,
            f"val_{objective.metric}": val,
            objective.per_key: per,
            "lr": lr,
        }
        history.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
        log(
            f"epoch {epoch:3d}  train {objective.loss_name} {train_loss:.5f}  val {objective.metric} {val:.4f}  "
            f"lr {lr:.3g}"
        )
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

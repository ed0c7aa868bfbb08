"""USTC stage 1 (``fusion.ustc.contrastive_pretrain``): weighted symmetric InfoNCE of the visual/audio
clip embeddings against the text embedding, on the train split, before the regression (see
``pipeline/train/loop.py`` for how it relates to the paper's stage 1)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.ustc import Ustc
from pipeline.config import TrainParams, UstcParams
from pipeline.train.dataset import ClipTable
from pipeline.train.loop import Log, fit_feature_norm, lr_factor, optimizer_for


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
    optimizer = optimizer_for(model, params)
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

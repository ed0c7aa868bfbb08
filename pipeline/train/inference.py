"""Inference of a fusion model over a table of clips, shared by validation, evaluate and predict."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn as nn

from pipeline.train.dataset import ClipTable


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

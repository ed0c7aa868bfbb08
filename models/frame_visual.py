"""The visual-only temporal baseline (``fusion.model: visual_temporal``; tasks va, expr, au).

    v_t = StreamEmbedding(visual)_t            (B, W, d)  a learned token where frame t has no face
    h   = TemporalEncoder(v, steps)            (B, W, d)  ``layers`` pre-LN Transformer layers
    y_t = FrameHead(h)_t                       (B, W, C)

The face-frame Transformer regressor every ABAW frame-level system starts from (seed 003's face
branch without its behaviour and audio streams); the fusion models must beat it. A frame without a
face still gets a prediction, from its neighbours through attention.
"""

from __future__ import annotations

import torch.nn as nn

from models.frame_common import (
    FrameHead,
    FrameInputs,
    FrameModelConfig,
    StreamEmbedding,
    TemporalEncoder,
    feature_norms,
    standardized,
)


class VisualTemporal(nn.Module):
    def __init__(self, *, config: FrameModelConfig) -> None:
        super().__init__()
        if "visual" not in config.input_dims:
            raise ValueError("visual_temporal needs the visual modality")
        self.config = config
        c = config
        self.norm = feature_norms({"visual": c.input_dims["visual"]})
        self.embed = StreamEmbedding(c.input_dims["visual"], c.d_model)
        self.temporal = TemporalEncoder(c.d_model, c.n_heads, c.dropout, c.layers)
        self.head = FrameHead(c.d_model, c.n_outputs, c.dropout)

    def forward(self, inputs: FrameInputs):
        """-> (B, W, n_outputs); only the visual stream is read."""
        inputs = standardized(self.norm, FrameInputs({"visual": inputs.streams["visual"]}, {}, inputs.steps))
        return self.head(self.temporal(self.embed(inputs.streams["visual"]), inputs.steps))

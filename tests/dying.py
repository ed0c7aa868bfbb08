"""A feature extractor whose native code dies on one clip (a stand-in for a segfault in a model
runtime), kept in a module of few imports: every worker process that runs it imports this one."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from pipeline.features import ClipFeatures, TextInput, pooled


class DiesOnBomb:
    """Ends its process on any batch holding the clip ``bomb``; one feature (1.0) for the others."""

    modality, model_name, dim = "text", "dies-on-bomb", 1

    def extract_batch(self, inputs: list[TextInput]) -> list[ClipFeatures]:
        if any(x.clip_id == "bomb" for x in inputs):
            os._exit(9)
        ones = np.ones((1, 1), np.float32)
        return [ClipFeatures(x.clip_id, ones, np.zeros(1, np.float32), np.ones(1, bool), True) for x in inputs]


def texts(clip_ids: list[str]) -> Iterator[TextInput]:
    """The input provider: each clip's id as its text."""
    return (TextInput(c, c) for c in clip_ids)


def init_worker() -> None:
    """PooledShards initializer: this worker extracts with DiesOnBomb."""
    pooled._worker = (DiesOnBomb(), texts)

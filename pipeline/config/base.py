"""What every params section shares: a closed, frozen model; the modality names."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

Modality = Literal["visual", "audio", "text"]
# The modalities in their canonical order (features, batches, models, tables all use it).
MODALITIES: tuple[str, ...] = get_args(Modality)


class Section(BaseModel):
    """A params section: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

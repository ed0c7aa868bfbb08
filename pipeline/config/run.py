"""Params that say how things run, not what they compute: the CI gate, the grids, the executors."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.config.base import Section


class GateParams(Section):
    """The CI metrics gate (``python -m pipeline.experiments.gate``); no DVC stage reads this section."""

    # Fail when the task's headline metric (emi: pearson.mean) drops by more than this below the
    # baseline committed in git.
    tolerance: float = Field(default=0.03, ge=0.0)


class GridParams(Section):
    """The ablation grids (``python -m pipeline.experiments.grid``); no DVC stage reads this section.

    Every grid row runs once per seed ``0 .. seeds-1`` (as ``train.seed``); tables show mean ± std.
    """

    # Seeds per grid row (the default of `run --seeds`).
    seeds: int = Field(default=3, ge=1)


# ------------------------------------------------------------------------------------ runtime
class RuntimeParams(Section):
    """Where decode, asr and the feature stages run their units of work (``pipeline/runtime/``).

    No stage's outputs depend on it (the same inputs give byte-identical shards under both
    executors), so no stage tracks it: switching it alone reruns nothing.
    """

    # local: this machine's process pool (decode, asr) or the stage's own process (features);
    # ray: Ray tasks and actors, on a local Ray started for the stage or on ray_address's cluster.
    executor: Literal["local", "ray"] = "local"
    # null starts a local Ray on this machine for each stage run (stopped after it); else the address
    # of a running cluster that this machine has joined (`ray start`): "auto" or "<head>:6379".
    ray_address: str | None = None
    # CPUs of one Ray worker (actor) per stage: its thread count. null: the local executor's share
    # of the stage's machine (CPUs // decode.workers, CPUs // asr.workers, all CPUs for a feature
    # stage), so threads, and with them the output bytes, are a local run's (the Whisper encoder,
    # MiniLM and CTranslate2's decoder give other float rounding with other thread counts).
    decode_cpus: int | None = Field(default=None, ge=1)
    asr_cpus: int | None = Field(default=None, ge=1)
    features_cpus: int | None = Field(default=None, ge=1)
    # GPUs of one model actor (fractions share a GPU); 0 runs the model on CPU.
    asr_gpus: float = Field(default=0.0, ge=0.0)
    features_gpus: float = Field(default=0.0, ge=0.0)

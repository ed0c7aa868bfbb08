"""The whole demo dataset: plan the clips from ``demo.*``, render them, write the tables, swap in."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa

from pipeline.atomic import write_json, write_parquet, write_text
from pipeline.config import MODALITIES, DemoParams
from pipeline.demo.clips import FAULTS, ClipSpec, write_clip
from pipeline.demo.latent import LATENTS, conditional_expected_labels, draw_labels, draw_latents, noise_ceiling, score
from pipeline.demo.sentences import SENTENCES
from pipeline.emotions import EMOTIONS
from pipeline.runtime.pools import spawn_pool

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def plan_clips(params: DemoParams) -> tuple[list[ClipSpec], np.ndarray]:
    """The clip specs (normal clips by split, then the fault clips) and their (n, 6) labels."""
    counts = {"train": params.n_train, "valid": params.n_valid, "test": params.n_test}
    splits = [split for split in SPLITS for _ in range(counts[split])]
    faults: list[str | None] = [None] * len(splits)
    if params.faults:
        for index, fault in enumerate(FAULTS):
            splits.append(SPLITS[index % len(SPLITS)])
            faults.append(fault)
    n = len(splits)
    latents = draw_latents(np.random.default_rng([params.seed, 1]), n)
    labels = draw_labels(latents, params.label_noise, np.random.default_rng([params.seed, 2]))
    timing = np.random.default_rng([params.seed, 3])
    durations = timing.uniform(params.min_seconds, params.max_seconds, n)
    picks = timing.integers(0, 1 << 30, n)
    specs = []
    for i in range(n):
        level = int(round(latents["wording"][i] * 3))
        pool = SENTENCES[level]
        specs.append(
            ClipSpec(
                clip_id=f"demo_{i:05d}",
                split=splits[i],
                seed=int(np.random.SeedSequence([params.seed, 4, i]).generate_state(1)[0]),
                smile=float(latents["smile"][i]),
                brow=float(latents["brow"][i]),
                arousal=float(latents["arousal"][i]),
                pitch=float(latents["pitch"][i]),
                wording=float(latents["wording"][i]),
                sentence=pool[picks[i] % len(pool)],
                duration_s=float(durations[i]),
                fps=params.video_fps,
                size=params.frame_size,
                fault=faults[i],
            )
        )
    return specs, labels


def _init_worker() -> None:
    # One OpenCV thread per process: the pool already keeps every core busy.
    cv2.setNumThreads(1)


def _write_one(job: tuple[Path, ClipSpec]) -> dict[str, Any]:
    path, spec = job
    return write_clip(path, spec)


def generate_demo(
    out_dir: str | Path, params: DemoParams, *, workers: int = 2, ceiling_draws: int = 200_000
) -> dict[str, Any]:
    """Write the whole dataset to ``out_dir`` (replaced as a whole: built beside it, then swapped in).

    Clips are rendered by ``workers`` processes, each from its own derived seed, so the output
    does not depend on ``workers``. Returns the ceiling dict also written to ceiling.json.
    """
    out_dir = Path(out_dir)
    specs, labels = plan_clips(params)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    build.chmod(0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
    try:
        jobs = [(build / "clips" / spec.filename, spec) for spec in specs]
        (build / "clips").mkdir()
        if workers > 1:
            with spawn_pool(workers, initializer=_init_worker) as pool:
                timings = list(pool.map(_write_one, jobs))
        else:
            timings = [_write_one(job) for job in jobs]
        latents = {k: np.array([getattr(s, k) for s in specs]) for k in LATENTS}
        expected = conditional_expected_labels(latents, MODALITIES, params.label_noise)
        _write_tables(build, specs, labels, expected, timings)
        ceiling = noise_ceiling(label_noise=params.label_noise, seed=params.seed, n_draws=ceiling_draws)
        # The same ceiling on the clips actually written: what a perfect model would score per split.
        splits = np.array([s.split for s in specs])
        ceiling["generated"] = {split: score(expected[splits == split], labels[splits == split]) for split in SPLITS}
        write_json(ceiling, build / "ceiling.json")
        swap_in(build, out_dir)
    finally:
        if build.exists():
            shutil.rmtree(build)
    return ceiling


def _write_tables(
    root: Path, specs: list[ClipSpec], labels: np.ndarray, expected: np.ndarray, timings: list[dict[str, Any]]
) -> None:
    lines = [",".join(("clip_id", "split", *EMOTIONS))]
    lines += [",".join((s.clip_id, s.split, *(f"{v:.6f}" for v in row))) for s, row in zip(specs, labels, strict=True)]
    write_text("\n".join(lines) + "\n", root / "labels.csv")
    faults = {
        s.clip_id: {
            "fault": s.fault,
            "status": FAULTS[s.fault].status,
            "path": f"clips/{s.filename}",
            "modalities": {m: getattr(FAULTS[s.fault], m) for m in MODALITIES},
        }
        for s in specs
        if s.fault is not None
    }
    write_json(faults, root / "faults.json")
    columns: dict[str, Any] = {
        "clip_id": [s.clip_id for s in specs],
        "split": [s.split for s in specs],
        "fault": [s.fault for s in specs],
        "path": [f"clips/{s.filename}" for s in specs],
        **{k: [getattr(s, k) for s in specs] for k in LATENTS},
        "wording_level": [int(round(s.wording * 3)) for s in specs],
        "sentence": [s.sentence for s in specs],
    }
    for key in (
        "duration_s",
        "n_frames",
        "speech_start_s",
        "speech_end_s",
        "espeak_pitch",
        "espeak_speed",
        "espeak_amplitude",
    ):
        columns[key] = [t[key] for t in timings]
    for column, emotion in enumerate(EMOTIONS):
        columns[f"expected_{emotion}"] = expected[:, column]
    write_parquet(pa.table(columns), root / "latents.parquet")


def swap_in(build: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``build`` so a reader never sees a half-written dataset."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    os.replace(build, out_dir)
    if old is not None:
        shutil.rmtree(old)
